/**
 * Collector configuration: read once from the environment in `bin/`, validated by one strict
 * zod schema (every problem listed at once), then injected through the container. Command-line
 * flags override the environment.
 */
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { ConfigError, parseConfig, readEnvironment } from '../shared/config.ts';
import { DEFAULT_COLLECTOR_PORT } from '../shared/protocol.ts';
import { isValidNoteName } from '../shared/signed-note.ts';

export const DEFAULT_COLLECTOR_HOST = '127.0.0.1';
export const DEFAULT_COLLECTOR_ORIGIN = 'sakshya.local/collector';
export const DEFAULT_LOG_LEVEL = 'info';
export const DEFAULT_JWT_CLOCK_TOLERANCE_SECONDS = 30;
/** Longest clock tolerance accepted: more would stretch a 5-minute token far beyond its life. */
export const MAX_JWT_CLOCK_TOLERANCE_SECONDS = 300;
export const MAX_VERIFY_WORKERS = 64;

export const COLLECTOR_ENV = {
  dir: 'SAKSHYA_COLLECTOR_DIR',
  port: 'SAKSHYA_COLLECTOR_PORT',
  host: 'SAKSHYA_COLLECTOR_HOST',
  origin: 'SAKSHYA_COLLECTOR_ORIGIN',
  logLevel: 'SAKSHYA_LOG_LEVEL',
  jwtClockToleranceSeconds: 'SAKSHYA_JWT_CLOCK_TOLERANCE_SECONDS',
  verifyWorkers: 'SAKSHYA_VERIFY_WORKERS',
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

export const collectorConfigSchema = z.strictObject({
  dir: z.string({ error: 'is required (the collector data directory)' }).min(1),
  port: integerText(0, 65535).default(DEFAULT_COLLECTOR_PORT),
  host: z.string().min(1).default(DEFAULT_COLLECTOR_HOST),
  origin: originSchema.default(DEFAULT_COLLECTOR_ORIGIN),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default(DEFAULT_LOG_LEVEL),
  jwtClockToleranceSeconds: integerText(0, MAX_JWT_CLOCK_TOLERANCE_SECONDS).default(DEFAULT_JWT_CLOCK_TOLERANCE_SECONDS),
  verifyWorkers: integerText(1, MAX_VERIFY_WORKERS).default(Math.min(availableParallelism(), MAX_VERIFY_WORKERS)),
});

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

/** The configuration as it is logged: nothing in it is secret today, but keep one place to redact. */
export function describeConfig(config: CollectorConfig): { [key: string]: unknown } {
  return { ...config };
}
