/**
 * Collector configuration: read once from the environment in `bin/`, validated by one strict
 * zod schema (every problem listed at once), then injected through the container. Command-line
 * flags override the environment.
 */
import { parseDurationMs } from '../shared/duration.ts';
import { availableParallelism, hostname } from 'node:os';
import { z } from 'zod';
import { ConfigError, parseConfig, readEnvironment } from '../shared/config.ts';
import { DEFAULT_COLLECTOR_PORT } from '../shared/protocol.ts';
import { isValidNoteName } from '../shared/signed-note.ts';
import { DEFAULT_CLOCK_SKEW_TOLERANCE_MS } from './services/clock-skew.ts';
import {
  DatabaseUrlError,
  databaseTakesPassword,
  databaseUrlHasPassword,
  defaultDatabaseUrl,
  parseDatabaseUrl,
  redactDatabaseUrl,
  type DatabaseConnection,
} from './store/open-store.ts';

export const DEFAULT_COLLECTOR_HOST = '127.0.0.1';
export const DEFAULT_COLLECTOR_ORIGIN = 'sakshya.local/collector';
export const DEFAULT_METRICS_HOST = '127.0.0.1';
export const DEFAULT_METRICS_PORT = 7401;

/** The host name, as a replica name: a host runs one replica unless SAKSHYA_COLLECTOR_REPLICA says otherwise. */
function defaultReplicaName(): string {
  const name = hostname().replace(/[^A-Za-z0-9._:-]/g, '-').slice(0, 64);
  return /^[A-Za-z0-9]/.test(name) ? name : `collector-${name}`.slice(0, 64);
}
export const DEFAULT_LOG_LEVEL = 'info';
export const DEFAULT_JWT_CLOCK_TOLERANCE_SECONDS = 30;
/** Longest clock tolerance accepted: more would stretch a 5-minute token far beyond its life. */
export const MAX_JWT_CLOCK_TOLERANCE_SECONDS = 300;
export const MAX_VERIFY_WORKERS = 64;
/**
 * Rate limits (docs/security.md). Generous: an agent draining a backlog sends one batch at a
 * time (a few a second at most), so only a misbehaving or hostile client meets them.
 * Per address, before authentication:            200 requests/s, bursts of 1000.
 * Per verified agent or human token, after it:    50 requests/s, bursts of 200.
 * Enrollment, per address, before the token:       1 every 6 s (10 a minute), bursts of 10.
 */
export const DEFAULT_RATE_IP_PER_SECOND = 200;
export const DEFAULT_RATE_IP_BURST = 1000;
export const DEFAULT_RATE_AGENT_PER_SECOND = 50;
export const DEFAULT_RATE_AGENT_BURST = 200;
export const DEFAULT_RATE_ENROLL_PER_MINUTE = 10;
export const DEFAULT_RATE_ENROLL_BURST = 10;
/** Finished report bundles (reports/<id>/) are deleted this long after they were made. */
export const DEFAULT_REPORT_RETENTION_MS = 7 * 86_400_000;
/**
 * Free space an export never takes the disk below (services/report/disk-floor.ts): 1 GiB, about
 * a million more records for the collector's database, which usually shares the disk.
 */
export const DEFAULT_REPORT_MIN_FREE_BYTES = 1024 ** 3;

/**
 * Ingest backpressure (services/ingest-admission.ts, docs/operations-collector.md "The collector answers
 * 503"). Per batch-check worker: batches that may wait for a worker beyond the two each one
 * holds, and checked batches that may wait for the write transaction. With 2 workers, say:
 * 4 checked at once, 8 more waiting, and 8 waiting to be written; past that a batch is
 * refused with 503 `ingest.busy` and Retry-After. A waiting batch holds its body (at most 8 MiB
 * on the wire), so the bounds also bound ingest's memory.
 */
export const DEFAULT_INGEST_QUEUE_PER_WORKER = 4;
export const DEFAULT_WRITE_QUEUE_PER_WORKER = 4;
export const MAX_INGEST_QUEUE = 1024;
/** Connections to a PostgreSQL database per collector process (store/postgres/connection.ts). */
export const DEFAULT_DATABASE_POOL = 10;
export const MAX_DATABASE_POOL = 1000;

