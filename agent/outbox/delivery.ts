/**
 * The sync loop's side of the outbox: reading pending records in batches and acknowledging them
 * with verified receipts (sqlite-outbox.ts, invariants 3, 4 and 5).
 *
 * - A batch is an index range scan (`epoch = ? AND seq >= ? ORDER BY seq LIMIT n`) that stops at
 *   the byte bound: memory and time per batch do not depend on the size of the backlog. Records
 *   are returned as their stored canonical text, never re-serialised.
 * - `markAcknowledged` stores the receipt, marks the covered records, moves `acked_seq` and takes
 *   their bytes off `pending_bytes`, and records `sync.lastReceipt`, in ONE transaction:
 *   acknowledgement is a prefix that only grows, and a crash leaves it all or none.
 */
import type { Database, Statement } from 'better-sqlite3';
import { canonicalJson } from '../../shared/canonical-json.ts';
import type { Backlog, SignedReceipt } from '../../shared/protocol.ts';
import type { ChainTable } from './chain-table.ts';
import { OutboxError } from './outbox-errors.ts';
import type { StateTable } from './state-table.ts';
import type { Pins } from './state-values.ts';

export interface BatchLimits {
  maxRecords: number;
  maxBytes: number;
}

export interface PendingBatch {
  firstSeq: number;
  lastSeq: number;
  /** Canonical JSON text of each record, ascending seq. */
  records: string[];
  /** Sum of the records' UTF-8 lengths plus separators. */
  bytes: number;
}

export interface StoredRecord {
  epoch: number;
  seq: number;
  id: string;
  hash: string;
  canonical: string;
  ackedBatch: string | null;
}

export interface AckResult {
  ackedSeq: number;
  newlyAcked: number;
}

/** Separator overhead per record inside the batch's `records` array. */
const RECORD_SEPARATOR_BYTES = 1;

