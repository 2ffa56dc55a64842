/**
 * Batch ingest: the rules that turn an agent's batch into ledger entries and a signed receipt.
 *
 * A batch is all or nothing. Every check runs before anything is stored, in this order:
 * decoding (gzip inflated, at most MAX_BATCH_DECODED_BYTES) → JSON (nesting depth, then
 * parse) → ownership (batch and record agents = token subject) → schema → Idempotency-Key =
 * batchId → a stored receipt for that batch → epoch current → ids unique in the batch → record
 * kid = the key valid at its seq (batch-keys.ts: the epoch's key history, and any key.rotated
 * record earlier in the batch) → canonical form and signature of each record. All of that up to
 * the receipt lookup, and the canonical forms, hashes and signatures, run in a worker thread on
 * the body bytes as sent (batch-check-worker.ts); the event loop only looks up the receipt and
 * then, inside ONE write transaction (read with one `batchState` call, written with one
 * `commitBatch` call, so a batch costs a few round trips on a server database): the key
 * history is unchanged, the sequence against the
 * stored chain head (duplicate / equivocation / new, contiguous and chained), then records (a
 * record id stored already, for another record, is found by UNIQUE(id) as the rows go in: 400
 * batch.invalid, not naming whose record holds it, and the transaction rolls back), Merkle nodes, chain head, the keys that new
 * key.rotated records introduce, agent contact (last seen, backlog, and the agent's version: the
 * batch's `agentVersion`, else its User-Agent), the chain's clock-skew counts (clock-skew.ts:
 * `at` is judged and stored as sent, never used for order), checkpoint and the signed receipt,
 * committed together. The receipt is answered only after COMMIT.
 *
 * Key rotation (ADR 0006): a `key.rotated` record, signed with the key valid at its seq s,
 * makes its new key valid from s + 1; records after it in the same batch are checked with the
 * new key, and the key joins the stored history in the batch's transaction, so a crash leaves
 * either the rotation record AND its key, or neither. A record signed with a retired key is
 * refused (400 `batch.invalid`), as is a malformed or forged rotation.
 *
 * Invariants
 * - Exactly once: a record already stored (same seq, same hash) is a duplicate, counted and
 *   skipped; the database's UNIQUE constraints back this up.
 * - A retry with the same Idempotency-Key and the same records gets the stored receipt, byte
 *   for byte; the same key with other records, or from another agent, is refused (422).
 * - An equivocating record (stored seq, different hash) never enters the ledger: it is
 *   quarantined (committed on its own), logged at error, and the batch is refused (409).
 * - Witness reports: a batch's optional `witness` (the newest checkpoint the agent verified) is
 *   stored for (agent, epoch) in the batch's transaction, only if a checkpoint of that size AND
 *   root is stored here, and only if it is not older than the one stored. A report naming a
 *   checkpoint this collector never signed is logged at warn and ignored: it is evidence about
 *   the agent's view (or a bug), not a reason to refuse its records.
 *
 * Backpressure (ingest-admission.ts): a batch holds a place in the check queue from its key
 * lookup until its worker check is over, and a place in the write queue from then until its
 * transaction ends. Past either bound it is refused with 503 `ingest.busy` before anything of it
 * is stored.
 *
 * Crash behaviour: see the store. Nothing of a batch exists before its COMMIT; after it, the
 * stored receipt answers every retry.
 */
import { agentVersionFromUserAgent } from '../../shared/agent-version.ts';
import type { Logger } from '../../shared/logger.ts';
import { canonicalJson } from '../../shared/canonical-json.ts';
import { sha256, toBase64Url, type SigningKey } from '../../shared/crypto.ts';
import type { EncodedBody } from '../../shared/body-encoding.ts';
import { MAX_JSON_DEPTH } from '../../shared/json-text.ts';
import { ProblemError } from '../../shared/problem.ts';
import { MAX_BATCH_DECODED_BYTES, type Receipt } from '../../shared/protocol.ts';
import { signReceipt } from '../../shared/receipt.ts';
import { GENESIS_PREV } from '../../shared/record.ts';
import { DuplicateRecordIdError, StoreIntegrityError, type AgentKey, type CollectorStore, type StoredReceipt, type WriteTransaction } from '../store/store.ts';
import type { AuthenticatedAgent } from './agent-auth.ts';
import { canonicalTextOf, type AppendResult, type CheckpointRef, type LedgerService, type PreparedRecord } from './ledger.ts';
import type { BatchRotation } from './batch-keys.ts';
import type { BatchCheckPool } from './batch-check-pool.ts';
import type { IngestAdmission } from './ingest-admission.ts';
import type { BatchCheckResult, BatchHeader, Refusal } from './batch-check-worker.ts';
import { bytesAt } from './packed-texts.ts';
import { assessClock, type ClockAssessment } from './clock-skew.ts';
import type { IngestObserver } from './metrics.ts';