export const COLLECTOR_ENV = {
  dir: 'SAKSHYA_COLLECTOR_DIR',
  /** `sqlite:<path>` (default `sqlite:<dir>/collector.db`) or `postgres://…`; store/open-store.ts. */
  database: 'SAKSHYA_COLLECTOR_DATABASE',
  /** PostgreSQL password, usually given as SAKSHYA_COLLECTOR_DATABASE_PASSWORD_FILE (a path, read at start). */
  databasePassword: 'SAKSHYA_COLLECTOR_DATABASE_PASSWORD',
  /** PostgreSQL: most connections one collector process holds. */
  databasePool: 'SAKSHYA_COLLECTOR_DATABASE_POOL',
  port: 'SAKSHYA_COLLECTOR_PORT',
  host: 'SAKSHYA_COLLECTOR_HOST',
  /** Where `serve` answers GET /metrics (Prometheus): its own listener, no authentication, numbers only. */
  metricsHost: 'SAKSHYA_COLLECTOR_METRICS_HOST',
  /** 0 picks a free port (the "metrics listening" log line names it). */
  metricsPort: 'SAKSHYA_COLLECTOR_METRICS_PORT',
  /** This process's name among replicas of one database (default: the host name); must be unique and stable. */
  replica: 'SAKSHYA_COLLECTOR_REPLICA',
  origin: 'SAKSHYA_COLLECTOR_ORIGIN',
  logLevel: 'SAKSHYA_LOG_LEVEL',
  jwtClockToleranceSeconds: 'SAKSHYA_JWT_CLOCK_TOLERANCE_SECONDS',
  verifyWorkers: 'SAKSHYA_VERIFY_WORKERS',
  /** Batches that may wait for a batch-check worker; default DEFAULT_INGEST_QUEUE_PER_WORKER × workers. */
  ingestQueue: 'SAKSHYA_COLLECTOR_INGEST_QUEUE',
  /** Checked batches that may wait for the write transaction; default DEFAULT_WRITE_QUEUE_PER_WORKER × workers. */
  writeQueue: 'SAKSHYA_COLLECTOR_WRITE_QUEUE',
  rateIpPerSecond: 'SAKSHYA_RATE_IP_PER_SECOND',
  rateIpBurst: 'SAKSHYA_RATE_IP_BURST',
  rateAgentPerSecond: 'SAKSHYA_RATE_AGENT_PER_SECOND',
  rateAgentBurst: 'SAKSHYA_RATE_AGENT_BURST',
  rateEnrollPerMinute: 'SAKSHYA_RATE_ENROLL_PER_MINUTE',
  rateEnrollBurst: 'SAKSHYA_RATE_ENROLL_BURST',
  /** Express `trust proxy`: unset = the socket peer is the client; e.g. `loopback` behind a local nginx. */
  trustProxy: 'SAKSHYA_TRUST_PROXY',
  /** PEM text; usually given as SAKSHYA_COLLECTOR_TLS_CERT_FILE / _KEY_FILE (paths, read at start). */
  tlsCert: 'SAKSHYA_COLLECTOR_TLS_CERT',
  tlsKey: 'SAKSHYA_COLLECTOR_TLS_KEY',
  /** How far a record's `at` may be off before it counts as clock skew (services/clock-skew.ts). */
  clockSkewToleranceMs: 'SAKSHYA_CLOCK_SKEW_TOLERANCE',
  /** How long finished report bundles are kept (services/report/retention.ts). */
  reportRetentionMs: 'SAKSHYA_REPORT_RETENTION',
  /** Free disk space report exports leave (services/report/disk-floor.ts); 0: no floor. */
  reportMinFreeBytes: 'SAKSHYA_REPORT_MIN_FREE_BYTES',
} as const;

type ConfigKey = keyof typeof COLLECTOR_ENV;

const integerText = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

