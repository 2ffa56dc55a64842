/**
 * Typed access to the outbox's `state` table (`key` PK, `value` JSON): one accessor per key, so
 * no caller spells a key or guesses the type of its value. The values are small documents that
 * other processes read (`status` beside `run`); their shapes are in state-values.ts.
 *
 * A write is one statement, durable on return, or part of the caller's transaction when made
 * inside one (`SqliteOutbox.transaction`). `clear` deletes the row: a key that is absent and a
 * key that was cleared read the same, `undefined`.
 */
import type { Database, Statement } from 'better-sqlite3';
import type { DropCounter } from './buffer-cap.ts';
import type { CircuitSnapshot, LastReceipt, Pins, SyncErrorInfo, WitnessAlarm, WitnessErrorInfo } from './state-values.ts';

/** Every key of the table, with the type of its value. */
export interface StateValues {
  /** Written once, by `init` (SqliteOutbox.pin). */
  pins: Pins;
  /** The sync loop's last failure, cleared by its next success. */
  'sync.lastError': SyncErrorInfo;
  /** When the sync loop tries again after a failure (ISO), cleared by its next success. */
  'sync.nextAttemptAt': string;
  'sync.circuit': CircuitSnapshot;
  /** Written in the transaction that stores the receipt (SqliteOutbox.markAcknowledged). */
  'sync.lastReceipt': LastReceipt;
  /** Its presence freezes the witness until `witness clear`. */
  'witness.alarm': WitnessAlarm;
  /** The witness's last transient failure, cleared by its next success. */
  'witness.lastError': WitnessErrorInfo;
  /** Refusals at the buffer cap not yet summarised in a `telemetry.dropped` record. */
  'buffer.dropped': DropCounter;
}

export type StateKey = keyof StateValues;

interface StateStatements {
  get: Statement<[string], { value: string }>;
  put: Statement<[string, string]>;
  delete: Statement<[string]>;
}

/** One key of the `state` table. */
export class StateSlot<T> {
  readonly key: StateKey;
  readonly #stmts: StateStatements;

  constructor(stmts: StateStatements, key: StateKey) {
    this.#stmts = stmts;
    this.key = key;
  }

  get(): T | undefined {
    const row = this.#stmts.get.get(this.key);
    return row === undefined ? undefined : (JSON.parse(row.value) as T);
  }

  /** Stores `value` (as JSON), replacing what was there. */
  set(value: T): void {
    this.#stmts.put.run(this.key, JSON.stringify(value));
  }

  clear(): void {
    this.#stmts.delete.run(this.key);
  }
}

/** Every key of the `state` table, grouped by the part of the agent that writes it. */
export class StateTable {
  readonly pins: StateSlot<Pins>;
  readonly sync: {
    readonly lastError: StateSlot<SyncErrorInfo>;
    readonly nextAttemptAt: StateSlot<string>;
    readonly circuit: StateSlot<CircuitSnapshot>;
    readonly lastReceipt: StateSlot<LastReceipt>;
  };
  readonly witness: {
    readonly alarm: StateSlot<WitnessAlarm>;
    readonly lastError: StateSlot<WitnessErrorInfo>;
  };
  readonly buffer: {
    readonly dropped: StateSlot<DropCounter>;
  };

  constructor(db: Database) {
    const stmts: StateStatements = {
      get: db.prepare('SELECT value FROM state WHERE key = ?'),
      put: db.prepare('INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      delete: db.prepare('DELETE FROM state WHERE key = ?'),
    };
    const slot = <K extends StateKey>(key: K) => new StateSlot<StateValues[K]>(stmts, key);
    this.pins = slot('pins');
    this.sync = {
      lastError: slot('sync.lastError'),
      nextAttemptAt: slot('sync.nextAttemptAt'),
      circuit: slot('sync.circuit'),
      lastReceipt: slot('sync.lastReceipt'),
    };
    this.witness = { alarm: slot('witness.alarm'), lastError: slot('witness.lastError') };
    this.buffer = { dropped: slot('buffer.dropped') };
  }
}
