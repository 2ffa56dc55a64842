/**
 * promtool (Prometheus's rule and config checker, Debian package `prometheus`), run as a child
 * process. Tests that need it skip on a machine without it, and fail under CI, which installs it
 * (.ci/run, ensure_debian_packages).
 */
import { spawnSync } from 'node:child_process';
import { skipUnlessCi } from './skip.ts';

export interface PromtoolResult {
  status: number | null;
  output: string;
}

export function promtoolPath(): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : undefined;
}

/** Skips the test (or, under CI=true, fails it) when promtool is not installed. */
export function requirePromtool(context: Mocha.Context): string {
  const path = promtoolPath();
  if (path === undefined) skipUnlessCi(context, 'promtool is not installed (apt-get install prometheus)');
  return path;
}

export function promtool(path: string, args: readonly string[], cwd: string): PromtoolResult {
  const run = spawnSync(path, args, { cwd, encoding: 'utf8', timeout: 60_000 });
  if (run.error) throw run.error;
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}
