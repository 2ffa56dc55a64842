/**
 * The agent as a witness of the collector's log. Each verified receipt names the checkpoint
 * (size, root) its batch landed in; the witness checks that the log behind it only ever grew:
 *
 * 1. The collector's signed note for that size (`GET /checkpoints?size=N`) MUST verify with the
 *    log key pinned at enrollment, name the pinned origin, and carry the receipt's root.
 * 2. A consistency proof from the last verified checkpoint to it (`GET /proofs/consistency`)
 *    MUST verify (RFC 9162 §2.1.4.2). The very first checkpoint is checked by 1 alone.
 * 3. Then it becomes the last verified checkpoint (outbox `witness_checkpoint`), and the sync
 *    loop sends it as `batch.witness` so the collector can show what each agent confirmed.
 *
 * A receipt naming a smaller size than the last verified one is checked the other way round:
 * its signed checkpoint, and a proof that it is a prefix of the verified one (a receipt that a
 * second process, `sync --once` beside `run`, received before the other verified a newer one, is
 * fine; a log cut back is not).
 *
 * Any failure of these checks (or another root for a verified size) is evidence that the log was rewritten: a persistent alarm (witness-alarm.ts), logged
 * at error with `alert: 'witness'`. The last verified checkpoint does not move past it, and the
 * witness checks nothing more until an operator clears the alarm. A check that could not be made
 * (network, timeout, 429, 5xx, a proxy's page) is no evidence of anything: it is retried with
 * backoff and shown as `witness.lastError`.
 *
 * ## Off the critical path
 * `observe` is synchronous and cheap (one row read): the sync loop calls it after committing an
 * acknowledgement and goes on. Checks run one at a time in the background; receipts arriving
 * meanwhile are coalesced into the newest one, since verifying consistency to the newest
 * checkpoint covers every smaller one. `settle` waits for the running check (`sync --once`).
 *
 * ## Crash behaviour
 * Nothing here is durable but the last verified checkpoint and the alarm (outbox). After a
 * restart `start` re-offers the checkpoint of the last stored receipt (`sync.lastReceipt`), so a
 * check cut short by a crash is made again.
 */
import type { Logger } from '../../shared/logger.ts';
import type { RecordSigner, SqliteOutbox } from '../outbox/sqlite-outbox.ts';
import { fullJitterDelay, type BackoffPolicy } from '../sync/backoff.ts';
import {
  compareWithVerified,
  decodeConsistencyAnswer,
  pinnedLog,
  verifyConsistencyStep,
  verifyOfferedCheckpoint,
  WitnessFailure,
  type PinnedLog,
} from './checkpoint-verifier.ts';
import { LogRefusedError, LogUnavailableError, type LogReader } from './log-client.ts';
import { raiseWitnessAlarm } from './witness-alarm.ts';
import { readWitnessAlarm, type CheckpointRef, type WitnessAlarmReason, type WitnessErrorInfo } from './witness-state.ts';

export interface WitnessOptions {
  outbox: SqliteOutbox;
  log: LogReader;
  /** Signs the `witness.alarm` record. */
  key: RecordSigner;
  logger: Logger;
  /** Backoff between retries of a check that failed transiently. */
  backoff: BackoffPolicy;
  random?: () => number;
  now?: () => number;
}

/** Where a checkpoint came from: the batch whose verified receipt named it. */
export interface OfferedBy {
  traceId?: string | undefined;
  batchId?: string | undefined;
}

export type CheckResult =
  | { kind: 'verified'; size: number }
  | { kind: 'covered' }
  | { kind: 'alarm'; reason: WitnessAlarmReason }
  | { kind: 'frozen' }
  | { kind: 'transient'; reason: string; retryInMs: number }
  | { kind: 'raced' };

interface Target extends OfferedBy {
  offered: CheckpointRef;
}

/** The newest checkpoint waiting for a check, and the newest older-than-verified one. */
type Slot = 'newer' | 'older';

export class Witness {
  readonly #o: WitnessOptions;
  readonly #now: () => number;
  readonly #stopping = new AbortController();
  #log: PinnedLog | undefined;
  readonly #pending: { newer: Target | undefined; older: Target | undefined } = { newer: undefined, older: undefined };
  #running: Promise<void> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #attempt = 0;
  #started = false;
  #frozenLogged = false;

