/**
 * Bytes on disk per record, on SQLite and on PostgreSQL: a real `sakshya-collector serve`, K
 * simulated agents, and records sent through the real ingest path (receipts, checkpoints and
 * Merkle nodes included), in two phases:
 *
 *   A. N records in batches of 500 (an agent catching up sends full batches);
 *   B. M more records in batches of 1 (an office in steady state sends what its last second
 *      produced: usually one record).
 *
 * The database is measured after enrollment, after A and after B, table by table (indexes
 * included). A table's growth is modelled as `perRecord × records + perBatch × batches`, solved
 * from the two phases; that gives the bytes a record costs at any batch size. Phase B also reads
 * the write lock's hold time per one-record batch from /metrics: the serialised cost of a commit;
 * a last phase C (not in the storage model) has one agent send one-record batches alone, one at
 * a time: the same cost with nothing else running.
 *
 * SQLite: the database file after `PRAGMA wal_checkpoint(TRUNCATE)` (any WAL left is added), split
 * by table with the `dbstat` virtual table. PostgreSQL: `pg_total_relation_size` per table (heap,
 * TOAST, free-space and visibility maps, indexes), `pg_database_size`, and the WAL written
 * (`pg_current_wal_lsn`), which is what streaming replication ships and WAL archiving keeps.
 *
 * Batches are prepared round by round (every agent's next batch, then all sent at once), so the
 * load generator's memory stays flat however many records are sent.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { API_PREFIX, type SignedReceipt } from '../shared/protocol.ts';
import type { Cleanup } from './lib/cleanup.ts';
import { enrollSimulatedAgent, mapLimit, startBenchCollector, type BenchCollector } from './lib/collector.ts';
import { HttpClient } from './lib/http-client.ts';
import { benchDatabase, sqlOn, type BenchPostgres } from './lib/postgres-server.ts';
import { nowMs } from './lib/stats.ts';
import { SimulatedAgent, simulatedAgentIds } from './lib/workload.ts';
import { scrapeWriteLock, writeLockFigures, type WriteLockFigures } from './lib/write-lock.ts';

/** The ledger's tables: kept for the life of the log. Every other table is summed as "other". */
export const LEDGER_TABLES = ['records', 'merkle_subtrees', 'checkpoints', 'receipts'] as const;

export interface StorageOptions {
  agents: number;
  /** Phase A: records in full batches. */
  records: number;
  batchSize: number;
  /** Phase B: records in small batches. */
  small: { records: number; batchSize: number };
  /** Phase C: small batches of one agent alone, one at a time. */
  serialSmallBatches: number;
}

/** The database at one moment: bytes per table (indexes included), in all, and WAL written so far. */
export interface StorageSnapshot {
  tables: { [table: string]: number };
  /** Index bytes per table (included in `tables`). */
  indexes: { [table: string]: number };
  totalBytes: number;
  walBytes?: number;
}

export interface PhaseFigures {
  records: number;
  batches: number;
  seconds: number;
}

export interface StorageModel {
  /** Bytes per record and per batch, per table and in all (the ledger tables + other). */
  perRecord: { [table: string]: number };
  perBatch: { [table: string]: number };
}

export interface BackendStorage {
  backend: 'SQLite' | 'PostgreSQL';
  empty: StorageSnapshot;
  afterFull: StorageSnapshot;
  afterSmall: StorageSnapshot;
  full: PhaseFigures;
  small: PhaseFigures;
  model: StorageModel;
  /** The write lock during phase B (batches of `small.batchSize`, all agents at once), and in phase C (one agent alone). */
  smallBatchLock: WriteLockFigures;
  serialSmallBatchLock: WriteLockFigures;
  /** Mean canonical JSON bytes of a record sent. */
  canonicalBytesPerRecord: number;
  database?: { version: string; source: string };
}

function tableGroup(table: string): string {
  return (LEDGER_TABLES as readonly string[]).includes(table) ? table : 'other';
}

