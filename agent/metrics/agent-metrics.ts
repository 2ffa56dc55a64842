/**
 * The agent's Prometheus metrics, served as `GET /metrics` on the local API (127.0.0.1 only, no
 * token: numbers only, never record content). The outbox gauges are read at scrape time from
 * the outbox itself (one read transaction, as `status` reads it), so they are right even for
 * records written or acknowledged by another process; the counters of sync attempts and
 * buffer refusals are this process's own, and start at 0 when the agent restarts, as
 * Prometheus counters do.
 */
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { packageVersion } from '../../shared/package-version.ts';
import type { SqliteOutbox } from '../outbox/sqlite-outbox.ts';
import { readAgentStatus, type AgentStatus } from '../status.ts';

export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

/**
 * What one sync attempt (one request to the collector) came to: `delivered`, a backoff reason
 * (network, timeout, bad_receipt, rate_limited, collector_busy, server_error), `resend` (the
 * collector asked for a smaller batch or another start), or `refused` (retrying cannot fix it).
 */
export type SyncAttemptOutcome = 'delivered' | 'resend' | 'refused' | string;

export interface AgentMetricsOptions {
  outbox: SqliteOutbox;
  /** Node's process metrics (event loop, heap, GC): for the long-running `run` process. */
  processMetrics?: boolean;
  now?: () => number;
}

export class AgentMetrics {
  readonly registry = new Registry();
  readonly #syncAttempts: Counter<'outcome'>;
  readonly #bufferRefusals: Counter;
  readonly #outbox: SqliteOutbox;
  readonly #now: () => number;
  #reading: { status: AgentStatus; at: number } | undefined;

  constructor(options: AgentMetricsOptions) {
    this.#outbox = options.outbox;
    this.#now = options.now ?? Date.now;
    const registers = [this.registry];
    new Gauge({ name: 'sakshya_agent_build_info', help: 'The agent\u2019s package version (always 1).', labelNames: ['version'], registers }).set({ version: packageVersion() }, 1);
    this.#syncAttempts = new Counter({
      name: 'sakshya_agent_sync_attempts_total',
      help: 'Requests to send a batch, by outcome: delivered, a backoff reason (network, timeout, collector_busy, rate_limited, server_error, bad_receipt), resend or refused.',
      labelNames: ['outcome'],
      registers,
    });
    this.#bufferRefusals = new Counter({
      name: 'sakshya_agent_buffer_refusals_total',
      help: 'Records refused at the local API because the unacknowledged buffer reached its cap (507).',
      registers,
    });
    const status = () => this.#status();
    const gauge = (name: string, help: string, value: (s: AgentStatus, nowMs: number) => number | null) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.reset();
          const { status: s, at } = status();
          const v = value(s, at);
          if (v !== null) this.set(v);
        },
      });
    gauge('sakshya_agent_outbox_pending_records', 'Records in the outbox not yet acknowledged by the collector.', (s) => s.pending);
    gauge('sakshya_agent_outbox_pending_bytes', 'Bytes of unacknowledged records (what the buffer cap counts).', (s) => s.buffer.pendingBytes);
    gauge('sakshya_agent_oldest_pending_age_seconds', 'Age of the oldest unacknowledged record (0 when nothing is pending).', (s, now) =>
      s.oldestPendingAt === null ? 0 : Math.max(0, (now - Date.parse(s.oldestPendingAt)) / 1000),
    );
    gauge('sakshya_agent_circuit_open', '1 while the circuit breaker holds requests back after repeated failures.', (s) => (s.circuit.state === 'open' ? 1 : 0));
    gauge('sakshya_agent_witness_alarm', '1 while a witness alarm is raised (the collector\u2019s log failed a consistency check).', (s) => (s.witnessAlarm === null ? 0 : 1));
    gauge('sakshya_agent_last_receipt_timestamp_seconds', 'When the last receipt was verified, in Unix seconds.', (s) =>
      s.lastReceipt === null ? null : Date.parse(s.lastReceipt.verifiedAt) / 1000,
    );
    new Counter({
      name: 'sakshya_agent_acknowledged_records_total',
      help: 'Records the collector has acknowledged (read from the outbox).',
      registers,
      collect() {
        this.reset();
        this.inc(status().status.acked);
      },
    });
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  syncAttempt(outcome: SyncAttemptOutcome): void {
    this.#syncAttempts.inc({ outcome });
  }

  bufferRefused(): void {
    this.#bufferRefusals.inc();
  }

  async exposition(): Promise<string> {
    try {
      return await this.registry.metrics();
    } finally {
      this.#reading = undefined;
    }
  }

  /** One outbox read per scrape, shared by every gauge. */
  #status(): { status: AgentStatus; at: number } {
    this.#reading ??= { status: readAgentStatus(this.#outbox), at: this.#now() };
    return this.#reading;
  }
}
