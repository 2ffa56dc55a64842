/**
 * Test harness for the real agent: runs `sakshya-agent` commands as child processes, and starts
 * `sakshya-agent run` on a free port (port 0, found from its "local api listening" log line).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withUmask } from './umask.ts';

export const AGENT_BIN = fileURLToPath(new URL('../../agent/bin/sakshya-agent.ts', import.meta.url));

/**
 * Starts the agent's bin the way an operator's shell, npm's bin link or a systemd unit does:
 * executed itself, so its shebang line and the V8 flags in it apply (`--max-semi-space-size`:
 * docs/operations.md, "Memory while draining a long backlog"). `env` finds `node` on PATH; this
 * process's own Node is put first there.
 */
export function spawnAgentBin(args: string[], options: SpawnOptions & { env: NodeJS.ProcessEnv; umask?: string }): ChildProcess {
  const { umask, ...spawnOptions } = options;
  const path = options.env.PATH ?? process.env.PATH;
  const env = { ...options.env, PATH: [dirname(process.execPath), path].filter(Boolean).join(delimiter) };
  return spawn(...withUmask(umask, AGENT_BIN, args), { ...spawnOptions, env });
}

/** Environment every test agent gets unless the test overrides it: quiet, fast, no cron. */
export const TEST_AGENT_ENV: { [name: string]: string } = {
  SAKSHYA_LOG_LEVEL: 'info',
  SAKSHYA_AGENT_PORT: '0',
  SAKSHYA_AGENT_TELEMETRY_CRON: 'off',
  SAKSHYA_AGENT_SYNC_INTERVAL_MS: '100',
  SAKSHYA_AGENT_BACKOFF_BASE_MS: '50',
  SAKSHYA_AGENT_BACKOFF_MAX_MS: '1000',
  SAKSHYA_AGENT_CIRCUIT_COOLDOWN_MS: '1000',
};

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function childEnv(env: { [name: string]: string | undefined }): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith('SAKSHYA_')) base[name] = value;
  }
  return { ...base, ...TEST_AGENT_ENV, ...env };
}

/** Runs one `sakshya-agent` command to completion. */
export function runAgentCli(
  args: string[],
  env: { [name: string]: string | undefined } = {},
  options: { timeoutMs?: number; umask?: string; stdin?: string } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawnAgentBin(args, {
      env: childEnv(env),
      stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      ...(options.umask !== undefined ? { umask: options.umask } : {}),
    });
    if (options.stdin !== undefined) child.stdin!.end(options.stdin);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`sakshya-agent ${args.join(' ')} did not finish in ${options.timeoutMs ?? 30_000} ms\n${stderr}`));
    }, options.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface InitAgentOptions {
  collectorUrl: string;
  agentId: string;
  token: string;
  /** Default: a fresh directory under the system temp dir. */
  dir?: string;
  env?: { [name: string]: string };
}

export interface InitializedAgent {
  dir: string;
  agentId: string;
  env: { [name: string]: string };
  result: CliResult;
}

/**
 * `sakshya-agent init`, given the token the way the docs recommend: in a file of mode 0600
 * (`--token-file`), removed afterwards. Throws with the CLI's stderr if it fails.
 */
export async function initAgent(options: InitAgentOptions): Promise<InitializedAgent> {
  const dir = options.dir ?? join(mkdtempSync(join(tmpdir(), 'sakshya-agent-')), 'agent');
  const env = { SAKSHYA_AGENT_DIR: dir, ...options.env };
  const tokenDir = mkdtempSync(join(tmpdir(), 'sakshya-enroll-token-'));
  const tokenFile = join(tokenDir, 'token');
  writeFileSync(tokenFile, `${options.token}\n`, { mode: 0o600 });
  let result: CliResult;
  try {
    result = await runAgentCli(['init', '--collector', options.collectorUrl, '--agent', options.agentId, '--token-file', tokenFile], env);
  } finally {
    rmSync(tokenDir, { recursive: true, force: true });
  }
  if (result.code !== 0) throw new Error(`sakshya-agent init failed (${result.code}): ${result.stderr.trim()}`);
  return { dir, agentId: options.agentId, env, result };
}

export interface AgentProcess {
  port: number;
  localToken: string;
  child: ChildProcess;
  /** Parsed JSON log lines so far (stderr). */
  logs: Array<{ [key: string]: unknown }>;
  stdout(): string;
  /** SIGTERM, then wait for exit; resolves to the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL, then wait for exit. */
  kill9(): Promise<void>;
  /** Resolves with the first log line matching `predicate` (past or future). */
  waitForLog(predicate: (line: { [key: string]: unknown }) => boolean, timeoutMs?: number): Promise<{ [key: string]: unknown }>;
}

/** Starts `sakshya-agent run` and resolves once its local API listens. */
export function startAgentProcess(options: { dir: string; env?: { [name: string]: string }; startTimeoutMs?: number; umask?: string }): Promise<AgentProcess> {
  const child = spawnAgentBin(['run'], {
    env: childEnv({ SAKSHYA_AGENT_DIR: options.dir, ...options.env }),
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.umask !== undefined ? { umask: options.umask } : {}),
  });
  const logs: Array<{ [key: string]: unknown }> = [];
  const waiters: Array<{ predicate: (line: { [key: string]: unknown }) => boolean; resolve: (line: { [key: string]: unknown }) => void }> = [];
  let stdout = '';
  let rawStderr = '';
  let pending = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    rawStderr += chunk;
    pending += chunk;
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const text = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      let line: { [key: string]: unknown };
      try {
        line = JSON.parse(text) as { [key: string]: unknown };
      } catch {
        line = { msg: text, raw: true };
      }
      logs.push(line);
      for (const waiter of [...waiters]) {
        if (waiter.predicate(line)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

  const waitForLog = (predicate: (line: { [key: string]: unknown }) => boolean, timeoutMs = 15_000) =>
    new Promise<{ [key: string]: unknown }>((resolve, reject) => {
      const seen = logs.find(predicate);
      if (seen) {
        resolve(seen);
        return;
      }
      const timer = setTimeout(() => reject(new Error(`agent log line not seen in ${timeoutMs} ms; stderr:\n${rawStderr}`)), timeoutMs);
      waiters.push({
        predicate,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`agent exited (${code}) before the expected log line; stderr:\n${rawStderr}`));
      });
    });

  return waitForLog((line) => line.msg === 'local api listening', options.startTimeoutMs ?? 15_000).then((line) => ({
    port: line.port as number,
    localToken: readFileSync(join(options.dir, 'local-token'), 'utf8').trim(),
    child,
    logs,
    stdout: () => stdout,
    waitForLog,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
    kill9: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  }));
}

/** `GET /v1/status` of a running agent (what `status --json` prints), through its local API. */
export async function fetchAgentStatus<T = { [key: string]: unknown }>(agent: Pick<AgentProcess, 'port' | 'localToken'>): Promise<T> {
  const response = await fetch(`http://127.0.0.1:${agent.port}/v1/status`, { headers: { authorization: `Bearer ${agent.localToken}` } });
  if (response.status !== 200) throw new Error(`agent status answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as T;
}

/** Polls `probe` every `intervalMs` until it returns a value other than undefined. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
