/**
 * Configuration from the environment: read once at start, validated by one strict zod schema,
 * every problem reported at once. A secret may be given as `NAME_FILE` (a path) instead of
 * `NAME`; both at once is an error.
 */
import { readFileSync } from 'node:fs';
import type { z } from 'zod';

export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}

/**
 * Picks `names` from `env`, resolving `NAME_FILE` indirections. Returns the raw strings (or
 * undefined) keyed by variable name; problems with files are collected, not thrown one by one.
 */
export function readEnvironment(env: NodeJS.ProcessEnv, names: readonly string[]): { values: { [name: string]: string | undefined }; problems: string[] } {
  const values: { [name: string]: string | undefined } = {};
  const problems: string[] = [];
  for (const name of names) {
    const direct = env[name];
    const file = env[`${name}_FILE`];
    if (direct !== undefined && file !== undefined) {
      problems.push(`${name} and ${name}_FILE are both set; set one`);
      continue;
    }
    if (file !== undefined) {
      try {
        values[name] = readFileSync(file, 'utf8').trim();
      } catch (err) {
        problems.push(`${name}_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      continue;
    }
    values[name] = direct === '' ? undefined : direct;
  }
  return { values, problems };
}

/** Validates `input` with `schema`; throws ConfigError listing every issue (plus `earlier`). */
export function parseConfig<S extends z.ZodType>(schema: S, input: unknown, earlier: string[] = []): z.infer<S> {
  const result = schema.safeParse(input);
  const problems = [...earlier];
  if (!result.success) {
    for (const issue of result.error.issues) problems.push(`${issue.path.join('.') || '(config)'}: ${issue.message}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return result.data as z.infer<S>;
}
