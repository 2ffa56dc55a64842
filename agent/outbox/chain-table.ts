/**
 * The `chains` table: one row per epoch with the chain head (`head_seq`, `head_hash`), the
 * acknowledged prefix (`acked_seq`) and the bytes of the records above it (`pending_bytes`,
 * schema 4). The head moves only with the insert of its record (record-writer.ts), the prefix
 * and the bytes only with the receipt that acknowledges it (delivery.ts), each in that
 * transaction: so pending = head_seq − acked_seq, and the caps read one row, never a scan.
 */
import type { Database, Statement } from 'better-sqlite3';
import { GENESIS_PREV } from '../../shared/record.ts';
import { OutboxError } from './outbox-errors.ts';

export interface ChainState {
  epoch: number;
  headSeq: number;
  headHash: string;
  ackedSeq: number;
}

export class ChainTable {
  readonly #stmts: {
    chain: Statement<[number], { epoch: number; head_seq: number; head_hash: string; acked_seq: number }>;
    allChains: Statement<[], { epoch: number; head_seq: number; acked_seq: number }>;
    insertChain: Statement<[number, string]>;
    moveHead: Statement<[number, string, number, number]>;
    setAcked: Statement<[number, number, number]>;
    pendingBytes: Statement<[], { bytes: number }>;
  };

  constructor(db: Database) {
    this.#stmts = {
      chain: db.prepare('SELECT epoch, head_seq, head_hash, acked_seq FROM chains WHERE epoch = ?'),
      allChains: db.prepare('SELECT epoch, head_seq, acked_seq FROM chains'),
      insertChain: db.prepare('INSERT INTO chains (epoch, head_seq, head_hash, acked_seq) VALUES (?, 0, ?, 0)'),
      moveHead: db.prepare('UPDATE chains SET head_seq = ?, head_hash = ?, pending_bytes = pending_bytes + ? WHERE epoch = ?'),
      setAcked: db.prepare('UPDATE chains SET acked_seq = ?, pending_bytes = pending_bytes - ? WHERE epoch = ?'),
      pendingBytes: db.prepare('SELECT coalesce(sum(pending_bytes), 0) AS bytes FROM chains'),
    };
  }

  /** The chain of `epoch`; throws OutboxError if the epoch has none. */
  get(epoch: number): ChainState {
    const row = this.#stmts.chain.get(epoch);
    if (row === undefined) throw new OutboxError(`no chain for epoch ${epoch}`);
    return { epoch: row.epoch, headSeq: row.head_seq, headHash: row.head_hash, ackedSeq: row.acked_seq };
  }

  /** Creates the empty chain of `epoch` unless it exists. */
  ensure(epoch: number): void {
    if (this.#stmts.chain.get(epoch) === undefined) this.#stmts.insertChain.run(epoch, GENESIS_PREV);
  }

  /** The record `seq` with `hash` and `bytes` was stored: it is the new head. */
  moveHead(epoch: number, seq: number, hash: string, bytes: number): void {
    this.#stmts.moveHead.run(seq, hash, bytes, epoch);
  }

  /** The prefix up to `ackedSeq` is acknowledged; `ackedBytes` of records left the backlog. */
  setAcked(epoch: number, ackedSeq: number, ackedBytes: number): void {
    this.#stmts.setAcked.run(ackedSeq, ackedBytes, epoch);
  }

  /** Acknowledged records over every epoch (each chain's acknowledged prefix). */
  acknowledgedCount(): number {
    let total = 0;
    for (const row of this.#stmts.allChains.all()) total += row.acked_seq;
    return total;
  }

  /** Unacknowledged bytes over every epoch: what the caps are measured against. */
  pendingBytes(): number {
    return this.#stmts.pendingBytes.get()!.bytes;
  }
}
