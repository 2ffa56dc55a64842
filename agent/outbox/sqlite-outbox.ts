/**
 * The outbox: the agent's durable buffer of signed, chained records, kept until a verified
 * collector receipt covers them (and kept after that, marked acknowledged, for later pruning
 * and verification). It owns its database: nothing outside agent/outbox/ runs SQL on it or
 * holds the connection; callers use SqliteOutbox, and `verify` reads a snapshot through
 * OutboxAuditSource (audit-source.ts).
 *
 * ## Invariants
 * 1. A record's `seq` and `prev` are assigned inside the same `BEGIN IMMEDIATE` transaction that
 *    stores it and moves the chain head, so several processes (`run`, `emit`) writing at once
 *    still produce a gapless chain 1, 2, 3 … per epoch, each `prev` the hash of its predecessor.
 * 2. `append` MUST NOT return before that transaction has committed (WAL, `synchronous=FULL`):
 *    a returned `{ id, seq }` survives a power cut.
 * 3. `canonical` holds JCS(record) exactly as signed and hashed; it is sent as is, never
 *    re-serialised, so what leaves the agent is byte for byte what was signed.
 * 4. A record is acknowledged only through `markAcknowledged`, which callers MUST call only with
 *    a receipt whose signature they verified against the pinned receipt key. Acknowledgement
 *    is a prefix: `acked_seq` only grows, and every seq ≤ `acked_seq` has `acked_batch` set.
 * 5. Reading a batch is an index range scan (`epoch = ? AND seq >= ? ORDER BY seq LIMIT n`):
 *    memory and time per batch do not depend on the size of the backlog.
 * 6. The witness checkpoint (the newest checkpoint of the collector's log that this agent
 *    verified: log signature with the pinned key, and consistency with the one before it) only
 *    moves forward: `setWitnessCheckpoint` refuses a size not larger than the stored one. Only
 *    `witness clear --reset-trust` removes it (agent/witness/witness-alarm.ts).
 * 7. Key rotation (ADR 0006): the key that signs a record is read INSIDE the append transaction
 *    (`signingKeyRef`: the newest `signing_keys` row of the epoch, else the enrolled key), so a
 *    `rotate-key` run by another process takes effect for the very next record of every writer.
 *    `rotateKey` appends the `key.rotated` record (signed with the old key) and inserts the new
 *    key's row from the record's seq + 1 in ONE transaction. The new private key file MUST be
 *    durably written before that transaction starts (agent/key-rotation.ts).
 * 8. Buffer cap (buffer-cap.ts): `chains.pending_bytes` is the sum of `bytes` of the epoch's
 *    records above `acked_seq`, changed only in the transactions that insert records and move
 *    `acked_seq`. Every append checks the caps against it inside its transaction; a refused
 *    record is not stored, but the refusal is counted (state `buffer.dropped`) and committed
 *    before the caller hears the refusal. The counter becomes ONE signed `telemetry.dropped`
 *    record, in the transaction that clears it, once the backlog is back at the resume mark
 *    (90% of the soft cap).
 *
 * ## On-disk layout (`<agent dir>/outbox.db`, SQLite, WAL; the file and its -wal/-shm mode 0600)
 * - `records (epoch, seq) PK, id UNIQUE, kind, at, hash, canonical, bytes, stored_at, acked_batch`
 * - `chains (epoch PK, head_seq, head_hash, acked_seq, pending_bytes)`: one row per epoch, the
 *   chain head, the acknowledged prefix and the bytes above it (schema 4); pending =
 *   head_seq − acked_seq, no scan needed (chain-table.ts).
 * - `receipts (batch_id PK, epoch, highest_seq, accepted, duplicates, receipt, signature, …)`:
 *   every verified receipt, as received (delivery.ts).
 * - `state (key PK, value JSON)`: `pins` (collector URL, origin, log key, receipt key, agent,
 *   epoch, kid — written once by `init`), the sync loop's `sync.*` keys (last error, next
 *   attempt, circuit, last receipt) and the witness's `witness.*` keys (alarm, last transient
 *   error) and the buffer cap's drop counter (`buffer.dropped`), so that `status` in another
 *   process can read them. One typed accessor per key (state-table.ts); the value shapes are
 *   part of the format (state-values.ts).
 * - `witness_checkpoint (slot = 1 PK, size, root, note, verified_at)` (schema 2): at most one
 *   row, the last verified checkpoint, with its signed note as the collector served it
 *   (witness-checkpoint.ts).
 * - `signing_keys (epoch, from_seq) PK, kid UNIQUE, public_jwk, key_file, added_at` (schema 3): every
 *   rotated key, valid from `from_seq`; the enrolled key (`pins.kid`, `agent-key.jwk`) is implicit
 *   (signing-keys.ts).
 * - `PRAGMA user_version` = schema version; numbered forward-only migrations, and a gate that
 *   refuses a database newer than this code (outbox-file.ts).
 *
 * ## What a crash leaves behind
 * - during `append`, before COMMIT: nothing (the WAL frame is never committed); the caller got
 *   no answer and the next append reuses the seq, so no gap.
 * - after COMMIT, before the caller hears back: the record is stored and will be sent; a caller
 *   that retries creates a second record with a new id (local writes are at least once).
 * - after a batch was sent, before its receipt is stored: the records are still pending and are
 *   sent again; the collector answers them as duplicates (same seq, same hash), so the ledger
 *   still holds each record once.
 * - during `markAcknowledged`: the transaction rolls back; the records stay pending (as above).
 * - during a migration: it runs in one transaction with its `user_version`; it rolls back whole.
 * - during `rotateKey`: before COMMIT, neither the `key.rotated` record nor the key switch exists
 *   (the new key file may, unused: it never signed anything); after it, both, and the file they
 *   name is already on disk.
 * - refusing a record at a cap: the refusal is counted in its own transaction; the caller hears
 *   it only after COMMIT, so a crash before leaves neither record nor count (and no answer).
 * - writing the drop summary: the record and the cleared counter commit together, so the
 *   summary is written once, never lost and never doubled.
 * - during `setWitnessCheckpoint`: one statement; the previous checkpoint stays until it commits,
 *   and the witness verifies again from there.
 */
