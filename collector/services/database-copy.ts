/**
 * `sakshya-collector db copy` and `db verify-copy`: a collector's whole database moved to
 * another one (SQLite to PostgreSQL, so that a state can start small and grow without
 * re-enrolling a single agent), and the copy PROVED before anyone switches to it.
 *
 * Rules of the copy
 * - The source is at this release's schema version (else: run `migrate` on it first), and is
 *   read through one read-only snapshot: the copy is one consistent state even if a collector
 *   still writes to it (it must not: docs/operations-collector.md), and the proof below,
 *   which reads the source again, fails if it changed.
 * - The source belongs to this collector: its recorded keys are the keys directory's, and its
 *   newest checkpoint verifies with the log key and origin. Otherwise the copy could never be
 *   verified (nor served) with these keys, so nothing is written.
 * - The target is empty: migrated here if it was never migrated, refused if any table of the
 *   copy list holds a row (checked before migrating, and again under the target's writer lock).
 *   A copy never merges into an existing ledger.
 * - Every table is copied in one target transaction (store/copy.ts says why).
 *
 * The proof, each a check of its own, all printed, any failure an exit code 1:
 * - both databases are at the current schema version;
 * - (after a copy) the source's ledger is still the one copied: nothing was written meanwhile;
 * - every table holds the same rows, streamed and compared column by column in key order:
 *   the counts per table, every checkpoint byte for byte, every receipt;
 * - the Merkle root recomputed from the copy's records (by `ledger verify`) and the root of the
 *   copy's stored subtrees both equal the root of the source's newest signed checkpoint, for
 *   the same ledger size;
 * - `ledger verify`, the full audit the CLI runs, finds the copy intact.
 */
import { CheckpointError, verifyCheckpoint } from '../../shared/checkpoint.ts';
import { fromBase64Url, toBase64Url } from '../../shared/crypto.ts';
import { rootFromSubtrees } from '../../shared/merkle.ts';
import { NoteError, noteVerifierFromPublicKey } from '../../shared/signed-note.ts';
import { COPY_TABLES, copyTable, copyTables, CopyTargetNotEmptyError, rowObject, type CopiedTables, type CopySnapshot, type SnapshotLedger } from '../store/copy.ts';
import { describeDatabase, openCopySnapshot, openCopyTarget, sameDatabase, type DatabaseConnection } from '../store/open-store.ts';
import { toCollectorKey, type CollectorKeyRow } from '../store/rows.ts';
import type { CollectorStore, StoredCollectorKey } from '../store/store.ts';
import type { MigrationReport } from '../store/migrate.ts';
import { assertRecordedKeys, type ReplicaKeys } from './collector-identity.ts';
import { compareTable, type TableComparison } from './database-copy/compare-tables.ts';
import { silentCopyProgress, type CopyProgress } from './database-copy/progress.ts';
import type { AuditReport } from './ledger-audit.ts';
import { computeFromStoredSubtrees } from './ledger.ts';

export { MAX_DIFFERENCES_PER_TABLE, type RowDifference, type TableComparison } from './database-copy/compare-tables.ts';

/** The copy cannot be made as asked; nothing was written. */
export class CopyRefusedError extends Error {
  override name = 'CopyRefusedError';
}

/** The collector opened on the copy, as the CLI's commands open it: its store and its audit. */
export interface CopiedCollector {
  store: CollectorStore;
  ledgerAudit(): { run(): Promise<AuditReport> };
  close(): Promise<void>;
}

export interface DatabaseCopyOptions {
  from: DatabaseConnection;
  to: DatabaseConnection;
  /** The collector's origin and keys: the ones the source was written with. */
  origin: string;
  keys: ReplicaKeys;
  /** Opens the collector on the target database (for `ledger verify` and its stored subtrees). */
  openTarget(): Promise<CopiedCollector>;
  progress?: CopyProgress;
  now?: () => number;
}

/** The ledger as a summary names it: entries, the newest checkpoint's size and root (base64url), agents. */
export interface LedgerSummary {
  size: number;
  checkpointSize: number | null;
  root: string | null;
  agents: number;
}