function grouped(snapshot: { [table: string]: number }): { [group: string]: number } {
  const out: { [group: string]: number } = {};
  for (const [table, bytes] of Object.entries(snapshot)) out[tableGroup(table)] = (out[tableGroup(table)] ?? 0) + bytes;
  return out;
}

function sqliteSnapshot(path: string): StorageSnapshot {
  const db = new Database(path);
  try {
    db.pragma('wal_checkpoint(TRUNCATE)');
    const owners = new Map((db.prepare(`SELECT name, tbl_name FROM sqlite_schema WHERE type IN ('table', 'index')`).all() as { name: string; tbl_name: string }[]).map((r) => [r.name, r.tbl_name]));
    const tables: { [table: string]: number } = {};
    const indexes: { [table: string]: number } = {};
    for (const { name, bytes } of db.prepare(`SELECT name, SUM(pgsize) AS bytes FROM dbstat GROUP BY name`).all() as { name: string; bytes: number }[]) {
      const table = owners.get(name) ?? name;
      tables[table] = (tables[table] ?? 0) + bytes;
      if (table !== name) indexes[table] = (indexes[table] ?? 0) + bytes;
    }
    const wal = `${path}-wal`;
    return { tables, indexes, totalBytes: statSync(path).size + (existsSync(wal) ? statSync(wal).size : 0) };
  } finally {
    db.close();
  }
}

async function postgresSnapshot(url: string): Promise<StorageSnapshot> {
  const rows = await sqlOn<{ relname: string; total: string; indexes: string }>(
    url,
    `SELECT c.relname, pg_total_relation_size(c.oid) AS total, pg_indexes_size(c.oid) AS indexes
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')`,
  );
  const [db] = await sqlOn<{ size: string; wal: string }>(url, `SELECT pg_database_size(current_database()) AS size, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') AS wal`);
  return {
    tables: Object.fromEntries(rows.map((r) => [r.relname, Number(r.total)])),
    indexes: Object.fromEntries(rows.map((r) => [r.relname, Number(r.indexes)])),
    totalBytes: Number(db!.size),
    walBytes: Number(db!.wal),
  };
}

