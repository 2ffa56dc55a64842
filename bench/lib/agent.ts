/**
 * `sakshya-agent run` for benchmarks. Unlike the test harness's `startAgentProcess`, the child is
 * registered for cleanup the moment it is spawned, so a start that fails (or an interrupted
 * benchmark) never leaves an agent process behind.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnAgentBin, TEST_AGENT_ENV } from '../../test/helpers/agent-process.ts';
import type { Cleanup } from './cleanup.ts';

export interface RunningAgent {
  port: number;
  localToken: string;
  child: ChildProcess;
  /** SIGTERM; resolves with the exit code. */
  stop(): Promise<number | null>;
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

export async function startAgentRun(cleanup: Cleanup, dir: string, env: { [name: string]: string }, timeoutMs = 30_000): Promise<RunningAgent> {
  const childEnv: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('SAKSHYA_')) childEnv[name] = value;
  // Through its shebang, as an operator starts it: what the benchmarks measure is what runs.
  const child = spawnAgentBin(['run'], {
    env: { ...childEnv, ...TEST_AGENT_ENV, SAKSHYA_AGENT_DIR: dir, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  cleanup.defer('stop the agent', async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const done = exited(child);
      child.kill('SIGKILL');
      await done;
    }
  });

  const port = await new Promise<number>((resolve, reject) => {
    let pending = '';
    let stderr = '';
    const timer = setTimeout(() => reject(new Error(`sakshya-agent run did not listen within ${timeoutMs} ms:\n${stderr}`)), timeoutMs);
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < 20_000) stderr += chunk;
      pending += chunk;
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        try {
          const entry = JSON.parse(line) as { msg?: string; port?: number };
          if (entry.msg === 'local api listening' && typeof entry.port === 'number') {
            clearTimeout(timer);
            resolve(entry.port);
          }
        } catch {
          // not JSON: kept in stderr for the error message
        }
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sakshya-agent run exited (${code}) before listening:\n${stderr}`));
    });
  });
  // Keep draining stderr so the child never blocks on a full pipe.
  child.stderr!.resume();

  return {
    port,
    localToken: readFileSync(join(dir, 'local-token'), 'utf8').trim(),
    child,
    async stop() {
      const done = exited(child);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return done;
    },
  };
}