export interface CopyResult {
  from: string;
  to: string;
  schemaVersion: number;
  /** The migrations the target needed before the copy. */
  migrated: MigrationReport;
  ledger: LedgerSummary;
  /** Rows per table. */
  tables: { [table: string]: number };
  rows: number;
  /** The bytes of the copied values (text as UTF-8). */
  bytes: number;
  durationMs: number;
}

export interface ProofCheck {
  /** Stable name: schema, source_unchanged, tables, checkpoints, receipts, root_from_records, root_from_subtrees, ledger_verify. */
  name: string;
  ok: boolean;
  detail: string;
}

export interface CopyProof {
  from: string;
  to: string;
  proved: boolean;
  checks: ProofCheck[];
  /** The source's ledger, as the proof read it. */
  ledger: LedgerSummary;
  counts: { records: number; checkpoints: number; receipts: number; agents: number };
  tables: TableComparison[];
  /** `ledger verify` on the copy (absent when the schemas already differ). */
  audit: AuditReport | undefined;
  durationMs: number;
}

function summaryOf(ledger: SnapshotLedger): LedgerSummary {
  return { size: ledger.size, checkpointSize: ledger.checkpoint?.size ?? null, root: ledger.checkpoint ? toBase64Url(ledger.checkpoint.root) : null, agents: ledger.agents };
}

export class DatabaseCopy {
  readonly #options: DatabaseCopyOptions;
  readonly #progress: CopyProgress;
  readonly #now: () => number;
  /** The source's ledger as the copy's snapshot saw it. */
  #copied: SnapshotLedger | undefined;

  constructor(options: DatabaseCopyOptions) {
    this.#options = options;
    this.#progress = options.progress ?? silentCopyProgress;
    this.#now = options.now ?? Date.now;
  }

