/** What `db copy` and `db verify-copy` print: the copy, each check of the proof, and a one-line verdict. */
import { formatFinding } from '../ledger-audit.ts';
import type { CopyProof, CopyResult } from '../database-copy.ts';

/** Audit findings listed under a failed `ledger verify` check; the rest are counted. */
const LISTED_FINDINGS = 20;

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function mebibytes(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

export function formatCopy(result: CopyResult): string {
  const migrated = result.migrated.applied.length > 0 ? `; the target was migrated ${result.migrated.from} -> ${result.migrated.to}` : '';
  const tables = Object.entries(result.tables)
    .map(([table, rows]) => `${table} ${rows}`)
    .join(', ');
  return (
    `copied ${result.from} -> ${result.to} in ${seconds(result.durationMs)}: ledger size ${result.ledger.size}, ` +
    `${Object.keys(result.tables).length} tables, ${result.rows} rows, ${mebibytes(result.bytes)} (schema version ${result.schemaVersion}${migrated})\n` +
    `  rows: ${tables}\n`
  );
}

export function formatProof(proof: CopyProof, copy?: CopyResult): string {
  const lines = [`proof that ${proof.to} is a copy of ${proof.from}:`];
  for (const check of proof.checks) {
    lines.push(`  ${check.ok ? 'ok    ' : 'FAILED'} ${check.detail}`);
    if (check.ok) continue;
    if (check.name === 'tables') {
      for (const table of proof.tables.filter((t) => !t.identical)) {
        for (const difference of table.differences) {
          const key = Object.entries(difference.key)
            .map(([column, value]) => `${column}=${JSON.stringify(value)}`)
            .join(' ');
          lines.push(`         ${table.table} ${key}: ${difference.problem === 'different' ? `different (${difference.columns!.join(', ')})` : difference.problem === 'missing' ? 'missing from the copy' : 'not in the source'}`);
        }
        if (table.omitted > 0) lines.push(`         ${table.table}: … and ${table.omitted} more differing rows`);
      }
    }
    if (check.name === 'ledger_verify' && proof.audit) {
      for (const finding of proof.audit.findings.slice(0, LISTED_FINDINGS)) lines.push(`         ${formatFinding(finding)}`);
      const more = proof.audit.findings.length + proof.audit.omitted - LISTED_FINDINGS;
      if (more > 0) lines.push(`         … and ${more} more problems (sakshya-collector ledger verify on the copy lists them)`);
    }
  }
  const { counts } = proof;
  const took = copy ? `${seconds(copy.durationMs + proof.durationMs)} (copy ${seconds(copy.durationMs)}, proof ${seconds(proof.durationMs)})` : seconds(proof.durationMs);
  if (proof.proved) {
    lines.push(
      `COPY PROVED: records ${counts.records}, checkpoints ${counts.checkpoints}, receipts ${counts.receipts}, agents ${counts.agents}, ` +
        `root ${proof.ledger.root ?? '(no checkpoint)'}, in ${took}`,
    );
  } else {
    const failed = proof.checks.filter((check) => !check.ok).length;
    lines.push(`COPY NOT PROVED: ${failed} check${failed === 1 ? '' : 's'} failed; do not switch the collector to ${proof.to}`);
  }
  return lines.join('\n') + '\n';
}
