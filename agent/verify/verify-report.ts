/**
 * What `sakshya-agent verify` reports: every problem names the table, where in it (epoch and
 * seq, record id, batch id or state key), a stable check code, and expected vs found. The JSON
 * form (`--json`) is this object; the text form is one line per problem and a verdict.
 */

export type VerifiedTable = 'records' | 'chains' | 'receipts' | 'state' | 'witness_checkpoint' | 'signing_keys';

export interface VerifyProblem {
  table: VerifiedTable;
  /** Stable code of the failed check, e.g. `hash_mismatch`, `seq_gap`, `bad_signature`. */
  check: string;
  epoch?: number;
  seq?: number;
  /** Record id (records) as stored in the row. */
  id?: string;
  batchId?: string;
  key?: string;
  expected?: string | number | null;
  found?: string | number | null;
  message: string;
}

export interface VerifyReport {
  /** True only when no problem was found. */
  ok: boolean;
  outbox: string;
  agent: string | null;
  schemaVersion: number;
  checked: {
    records: number;
    epochs: number;
    receipts: number;
    acknowledged: number;
    /** Size of the witness's last verified checkpoint, if any. */
    witnessCheckpoint: number | null;
  };
  problemCount: number;
  /** The first MAX_LISTED_PROBLEMS problems (all are counted). */
  problems: VerifyProblem[];
  problemsTruncated: boolean;
  /** Facts worth knowing that are not damage to the outbox (an active witness alarm). */
  warnings: string[];
}

export const MAX_LISTED_PROBLEMS = 1000;

function show(value: string | number | null | undefined): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return value.length > 80 ? `${JSON.stringify(value.slice(0, 77))}…` : JSON.stringify(value);
  return String(value);
}

export function formatProblem(problem: VerifyProblem): string {
  const where: string[] = [problem.table];
  if (problem.epoch !== undefined) where.push(`epoch ${problem.epoch}`);
  if (problem.seq !== undefined) where.push(`seq ${problem.seq}`);
  if (problem.id !== undefined) where.push(`record ${problem.id}`);
  if (problem.batchId !== undefined) where.push(`batch ${problem.batchId}`);
  if (problem.key !== undefined) where.push(`key ${problem.key}`);
  let line = `${where.join(' ')}: ${problem.check}: ${problem.message}`;
  if (problem.expected !== undefined || problem.found !== undefined) line += ` (expected ${show(problem.expected)}, found ${show(problem.found)})`;
  return line;
}

export function formatReport(report: VerifyReport): string {
  const lines = report.problems.map(formatProblem);
  if (report.problemsTruncated) lines.push(`… and ${report.problemCount - report.problems.length} more problems`);
  for (const warning of report.warnings) lines.push(`warning: ${warning}`);
  const { checked } = report;
  const summary = `${checked.records} records in ${checked.epochs} epoch(s), ${checked.acknowledged} acknowledged, ${checked.receipts} receipts`;
  lines.push(report.ok ? `outbox intact: ${summary}` : `outbox DAMAGED: ${report.problemCount} problem(s) in ${summary}`);
  return lines.join('\n') + '\n';
}
