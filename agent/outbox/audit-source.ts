/**
 * A read-only snapshot of the outbox for `sakshya-agent verify` (agent/verify/outbox-verifier.ts),
 * which trusts nothing the agent computed when it wrote. So it gets raw rows, as stored —
 * text it has to parse itself, so that it can name a corrupted value instead of failing on it.
 *
 * - It opens its own READ-ONLY connection and holds one read transaction on it until `close`:
 *   WAL keeps that snapshot stable while a running agent goes on writing, and the verifier
 *   changes nothing.
 * - It streams: `records()` is one cursor (joined with each record's receipt, so no second query
 *   runs during the scan; no other method may be called until it is done), `receipts()` reads
 *   keyset pages; memory does not depend on the outbox's size.
 * - It reads every schema version up to this code's, and refuses a newer one (OutboxSchemaError).
 *   Tables an older schema does not have read as absent (`undefined`).
 */
import Database from 'better-sqlite3';
import type { Database as SqliteDatabase, Statement } from 'better-sqlite3';
import { DEFAULT_BUSY_TIMEOUT_MS, refuseNewerSchema, schemaVersionOf } from './outbox-file.ts';
import type { StateKey } from './state-table.ts';

/** A `records` row, with the receipt its `acked_batch` names (null columns if none is stored). */
export interface AuditRecordRow {
  epoch: number;
  seq: number;
  id: string;
  kind: string;
  at: string;
  hash: string;
  canonical: string;
  bytes: number;
  ackedBatch: string | null;
  receiptBatch: string | null;
  receiptEpoch: number | null;
  receiptHighest: number | null;
}

export interface AuditChainRow {
  epoch: number;
  headSeq: number;
  headHash: string;
  ackedSeq: number;
}

export interface AuditReceiptRow {
  batchId: string;
  epoch: number;
  highestSeq: number;
  accepted: number;
  duplicates: number;
  /** The receipt's text, as stored. */
  receipt: string;
  signature: string;
}

export interface AuditSigningKeyRow {
  epoch: number;
  fromSeq: number;
  kid: string;
}

export interface AuditWitnessCheckpointRow {
  size: number;
  root: string;
  note: string;
}

/** Receipts per keyset page. */
const RECEIPT_PAGE = 256;

export class OutboxAuditSource {
  readonly path: string;
  /** `PRAGMA user_version` of the file: 0 for a database that is not an outbox. */
  readonly schemaVersion: number;
  readonly #db: SqliteDatabase;

  private constructor(path: string, db: SqliteDatabase, schemaVersion: number) {
    this.path = path;
    this.#db = db;
    this.schemaVersion = schemaVersion;
  }

  /** Opens the snapshot. Throws OutboxSchemaError if the file is newer than this code. MUST be closed. */
  static open(path: string): OutboxAuditSource {
    const db: SqliteDatabase = new Database(path, { readonly: true, fileMustExist: true });
    try {
      db.pragma(`busy_timeout = ${DEFAULT_BUSY_TIMEOUT_MS}`);
      const version = schemaVersionOf(db);
      refuseNewerSchema(path, version);
      db.exec('BEGIN');
      return new OutboxAuditSource(path, db, version);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** Ends the read transaction and closes the connection. */
  close(): void {
    if (!this.#db.open) return;
    try {
      if (this.#db.inTransaction) this.#db.exec('COMMIT');
    } finally {
      this.#db.close();
    }
  }

  /** The stored text of the pins, or undefined if the outbox has none. */
  pinsText(): string | undefined {
    return this.#stateText('pins');
  }

  /** The stored text of the active witness alarm, or undefined if there is none. */
  witnessAlarmText(): string | undefined {
    return this.#stateText('witness.alarm');
  }

  /** Every chain row, by epoch. */
  chains(): AuditChainRow[] {
    return this.#db.prepare('SELECT epoch, head_seq AS headSeq, head_hash AS headHash, acked_seq AS ackedSeq FROM chains ORDER BY epoch').all() as AuditChainRow[];
  }

  /** Every record, by epoch then seq, streamed through one cursor. */
  records(): IterableIterator<AuditRecordRow> {
    return this.#db
      .prepare(
        `SELECT r.epoch, r.seq, r.id, r.kind, r.at, r.hash, r.canonical, r.bytes, r.acked_batch AS ackedBatch,
                rc.batch_id AS receiptBatch, rc.epoch AS receiptEpoch, rc.highest_seq AS receiptHighest
           FROM records r LEFT JOIN receipts rc ON rc.batch_id = r.acked_batch
          ORDER BY r.epoch, r.seq`,
      )
      .iterate() as IterableIterator<AuditRecordRow>;
  }

  /** The rotated signing keys, by epoch then fromSeq; undefined before schema 3 (no such table). */
  signingKeys(): AuditSigningKeyRow[] | undefined {
    if (!this.#hasTable('signing_keys')) return undefined;
    return this.#db.prepare('SELECT epoch, from_seq AS fromSeq, kid FROM signing_keys ORDER BY epoch, from_seq').all() as AuditSigningKeyRow[];
  }

  /** Every receipt, by batch id, read in keyset pages (no cursor stays open between rows). */
  *receipts(): Generator<AuditReceiptRow> {
    const page: Statement<[string, number], AuditReceiptRow> = this.#db.prepare(
      `SELECT batch_id AS batchId, epoch, highest_seq AS highestSeq, accepted, duplicates, receipt, signature
         FROM receipts WHERE batch_id > ? ORDER BY batch_id LIMIT ?`,
    );
    let after = '';
    for (;;) {
      const rows = page.all(after, RECEIPT_PAGE);
      if (rows.length === 0) return;
      yield* rows;
      after = rows.at(-1)!.batchId;
    }
  }

  /** The stored witness checkpoint; undefined if there is none (or before schema 2). */
  witnessCheckpoint(): AuditWitnessCheckpointRow | undefined {
    if (!this.#hasTable('witness_checkpoint')) return undefined;
    return this.#db.prepare('SELECT size, root, note FROM witness_checkpoint').get() as AuditWitnessCheckpointRow | undefined;
  }

  #stateText(key: StateKey): string | undefined {
    const row = this.#db.prepare('SELECT value FROM state WHERE key = ?').get(key) as { value: string } | undefined;
    return row?.value;
  }

  #hasTable(name: string): boolean {
    return this.#db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
  }
}