export class Delivery {
  readonly #db: Database;
  readonly #pins: () => Pins;
  readonly #chains: ChainTable;
  readonly #state: StateTable;
  readonly #stmts: {
    readFrom: Statement<[number, number, number], { seq: number; canonical: string; bytes: number }>;
    recordAt: Statement<[number, number], { at: string }>;
    record: Statement<[number, number], { epoch: number; seq: number; id: string; hash: string; canonical: string; acked_batch: string | null }>;
    rangeBytes: Statement<[number, number, number], { bytes: number }>;
    insertReceipt: Statement<[string, number, number, number, number, string, string, string | null, string]>;
    ackRange: Statement<[string, number, number, number]>;
    receiptCount: Statement<[], { n: number }>;
  };

  constructor(db: Database, deps: { pins: () => Pins; chains: ChainTable; state: StateTable }) {
    this.#db = db;
    this.#pins = deps.pins;
    this.#chains = deps.chains;
    this.#state = deps.state;
    this.#stmts = {
      readFrom: db.prepare('SELECT seq, canonical, bytes FROM records WHERE epoch = ? AND seq >= ? ORDER BY seq LIMIT ?'),
      recordAt: db.prepare('SELECT at FROM records WHERE epoch = ? AND seq = ?'),
      record: db.prepare('SELECT epoch, seq, id, hash, canonical, acked_batch FROM records WHERE epoch = ? AND seq = ?'),
      rangeBytes: db.prepare('SELECT coalesce(sum(bytes), 0) AS bytes FROM records WHERE epoch = ? AND seq > ? AND seq <= ?'),
      insertReceipt: db.prepare(
        `INSERT INTO receipts (batch_id, epoch, highest_seq, accepted, duplicates, receipt, signature, trace_id, verified_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (batch_id) DO NOTHING`,
      ),
      ackRange: db.prepare('UPDATE records SET acked_batch = ? WHERE epoch = ? AND seq > ? AND seq <= ?'),
      receiptCount: db.prepare('SELECT count(*) AS n FROM receipts'),
    };
  }

  /**
   * The records from `fromSeq` on, ascending, at most `maxRecords` and at most `maxBytes` of
   * canonical JSON (but always at least one record, if any exists). Undefined if none.
   */
  readBatch(fromSeq: number, limits: BatchLimits, epoch: number): PendingBatch | undefined {
    const records: string[] = [];
    let bytes = 0;
    let firstSeq = 0;
    let lastSeq = 0;
    for (const row of this.#stmts.readFrom.iterate(epoch, fromSeq, limits.maxRecords)) {
      const size = row.bytes + RECORD_SEPARATOR_BYTES;
      if (records.length > 0 && (bytes + size > limits.maxBytes || row.seq !== lastSeq + 1)) break;
      if (records.length === 0) firstSeq = row.seq;
      records.push(row.canonical);
      bytes += size;
      lastSeq = row.seq;
    }
    return records.length === 0 ? undefined : { firstSeq, lastSeq, records, bytes };
  }

  record(seq: number, epoch: number): StoredRecord | undefined {
    const row = this.#stmts.record.get(epoch, seq);
    if (row === undefined) return undefined;
    return { epoch: row.epoch, seq: row.seq, id: row.id, hash: row.hash, canonical: row.canonical, ackedBatch: row.acked_batch };
  }

  /** Pending count and the `at` of the oldest pending record of the current epoch. */
  backlog(): Backlog {
    const chain = this.#chains.get(this.#pins().epoch);
    const pending = chain.headSeq - chain.ackedSeq;
    const oldest = pending > 0 ? this.#stmts.recordAt.get(chain.epoch, chain.ackedSeq + 1) : undefined;
    return { pending, oldestAt: oldest?.at ?? null };
  }

  /**
   * Stores a receipt and marks acknowledged every record of its epoch with
   * `seq <= min(receipt.highestSeq, head)`. The caller MUST have verified the receipt's
   * signature against the pinned receipt key, and that it names this agent and epoch.
   */
  markAcknowledged(signed: SignedReceipt, meta: { traceId?: string; verifiedAt?: Date } = {}): AckResult {
    const { receipt } = signed;
    const pins = this.#pins();
    if (receipt.agent !== pins.agent) throw new OutboxError(`receipt names agent ${receipt.agent}, not ${pins.agent}`);
    const verifiedAt = (meta.verifiedAt ?? new Date()).toISOString();
    return this.#db
      .transaction((): AckResult => {
        const chain = this.#chains.get(receipt.epoch);
        this.#stmts.insertReceipt.run(
          receipt.batchId,
          receipt.epoch,
          receipt.highestSeq,
          receipt.accepted,
          receipt.duplicates,
          canonicalJson(receipt),
          signed.signature,
          meta.traceId ?? null,
          verifiedAt,
        );
        const upTo = Math.min(receipt.highestSeq, chain.headSeq);
        let newlyAcked = 0;
        if (upTo > chain.ackedSeq) {
          this.#stmts.ackRange.run(receipt.batchId, receipt.epoch, chain.ackedSeq, upTo);
          const ackedBytes = this.#stmts.rangeBytes.get(receipt.epoch, chain.ackedSeq, upTo)!.bytes;
          this.#chains.setAcked(receipt.epoch, upTo, ackedBytes);
          newlyAcked = upTo - chain.ackedSeq;
        }
        this.#state.sync.lastReceipt.set({
          batchId: receipt.batchId,
          epoch: receipt.epoch,
          highestSeq: receipt.highestSeq,
          accepted: receipt.accepted,
          duplicates: receipt.duplicates,
          ledger: receipt.ledger,
          checkpoint: receipt.checkpoint,
          receivedAt: receipt.receivedAt,
          verifiedAt,
        });
        return { ackedSeq: Math.max(upTo, chain.ackedSeq), newlyAcked };
      })
      .immediate();
  }

  receiptCount(): number {
    return this.#stmts.receiptCount.get()!.n;
  }
}
