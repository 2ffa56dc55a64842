/**
 * The write path of the outbox: signing, chaining and storing records (sqlite-outbox.ts,
 * invariants 1, 2, 7 and 8), the buffer cap's refusals and their summary (buffer-cap.ts), and
 * key rotation.
 *
 * Every write is ONE `BEGIN IMMEDIATE` transaction that reads the chain head and the current
 * signing key, signs the record, checks the caps, inserts the record and moves the head; so
 * several processes writing at once still produce a gapless chain, and a crash before COMMIT
 * leaves nothing (the next append reuses the seq). A refusal at a cap is counted in that same
 * transaction and thrown only after it commits.
 */
import type { Database, Statement } from 'better-sqlite3';
import { z } from 'zod';
import { canonicalJson } from '../../shared/canonical-json.ts';
import type { Ed25519PublicJwk } from '../../shared/crypto.ts';
import { newId } from '../../shared/ids.ts';
import { KEY_ROTATED_TYPE } from '../../shared/key-rotation.ts';
import { describeZodError, recordSchema } from '../../shared/protocol.ts';
import { GENESIS_PREV, recordHashOfCanonical, signRecord, type RecordKind, type SignedRecord, type UnsignedRecord } from '../../shared/record.ts';
import {
  capRefusing,
  capState,
  countRefusal,
  resumeMarkBytes,
  summaryBody,
  TELEMETRY_DROPPED_TYPE,
  type BufferCap,
  type CapLevel,
  type CapState,
  type DropCounter,
} from './buffer-cap.ts';
import type { ChainTable } from './chain-table.ts';
import { BufferCapError, OutboxError, RecordRejectedError } from './outbox-errors.ts';
import type { RecordSigner, SigningKeys } from './signing-keys.ts';
import type { StateTable } from './state-table.ts';
import type { Pins } from './state-values.ts';

export interface NewRecord {
  kind: string;
  type: string;
  at?: string | undefined;
  body: unknown;
}

export interface AppendResult {
  id: string;
  seq: number;
  record: SignedRecord;
}

/** The buffer as `status` reports it. */
export interface BufferStatus {
  pendingBytes: number;
  softCapBytes: number;
  hardCapBytes: number;
  state: CapState;
  /** Refusals not yet summarised in a telemetry.dropped record (null: none). */
  dropped: DropCounter | null;
}

const shape = recordSchema.shape;
/** What a caller may choose about a record; the outbox fills in the rest. */
export const newRecordSchema = z.strictObject({
  kind: shape.kind,
  type: shape.type,
  at: shape.at.optional(),
  body: shape.body,
});

export class RecordWriter {
  readonly #db: Database;
  readonly #pins: () => Pins;
  readonly #chains: ChainTable;
  readonly #keys: SigningKeys;
  readonly #state: StateTable;
  readonly #cap: BufferCap;
  readonly #insertRecord: Statement<[number, number, string, string, string, string, string, number, string]>;

  constructor(db: Database, deps: { pins: () => Pins; chains: ChainTable; keys: SigningKeys; state: StateTable; cap: BufferCap }) {
    this.#db = db;
    this.#pins = deps.pins;
    this.#chains = deps.chains;
    this.#keys = deps.keys;
    this.#state = deps.state;
    this.#cap = deps.cap;
    this.#insertRecord = db.prepare(
      'INSERT INTO records (epoch, seq, id, kind, at, hash, canonical, bytes, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
  }

  /**
   * Signs, chains and stores one record. MUST NOT return before the record is committed. Throws
   * RecordRejectedError (nothing stored) for a bad kind, type, at or body.
   */
  append(input: NewRecord, signer: RecordSigner, now: Date): AppendResult {
    const parsed = newRecordSchema.safeParse(input);
    if (!parsed.success) throw new RecordRejectedError(describeZodError(parsed.error));
    const outcome = this.#db
      .transaction(() => {
        this.#writeDropSummaryIfRoom(signer, now);
        return this.#appendInTransaction(parsed.data, signer, now);
      })
      .immediate();
    // Thrown only now, after COMMIT: the refusal is counted durably before the caller hears of it.
    if (outcome instanceof BufferCapError) throw outcome;
    return outcome;
  }

  /**
   * Writes the signed `telemetry.dropped` summary of the refusals counted so far, and clears the
   * counter, in one transaction — if there are any and the backlog is back at the resume mark.
   * Returns the summary record, or undefined if there was nothing to write or no room yet.
   */
  writeDropSummary(signer: RecordSigner, now: Date): AppendResult | undefined {
    return this.#db.transaction(() => this.#writeDropSummaryIfRoom(signer, now)).immediate();
  }

  dropCounter(): DropCounter | undefined {
    return this.#state.buffer.dropped.get();
  }