export interface IngestRequest {
  agent: AuthenticatedAgent;
  /** The Idempotency-Key header (already checked to be a UUID). */
  idempotencyKey: string;
  /** The body as sent, not yet inflated or parsed: its bytes are moved to a worker (unusable after the call). */
  body: EncodedBody;
  traceId: string;
  /** The User-Agent header: the agent's version when the batch does not name it (shared/agent-version.ts). */
  userAgent?: string | undefined;
  log: Logger;
}

export interface IngestReply {
  /** The exact response body: `{"receipt":…,"signature":…}`, identical for every retry. */
  json: string;
  receipt: Receipt;
  /** True if this answer is a stored receipt, sent again. */
  replayed: boolean;
}

/** What became of a batch's witness report. */
type WitnessOutcome = 'recorded' | 'older' | 'unknown_checkpoint';

type CommitOutcome =
  | { kind: 'accepted'; reply: IngestReply; witness?: WitnessOutcome; clock?: ClockAssessment }
  | { kind: 'equivocation'; conflicts: { id: string; seq: number; recordHash: string; storedHash: string }[] };

/** The records a batch carries, as one digest: sha256 over their record hashes, in order. */
export function recordsDigest(recordHashes: readonly string[]): string {
  return toBase64Url(sha256(recordHashes.join('\n')));
}

function replyJson(receiptJson: string, signature: string): string {
  return `{"receipt":${receiptJson},"signature":${JSON.stringify(signature)}}`;
}

function replyFromStored(stored: StoredReceipt): IngestReply {
  return { json: replyJson(stored.receiptJson, stored.signature), receipt: JSON.parse(stored.receiptJson) as Receipt, replayed: true };
}

function problemOf(refusal: Refusal): ProblemError {
  return new ProblemError(refusal.code, refusal.detail, refusal.extras);
}

function recordLabel(record: { id: string; seq: number }): string {
  return `record ${record.id} (seq ${record.seq})`;
}

export class IngestService {
  readonly #store: CollectorStore;
  readonly #ledger: LedgerService;
  readonly #pool: () => BatchCheckPool;
  readonly #admission: IngestAdmission;
  readonly #receiptKey: SigningKey;
  readonly #origin: string;
  readonly #now: () => Date;
  readonly #clockSkewToleranceMs: number;
  readonly #observer: IngestObserver | undefined;

  constructor(options: {
    store: CollectorStore;
    ledger: LedgerService;
    /** The batch-check worker pool, made on first use. */
    pool: () => BatchCheckPool;
    /** The bounds of the check and write queues. */
    admission: IngestAdmission;
    receiptKey: SigningKey;
    origin: string;
    now: () => Date;
    /** services/clock-skew.ts */
    clockSkewToleranceMs: number;
    /** Metrics (services/metrics.ts); none in CLI commands. */
    observer?: IngestObserver;
  }) {
    this.#observer = options.observer;
    this.#store = options.store;
    this.#ledger = options.ledger;
    this.#pool = options.pool;
    this.#admission = options.admission;
    this.#receiptKey = options.receiptKey;
    this.#origin = options.origin;
    this.#now = options.now;
    this.#clockSkewToleranceMs = options.clockSkewToleranceMs;
  }

  /**
   * Throws IngestBusyError (503 `ingest.busy`) if a batch arriving now would be refused for a
   * full queue. Cheap: the batch route asks before authenticating or reading the body.
   */
  assertRoom(): void {
    this.#admission.assertRoom();
  }

