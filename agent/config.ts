/**
 * Agent configuration: read once at start from the environment, validated by one strict zod
 * schema, every problem listed at once (shared/config.ts). Command-line flags override the
 * environment. The effective configuration is logged once; it holds no secrets (the enrollment
 * token is never part of it: only the path of the file `init` reads it from, agent/enroll-token.ts).
 */
import { resolve } from 'node:path';
import cron from 'node-cron';
import { z } from 'zod';
import { parseConfig, readEnvironment } from '../shared/config.ts';
import { DEFAULT_AGENT_PORT, MAX_BATCH_DECODED_BYTES, MAX_RECORDS_PER_BATCH } from '../shared/protocol.ts';
import { DEFAULT_HARD_CAP_BYTES, DEFAULT_SOFT_CAP_BYTES } from './outbox/buffer-cap.ts';

export { DEFAULT_AGENT_PORT };
export const DEFAULT_LOG_LEVEL = 'info';
export const DEFAULT_BATCH_MAX_RECORDS = 500;
/** JSON bytes of a batch before gzip. */
export const DEFAULT_BATCH_MAX_BYTES = 1024 * 1024;
/** How often an idle sync loop looks for new records. */
export const DEFAULT_SYNC_INTERVAL_MS = 1000;
export const DEFAULT_TELEMETRY_CRON = '* * * * *';
export const TELEMETRY_OFF = 'off';
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
export const DEFAULT_RESPONSE_TIMEOUT_MS = 30_000;
export const DEFAULT_BACKOFF_BASE_MS = 500;
export const DEFAULT_BACKOFF_MAX_MS = 5 * 60_000;
/** Consecutive failed attempts that open the circuit. */
export const DEFAULT_CIRCUIT_FAILURE_THRESHOLD = 5;
/** How long an open circuit stays open before one trial request. */
export const DEFAULT_CIRCUIT_COOLDOWN_MS = 30_000;
/** After a refusal that retrying cannot fix (auth, invalid, equivocation, revoked): wait this long. */
export const DEFAULT_REFUSED_RETRY_MS = 10 * 60_000;
export { DEFAULT_HARD_CAP_BYTES, DEFAULT_SOFT_CAP_BYTES };
/** The smallest cap accepted: a cap must hold at least a few records (a body alone may be 64 KiB). */
export const MIN_CAP_BYTES = 16 * 1024;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const AGENT_ENV_NAMES = [
  'SAKSHYA_AGENT_DIR',
  'SAKSHYA_AGENT_PORT',
  'SAKSHYA_COLLECTOR_URL',
  'SAKSHYA_LOG_LEVEL',
  'SAKSHYA_AGENT_BATCH_MAX_RECORDS',
  'SAKSHYA_AGENT_BATCH_MAX_BYTES',
  'SAKSHYA_AGENT_SYNC_INTERVAL_MS',
  'SAKSHYA_AGENT_TELEMETRY_CRON',
  'SAKSHYA_AGENT_CONNECT_TIMEOUT_MS',
  'SAKSHYA_AGENT_RESPONSE_TIMEOUT_MS',
  'SAKSHYA_AGENT_BACKOFF_BASE_MS',
  'SAKSHYA_AGENT_BACKOFF_MAX_MS',
  'SAKSHYA_AGENT_CIRCUIT_FAILURES',
  'SAKSHYA_AGENT_CIRCUIT_COOLDOWN_MS',
  'SAKSHYA_AGENT_REFUSED_RETRY_MS',
  'SAKSHYA_AGENT_SOFT_CAP_BYTES',
  'SAKSHYA_AGENT_HARD_CAP_BYTES',
  'SAKSHYA_ENROLL_TOKEN_FILE',
] as const;