import type { Database as SqliteDatabase } from 'better-sqlite3';
import type { Ed25519PublicJwk } from '../../shared/crypto.ts';
import type { Backlog, SignedReceipt } from '../../shared/protocol.ts';
import { DEFAULT_BUFFER_CAP, type BufferCap, type DropCounter } from './buffer-cap.ts';
import { ChainTable, type ChainState } from './chain-table.ts';
import { Delivery, type AckResult, type BatchLimits, type PendingBatch, type StoredRecord } from './delivery.ts';
import { openOutboxDatabase, schemaVersionOf, type OpenOptions } from './outbox-file.ts';
import { OutboxError, OutboxNotInitialisedError } from './outbox-errors.ts';
import { RecordWriter, type AppendResult, type BufferStatus, type NewRecord } from './record-writer.ts';
import { SigningKeys, type KeyRef, type RecordSigner } from './signing-keys.ts';
import { StateTable } from './state-table.ts';
import type { Pins } from './state-values.ts';
import { WitnessCheckpointTable, type WitnessCheckpoint } from './witness-checkpoint.ts';

// The outbox's public interface, importable from this one module.
export { checkOutboxIntegrity, DEFAULT_BUSY_TIMEOUT_MS, OUTBOX_FILE, outboxPath, type IntegrityCheck } from './outbox-file.ts';
export { BufferCapError, OutboxCorruptError, OutboxError, OutboxNotInitialisedError, OutboxSchemaError, RecordRejectedError } from './outbox-errors.ts';
export { newRecordSchema } from './record-writer.ts';
export { ENROLLED_KEY_FILE } from './signing-keys.ts';
export type { AckResult, AppendResult, BatchLimits, BufferStatus, ChainState, KeyRef, NewRecord, PendingBatch, Pins, RecordSigner, StoredRecord, WitnessCheckpoint };
export type { KeySource } from './signing-keys.ts';