/** The C2SP origin line, also the log key's note name, conventionally a schema-less URL such as `example.org/log`. */
const originSchema = z
  .string()
  .min(1)
  .max(255)
  .refine(isValidNoteName, 'must be a C2SP key name: no spaces, "+" or control characters');

const rateText = z
  .string()
  .regex(/^\d{1,7}(\.\d{1,6})?$/, 'must be a positive number')
  .transform(Number)
  .pipe(z.number().positive());

/**
 * A duration: digits and one unit (ms, s, m, h, d), e.g. `5m`; in milliseconds. Hand-written, not
 * a duration library: those also accept "1.5 weeks" or "2h30m", which a config check should not.
 */
const durationMsText = (minMs: number, maxMs: number) =>
  z
    .string()
    .regex(/^\d{1,9}(ms|s|m|h|d)$/, 'must be a duration such as 300s, 5m or 1h')
    .transform((text) => parseDurationMs(text)!)
    .pipe(z.number().min(minMs, `must be at least ${minMs} ms`).max(maxMs, `must be at most ${maxMs / 86_400_000} days`));

const pemText = (label: string) => z.string().regex(new RegExp(`-----BEGIN [A-Z ]*${label}-----`), `must be PEM text holding a ${label}`);

export const collectorConfigSchema = z
  .strictObject({
  dir: z.string({ error: 'is required (the collector data directory)' }).min(1),
  database: z
    .string()
    .min(1)
    .superRefine((url, ctx) => {
      try {
        parseDatabaseUrl(url);
      } catch (err) {
        if (err instanceof DatabaseUrlError) ctx.addIssue({ code: 'custom', message: err.message });
        else throw err;
      }
    })
    .optional(),
  databasePassword: z.string().min(1).optional(),
  databasePool: integerText(1, MAX_DATABASE_POOL).default(DEFAULT_DATABASE_POOL),
  port: integerText(0, 65535).default(DEFAULT_COLLECTOR_PORT),
  host: z.string().min(1).default(DEFAULT_COLLECTOR_HOST),
  metricsHost: z.string().min(1).default(DEFAULT_METRICS_HOST),
  metricsPort: integerText(0, 65535).default(DEFAULT_METRICS_PORT),
  replica: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/, 'must be 1-64 of A-Z, a-z, 0-9, ".", "_", ":" and "-"')
    .default(defaultReplicaName()),
  origin: originSchema.default(DEFAULT_COLLECTOR_ORIGIN),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default(DEFAULT_LOG_LEVEL),
  jwtClockToleranceSeconds: integerText(0, MAX_JWT_CLOCK_TOLERANCE_SECONDS).default(DEFAULT_JWT_CLOCK_TOLERANCE_SECONDS),
  verifyWorkers: integerText(1, MAX_VERIFY_WORKERS).default(Math.min(availableParallelism(), MAX_VERIFY_WORKERS)),
  ingestQueue: integerText(0, MAX_INGEST_QUEUE).optional(),
  writeQueue: integerText(0, MAX_INGEST_QUEUE).optional(),
  rateIpPerSecond: rateText.default(DEFAULT_RATE_IP_PER_SECOND),
  rateIpBurst: integerText(1, 1_000_000).default(DEFAULT_RATE_IP_BURST),
  rateAgentPerSecond: rateText.default(DEFAULT_RATE_AGENT_PER_SECOND),
  rateAgentBurst: integerText(1, 1_000_000).default(DEFAULT_RATE_AGENT_BURST),
  rateEnrollPerMinute: rateText.default(DEFAULT_RATE_ENROLL_PER_MINUTE),
  rateEnrollBurst: integerText(1, 1_000_000).default(DEFAULT_RATE_ENROLL_BURST),
  trustProxy: z.string().min(1).max(512).optional(),
  tlsCert: pemText('CERTIFICATE').optional(),
  tlsKey: pemText('PRIVATE KEY').optional(),
  clockSkewToleranceMs: durationMsText(1000, 30 * 86_400_000).default(DEFAULT_CLOCK_SKEW_TOLERANCE_MS),
  reportRetentionMs: durationMsText(60_000, 3650 * 86_400_000).default(DEFAULT_REPORT_RETENTION_MS),
  reportMinFreeBytes: integerText(0, Number.MAX_SAFE_INTEGER).default(DEFAULT_REPORT_MIN_FREE_BYTES),
  })
  .refine((c) => (c.tlsCert === undefined) === (c.tlsKey === undefined), {
    message: 'set both SAKSHYA_COLLECTOR_TLS_CERT_FILE and SAKSHYA_COLLECTOR_TLS_KEY_FILE, or neither',
    path: ['tlsCert'],
  })
  .superRefine((c, ctx) => {
    if (c.databasePassword === undefined || c.database === undefined) {
      if (c.databasePassword !== undefined) ctx.addIssue({ code: 'custom', message: 'is for a postgres:// database; SAKSHYA_COLLECTOR_DATABASE is not one', path: ['databasePassword'] });
      return;
    }
    try {
      if (!databaseTakesPassword(c.database)) {
        ctx.addIssue({ code: 'custom', message: 'is for a postgres:// database; SAKSHYA_COLLECTOR_DATABASE is not one', path: ['databasePassword'] });
      } else if (databaseUrlHasPassword(c.database)) {
        ctx.addIssue({ code: 'custom', message: 'is set, and SAKSHYA_COLLECTOR_DATABASE carries a password too; give it in one place', path: ['databasePassword'] });
      }
    } catch (err) {
      if (!(err instanceof DatabaseUrlError)) throw err; // reported for SAKSHYA_COLLECTOR_DATABASE already
    }
  })
  // The queue bounds default to a multiple of the worker count, whichever way that was set.
  .transform(({ ingestQueue, writeQueue, database, ...c }) => ({
    ...c,
    database: database ?? defaultDatabaseUrl(c.dir),
    ingestQueue: ingestQueue ?? Math.min(c.verifyWorkers * DEFAULT_INGEST_QUEUE_PER_WORKER, MAX_INGEST_QUEUE),
    writeQueue: writeQueue ?? Math.min(c.verifyWorkers * DEFAULT_WRITE_QUEUE_PER_WORKER, MAX_INGEST_QUEUE),
  }));

