/**
 * The collector's Prometheus metrics (prom-client, text exposition), served on their own
 * listener (`SAKSHYA_COLLECTOR_METRICS_HOST`/`_PORT`): numbers only, never record content or
 * tokens, and no label that grows with traffic (no record, batch or trace ids).
 *
 * Two kinds, kept apart because several replicas may share one database:
 * - per process: what THIS replica saw (requests, batches, ingest queues, lock waits,
 *   signature checks, the Node process). Sum them over replicas.
 * - ledger-wide: read from the store at scrape time (ledger size, checkpoint, quarantine,
 *   agents and their last contact). Every replica of one database serves the same values, so
 *   aggregate them with `max`, never `sum`.
 *
 * A scrape reads the store once for all ledger-wide gauges; scrapes that overlap (several
 * Prometheus servers, a slow database) share that read instead of multiplying it.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { COLLECTOR_AGENT_ID } from '../../shared/record.ts';
import type { AgentEpochSummary, CollectorStore, LedgerCounts } from '../store/store.ts';
import { epochStatus } from './enrollment.ts';
import type { IngestAdmission } from './ingest-admission.ts';

export const METRICS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

/** Request latency buckets (seconds): a batch of 500 records takes tens of ms; a report export start, more. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const LOCK_WAIT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Who made a request, as `sakshya_collector_requests_total` labels it. */
export type Credential = { kind: 'agent' | 'admin' | 'auditor'; name: string } | { kind: 'anonymous' };

/**
 * Signed offset (seconds) of the agent's newest implausible `at` (+ ahead of the collector's
 * clock, − behind or backwards); 0 once a later record was judged plausible again, so the
 * gauge says whether the clock is wrong NOW.
 */
export function currentClockSkewSeconds(epoch: Pick<AgentEpochSummary, 'clockSkew'>): number {
  const skew = epoch.clockSkew;
  if (skew === null || skew.lastSkew === null || skew.lastSeq > skew.lastSkew.seq) return 0;
  const sign = skew.lastSkew.rule === 'ahead' ? 1 : -1;
  return (sign * skew.lastSkew.offsetMs) / 1000;
}

interface LedgerSnapshot {
  counts: LedgerCounts;
  epochs: AgentEpochSummary[];
}

/** What ingest reports as it works (services/ingest.ts, services/agent-auth.ts). */
export interface IngestObserver {
  /** Seconds a checked batch waited for the single write transaction. */
  writeWaited(seconds: number): void;
  /** Ed25519 signatures checked (records in a worker, agent JWTs on the event loop). */
  signaturesVerified(count: number): void;
  /** A batch's write transaction held the single writer's lock this long (until its commit) to append `records`. */
  writeHeld(seconds: number, records: number): void;
}

export interface CollectorMetricsOptions {
  store: CollectorStore;
  admission: IngestAdmission;
  version: string;
  /** Node's process metrics (event-loop lag, heap, GC): one registry per process should have them. */
  processMetrics: boolean;
}

export class CollectorMetrics implements IngestObserver {
  readonly registry = new Registry();
  readonly #store: CollectorStore;
  #reading: Promise<LedgerSnapshot> | undefined;

  readonly #httpDuration: Histogram<'method' | 'route' | 'status'>;
  readonly #requests: Counter<'credential' | 'name' | 'status_class'>;
  readonly #batches: Counter<'outcome'>;
  readonly #recordsIngested: Counter<'agent'>;
  readonly #writeLockWait: Histogram;
  readonly #verifications: Counter;
  readonly #writeHeld: Histogram;
  readonly #integratedRecords: Histogram;

