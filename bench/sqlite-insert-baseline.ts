/**
 * The storage floor: a bare better-sqlite3 insert loop into the collector's real schema.
 *
 * A temp database is migrated by the collector's own store (`openStore(url).migrate()`), then
 * opened with the collector's pragmas (WAL, synchronous=FULL, foreign keys), and the same rows
 * the ingest benchmark acknowledged are inserted into `records` — same canonical text, hashes,
 * agents and seqs — in transactions of the same batch size, after one `agents` and
 * `agent_epochs` row per agent for the foreign keys. Nothing else: no parsing, no checks, no
 * signatures, no Merkle tree. The inserts run in rounds of 10 transactions, taking turns with
 * the Merkle appends they are compared with (lib/rounds.ts). The ingest rate divided by this
 * rate says how close the collector comes to what the disk and SQLite allow for its own schema.
 */
import Database from 'better-sqlite3';
import { defaultDatabaseUrl, openStore, parseDatabaseUrl } from '../collector/store/open-store.ts';
import type { Cleanup } from './lib/cleanup.ts';
import { chunk, type RoundRunner } from './lib/rounds.ts';
import type { PreparedBatch } from './lib/workload.ts';

/** Transactions (batches) per timed round (lib/rounds.ts). */
export const BATCHES_PER_ROUND = 10;

/** A temp database at the collector's current schema, migrated by the collector's store; its file path. */
async function migratedCollectorDatabase(cleanup: Cleanup, prefix: string): Promise<string> {
  const url = defaultDatabaseUrl(cleanup.tempDir(prefix));
  const store = openStore({ url });
  try {
    await store.migrate();
  } finally {
    await store.close();
  }
  const location = parseDatabaseUrl(url);
  if (location.backend !== 'sqlite') throw new Error(`${url} is not a SQLite database`);
  return location.path;
}

/** Opens a database with the collector store's pragmas. */
function openLikeCollector(path: string): Database.Database {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  return db;
}

/**
 * Prepares the insert loop: the database, the FK rows and the statements; the inserts themselves
 * are the returned runner's rounds (BATCHES_PER_ROUND transactions each), for `timeRoundsInTurn`.
 */
export async function prepareSqliteInsertBaseline(batches: readonly PreparedBatch[], cleanup: Cleanup): Promise<RoundRunner> {
  const db = openLikeCollector(await migratedCollectorDatabase(cleanup, 'sakshya-bench-sqlite-'));
  cleanup.defer('close the bare-insert database', () => {
    db.close();
  });
  const enrolledAt = new Date().toISOString();
  const insertAgent = db.prepare(`INSERT INTO agents (agent, created_at) VALUES (?, ?)`);
  const insertEpoch = db.prepare(`INSERT INTO agent_epochs (agent, epoch, public_jwk, kid, enrolled_at) VALUES (?, 1, '{}', 'kid', ?)`);
  for (const agent of new Set(batches.map((batch) => batch.agent))) {
    insertAgent.run(agent, enrolledAt);
    insertEpoch.run(agent, enrolledAt);
  }
  const insertRecord = db.prepare(
    `INSERT INTO records (ledger_index, id, agent, epoch, seq, kind, type, at, received_at, canonical, record_hash, leaf_hash)
     VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  let ledgerIndex = 0;
  // The ingest benchmark's timed batches start above seq 1 (after its warm-up round); the seqs
  // are only unique keys here, so they are kept as they are.
  const insertBatch = db.transaction((batch: PreparedBatch, receivedAt: string) => {
    for (const r of batch.records) {
      insertRecord.run(ledgerIndex++, r.id, batch.agent, r.seq, r.kind, r.type, r.at, receivedAt, r.canonical, r.recordHash, r.leafHash);
    }
  });
  return {
    label: 'bare SQLite insert loop',
    rounds: chunk(batches, BATCHES_PER_ROUND).map((round) => () => {
      for (const batch of round) insertBatch.immediate(batch, new Date().toISOString());
      return round.reduce((n, batch) => n + batch.records.length, 0);
    }),
  };
}