export class SqliteOutbox {
  readonly path: string;
  /**
   * The connection. Only the outbox's own modules use it — and tests and benchmarks that inspect
   * or damage the file on purpose; test/unit/agent/outbox-boundary.test.ts keeps the rest of
   * agent/ away from it.
   */
  readonly db: SqliteDatabase;
  readonly cap: BufferCap;
  /** The `state` table, one typed accessor per key. */
  readonly state: StateTable;
  readonly #chains: ChainTable;
  readonly #keys: SigningKeys;
  readonly #writer: RecordWriter;
  readonly #delivery: Delivery;
  readonly #witness: WitnessCheckpointTable;
  #pins: Pins | undefined;

  private constructor(path: string, db: SqliteDatabase, cap: BufferCap) {
    this.path = path;
    this.db = db;
    this.cap = cap;
    const pins = () => this.pins();
    this.state = new StateTable(db);
    this.#chains = new ChainTable(db);
    this.#keys = new SigningKeys(db, pins, this.#chains);
    this.#writer = new RecordWriter(db, { pins, chains: this.#chains, keys: this.#keys, state: this.state, cap });
    this.#delivery = new Delivery(db, { pins, chains: this.#chains, state: this.state });
    this.#witness = new WitnessCheckpointTable(db);
  }

  /**
   * Opens (and with `create`, creates) the outbox, applies pending migrations, and refuses a
   * database whose schema is newer than this code.
   */
  static open(path: string, options: OpenOptions & { cap?: BufferCap } = {}): SqliteOutbox {
    const db = openOutboxDatabase(path, options);
    try {
      return new SqliteOutbox(path, db, options.cap ?? DEFAULT_BUFFER_CAP);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  schemaVersion(): number {
    return schemaVersionOf(this.db);
  }

  /**
   * Runs `work` in one IMMEDIATE transaction: the outbox calls it makes commit together or, if
   * it throws, not at all. Inside another transaction it nests (a savepoint). Durable on return.
   */
  transaction<T>(work: () => T): T {
    return this.db.transaction(work).immediate();
  }

  /** Runs `read` in one read transaction, so everything it reads comes from one committed state. */
  snapshot<T>(read: () => T): T {
    return this.db.transaction(read)();
  }

  // ---- pins and chains ------------------------------------------------------------------

  /** Pins the collector facts and creates the epoch's chain, in one transaction. Once only. */
  pin(pins: Pins): void {
    this.transaction(() => {
      if (this.state.pins.get() !== undefined) throw new OutboxError('this agent is already initialised');
      this.state.pins.set(pins);
      this.#chains.ensure(pins.epoch);
    });
    this.#pins = pins;
  }

  pinsOrUndefined(): Pins | undefined {
    if (this.#pins === undefined) this.#pins = this.state.pins.get();
    return this.#pins;
  }

  pins(): Pins {
    const pins = this.pinsOrUndefined();
    if (pins === undefined) throw new OutboxNotInitialisedError(`the outbox at ${this.path} has no enrollment: run \`sakshya-agent init\``);
    return pins;
  }

  chain(epoch = this.pins().epoch): ChainState {
    return this.#chains.get(epoch);
  }

  // ---- writing (record-writer.ts) -------------------------------------------------------

  /**
   * Signs, chains and stores one record. MUST NOT return before the record is committed. Throws
   * RecordRejectedError (nothing stored) for a bad kind, type, at or body, and BufferCapError
   * (nothing stored, the refusal counted) when a cap refuses it.
   */
  append(input: NewRecord, signer: RecordSigner, now: Date = new Date()): AppendResult {
    return this.#writer.append(input, signer, now);
  }

  /**
   * Writes the signed `telemetry.dropped` summary of the refusals counted so far, and clears the
   * counter, in one transaction — if there are any and the backlog is back at the resume mark.
   * Returns the summary record, or undefined if there was nothing to write or no room yet.
   */
  writeDropSummary(signer: RecordSigner, now: Date = new Date()): AppendResult | undefined {
    return this.#writer.writeDropSummary(signer, now);
  }

  /**
   * Rotates the signing key (ADR 0006, invariant 7): appends the `key.rotated` record signed
   * with the current key and makes `newKey` the key of every record after it, in ONE
   * transaction. Throws OutboxError, changing nothing, if the current key is no longer
   * `expectedOldKid` (another rotation won the race).
   */
  rotateKey(
    rotation: { expectedOldKid: string; newKey: Ed25519PublicJwk; newKid: string; keyFile: string },
    signer: RecordSigner,
    now: Date = new Date(),
  ): AppendResult & { oldKid: string } {
    return this.#writer.rotateKey(rotation, signer, now);
  }

  /** Unacknowledged bytes over every epoch: what the caps are measured against. */
  pendingBytes(): number {
    return this.#chains.pendingBytes();
  }

  dropCounter(): DropCounter | undefined {
    return this.#writer.dropCounter();
  }

  bufferStatus(): BufferStatus {
    return this.#writer.bufferStatus();
  }

  // ---- signing keys (signing-keys.ts) ---------------------------------------------------

  /** Every signing key of `epoch`, by fromSeq: the enrolled key (from seq 1), then each rotated one. */
  keyRefs(epoch = this.pins().epoch): KeyRef[] {
    return this.#keys.refs(epoch);
  }

  /** The key that signs the next record of the current epoch. */
  signingKeyRef(): KeyRef {
    return this.#keys.current();
  }

  /** The keys to sign agent JWTs with, best first: the one the collector knows, then newer ones. */
  authKeyRefs(): KeyRef[] {
    return this.#keys.forAuth();
  }

  // ---- reading and acknowledging (delivery.ts) ------------------------------------------

  /**
   * The records from `fromSeq` on, ascending, at most `maxRecords` and at most `maxBytes` of
   * canonical JSON (but always at least one record, if any exists). Undefined if none.
   */
  readBatch(fromSeq: number, limits: BatchLimits, epoch = this.pins().epoch): PendingBatch | undefined {
    return this.#delivery.readBatch(fromSeq, limits, epoch);
  }

  record(seq: number, epoch = this.pins().epoch): StoredRecord | undefined {
    return this.#delivery.record(seq, epoch);
  }

  /** Pending count and the `at` of the oldest pending record of the current epoch. */
  backlog(): Backlog {
    return this.#delivery.backlog();
  }

  /** Acknowledged records over every epoch (each chain's acknowledged prefix). */
  acknowledgedCount(): number {
    return this.#chains.acknowledgedCount();
  }

  /**
   * Stores a receipt and marks acknowledged every record of its epoch with
   * `seq <= min(receipt.highestSeq, head)`. The caller MUST have verified the receipt's
   * signature against the pinned receipt key, and that it names this agent and epoch.
   */
  markAcknowledged(signed: SignedReceipt, meta: { traceId?: string; verifiedAt?: Date } = {}): AckResult {
    return this.#delivery.markAcknowledged(signed, meta);
  }

  receiptCount(): number {
    return this.#delivery.receiptCount();
  }

  // ---- witness (witness-checkpoint.ts) --------------------------------------------------

  /** The last checkpoint the witness verified, or undefined before the first. */
  witnessCheckpoint(): WitnessCheckpoint | undefined {
    return this.#witness.get();
  }

  /**
   * Stores `checkpoint` as the last verified one (invariant 6). The caller MUST have verified
   * its signature with the pinned log key and its consistency with the checkpoint it replaces.
   * Throws OutboxError (and changes nothing) unless it is larger than the stored one.
   */
  setWitnessCheckpoint(checkpoint: WitnessCheckpoint): void {
    this.#witness.set(checkpoint);
  }

  /** Forgets the last verified checkpoint (`witness clear --reset-trust` only). */
  clearWitnessCheckpoint(): void {
    this.#witness.clear();
  }
}
