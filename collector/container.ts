/**
 * Wires the collector from its configuration: store, keys, services. Configuration is read in
 * `bin/` and passed in; nothing below this reads the environment.
 *
 * Two ways to start:
 * - `bootstrap` (serve, migrate, agents enroll): creates the data directory (0700), migrates
 *   the database (0600, with its -wal and -shm), creates missing keys (0600) and the COLLECTOR
 *   chain row. Safe to repeat.
 * - `existing` (read-only commands): requires a database at the current schema version and
 *   the keys; creates nothing.
 * Either way, a database newer than this code is refused (schema-version gate), and so is a data
 * directory that group or others can write to (shared/private-files.ts).
 */
import type { Logger } from '../shared/logger.ts';
import { assertPrivateDirectory, ensurePrivateDirectory } from '../shared/private-files.ts';
import { fromBase64Url } from '../shared/crypto.ts';
import { noteSignerFromSigningKey, noteVerifierFromPublicKey } from '../shared/signed-note.ts';
import { databaseConnection, type CollectorConfig } from './config.ts';
import { agentAuthenticator, humanAuthenticator, type Authenticators } from './services/authenticators.ts';
import { ensureCollectorKeys, loadCollectorKeys, publicKeysOf, type CollectorKeys, type CollectorPublicKeys } from './keys.ts';
import { AgentAuthService } from './services/agent-auth.ts';
import { ApiTokenService } from './services/api-tokens.ts';
import { RateLimiter, type RateLimit } from './services/rate-limiter.ts';
import { SharedRateLimiter, type PrincipalLimiter } from './services/shared-rate-limiter.ts';
import { CollectorChain } from './services/collector-chain.ts';
import { EnrollmentService } from './services/enrollment.ts';
import { FleetService } from './services/fleet.ts';
import { IngestService } from './services/ingest.ts';
import { LedgerAudit } from './services/ledger-audit.ts';
import { LedgerService } from './services/ledger.ts';
import { RecordsService } from './services/records.ts';
import { ReportService } from './services/reports.ts';
import { ReportExportPool } from './services/report/export-pool.ts';
import { BATCH_CHECK_TASKS_PER_WORKER, BatchCheckPool } from './services/batch-check-pool.ts';
import { IngestAdmission } from './services/ingest-admission.ts';
import { assertCollectorIdentity, ensureCollectorIdentity } from './services/collector-identity.ts';
import { CollectorMetrics } from './services/metrics.ts';
import { packageVersion } from '../shared/package-version.ts';
import { databaseExists, describeDatabase, openStore } from './store/open-store.ts';
import type { CollectorStore } from './store/store.ts';

export class CollectorSetupError extends Error {
  override name = 'CollectorSetupError';
}

export interface Container {
  config: CollectorConfig;
  logger: Logger;
  now: () => Date;
  keys: CollectorKeys;
  publicKeys: CollectorPublicKeys;
  store: CollectorStore;
  ledger: LedgerService;
  collectorChain: CollectorChain;
  enrollment: EnrollmentService;
  agentAuth: AgentAuthService;
  /** Admin and auditor bearer tokens. */
  apiTokens: ApiTokenService;
  /**
   * Rate limits: per address before auth and enrollment per address (in memory, per process);
   * per verified principal after auth (in the database when it is shared by replicas).
   */
  limiters: { ip: RateLimiter; principal: PrincipalLimiter; enroll: RateLimiter };
  /** One authenticator per role, for routes that declare the roles they admit. */
  authenticators: Authenticators;
  ingest: IngestService;
  /** Ingest's queue bounds: their load and the refusals (503 `ingest.busy`) since start. */
  ingestAdmission: IngestAdmission;
  /** Prometheus metrics of this process and of the ledger (served by `serve` on its own listener). */
  metrics: CollectorMetrics;
  /** The package version (healthz, logs, metrics). */
  version: string;
  records: RecordsService;
  /** The fleet view: per (agent, epoch) state for admins and auditors. */
  fleet: FleetService;
  /** Report bundle exports (CLI and HTTP jobs). */
  reports: ReportService;
  /** A new audit of the whole store (`ledger verify`), against this collector's own keys. */
  ledgerAudit(): LedgerAudit;
  /** Stops the worker pools and the report sweeps, and closes the database. */
  close(): Promise<void>;
}

export interface ContainerOptions {
  logger: Logger;
  mode: 'bootstrap' | 'existing';
  /** The clock; tests may fix it. */
  now?: () => Date;
  /** Include Node's process metrics (event loop, heap, GC): for `serve`, one registry per process. */
  processMetrics?: boolean;
}