  bufferStatus(): BufferStatus {
    const pendingBytes = this.#chains.pendingBytes();
    const dropped = this.dropCounter();
    return {
      pendingBytes,
      softCapBytes: this.#cap.softBytes,
      hardCapBytes: this.#cap.hardBytes,
      state: capState(pendingBytes, this.#cap, dropped),
      dropped: dropped ?? null,
    };
  }

  /**
   * Rotates the signing key (ADR 0006): in ONE transaction, appends a `kind: agent, type:
   * key.rotated` record signed with the current key, whose body carries `newKey`, and makes
   * `newKey` (whose private JWK MUST already be durably in `keyFile`) the key of every record
   * after it. Throws OutboxError, changing nothing, if the current key is no longer
   * `expectedOldKid` (another rotation won the race).
   */
  rotateKey(
    rotation: { expectedOldKid: string; newKey: Ed25519PublicJwk; newKid: string; keyFile: string },
    signer: RecordSigner,
    now: Date,
  ): AppendResult & { oldKid: string } {
    return this.#db
      .transaction(() => {
        const current = this.#keys.current();
        if (current.kid !== rotation.expectedOldKid) {
          throw new OutboxError(`the signing key changed meanwhile (now kid ${current.kid}, expected ${rotation.expectedOldKid}); nothing rotated`);
        }
        const result = this.#appendInTransaction(
          { kind: 'agent', type: KEY_ROTATED_TYPE, body: { newKey: { kty: 'OKP', crv: 'Ed25519', x: rotation.newKey.x }, newKid: rotation.newKid } },
          signer,
          now,
        );
        if (result instanceof BufferCapError) throw result; // rolls back: nothing rotated
        this.#keys.add(
          { epoch: result.record.epoch, fromSeq: result.seq + 1, kid: rotation.newKid, x: rotation.newKey.x, file: rotation.keyFile },
          now.toISOString(),
        );
        return { ...result, oldKid: current.kid };
      })
      .immediate();
  }

  #writeDropSummaryIfRoom(signer: RecordSigner, now: Date): AppendResult | undefined {
    const counter = this.dropCounter();
    if (counter === undefined || this.#chains.pendingBytes() > resumeMarkBytes(this.#cap)) return undefined;
    const result = this.#appendInTransaction({ kind: 'agent', type: TELEMETRY_DROPPED_TYPE, body: { ...summaryBody(counter) } }, signer, now);
    if (result instanceof BufferCapError) return undefined; // cannot happen under the soft cap; keep counting
    this.#state.buffer.dropped.clear();
    return result;
  }

  /** Stores one record — or, if a cap refuses it, counts the refusal and returns the refusal. */
  #appendInTransaction(input: z.infer<typeof newRecordSchema>, signer: RecordSigner, now: Date): AppendResult | BufferCapError {
    const pins = this.#pins();
    const ref = this.#keys.current();
    const key = 'signingKey' in signer ? signer.signingKey(ref) : signer;
    if (key.kid !== ref.kid) {
      throw new OutboxError(`the agent key (kid ${key.kid}) is not the current signing key of ${pins.agent} (kid ${ref.kid})`);
    }
    const { kind, type, body } = input;
    const at = input.at ?? now.toISOString();
    const head = this.#chains.get(pins.epoch);
    const unsigned: UnsignedRecord = {
      v: 1,
      id: newId(),
      agent: pins.agent,
      epoch: pins.epoch,
      seq: head.headSeq + 1,
      prev: head.headSeq === 0 ? GENESIS_PREV : head.headHash,
      kind: kind as RecordKind,
      type,
      at,
      body: body as { [key: string]: unknown },
      kid: key.kid,
    };
    const record = signRecord(unsigned, key.privateKey);
    const check = recordSchema.safeParse(record);
    if (!check.success) throw new RecordRejectedError(describeZodError(check.error));
    let canonical: string;
    try {
      canonical = canonicalJson(record);
    } catch (err) {
      throw new RecordRejectedError((err as Error).message);
    }
    const bytes = Buffer.byteLength(canonical, 'utf8');
    const pendingBytes = this.#chains.pendingBytes();
    const level = capRefusing(kind, bytes, pendingBytes, this.#cap);
    if (level !== undefined) return this.#countRefusal({ kind, type, level, pendingBytes }, now);
    const hash = recordHashOfCanonical(Buffer.from(canonical, 'utf8'));
    this.#insertRecord.run(pins.epoch, record.seq, record.id, kind, at, hash, canonical, bytes, now.toISOString());
    this.#chains.moveHead(pins.epoch, record.seq, hash, bytes);
    return { id: record.id, seq: record.seq, record };
  }

  #countRefusal(refusal: { kind: string; type: string; level: CapLevel; pendingBytes: number }, now: Date): BufferCapError {
    const before = this.dropCounter();
    const after = countRefusal(before, refusal.type, refusal.level, now.toISOString(), this.#cap);
    this.#state.buffer.dropped.set(after);
    const capJustReached = before === undefined || (refusal.level === 'hard' && before.worst !== 'hard');
    return new BufferCapError({ ...refusal, cap: this.#cap, capJustReached });
  }
}