  get from(): string {
    return describeDatabase(this.#options.from.url);
  }

  get to(): string {
    return describeDatabase(this.#options.to.url);
  }

  /** Copies every table from a snapshot of the source into the empty target. Throws CopyRefusedError (nothing written) when a rule is not met. */
  async copy(): Promise<CopyResult> {
    const started = this.#now();
    const { from, to } = this.#options;
    if (sameDatabase(from.url, to.url)) throw new CopyRefusedError(`--from and --to name the same database (${this.from})`);
    const source = await openCopySnapshot(from);
    try {
      const schemaVersion = await source.schemaVersion();
      if (schemaVersion !== source.codeVersion) {
        throw new CopyRefusedError(
          schemaVersion > source.codeVersion
            ? `the source database ${this.from} has schema version ${schemaVersion}, newer than this collector's (${source.codeVersion}); copy it with the release that wrote it`
            : `the source database ${this.from} has schema version ${schemaVersion}, older than this collector's (${source.codeVersion}); ` +
                `run \`sakshya-collector migrate --database ${from.url.startsWith('sqlite:') ? from.url : this.from}\` on it first (with the collector stopped), then copy`,
        );
      }
      const ledger = await source.ledger();
      await this.#assertSameCollector(source, ledger);
      const copied = await this.#fill(source);
      this.#copied = ledger;
      const rows = Object.values(copied.tables.rows).reduce((a, b) => a + b, 0);
      return {
        from: this.from,
        to: this.to,
        schemaVersion,
        migrated: copied.migrated,
        ledger: summaryOf(ledger),
        tables: copied.tables.rows,
        rows,
        bytes: copied.tables.bytes,
        durationMs: this.#now() - started,
      };
    } finally {
      this.#progress.stop();
      await source.close();
    }
  }

  /** Refuses a source that these keys and this origin did not write. */
  async #assertSameCollector(source: CopySnapshot, ledger: SnapshotLedger): Promise<void> {
    const { keys, origin } = this.#options;
    const table = copyTable('collector_keys');
    const stored: StoredCollectorKey[] = [];
    for await (const row of source.rows(table)) stored.push(toCollectorKey(rowObject(table, row) as unknown as CollectorKeyRow));
    assertRecordedKeys(stored, keys);
    if (ledger.checkpoint === undefined) return;
    try {
      verifyCheckpoint(ledger.checkpoint.note, noteVerifierFromPublicKey(origin, fromBase64Url(keys.log.publicJwk.x)), origin);
    } catch (err) {
      if (!(err instanceof NoteError || err instanceof CheckpointError)) throw err;
      throw new CopyRefusedError(
        `the source's newest checkpoint (size ${ledger.checkpoint.size}) does not verify with this collector's log key (fingerprint ${keys.log.kid}) ` +
          `and origin ${JSON.stringify(origin)}: run db copy with the SAKSHYA_COLLECTOR_DIR and SAKSHYA_COLLECTOR_ORIGIN of the collector that wrote it`,
      );
    }
  }

  async #fill(source: CopySnapshot): Promise<{ migrated: MigrationReport; tables: CopiedTables }> {
    const target = openCopyTarget(this.#options.to);
    try {
      const state = await target.inspect();
      if (state.tablesWithRows.length > 0) throw new CopyTargetNotEmptyError(this.to, state.tablesWithRows);
      if (state.version > state.codeVersion) {
        throw new CopyRefusedError(`the target database ${this.to} has schema version ${state.version}, newer than this collector's (${state.codeVersion}); give an empty database`);
      }
      const migrated = await target.migrate();
      let tables: CopiedTables | undefined;
      await target.fill(async (sink) => {
        tables = await copyTables(source, sink, {
          table: (table, total) => this.#progress.start(`copy ${table.name}`, total),
          rows: (done) => this.#progress.update(done),
        });
      });
      return { migrated, tables: tables! };
    } finally {
      await target.close();
    }
  }

  /** Proves the target a faithful copy of the source, as both are now (see the module comment). Never throws for a mismatch: it is a failed check. */
  async prove(): Promise<CopyProof> {
    const started = this.#now();
    const checks: ProofCheck[] = [];
    const tables: TableComparison[] = [];
    let ledger: SnapshotLedger;
    const source = await openCopySnapshot(this.#options.from);
    try {
      const target = await openCopySnapshot(this.#options.to);
      try {
        ledger = await source.ledger();
        const versions = [await source.schemaVersion(), await target.schemaVersion()];
        const current = versions[0] === source.codeVersion && versions[1] === target.codeVersion;
        checks.push({
          name: 'schema',
          ok: current,
          detail: current ? `schema version ${versions[0]} on both` : `schema version ${versions[0]} on the source and ${versions[1]} on the copy; both must be ${source.codeVersion}`,
        });
        if (!current) return this.#proof(started, checks, summaryOf(ledger), tables, undefined);
        if (this.#copied !== undefined) checks.push(unchangedCheck(this.#copied, ledger));
        for (const table of COPY_TABLES) {
          this.#progress.start(`check ${table.name}`, await source.count(table));
          tables.push(await compareTable(table, source.rows(table), target.rows(table), (done) => this.#progress.update(done)));
        }
        this.#progress.stop();
        checks.push(tablesCheck(tables), rowsCheck(tables, 'checkpoints', 'present and byte-identical'), rowsCheck(tables, 'receipts', 'present and identical'));
      } finally {
        await target.close();
      }
    } finally {
      this.#progress.stop();
      await source.close();
    }
    const collector = await this.#options.openTarget();
    let audit: AuditReport;
    let subtrees: ProofCheck;
    try {
      subtrees = await subtreeRootCheck(collector.store, ledger);
      audit = await collector.ledgerAudit().run();
    } finally {
      await collector.close();
    }
    checks.push(recordsRootCheck(audit, ledger), subtrees);
    checks.push({
      name: 'ledger_verify',
      ok: audit.intact,
      detail: audit.intact
        ? `ledger verify on the copy: intact (${audit.checked.records} records in ${audit.checked.chains} chains, ${audit.checked.subtrees} Merkle subtrees, ${audit.checked.checkpoints} checkpoints, ${audit.checked.receipts} receipts)`
        : `ledger verify on the copy: NOT INTACT, ${audit.findings.length + audit.omitted} problem(s); ` +
          'run `sakshya-collector ledger verify` on the source too: what it finds there was in the source before the copy',
    });
    return this.#proof(started, checks, summaryOf(ledger), tables, audit);
  }

  #proof(started: number, checks: ProofCheck[], ledger: LedgerSummary, tables: TableComparison[], audit: AuditReport | undefined): CopyProof {
    const rows = (name: string) => tables.find((t) => t.table === name)?.source ?? 0;
    return {
      from: this.from,
      to: this.to,
      proved: checks.every((check) => check.ok),
      checks,
      ledger,
      counts: { records: ledger.size, checkpoints: rows('checkpoints'), receipts: rows('receipts'), agents: ledger.agents },
      tables,
      audit,
      durationMs: this.#now() - started,
    };
  }
}

/** The source's ledger now, against the one the copy's snapshot read. */
function unchangedCheck(copied: SnapshotLedger, now: SnapshotLedger): ProofCheck {
  const same = copied.size === now.size && copied.checkpoint?.size === now.checkpoint?.size && (copied.checkpoint?.root.equals(now.checkpoint!.root) ?? true);
  return {
    name: 'source_unchanged',
    ok: same,
    detail: same
      ? `the source's ledger is still the copied one (size ${now.size})`
      : `the source changed during or after the copy: ledger size ${copied.size} in the copy's snapshot, ${now.size} now; a collector is still writing to it. ` +
        'Stop it, then copy again into a new, empty database',
  };
}

function rowCount(n: number): string {
  return `${n} row${n === 1 ? '' : 's'}`;
}

function tablesCheck(tables: TableComparison[]): ProofCheck {
  const rows = tables.reduce((n, t) => n + t.source, 0);
  const differing = tables.filter((t) => !t.identical);
  return {
    name: 'tables',
    ok: differing.length === 0,
    detail:
      differing.length === 0
        ? `${tables.length} tables, ${rowCount(rows)}: the same rows per table, every row identical`
        : `${differing.length} of ${tables.length} tables differ: ${differing.map((t) => `${t.table} (${rowCount(t.source)} in the source, ${t.target} in the copy, ${t.differences.length + t.omitted} differing)`).join(', ')}`,
  };
}

function rowsCheck(tables: TableComparison[], name: 'checkpoints' | 'receipts', identical: string): ProofCheck {
  const table = tables.find((t) => t.table === name)!;
  const count = (problem: string) => table.differences.filter((d) => d.problem === problem).length;
  return {
    name,
    ok: table.identical,
    detail: table.identical
      ? `${name}: ${table.source} of ${table.source} ${identical}`
      : `${name}: ${count('missing')} missing, ${count('different')} different, ${count('unexpected')} unexpected` + (table.omitted > 0 ? `, ${table.omitted} more` : ''),
  };
}

/** The size and root `ledger verify` recomputed from the copy's records, against the source's newest checkpoint. */
function recordsRootCheck(audit: AuditReport, ledger: SnapshotLedger): ProofCheck {
  const expected = ledger.checkpoint ? toBase64Url(ledger.checkpoint.root) : undefined;
  const ok = audit.ledger.size === ledger.size && ledger.checkpoint?.size === ledger.size && audit.ledger.root === expected;
  return {
    name: 'root_from_records',
    ok,
    detail: ok
      ? `root from the copy's records: size ${ledger.size}, root ${expected}, the root the source's checkpoint ${ledger.size} signs`
      : `root from the copy's records: size ${audit.ledger.size} root ${audit.ledger.root}; the source has ${ledger.size} entries and its newest checkpoint is ` +
        (ledger.checkpoint ? `size ${ledger.checkpoint.size} root ${expected}` : 'missing'),
  };
}

/** The root of the copy's stored Merkle subtrees (O(log n) nodes, as proofs read them), against the source's newest checkpoint. */
async function subtreeRootCheck(store: CollectorStore, ledger: SnapshotLedger): Promise<ProofCheck> {
  const expected = ledger.checkpoint ? toBase64Url(ledger.checkpoint.root) : undefined;
  let found: string;
  try {
    found = toBase64Url(await computeFromStoredSubtrees((read) => rootFromSubtrees(ledger.size, read), (nodes) => store.readSubtrees(nodes)));
  } catch (err) {
    if (!(err instanceof Error) || err.name !== 'StoreIntegrityError') throw err;
    return { name: 'root_from_subtrees', ok: false, detail: `root from the copy's stored subtrees: ${err.message}` };
  }
  const ok = found === expected;
  return {
    name: 'root_from_subtrees',
    ok,
    detail: ok ? `root from the copy's stored subtrees: ${found}` : `root from the copy's stored subtrees: ${found}, not the source's checkpoint root ${expected ?? '(none)'}`,
  };
}
