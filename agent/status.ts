/**
 * The agent's status, as `status --json` and `GET /v1/status` report it. Read entirely from the
 * outbox (chain heads and the `state` table), so any process can report on a running agent.
 */
import type { BufferStatus, SqliteOutbox } from './outbox/sqlite-outbox.ts';
import type { CircuitSnapshot, LastReceipt, SyncErrorInfo } from './outbox/state-values.ts';
import { readWitnessAlarm, readWitnessStatus, type WitnessAlarm, type WitnessStatus } from './witness/witness-state.ts';

export interface AgentStatus {
  agent: string;
  epoch: number;
  collector: string;
  pending: number;
  acked: number;
  headSeq: number;
  oldestPendingAt: string | null;
  lastReceipt: LastReceipt | null;
  lastError: SyncErrorInfo | null;
  nextAttemptAt: string | null;
  circuit: CircuitSnapshot;
  /** The witness: the last checkpoint of the collector's log it verified, its last transient error. */
  witness: WitnessStatus;
  /** The active witness alarm (the collector's log failed a check), until `witness clear`. */
  witnessAlarm: WitnessAlarm | null;
  /**
   * The signing keys of the current epoch (ADR 0006), each with the first seq it signs:
   * `current` signs the next record; `collectorKnows` signs agent JWTs (it differs from
   * `current` while a rotation is not acknowledged yet).
   */
  keys: { current: string; collectorKnows: string; history: { kid: string; fromSeq: number }[] };
  /**
   * The buffer cap (agent/outbox/buffer-cap.ts): unacknowledged bytes against the caps, the cap
   * state, and the refusals counted since the last `telemetry.dropped` summary.
   */
  buffer: BufferStatus;
}

/** How long a record may wait for its acknowledgement before `status --check` calls the agent stuck. */
export const DEFAULT_MAX_PENDING_AGE_MS = 3_600_000;

/**
 * Why the agent is not delivering, for `status --check` (monitoring, systemd, the container
 * health check): an empty list means it is. A running process is not enough: an agent whose
 * oldest record has waited for hours, whose circuit is open, whose last batch was refused for
 * good, or whose witness raised an alarm needs a person.
 */
export function deliveryProblems(status: AgentStatus, options: { maxPendingAgeMs: number; nowMs: number }): string[] {
  const problems: string[] = [];
  if (status.oldestPendingAt !== null) {
    const ageMs = options.nowMs - Date.parse(status.oldestPendingAt);
    if (ageMs > options.maxPendingAgeMs) {
      problems.push(`${status.pending} record(s) pending; the oldest has waited ${Math.round(ageMs / 60_000)} min (limit ${Math.round(options.maxPendingAgeMs / 60_000)} min)`);
    }
  }
  if (status.circuit.state === 'open') problems.push(`the circuit to the collector is open after ${status.circuit.consecutiveFailures} consecutive failures`);
  if (status.lastError?.refused) problems.push(`the collector refused the last batch (${status.lastError.code ?? status.lastError.reason}); retrying will not fix it`);
  if (status.witnessAlarm !== null) problems.push(`witness alarm since ${status.witnessAlarm.raisedAt}: ${status.witnessAlarm.reason}`);
  return problems;
}

const CLOSED: CircuitSnapshot = { state: 'closed', consecutiveFailures: 0, openUntil: null };

export function readAgentStatus(outbox: SqliteOutbox): AgentStatus {
  // One read transaction, so the numbers agree with each other.
  return outbox.snapshot((): AgentStatus => {
    const pins = outbox.pins();
    const chain = outbox.chain();
    const backlog = outbox.backlog();
    return {
      agent: pins.agent,
      epoch: pins.epoch,
      collector: pins.collector,
      pending: backlog.pending,
      acked: outbox.acknowledgedCount(),
      headSeq: chain.headSeq,
      oldestPendingAt: backlog.oldestAt,
      lastReceipt: outbox.state.sync.lastReceipt.get() ?? null,
      lastError: outbox.state.sync.lastError.get() ?? null,
      nextAttemptAt: outbox.state.sync.nextAttemptAt.get() ?? null,
      circuit: outbox.state.sync.circuit.get() ?? CLOSED,
      witness: readWitnessStatus(outbox),
      witnessAlarm: readWitnessAlarm(outbox),
      keys: {
        current: outbox.signingKeyRef().kid,
        collectorKnows: outbox.authKeyRefs()[0]!.kid,
        history: outbox.keyRefs().map((ref) => ({ kid: ref.kid, fromSeq: ref.fromSeq })),
      },
      buffer: outbox.bufferStatus(),
    };
  });
}