export type CollectorConfig = z.infer<typeof collectorConfigSchema>;

/** Flags given on the command line; each one overrides its environment variable. */
export type CollectorConfigOverrides = { [K in ConfigKey]?: string | undefined };

/**
 * Reads and validates the collector configuration. Throws ConfigError listing every problem,
 * named by environment variable.
 */
export function loadCollectorConfig(env: NodeJS.ProcessEnv, overrides: CollectorConfigOverrides = {}): CollectorConfig {
  const { values, problems } = readEnvironment(env, Object.values(COLLECTOR_ENV));
  const input: { [key: string]: string | undefined } = {};
  for (const [key, name] of Object.entries(COLLECTOR_ENV) as [ConfigKey, string][]) {
    const value = overrides[key] ?? values[name];
    if (value !== undefined) input[key] = value;
  }
  try {
    return parseConfig(collectorConfigSchema, input, problems);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // Name each problem by its environment variable: that is what an operator sets.
    throw new ConfigError(
      err.problems.map((problem) => {
        const key = problem.split(':', 1)[0] as ConfigKey;
        return Object.hasOwn(COLLECTOR_ENV, key) ? COLLECTOR_ENV[key] + problem.slice(key.length) : problem;
      }),
    );
  }
}

/** The database the store opens (store/open-store.ts), from the configuration. */
export function databaseConnection(config: CollectorConfig): DatabaseConnection {
  return { url: config.database, password: config.databasePassword, poolSize: config.databasePool };
}

/** The configuration as it is logged: the TLS key never is (nor the certificate, only whether it is set), nor a database password. */
export function describeConfig(config: CollectorConfig): { [key: string]: unknown } {
  const { tlsCert, tlsKey, database, databasePassword, ...rest } = config;
  // A server database URL may carry a password.
  return { ...rest, database: redactDatabaseUrl(database), databasePassword: databasePassword === undefined ? undefined : '***', tls: tlsCert !== undefined && tlsKey !== undefined };
}