  /**
   * Ingests one batch for an authenticated agent. MUST NOT resolve before the batch's records,
   * ledger entries and receipt are durably committed; rejects with a ProblemError (nothing
   * stored, except a quarantined equivocation; IngestBusyError if a queue is full) or
   * StoreUnavailableError.
   */
  async ingest(request: IngestRequest): Promise<IngestReply> {
    const { agent, log } = request;
    // Parse, schema, canonical forms, hashes and signatures: in a worker (batch-check-worker.ts),
    // against the key history as it is now; #commit checks that it has not changed since.
    const leaveCheck = this.#admission.enterCheck();
    let history: AgentKey[];
    let checked: BatchCheckResult;
    try {
      history = await this.#store.agentKeys(agent.agent, agent.epoch);
      checked = await this.#pool().check({
        body: request.body.bytes,
        encoding: request.body.encoding,
        maxDecodedBytes: MAX_BATCH_DECODED_BYTES,
        agent: agent.agent,
        idempotencyKey: request.idempotencyKey,
        epoch: agent.epoch,
        history: [...history],
        maxDepth: MAX_JSON_DEPTH,
      });
    } finally {
      leaveCheck();
    }
    if (!checked.ok) throw problemOf(checked.refusal);
    this.#observer?.signaturesVerified(checked.records.length);
    const { batch } = checked;

    const stored = await this.#store.findReceipt(batch.batchId);
    if (stored) return this.#replay(stored, batch, agent.agent, checked.recordHashes);
    if (checked.deferredRefusal) throw problemOf(checked.deferredRefusal);

    const leaves = Buffer.from(checked.leafHashes.buffer, checked.leafHashes.byteOffset, checked.leafHashes.byteLength);
    const prepared: PreparedRecord[] = checked.records.map((record, i) => ({
      record,
      canonical: bytesAt(checked.canonical, i),
      recordHash: checked.recordHashes[i]!,
      leafHash: leaves.subarray(32 * i, 32 * i + 32),
    }));

    const leaveWrite = this.#admission.enterWrite();
    let outcome: CommitOutcome;
    try {
      outcome = await this.#commit(batch, prepared, request, { historyLength: history.length, rotations: checked.rotations });
    } finally {
      leaveWrite();
    }
    if (outcome.kind === 'accepted' && outcome.witness === 'unknown_checkpoint') {
      log.warn(
        { agent: agent.agent, epoch: batch.epoch, batchId: batch.batchId, witness: batch.witness },
        'witness report names a checkpoint this collector does not have (size and root); ignored',
      );
    } else if (outcome.kind === 'accepted' && outcome.witness === 'older') {
      log.info({ agent: agent.agent, epoch: batch.epoch, witness: batch.witness }, 'witness report older than the stored one; kept the newer');
    }
    if (outcome.kind === 'accepted' && outcome.clock && outcome.clock.state.lastSkew && Object.values(outcome.clock.flagged).some((n) => n > 0)) {
      log.warn(
        { agent: agent.agent, epoch: batch.epoch, batchId: batch.batchId, flagged: outcome.clock.flagged, lastSkew: outcome.clock.state.lastSkew, alert: 'clock_skew' },
        'records with an implausible `at` (clock skew): stored as sent, counted for the agent',
      );
    }
    if (outcome.kind === 'equivocation') {
      for (const conflict of outcome.conflicts) {
        log.error(
          { agent: agent.agent, epoch: batch.epoch, batchId: batch.batchId, ...conflict, alert: 'equivocation' },
          'record equivocation: a record conflicts with the stored one at the same seq; quarantined, batch refused',
        );
      }
      const first = outcome.conflicts[0]!;
      throw new ProblemError(
        'record.equivocation',
        `${recordLabel(first)} differs from the record stored for seq ${first.seq}; it was quarantined and nothing of the batch was stored`,
        { recordId: first.id, seq: first.seq },
      );
    }
    return outcome.reply;
  }

  #replay(stored: StoredReceipt, batch: BatchHeader, agent: string, recordHashes: readonly string[]): IngestReply {
    if (stored.agent !== agent || stored.recordsDigest !== recordsDigest(recordHashes)) {
      throw new ProblemError('idempotency.key_reused', `batch ${batch.batchId} was already received with other records`);
    }
    return replyFromStored(stored);
  }

  async #commit(
    batch: BatchHeader,
    prepared: readonly PreparedRecord[],
    request: IngestRequest,
    keys: { historyLength: number; rotations: readonly BatchRotation[] },
  ): Promise<CommitOutcome> {
    const digest = recordsDigest(prepared.map((entry) => entry.recordHash));
    const { agent, epoch } = batch;
    const waiting = performance.now();
    let entered: number | undefined;
    const outcome = await this.#store.write(async (tx): Promise<CommitOutcome> => {
      entered = performance.now();
      this.#observer?.writeWaited((entered - waiting) / 1000);
      // One read of everything the checks below need (one round trip on a server database).
      const state = await tx.batchState(agent, epoch, batch.batchId, batch.witness?.size);
      // The same batch may have committed while this one waited for the write lock.
      if (state.receipt) return { kind: 'accepted', reply: this.#replay(state.receipt, batch, agent, prepared.map((entry) => entry.recordHash)) };

      const current = state.currentEpoch;
      if (!current || current.epoch !== epoch) {
        throw new ProblemError('batch.epoch_stale', `epoch ${epoch} is no longer the current epoch of ${agent}`, { currentEpoch: current?.epoch ?? null });
      }
      if (current.revokedAt !== null) throw new ProblemError('agent.revoked', `agent ${agent} was revoked at ${current.revokedAt}`);
      const head = state.head!;
      const receivedAt = this.#now().toISOString();
      if (state.keyCount !== keys.historyLength) {
        // Another batch of this agent rotated the key meanwhile: the signatures were checked against an old history.
        throw new ProblemError('batch.out_of_order', `the key history of ${agent} epoch ${epoch} changed while the batch was checked; resend`, {
          expectedSeq: head.highestSeq + 1,
        });
      }

      // Records at or below the head: duplicates if identical, equivocations otherwise.
      const firstSeq = prepared[0]!.record.seq;
      const old = prepared.filter((entry) => entry.record.seq <= head.highestSeq);
      const fresh = prepared.filter((entry) => entry.record.seq > head.highestSeq);
      if (old.length > 0) {
        const storedHashes = await tx.recordHashes(agent, epoch, firstSeq, old[old.length - 1]!.record.seq);
        if (storedHashes.size !== old.length) {
          throw new StoreIntegrityError(`${agent} epoch ${epoch} has a gap below its head seq ${head.highestSeq}`);
        }
        const conflicts = old
          .map((entry) => ({ entry, storedHash: storedHashes.get(entry.record.seq) }))
          .filter(({ entry, storedHash }) => storedHash !== entry.recordHash);
        if (conflicts.length > 0) {
          for (const { entry, storedHash } of conflicts) {
            await tx.quarantine({
              agent,
              epoch,
              seq: entry.record.seq,
              recordId: entry.record.id,
              recordHash: entry.recordHash,
              storedHash: storedHash!,
              canonical: canonicalTextOf(entry),
              batchId: batch.batchId,
              traceId: request.traceId,
              receivedAt,
            });
          }
          return {
            kind: 'equivocation',
            conflicts: conflicts.map(({ entry, storedHash }) => ({
              id: entry.record.id,
              seq: entry.record.seq,
              recordHash: entry.recordHash,
              storedHash: storedHash!,
            })),
          };
        }
      }

      // New records: contiguous from head + 1, each chained to the one before.
      const expectedSeq = head.highestSeq + 1;
      let prev = head.highestHash ?? GENESIS_PREV;
      for (let i = 0; i < fresh.length; i++) {
        const entry = fresh[i]!;
        if (entry.record.seq !== expectedSeq + i) {
          throw new ProblemError('batch.out_of_order', `${recordLabel(entry.record)} does not follow the stored seq ${head.highestSeq}`, { expectedSeq });
        }
        if (entry.record.prev !== prev) {
          throw new ProblemError(
            'batch.out_of_order',
            `${recordLabel(entry.record)}: prev is not the hash of the record at seq ${entry.record.seq - 1}`,
            { expectedSeq },
          );
        }
        prev = entry.recordHash;
      }
      const planned = fresh.length > 0 ? await this.#ledger.planAppend(tx, state.ledgerSize, { agent, epoch, head }, fresh, receivedAt) : undefined;
      const appended: AppendResult | undefined = planned?.result;
      const rotatedKeys = keys.rotations
        .filter((rotation) => rotation.rotationSeq > head.highestSeq) // earlier ones were stored with their records
        .map((rotation) => ({ agent, epoch, ...rotation.key, addedAt: receivedAt, reason: 'rotated' as const }));
      let clock: ClockAssessment | undefined;
      if (fresh.length > 0) {
        // `at` is judged, never used: stored as sent, ordered by seq (services/clock-skew.ts).
        clock = assessClock(
          state.clockSkew,
          fresh.map((entry) => ({ seq: entry.record.seq, at: entry.record.at })),
          { receivedAt, backlogPending: batch.backlog.pending, recordCount: prepared.length, lastSeq: prepared[prepared.length - 1]!.record.seq },
          this.#clockSkewToleranceMs,
        );
      }
      // A witness report counts only for a checkpoint this collector signed, size AND root.
      const witnessKnown = batch.witness !== undefined && state.witnessCheckpoint !== undefined && toBase64Url(state.witnessCheckpoint.root) === batch.witness.root;

      const receipt: Receipt = {
        v: 1,
        collector: this.#origin,
        batchId: batch.batchId,
        agent,
        epoch,
        accepted: fresh.length,
        duplicates: old.length,
        highestSeq: appended ? appended.head.highestSeq : head.highestSeq,
        ledger: appended ? { first: appended.first, last: appended.last } : null,
        checkpoint: appended ? appended.checkpoint : await this.#ledger.checkpointRef(tx),
        receivedAt,
      };
      const receiptJson = canonicalJson(receipt);
      const { signature } = await signReceipt(receipt, this.#receiptKey.privateKey, this.#receiptKey.kid);
      let committed: { witnessRecorded: boolean };
      try {
        committed = await tx.commitBatch({
          agent,
          epoch,
          append: planned?.append,
          rotatedKeys,
          contact: { lastSeenAt: receivedAt, backlog: batch.backlog, version: batch.agentVersion ?? agentVersionFromUserAgent(request.userAgent) ?? null },
          clockSkew: clock?.state,
          witness: witnessKnown ? { size: batch.witness!.size, at: receivedAt } : undefined,
          receipt: { batchId: batch.batchId, agent, recordsDigest: digest, receiptJson, signature, createdAt: receivedAt },
        });
      } catch (err) {
        if (err instanceof DuplicateRecordIdError) throw await this.#idClash(tx, agent, epoch, fresh, err.id, request.log);
        throw err;
      }
      const witness: WitnessOutcome | undefined = batch.witness === undefined ? undefined : !witnessKnown ? 'unknown_checkpoint' : committed.witnessRecorded ? 'recorded' : 'older';
      return {
        kind: 'accepted',
        reply: { json: replyJson(receiptJson, signature), receipt, replayed: false },
        ...(witness ? { witness } : {}),
        ...(clock ? { clock } : {}),
      };
    });
    // The serialised part of ingest: from holding the write lock to the durable commit.
    if (entered !== undefined && outcome.kind === 'accepted' && !outcome.reply.replayed) {
      this.#observer?.writeHeld((performance.now() - entered) / 1000, outcome.reply.receipt.accepted);
    }
    return outcome;
  }

  /**
   * The refusal for a batch one of whose record ids (`id`) is stored already, for another record.
   * Read inside the batch's transaction, which the store left usable; the rejection rolls it back.
   * The answer MUST NOT say whose record holds the id: that would tell an agent which agent (and
   * epoch and seq) wrote a record it only knows the id of. Only the collector's log names it.
   */
  async #idClash(tx: WriteTransaction, agent: string, epoch: number, fresh: readonly PreparedRecord[], id: string, log: Logger): Promise<Error> {
    const other = (await tx.findRecordsById([id]))[0];
    const record = fresh.find((entry) => entry.record.id === id)?.record;
    if (!other || !record) return new StoreIntegrityError(`records.id refused record ${id} of ${agent} epoch ${epoch}, but no other record holds it`);
    log.warn(
      { agent, epoch, recordId: record.id, seq: record.seq, heldBy: { agent: other.agent, epoch: other.epoch, seq: other.seq } },
      'batch refused: a record id is already used by another stored record',
    );
    return new ProblemError('batch.invalid', `${recordLabel(record)}: the id is already used by another record; every record needs a new id`, {
      recordId: record.id,
      seq: record.seq,
    });
  }
}
