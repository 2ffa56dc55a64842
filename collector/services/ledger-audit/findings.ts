/**
 * What `ledger verify` reports: a finding names the table, the row (by its columns), the failed
 * check and what was expected and found. Findings are bounded — at most MAX_FINDINGS listed, and
 * MAX_FINDINGS_PER_CHECK per (table, check) — and counted past the limits, never dropped silently.
 */
import type { AuditRecordRow } from '../../store/store.ts';

/** Findings listed in full; more are counted in `omitted`. */
export const MAX_FINDINGS = 500;
/** Findings listed per (table, check): one broken thing can cause thousands of the same kind. */
export const MAX_FINDINGS_PER_CHECK = 25;

export type AuditTable =
  | 'records'
  | 'merkle_subtrees'
  | 'checkpoints'
  | 'agent_epochs'
  | 'agent_keys'
  | 'receipts'
  | 'ledger_kind_counts'
  | 'enrollment_tokens'
  | 'api_tokens'
  | 'schema';

/** The row a finding is about, by its column names. */
export interface AuditRow {
  ledger_index?: number;
  id?: string;
  agent?: string;
  epoch?: number;
  seq?: number;
  level?: number;
  idx?: number;
  size?: number;
  from_seq?: number;
  batch_id?: string;
  name?: string;
  kind?: string;
}

export interface AuditFinding {
  table: AuditTable;
  row: AuditRow;
  /** Stable name of the failed check, e.g. `record_hash`, `signature`, `chain_prev`. */
  check: string;
  message: string;
  expected?: string;
  found?: string;
}

export interface AuditReport {
  intact: boolean;
  origin: string;
  /** Rows read per table. */
  checked: { records: number; chains: number; subtrees: number; checkpoints: number; receipts: number };
  /** The ledger as recomputed from the records: size and base64url root. */
  ledger: { size: number; root: string };
  findings: AuditFinding[];
  /** Findings beyond the limits, counted but not listed. */
  omitted: number;
}

/** The findings of one run, bounded as the header says. */
export class Findings {
  readonly list: AuditFinding[] = [];
  omitted = 0;
  readonly #perCheck = new Map<string, number>();

  add(finding: AuditFinding): void {
    const key = `${finding.table}/${finding.check}`;
    const seen = this.#perCheck.get(key) ?? 0;
    this.#perCheck.set(key, seen + 1);
    if (seen >= MAX_FINDINGS_PER_CHECK || this.list.length >= MAX_FINDINGS) this.omitted++;
    else this.list.push(finding);
  }

  get total(): number {
    return this.list.length + this.omitted;
  }
}

/** How a finding names a records row. */
export function recordRow(row: AuditRecordRow): AuditRow {
  return { ledger_index: row.ledgerIndex, id: row.id, agent: row.agent, epoch: row.epoch, seq: row.seq };
}

export function hex(bytes: Buffer): string {
  return bytes.toString('hex');
}

/** `table[col=value …]`: how a finding's row is named on one line. */
export function describeRow(finding: AuditFinding): string {
  const parts = Object.entries(finding.row).map(([column, value]) => `${column}=${value}`);
  return `${finding.table}[${parts.join(' ')}]`;
}

/** One line per finding: table and row, check, message, expected vs found. */
export function formatFinding(finding: AuditFinding): string {
  const values = finding.expected !== undefined ? `; expected ${finding.expected}, found ${finding.found ?? ''}` : '';
  return `${describeRow(finding)} ${finding.check}: ${finding.message}${values}`;
}
