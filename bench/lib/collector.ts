/**
 * The real collector for benchmarks: `sakshya-collector serve` started by the test harness on a
 * free 127.0.0.1 port, agents enrolled through the real CLI (`agents enroll`) and the real
 * `POST /api/v1/enroll`, and stopped (SIGTERM) with its data directory removed at cleanup.
 * Replicas of one PostgreSQL database each get a data directory of their own holding a copy of
 * the first replica's keys (every replica must sign with the keys the database recorded).
 */
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, runCollectorCli, startCollectorProcess, type CollectorProcess } from '../../test/helpers/collector-process.ts';
import { API_PREFIX, type EnrollResponse } from '../../shared/protocol.ts';
import type { Cleanup } from './cleanup.ts';
import type { HttpClient } from './http-client.ts';
import type { SimulatedAgent } from './workload.ts';

/** A collector process, and what its CLI needs besides its directory (the database URL, if not the default). */
export interface BenchCollector extends CollectorProcess {
  cliEnv: NodeJS.ProcessEnv;
}

/**
 * Starts `serve` in a fresh data directory with `env` on top of the harness's; with `keysFrom`
 * (another replica's data directory), a copy of that replica's keys first.
 */
export async function startBenchCollector(cleanup: Cleanup, env: NodeJS.ProcessEnv = {}, keysFrom?: string): Promise<BenchCollector> {
  const dir = makeTempDir('sakshya-bench-collector-');
  cleanup.defer(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  if (keysFrom !== undefined) cpSync(join(keysFrom, 'keys'), join(dir, 'keys'), { recursive: true });
  const collector = await startCollectorProcess({ dir, env, timeoutMs: 30_000 });
  cleanup.defer('stop the collector', async () => {
    if (collector.child.exitCode === null && collector.child.signalCode === null) await collector.kill9();
  });
  const cliEnv = env.SAKSHYA_COLLECTOR_DATABASE === undefined ? {} : { SAKSHYA_COLLECTOR_DATABASE: env.SAKSHYA_COLLECTOR_DATABASE };
  return Object.assign(collector, { cliEnv });
}

/** `sakshya-collector agents enroll --agent ID` next to the running server: the one-time token. */
export async function issueEnrollmentToken(collector: BenchCollector, agent: string): Promise<string> {
  const result = await runCollectorCli(['agents', 'enroll', '--agent', agent], {
    SAKSHYA_COLLECTOR_DIR: collector.dir,
    SAKSHYA_COLLECTOR_ORIGIN: collector.origin,
    ...collector.cliEnv,
  });
  if (result.code !== 0) throw new Error(`sakshya-collector agents enroll --agent ${agent} failed (${result.code}): ${result.stderr.trim()}`);
  return result.stdout.trim();
}

/** Enrolls a simulated agent: token from the CLI, then its public key through the HTTP API. */
export async function enrollSimulatedAgent(collector: BenchCollector, client: HttpClient, agent: SimulatedAgent): Promise<void> {
  const token = await issueEnrollmentToken(collector, agent.id);
  const answer = await client.post(
    `${collector.url}${API_PREFIX}/enroll`,
    { 'content-type': 'application/json' },
    JSON.stringify({ token, agent: agent.id, publicKey: agent.key.publicJwk }),
  );
  if (answer.status !== 200) throw new Error(`enrolling ${agent.id} answered ${answer.status}: ${answer.text}`);
  agent.enrolled(JSON.parse(answer.text) as EnrollResponse);
}

/** `sakshya-collector ledger stats --json` (a read-only CLI next to the server). */
export async function ledgerStats(collector: BenchCollector): Promise<{ size: number; agents: number }> {
  const result = await runCollectorCli(['ledger', 'stats', '--json'], {
    SAKSHYA_COLLECTOR_DIR: collector.dir,
    SAKSHYA_COLLECTOR_ORIGIN: collector.origin,
    ...collector.cliEnv,
  });
  if (result.code !== 0) throw new Error(`sakshya-collector ledger stats failed (${result.code}): ${result.stderr.trim()}`);
  return JSON.parse(result.stdout) as { size: number; agents: number };
}

/** Runs `fn` over `items` with at most `limit` running at once. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const runners = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  });
  await Promise.all(runners);
  return results;
}