  constructor(options: WitnessOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Starts witnessing: reports an active alarm, and re-offers the checkpoint of the last stored
   * receipt (it may never have been checked: a crash, a transient failure). Idempotent.
   */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    const alarm = readWitnessAlarm(this.#o.outbox);
    if (alarm !== null) {
      this.#frozenLogged = true;
      this.#o.logger.error(
        { alert: 'witness', reason: alarm.reason, previous: alarm.previous, offered: alarm.offered, raisedAt: alarm.raisedAt, alarmRecord: alarm.record },
        'witness alarm active: the collector\u2019s log was found inconsistent; no checkpoint is verified until `sakshya-agent witness clear`',
      );
      return;
    }
    const last = this.#o.outbox.state.sync.lastReceipt.get();
    if (last?.checkpoint) this.observe(last.checkpoint, { batchId: last.batchId });
  }

  /**
   * Offers the checkpoint a verified receipt named. MUST only be called with a checkpoint from a
   * receipt whose signature was verified against the pinned receipt key. Never throws for the
   * collector's misbehaviour and never waits for the network.
   */
  observe(offered: CheckpointRef, by: OfferedBy = {}): void {
    if (this.#stopping.signal.aborted) return;
    const { outbox, logger } = this.#o;
    if (readWitnessAlarm(outbox) !== null) {
      if (!this.#frozenLogged) {
        this.#frozenLogged = true;
        logger.error({ alert: 'witness', offered, ...by }, 'witness alarm active: checkpoint not verified until `sakshya-agent witness clear`');
      }
      return;
    }
    this.#frozenLogged = false;
    const verified = refOf(outbox.witnessCheckpoint());
    let relation: 'newer' | 'covered' | 'older';
    try {
      relation = compareWithVerified(verified, offered);
      const pending = this.#pending.newer;
      if (relation === 'newer' && pending !== undefined && offered.size === pending.offered.size && offered.root !== pending.offered.root) {
        throw new WitnessFailure('equivocation', `two receipts name different roots for size ${offered.size}: ${pending.offered.root} and ${offered.root}`);
      }
    } catch (err) {
      if (!(err instanceof WitnessFailure)) throw err;
      this.#raise(err, verified, { offered, ...by });
      return;
    }
    if (relation === 'covered') return;
    const slot = this.#pending[relation];
    // Coalescing: a check to the newest checkpoint covers every smaller one.
    if (slot === undefined || offered.size > slot.offered.size || relation === 'older') this.#pending[relation] = { offered, ...by };
    this.#kick();
  }

  /** Resolves once no check is running (a scheduled retry does not count). */
  async settle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** Stops retrying and aborts a running fetch; `settle` then resolves promptly. */
  stop(): void {
    this.#stopping.abort();
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }

  #kick(): void {
    if (this.#running || this.#retryTimer || this.#stopping.signal.aborted) return;
    this.#running = this.#loop().finally(() => {
      this.#running = undefined;
    });
  }

  async #loop(): Promise<void> {
    for (;;) {
      if (this.#stopping.signal.aborted) return;
      const slot: Slot | undefined = this.#pending.older !== undefined ? 'older' : this.#pending.newer !== undefined ? 'newer' : undefined;
      if (slot === undefined) return;
      const target = this.#pending[slot]!;
      let result: CheckResult;
      try {
        result = await this.#check(target);
      } catch (err) {
        if (this.#stopping.signal.aborted) return;
        // Not the collector's doing (a local database error, a bug): retry, do not alarm.
        this.#o.logger.error({ err, offered: target.offered }, 'witness check failed');
        result = this.#transient(target, 'internal', (err as Error).message);
      }
      if (this.#stopping.signal.aborted) return;
      if (result.kind === 'raced') continue;
      if (result.kind === 'transient') {
        this.#retryTimer = setTimeout(() => {
          this.#retryTimer = undefined;
          this.#kick();
        }, result.retryInMs);
        this.#retryTimer.unref();
        return;
      }
      if (this.#pending[slot] === target) this.#pending[slot] = undefined;
    }
  }

  async #check(target: Target): Promise<CheckResult> {
    const { outbox, log, logger } = this.#o;
    if (readWitnessAlarm(outbox) !== null) return { kind: 'frozen' };
    const verified = refOf(outbox.witnessCheckpoint());
    const { offered } = target;
    const signal = this.#stopping.signal;
    let note: string;
    try {
      this.#log ??= pinnedLog(outbox.pins());
      const relation = compareWithVerified(verified, offered);
      if (relation === 'covered') return { kind: 'covered' };
      if (relation === 'older') return await this.#proveOlder(verified!, offered, this.#log, signal);
      note = await log.checkpoint(offered.size, signal);
      verifyOfferedCheckpoint(note, offered, this.#log);
      if (verified !== undefined && verified.size > 0) {
        const answer = await log.consistency(verified.size, offered.size, signal);
        verifyConsistencyStep(verified, offered, decodeConsistencyAnswer(answer, verified.size, offered.size));
      }
    } catch (err) {
      if (err instanceof LogUnavailableError) return this.#transient(target, err.reason, err.message);
      let failure: WitnessFailure;
      if (err instanceof WitnessFailure) failure = err;
      else if (err instanceof LogRefusedError) failure = new WitnessFailure('refused', `the collector refuses to prove its log: ${err.message}`);
      else throw err;
      this.#raise(failure, verified, target);
      return { kind: 'alarm', reason: failure.reason };
    }

    const verifiedAt = new Date(this.#now()).toISOString();
    const stored = outbox.transaction(() => {
      // Another process (`sync --once` beside `run`) may have moved the checkpoint meanwhile;
      // then this proof was from a checkpoint that is no longer the last: check again.
      const now = refOf(outbox.witnessCheckpoint());
      if (now?.size !== verified?.size || now?.root !== verified?.root) return false;
      outbox.setWitnessCheckpoint({ size: offered.size, root: offered.root, note, verifiedAt });
      outbox.state.witness.lastError.clear();
      return true;
    });
    if (!stored) return { kind: 'raced' };
    this.#attempt = 0;
    logger.info({ traceId: target.traceId, batchId: target.batchId, size: offered.size, root: offered.root, from: verified?.size ?? null }, 'witness: checkpoint verified');
    return { kind: 'verified', size: offered.size };
  }

  /**
   * An offered checkpoint smaller than the verified one is fine only if it is a prefix of it:
   * its signed note verifies and a consistency proof from it to the verified one holds.
   * Anything else is `rolled_back`.
   */
  async #proveOlder(verified: CheckpointRef, offered: CheckpointRef, pinned: PinnedLog, signal: AbortSignal): Promise<CheckResult> {
    const { log, logger } = this.#o;
    try {
      if (offered.size === 0) throw new WitnessFailure('rolled_back', 'the receipt names the empty tree');
      const note = await log.checkpoint(offered.size, signal);
      verifyOfferedCheckpoint(note, offered, pinned);
      const answer = await log.consistency(offered.size, verified.size, signal);
      verifyConsistencyStep(offered, verified, decodeConsistencyAnswer(answer, offered.size, verified.size));
    } catch (err) {
      let cause: string;
      if (err instanceof WitnessFailure) cause = err.message;
      else if (err instanceof LogRefusedError) cause = `the collector refuses to prove it: ${err.message}`;
      else throw err;
      throw new WitnessFailure(
        'rolled_back',
        `a receipt names checkpoint ${offered.size}, smaller than the verified ${verified.size}, and it is not a prefix of it: ${cause}`,
      );
    }
    logger.debug({ offered, verified }, 'witness: an older checkpoint is a prefix of the verified one');
    return { kind: 'covered' };
  }

  #transient(target: Target, reason: string, detail: string): CheckResult {
    const retryInMs = Math.max(1, fullJitterDelay(this.#attempt, this.#o.backoff, this.#o.random));
    this.#attempt += 1;
    if (this.#stopping.signal.aborted) return { kind: 'transient', reason, retryInMs };
    const nowMs = this.#now();
    const info: WitnessErrorInfo = {
      at: new Date(nowMs).toISOString(),
      reason,
      detail,
      offered: target.offered,
      retryAt: new Date(nowMs + retryInMs).toISOString(),
    };
    this.#o.outbox.state.witness.lastError.set(info);
    this.#o.logger.warn({ traceId: target.traceId, batchId: target.batchId, offered: target.offered, reason, detail, retryInMs }, 'witness check could not be made; will retry');
    return { kind: 'transient', reason, retryInMs };
  }

  #raise(failure: WitnessFailure, previous: CheckpointRef | undefined, target: Target): void {
    const { outbox, key, logger } = this.#o;
    const { alarm, raised } = raiseWitnessAlarm(
      outbox,
      key,
      { reason: failure.reason, detail: failure.message, previous: previous ?? null, offered: target.offered, traceId: target.traceId, batchId: target.batchId },
      new Date(this.#now()),
    );
    this.#pending.newer = undefined;
    this.#pending.older = undefined;
    this.#frozenLogged = true;
    logger.error(
      {
        alert: 'witness',
        reason: failure.reason,
        detail: failure.message,
        previous: previous ?? null,
        offered: target.offered,
        traceId: target.traceId,
        batchId: target.batchId,
        alarmRecord: alarm.record,
        alreadyActive: !raised,
      },
      'WITNESS ALARM: the collector\u2019s log does not extend the history this agent verified',
    );
  }
}

function refOf(checkpoint: { size: number; root: string } | undefined): CheckpointRef | undefined {
  return checkpoint === undefined ? undefined : { size: checkpoint.size, root: checkpoint.root };
}