export async function createContainer(config: CollectorConfig, options: ContainerOptions): Promise<Container> {
  const { logger } = options;
  const now = options.now ?? (() => new Date());

  let keys: CollectorKeys;
  let store: CollectorStore;
  if (options.mode === 'bootstrap') {
    ensurePrivateDirectory(config.dir);
    store = openStore(databaseConnection(config));
    try {
      const report = await store.migrate();
      if (report.applied.length > 0) logger.info(report, 'database migrated');
      const ensured = ensureCollectorKeys(config.dir);
      if (ensured.created.length > 0) logger.info({ created: ensured.created }, 'collector keys created');
      keys = ensured.keys;
      await ensureCollectorIdentity(store, keys, { origin: config.origin, now });
    } catch (err) {
      await store.close();
      throw err;
    }
  } else {
    assertPrivateDirectory(config.dir);
    if (!(await databaseExists(databaseConnection(config)))) {
      throw new CollectorSetupError(`there is no collector database at ${describeDatabase(config.database)}; run \`sakshya-collector migrate\` or \`serve\` first`);
    }
    store = openStore(databaseConnection(config));
    try {
      await store.assertSchemaCurrent();
      keys = loadCollectorKeys(config.dir);
      await assertCollectorIdentity(store, keys);
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  const ledger = new LedgerService({ origin: config.origin, signer: noteSignerFromSigningKey(config.origin, keys.log), store, now });
  const collectorChain = new CollectorChain({ key: keys.chain, ledger, store, now });
  if (options.mode === 'bootstrap') {
    try {
      await collectorChain.ensure();
      await ledger.ensureGenesis();
    } catch (err) {
      await store.close();
      throw err;
    }
  }
  const enrollment = new EnrollmentService({
    store,
    chain: collectorChain,
    origin: config.origin,
    logKey: keys.log,
    receiptKey: keys.receipt,
    now,
    clockSkewToleranceMs: config.clockSkewToleranceMs,
  });
  const apiTokens = new ApiTokenService({ store, chain: collectorChain, now });
  let pool: BatchCheckPool | undefined;
  const ingestAdmission = new IngestAdmission({
    checkSlots: config.verifyWorkers * BATCH_CHECK_TASKS_PER_WORKER,
    checkQueue: config.ingestQueue,
    writeQueue: config.writeQueue,
  });
  const version = packageVersion();
  const metrics = new CollectorMetrics({ store, admission: ingestAdmission, version, processMetrics: options.processMetrics === true });
  const agentAuth = new AgentAuthService({ store, origin: config.origin, clockToleranceSeconds: config.jwtClockToleranceSeconds, now, observer: metrics });
  const ingest = new IngestService({
    store,
    ledger,
    pool: () => (pool ??= new BatchCheckPool({ threads: config.verifyWorkers })),
    admission: ingestAdmission,
    receiptKey: keys.receipt,
    origin: config.origin,
    now,
    clockSkewToleranceMs: config.clockSkewToleranceMs,
    observer: metrics,
  });

  const reports = new ReportService({
    store,
    chain: collectorChain,
    exporter: new ReportExportPool({
      database: databaseConnection(config),
      origin: config.origin,
      reportKey: keys.receipt,
      publicKeys: publicKeysOf(config.origin, keys),
      minFreeBytes: config.reportMinFreeBytes,
    }),
    collectorDir: config.dir,
    retentionMs: config.reportRetentionMs,
    minFreeBytes: config.reportMinFreeBytes,
    replica: config.replica,
    logger,
    now,
  });

  return {
    config,
    logger,
    now,
    keys,
    publicKeys: publicKeysOf(config.origin, keys),
    store,
    ledger,
    collectorChain,
    enrollment,
    agentAuth,
    apiTokens,
    limiters: {
      ip: new RateLimiter({ ratePerSecond: config.rateIpPerSecond, burst: config.rateIpBurst }),
      principal: principalLimiter(store, { ratePerSecond: config.rateAgentPerSecond, burst: config.rateAgentBurst }),
      enroll: new RateLimiter({ ratePerSecond: config.rateEnrollPerMinute / 60, burst: config.rateEnrollBurst }),
    },
    authenticators: {
      agent: agentAuthenticator(agentAuth),
      auditor: humanAuthenticator('auditor', apiTokens),
      admin: humanAuthenticator('admin', apiTokens),
    },
    ingest,
    ingestAdmission,
    metrics,
    version,
    records: new RecordsService({ store, chain: collectorChain }),
    fleet: new FleetService({ store, chain: collectorChain, now }),
    reports,
    ledgerAudit: () =>
      new LedgerAudit({
        store,
        origin: config.origin,
        logVerifier: noteVerifierFromPublicKey(config.origin, fromBase64Url(keys.log.publicJwk.x)),
        receiptKey: keys.receipt.publicKey,
      }),
    async close() {
      await reports.close();
      await pool?.close();
      await store.close();
    },
  };
}

/** Shared through the database when the backend offers it (several replicas), else in memory. */
function principalLimiter(store: CollectorStore, limit: RateLimit): PrincipalLimiter {
  const take = store.takeRateToken?.bind(store);
  return take === undefined ? new RateLimiter(limit) : new SharedRateLimiter({ takeRateToken: take }, limit);
}
