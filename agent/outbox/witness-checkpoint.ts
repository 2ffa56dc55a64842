/**
 * The `witness_checkpoint` table (schema 2): at most one row, the newest checkpoint of the
 * collector's log that this agent verified as a witness (agent/witness/), with its signed note
 * as the collector served it. It only moves forward (sqlite-outbox.ts, invariant 6): the upsert
 * changes the row only for a larger size, in one statement, so a crash leaves the old row or the
 * new one.
 */
import type { Database, Statement } from 'better-sqlite3';
import { OutboxError } from './outbox-errors.ts';

/** The newest checkpoint of the collector's log this agent verified as a witness. */
export interface WitnessCheckpoint {
  size: number;
  /** base64url SHA-256 root, as receipts and `batch.witness` name it. */
  root: string;
  /** The C2SP signed note, exactly as the collector served it. */
  note: string;
  verifiedAt: string;
}

export class WitnessCheckpointTable {
  readonly #stmts: {
    witness: Statement<[], { size: number; root: string; note: string; verified_at: string }>;
    putWitness: Statement<[number, string, string, string]>;
    deleteWitness: Statement<[]>;
  };

  constructor(db: Database) {
    this.#stmts = {
      witness: db.prepare('SELECT size, root, note, verified_at FROM witness_checkpoint WHERE slot = 1'),
      putWitness: db.prepare(
        `INSERT INTO witness_checkpoint (slot, size, root, note, verified_at) VALUES (1, ?, ?, ?, ?)
         ON CONFLICT (slot) DO UPDATE SET size = excluded.size, root = excluded.root, note = excluded.note, verified_at = excluded.verified_at
         WHERE excluded.size > witness_checkpoint.size`,
      ),
      deleteWitness: db.prepare('DELETE FROM witness_checkpoint'),
    };
  }

  /** The last checkpoint the witness verified, or undefined before the first. */
  get(): WitnessCheckpoint | undefined {
    const row = this.#stmts.witness.get();
    return row === undefined ? undefined : { size: row.size, root: row.root, note: row.note, verifiedAt: row.verified_at };
  }

  /**
   * Stores `checkpoint` as the last verified one. The caller MUST have verified its signature
   * with the pinned log key and its consistency with the checkpoint it replaces. Throws
   * OutboxError (and changes nothing) unless it is larger than the stored one: the witness
   * never moves backwards.
   */
  set(checkpoint: WitnessCheckpoint): void {
    const result = this.#stmts.putWitness.run(checkpoint.size, checkpoint.root, checkpoint.note, checkpoint.verifiedAt);
    if (result.changes === 0) {
      const stored = this.get();
      throw new OutboxError(`witness checkpoint ${checkpoint.size} is not newer than the stored ${stored?.size ?? '(none)'}`);
    }
  }

  /** Forgets the last verified checkpoint (`witness clear --reset-trust` only). */
  clear(): void {
    this.#stmts.deleteWitness.run();
  }
}