/** Sends `batchesPerAgent` batches of `batchSize` from every agent, round by round; every answer must accept the whole batch. */
async function send(collector: BenchCollector, agents: readonly SimulatedAgent[], batchesPerAgent: number, batchSize: number): Promise<PhaseFigures> {
  const client = new HttpClient(agents.length);
  const started = nowMs();
  try {
    for (let round = 0; round < batchesPerAgent; round++) {
      const prepared = await Promise.all(agents.map(async (agent) => ({ batch: agent.nextBatch(batchSize, (batchesPerAgent - round - 1) * batchSize), token: await agent.token(collector.origin) })));
      await Promise.all(
        prepared.map(async ({ batch, token }) => {
          const answer = await client.post(
            `${collector.url}${API_PREFIX}/batches`,
            { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-encoding': 'gzip', 'idempotency-key': batch.batchId },
            batch.gzipped,
          );
          const receipt = answer.status === 200 ? (JSON.parse(answer.text) as SignedReceipt).receipt : undefined;
          if (receipt?.accepted !== batch.records.length) throw new Error(`batch ${batch.batchId} of ${batch.agent} answered ${answer.status}: ${answer.text.slice(0, 500)}`);
        }),
      );
    }
  } finally {
    client.close();
  }
  return { records: agents.length * batchesPerAgent * batchSize, batches: agents.length * batchesPerAgent, seconds: (nowMs() - started) / 1000 };
}

/** Solves growth = perRecord × records + perBatch × batches from the two phases, per table group. */
function solve(empty: StorageSnapshot, afterFull: StorageSnapshot, afterSmall: StorageSnapshot, full: PhaseFigures, small: PhaseFigures): StorageModel {
  const [e, a, b] = [grouped(empty.tables), grouped(afterFull.tables), grouped(afterSmall.tables)];
  const perRecord: { [group: string]: number } = {};
  const perBatch: { [group: string]: number } = {};
  const det = full.records * small.batches - small.records * full.batches;
  for (const group of [...LEDGER_TABLES, 'other']) {
    const growA = (a[group] ?? 0) - (e[group] ?? 0);
    const growB = (b[group] ?? 0) - (a[group] ?? 0);
    perRecord[group] = (growA * small.batches - growB * full.batches) / det;
    perBatch[group] = (full.records * growB - small.records * growA) / det;
  }
  return { perRecord, perBatch };
}

/** Bytes a record costs in batches of `batchSize` (ledger tables only, or with every table). */
export function bytesPerRecord(model: StorageModel, batchSize: number, tables: readonly string[] = LEDGER_TABLES): number {
  return tables.reduce((sum, table) => sum + (model.perRecord[table] ?? 0) + (model.perBatch[table] ?? 0) / batchSize, 0);
}

/** Both phases on one backend: SQLite when `postgres` is undefined, else a fresh database on it. */
export async function measureStorage(options: StorageOptions, cleanup: Cleanup, postgres?: BenchPostgres, idPrefix = 'BN-ST'): Promise<BackendStorage> {
  const database = postgres ? await benchDatabase(postgres, cleanup) : undefined;
  // One-record batches from 8 agents on one address pass the per-address and per-agent rate limits (meant for misbehaving clients).
  const unlimited = { SAKSHYA_RATE_IP_PER_SECOND: '1000000', SAKSHYA_RATE_IP_BURST: '1000000', SAKSHYA_RATE_AGENT_PER_SECOND: '1000000', SAKSHYA_RATE_AGENT_BURST: '1000000' };
  const collector = await startBenchCollector(cleanup, { ...unlimited, ...(database ? { SAKSHYA_COLLECTOR_DATABASE: database.url } : {}) });
  const snapshot = () => (database ? postgresSnapshot(database.url) : Promise.resolve(sqliteSnapshot(join(collector.dir, 'collector.db'))));
  const agents = simulatedAgentIds(options.agents, idPrefix).map((id) => new SimulatedAgent(id));
  const enrollClient = new HttpClient(2);
  try {
    await mapLimit(agents, 2, (agent) => enrollSimulatedAgent(collector, enrollClient, agent));
  } finally {
    enrollClient.close();
  }
  // The size of the records sent, from a sample of the same workload (an agent never enrolled).
  const canonical = new SimulatedAgent(`${idPrefix}-SAMPLE`).nextBatch(100, 0).records.map((record) => Buffer.byteLength(record.canonical, 'utf8'));

  const empty = await snapshot();
  const full = await send(collector, agents, Math.ceil(options.records / options.batchSize / agents.length), options.batchSize);
  const afterFull = await snapshot();
  const lockBefore = await scrapeWriteLock([collector.metricsUrl]);
  const small = await send(collector, agents, Math.ceil(options.small.records / options.small.batchSize / agents.length), options.small.batchSize);
  const smallBatchLock = writeLockFigures(lockBefore, await scrapeWriteLock([collector.metricsUrl]), small.seconds);
  const afterSmall = await snapshot();
  const serialBefore = await scrapeWriteLock([collector.metricsUrl]);
  const serial = await send(collector, agents.slice(0, 1), options.serialSmallBatches, options.small.batchSize);
  const serialSmallBatchLock = writeLockFigures(serialBefore, await scrapeWriteLock([collector.metricsUrl]), serial.seconds);
  const exitCode = await collector.stop('SIGTERM');
  if (exitCode !== 0) throw new Error(`the collector exited with code ${exitCode} on SIGTERM`);
  return {
    backend: postgres ? 'PostgreSQL' : 'SQLite',
    empty,
    afterFull,
    afterSmall,
    full,
    small,
    model: solve(empty, afterFull, afterSmall, full, small),
    smallBatchLock,
    serialSmallBatchLock,
    canonicalBytesPerRecord: canonical.reduce((a, b) => a + b, 0) / canonical.length,
    ...(postgres ? { database: { version: postgres.version, source: postgres.source } } : {}),
  };
}