const integer = (min: number, max: number, fallback: number) =>
  z.coerce
    .number({ error: 'must be a number' })
    .int('must be an integer')
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`)
    .default(fallback);

/** An http(s) URL without credentials, query or fragment. */
export const collectorUrlSchema = z
  .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
  .refine((value) => {
    const url = new URL(value);
    return url.username === '' && url.password === '' && url.search === '' && url.hash === '';
  }, 'must not contain credentials, a query or a fragment')
  .transform((value) => value.replace(/\/+$/, ''));

const agentEnvSchema = z
  .strictObject({
    SAKSHYA_AGENT_DIR: z.string({ error: 'required: set SAKSHYA_AGENT_DIR or pass --dir' }).min(1),
    SAKSHYA_AGENT_PORT: integer(0, 65535, DEFAULT_AGENT_PORT),
    SAKSHYA_COLLECTOR_URL: collectorUrlSchema.optional(),
    SAKSHYA_LOG_LEVEL: z.enum(LOG_LEVELS).default(DEFAULT_LOG_LEVEL),
    SAKSHYA_AGENT_BATCH_MAX_RECORDS: integer(1, MAX_RECORDS_PER_BATCH, DEFAULT_BATCH_MAX_RECORDS),
    SAKSHYA_AGENT_BATCH_MAX_BYTES: integer(1024, MAX_BATCH_DECODED_BYTES - 1, DEFAULT_BATCH_MAX_BYTES),
    SAKSHYA_AGENT_SYNC_INTERVAL_MS: integer(10, 3_600_000, DEFAULT_SYNC_INTERVAL_MS),
    SAKSHYA_AGENT_TELEMETRY_CRON: z
      .string()
      .default(DEFAULT_TELEMETRY_CRON)
      .refine((value) => value === TELEMETRY_OFF || cron.validate(value), `must be a cron expression or "${TELEMETRY_OFF}"`),
    SAKSHYA_AGENT_CONNECT_TIMEOUT_MS: integer(100, 600_000, DEFAULT_CONNECT_TIMEOUT_MS),
    SAKSHYA_AGENT_RESPONSE_TIMEOUT_MS: integer(100, 3_600_000, DEFAULT_RESPONSE_TIMEOUT_MS),
    SAKSHYA_AGENT_BACKOFF_BASE_MS: integer(1, 3_600_000, DEFAULT_BACKOFF_BASE_MS),
    SAKSHYA_AGENT_BACKOFF_MAX_MS: integer(1, 24 * 3_600_000, DEFAULT_BACKOFF_MAX_MS),
    SAKSHYA_AGENT_CIRCUIT_FAILURES: integer(1, 1000, DEFAULT_CIRCUIT_FAILURE_THRESHOLD),
    SAKSHYA_AGENT_CIRCUIT_COOLDOWN_MS: integer(1, 24 * 3_600_000, DEFAULT_CIRCUIT_COOLDOWN_MS),
    SAKSHYA_AGENT_REFUSED_RETRY_MS: integer(1, 7 * 24 * 3_600_000, DEFAULT_REFUSED_RETRY_MS),
    SAKSHYA_AGENT_SOFT_CAP_BYTES: integer(MIN_CAP_BYTES, Number.MAX_SAFE_INTEGER, DEFAULT_SOFT_CAP_BYTES),
    SAKSHYA_AGENT_HARD_CAP_BYTES: integer(MIN_CAP_BYTES, Number.MAX_SAFE_INTEGER, DEFAULT_HARD_CAP_BYTES),
    /** For `init`: a file holding the one-time enrollment token (a path, not the token). */
    SAKSHYA_ENROLL_TOKEN_FILE: z.string().min(1).optional(),
  })
  .superRefine((env, ctx) => {
    if (env.SAKSHYA_AGENT_BACKOFF_BASE_MS > env.SAKSHYA_AGENT_BACKOFF_MAX_MS) {
      ctx.addIssue({ code: 'custom', path: ['SAKSHYA_AGENT_BACKOFF_BASE_MS'], message: 'must not exceed SAKSHYA_AGENT_BACKOFF_MAX_MS' });
    }
    if (env.SAKSHYA_AGENT_SOFT_CAP_BYTES >= env.SAKSHYA_AGENT_HARD_CAP_BYTES) {
      ctx.addIssue({ code: 'custom', path: ['SAKSHYA_AGENT_SOFT_CAP_BYTES'], message: 'must be less than SAKSHYA_AGENT_HARD_CAP_BYTES' });
    }
  })
  .transform((env) => ({
    dir: resolve(env.SAKSHYA_AGENT_DIR),
    port: env.SAKSHYA_AGENT_PORT,
    collectorUrl: env.SAKSHYA_COLLECTOR_URL,
    logLevel: env.SAKSHYA_LOG_LEVEL,
    batch: { maxRecords: env.SAKSHYA_AGENT_BATCH_MAX_RECORDS, maxBytes: env.SAKSHYA_AGENT_BATCH_MAX_BYTES },
    syncIntervalMs: env.SAKSHYA_AGENT_SYNC_INTERVAL_MS,
    telemetryCron: env.SAKSHYA_AGENT_TELEMETRY_CRON === TELEMETRY_OFF ? null : env.SAKSHYA_AGENT_TELEMETRY_CRON,
    timeouts: { connectMs: env.SAKSHYA_AGENT_CONNECT_TIMEOUT_MS, responseMs: env.SAKSHYA_AGENT_RESPONSE_TIMEOUT_MS },
    backoff: { baseMs: env.SAKSHYA_AGENT_BACKOFF_BASE_MS, maxMs: env.SAKSHYA_AGENT_BACKOFF_MAX_MS },
    circuit: { failureThreshold: env.SAKSHYA_AGENT_CIRCUIT_FAILURES, cooldownMs: env.SAKSHYA_AGENT_CIRCUIT_COOLDOWN_MS },
    refusedRetryMs: env.SAKSHYA_AGENT_REFUSED_RETRY_MS,
    bufferCap: { softBytes: env.SAKSHYA_AGENT_SOFT_CAP_BYTES, hardBytes: env.SAKSHYA_AGENT_HARD_CAP_BYTES },
    enrollTokenFile: env.SAKSHYA_ENROLL_TOKEN_FILE === undefined ? undefined : resolve(env.SAKSHYA_ENROLL_TOKEN_FILE),
  }));

export type AgentConfig = z.infer<typeof agentEnvSchema>;

/** Flags that override the environment. */
export interface AgentConfigOverrides {
  dir?: string | undefined;
  collectorUrl?: string | undefined;
  port?: string | undefined;
  enrollTokenFile?: string | undefined;
}

/**
 * Reads and validates the agent configuration. MUST be called once, by the entry point; every
 * other module receives the result. Throws ConfigError listing every problem.
 */
export function loadAgentConfig(env: NodeJS.ProcessEnv, overrides: AgentConfigOverrides = {}): AgentConfig {
  const { values, problems } = readEnvironment(env, AGENT_ENV_NAMES);
  if (overrides.dir !== undefined) values.SAKSHYA_AGENT_DIR = overrides.dir;
  if (overrides.collectorUrl !== undefined) values.SAKSHYA_COLLECTOR_URL = overrides.collectorUrl;
  if (overrides.port !== undefined) values.SAKSHYA_AGENT_PORT = overrides.port;
  if (overrides.enrollTokenFile !== undefined) values.SAKSHYA_ENROLL_TOKEN_FILE = overrides.enrollTokenFile;
  return parseConfig(agentEnvSchema, values, problems);
}

/** The configuration as it is logged: nothing in it is secret, but keep the shape explicit. */
export function describeConfig(config: AgentConfig): { [key: string]: unknown } {
  return { ...config };
}