  constructor(options: CollectorMetricsOptions) {
    this.#store = options.store;
    const registers = [this.registry];
    const { admission } = options;

    new Gauge({ name: 'sakshya_collector_build_info', help: 'The collector\u2019s package version (always 1).', labelNames: ['version'], registers }).set({ version: options.version }, 1);
    this.#httpDuration = new Histogram({
      name: 'sakshya_collector_http_request_duration_seconds',
      help: 'HTTP request duration by method, route template and status.',
      labelNames: ['method', 'route', 'status'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.#requests = new Counter({
      name: 'sakshya_collector_requests_total',
      help: 'HTTP requests by the credential that made them (agent id, or the name an admin or auditor token was issued to) and status class.',
      labelNames: ['credential', 'name', 'status_class'],
      registers,
    });
    this.#batches = new Counter({
      name: 'sakshya_collector_batches_total',
      help: 'Batches posted, by outcome: accepted, duplicate (nothing new: a stored receipt sent again, or every record stored already), or the problem code of the refusal.',
      labelNames: ['outcome'],
      registers,
    });
    this.#recordsIngested = new Counter({ name: 'sakshya_collector_records_ingested_total', help: 'Records appended to the ledger, by agent.', labelNames: ['agent'], registers });
    this.#writeLockWait = new Histogram({
      name: 'sakshya_collector_write_lock_wait_seconds',
      help: 'How long a checked batch waited for the single write transaction.',
      buckets: LOCK_WAIT_BUCKETS,
      registers,
    });
    this.#writeHeld = new Histogram({
      name: 'sakshya_collector_write_lock_hold_seconds',
      help: 'How long a batch held the single writer\u2019s lock, from taking it to the durable commit: the serialised part of ingest.',
      buckets: LOCK_WAIT_BUCKETS,
      registers,
    });
    this.#integratedRecords = new Histogram({
      name: 'sakshya_collector_integration_records',
      help: 'Records appended to the tree per write transaction.',
      buckets: [1, 10, 50, 100, 250, 500, 1000, 2500, 5000],
      registers,
    });
    this.#verifications = new Counter({ name: 'sakshya_collector_ed25519_verifications_total', help: 'Ed25519 signatures checked (record signatures and agent JWTs).', registers });
    new Gauge({
      name: 'sakshya_collector_batch_check_queue_depth',
      help: 'Batches being checked or waiting for a batch-check worker.',
      registers,
      collect() {
        this.set(admission.load.checking);
      },
    });
    new Gauge({
      name: 'sakshya_collector_write_queue_depth',
      help: 'Checked batches in or waiting for the write transaction.',
      registers,
      collect() {
        this.set(admission.load.writing);
      },
    });
    const store = this.#store;
    new Gauge({
      name: 'sakshya_collector_ready',
      help: '1 if the database answers (what /readyz says), else 0.',
      registers,
      async collect() {
        this.set(await store.ping().then(() => 1, () => 0));
      },
    });
    if (store.poolUse !== undefined) {
      const poolUse = store.poolUse.bind(store);
      new Gauge({
        name: 'sakshya_collector_db_pool_connections',
        help: 'This process\u2019s database connections by state: open (total), idle, and requests waiting for one.',
        labelNames: ['state'],
        registers,
        collect() {
          const use = poolUse();
          this.set({ state: 'total' }, use.total);
          this.set({ state: 'idle' }, use.idle);
          this.set({ state: 'waiting' }, use.waiting);
        },
      });
    }
    this.#ledgerGauges(registers);
    if (options.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /** One finished HTTP request. `route` is a template (never a raw path), or "unmatched". */
  request(method: string, route: string, status: number, seconds: number, credential: Credential): void {
    this.#httpDuration.observe({ method, route, status: String(status) }, seconds);
    this.#requests.inc({
      credential: credential.kind,
      name: credential.kind === 'anonymous' ? '' : credential.name,
      status_class: `${Math.floor(status / 100)}xx`,
    });
  }

  /** One posted batch: accepted or duplicate (with the agent and its new records), or a problem code. */
  batch(outcome: { kind: 'accepted' | 'duplicate'; agent: string; records: number } | { kind: 'refused'; code: string }): void {
    if (outcome.kind === 'refused') {
      this.#batches.inc({ outcome: outcome.code });
      return;
    }
    this.#batches.inc({ outcome: outcome.kind });
    if (outcome.kind === 'accepted' && outcome.records > 0) this.#recordsIngested.inc({ agent: outcome.agent }, outcome.records);
  }

  writeWaited(seconds: number): void {
    this.#writeLockWait.observe(seconds);
  }

  writeHeld(seconds: number, records: number): void {
    this.#writeHeld.observe(seconds);
    if (records > 0) this.#integratedRecords.observe(records);
  }

  signaturesVerified(count: number): void {
    if (count > 0) this.#verifications.inc(count);
  }

  /** The exposition, as served on /metrics. */
  exposition(): Promise<string> {
    return this.registry.metrics();
  }

  /** One read for all the ledger-wide gauges of a scrape; scrapes that overlap share it. */
  #ledger(): Promise<LedgerSnapshot> {
    if (this.#reading === undefined) {
      this.#reading = Promise.all([this.#store.ledgerCounts(), this.#store.listAgentEpochs()])
        .then(([counts, epochs]) => ({ counts, epochs }))
        .finally(() => {
          this.#reading = undefined;
        });
    }
    return this.#reading;
  }

  #ledgerGauges(registers: Registry[]): void {
    const ledger = () => this.#ledger();
    // A database that does not answer leaves these series out of the scrape (sakshya_collector_ready says 0).
    const read = async (fn: (snapshot: LedgerSnapshot) => void) => {
      let snapshot: LedgerSnapshot;
      try {
        snapshot = await ledger();
      } catch {
        return;
      }
      fn(snapshot);
    };
    new Gauge({
      name: 'sakshya_collector_ledger_size',
      help: 'Entries in the ledger (ledger-wide: the same on every replica).',
      registers,
      async collect() {
        this.reset();
        await read(({ counts }) => this.set(counts.size));
      },
    });
    new Gauge({
      name: 'sakshya_collector_checkpoint_size',
      help: 'Tree size of the newest signed checkpoint (ledger-wide).',
      registers,
      async collect() {
        this.reset();
        await read(({ counts }) => counts.checkpoint && this.set(counts.checkpoint.size));
      },
    });
    new Gauge({
      name: 'sakshya_collector_checkpoint_timestamp_seconds',
      help: 'When the newest checkpoint was signed, in Unix seconds (ledger-wide).',
      registers,
      async collect() {
        this.reset();
        await read(({ counts }) => counts.checkpoint && this.set(Date.parse(counts.checkpoint.createdAt) / 1000));
      },
    });
    new Counter({
      name: 'sakshya_collector_quarantined_records_total',
      help: 'Equivocating records held in quarantine (ledger-wide; quarantine only grows).',
      registers,
      async collect() {
        this.reset();
        await read(({ counts }) => this.inc(counts.quarantined));
      },
    });
    new Gauge({
      name: 'sakshya_collector_agents',
      help: 'Agent epochs by status and the version the agent last reported ("unknown" before it reports one).',
      labelNames: ['status', 'version'],
      registers,
      async collect() {
        this.reset();
        await read(({ epochs }) => {
          for (const epoch of agentEpochs(epochs)) this.inc({ status: epochStatus(epoch), version: versionOf(epoch) });
        });
      },
    });
    const perAgent = (name: string, help: string, value: (epoch: AgentEpochSummary) => number | null) =>
      new Gauge({
        name,
        help: `${help} Active agents only (ledger-wide).`,
        labelNames: ['agent'],
        registers,
        async collect() {
          this.reset();
          await read(({ epochs }) => {
            for (const epoch of currentEpochs(epochs)) {
              const v = value(epoch);
              if (v !== null) this.set({ agent: epoch.agent }, v);
            }
          });
        },
      });
    perAgent('sakshya_collector_agent_last_seen_timestamp_seconds', 'When the agent last delivered a batch, in Unix seconds.', (e) =>
      e.lastSeenAt === null ? null : Date.parse(e.lastSeenAt) / 1000,
    );
    perAgent('sakshya_collector_agent_backlog_records', 'Records the agent had not delivered yet, as it last reported.', (e) => e.backlog.pending);
    perAgent('sakshya_collector_agent_clock_skew_seconds', 'Signed offset of the agent\u2019s newest implausible record time (0: its clock looks right now).', (e) =>
      currentClockSkewSeconds(e),
    );
    perAgent('sakshya_collector_agent_witnessed_size', 'Size of the newest checkpoint the agent confirmed as a witness.', (e) => e.witnessedSize);
  }
}

/** Every agent epoch but the collector's own chain. */
function agentEpochs(epochs: readonly AgentEpochSummary[]): AgentEpochSummary[] {
  return epochs.filter((e) => e.agent !== COLLECTOR_AGENT_ID);
}

/** The active epoch of each agent: a revoked office is expected to fall silent and must not page anyone. */
function currentEpochs(epochs: readonly AgentEpochSummary[]): AgentEpochSummary[] {
  return agentEpochs(epochs).filter((e) => e.revokedAt === null);
}

function versionOf(epoch: AgentEpochSummary): string {
  return epoch.version ?? 'unknown';
}
