/**
 * Test harness for the collector: a real `sakshya-collector serve` process on a free port, the
 * real CLI, and an in-process collector (same container and app, port 0) for fast tests. Data
 * lives in fresh temp directories; nothing is mocked.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testBackend, testDatabaseEnv } from './postgres.ts';
import { createLogger } from '../../shared/logger.ts';
import { loadCollectorConfig, type CollectorConfigOverrides } from '../../collector/config.ts';
import { createContainer, type Container } from '../../collector/container.ts';
import { createApp } from '../../collector/app.ts';
import { withUmask } from './umask.ts';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const COLLECTOR_BIN = fileURLToPath(new URL('../../collector/bin/sakshya-collector.ts', import.meta.url));

/**
 * Starts the collector's bin the way an operator's shell, npm's bin link or a systemd unit does:
 * executed itself, so the V8 flag of its shebang line applies (docs/operations.md, "The
 * collector's memory settings"). `env` finds `node` on PATH; this process's own Node is put
 * first there.
 */
export function spawnCollectorBin(args: readonly string[], options: SpawnOptions & { env: NodeJS.ProcessEnv; umask?: string }): ChildProcess {
  const { umask, ...spawnOptions } = options;
  const path = options.env.PATH ?? process.env.PATH;
  const env = { ...options.env, PATH: [dirname(process.execPath), path].filter(Boolean).join(delimiter) };
  return spawn(...withUmask(umask, COLLECTOR_BIN, args), { ...spawnOptions, env });
}

export const TEST_ORIGIN = 'test.sakshya.local/collector';

/**
 * Tests enroll dozens of agents from 127.0.0.1 within seconds; the enrollment limit (meant for
 * one address guessing tokens) is lifted for them unless a test sets it (security tests do).
 */
export const TEST_RATE_ENV = { SAKSHYA_RATE_ENROLL_PER_MINUTE: '600000', SAKSHYA_RATE_ENROLL_BURST: '100000' };

export function makeTempDir(prefix = 'sakshya-collector-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** The parent's environment without any SAKSHYA_* variable, plus `extra`. */
function isolatedEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('SAKSHYA_')) env[name] = value;
  return { ...env, ...extra };
}

export interface CollectorProcess {
  url: string;
  port: number;
  /** The metrics listener's `/metrics` URL. */
  metricsUrl: string;
  dir: string;
  origin: string;
  child: ChildProcess;
  /** stderr lines (pino JSON), in order. */
  logs: string[];
  /** Sends `signal` (SIGTERM) and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** SIGKILL: no shutdown at all, like a power cut for the process. */
  kill9(): Promise<void>;
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/**
 * The database of the test collector in `dir`: on PostgreSQL a fresh database per directory,
 * remembered so that a restart (or a CLI command) on the same directory finds it again; on
 * SQLite nothing (the default file in `dir`).
 */
const DATABASES = new Map<string, { [name: string]: string }>();
export async function databaseFor(dir: string): Promise<{ [name: string]: string }> {
  if (testBackend() !== 'postgres') return {};
  let env = DATABASES.get(dir);
  if (env === undefined) {
    env = (await testDatabaseEnv()).env;
    DATABASES.set(dir, env);
  }
  return env;
}

/** The PostgreSQL URL of the test collector in `dir`, when the tests run on PostgreSQL. */
export function postgresUrlOf(dir: string): string | undefined {
  return DATABASES.get(dir)?.SAKSHYA_COLLECTOR_DATABASE;
}

/** Starts `sakshya-collector serve` on a free port and waits for its `listening` log line. */
export async function startCollectorProcess(options: { dir?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; umask?: string } = {}): Promise<CollectorProcess> {
  const dir = options.dir ?? makeTempDir();
  // On PostgreSQL (SAKSHYA_TEST_BACKEND), a collector of a NEW directory gets a fresh database;
  // one restarted on an existing directory keeps the database it was given before.
  const database = options.env?.SAKSHYA_COLLECTOR_DATABASE === undefined ? await databaseFor(dir) : {};
  const env = isolatedEnv({
    ...database,
    SAKSHYA_COLLECTOR_DIR: dir,
    SAKSHYA_COLLECTOR_PORT: '0',
    SAKSHYA_COLLECTOR_METRICS_PORT: '0',
    SAKSHYA_COLLECTOR_ORIGIN: TEST_ORIGIN,
    SAKSHYA_VERIFY_WORKERS: '2',
    ...TEST_RATE_ENV,
    ...options.env,
  });
  const origin = env.SAKSHYA_COLLECTOR_ORIGIN!;
  const child = spawnCollectorBin(['serve'], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], ...(options.umask !== undefined ? { umask: options.umask } : {}) });
  const logs: string[] = [];
  const stdout: string[] = [];
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => stdout.push(chunk));

  let metricsUrl: string | undefined;
  const listening = await new Promise<{ port: number; url: string }>((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`collector did not log "listening" within ${options.timeoutMs ?? 15000} ms:\n${logs.join('\n')}`));
    }, options.timeoutMs ?? 15000);
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        logs.push(line);
        try {
          const entry = JSON.parse(line) as { msg?: string; port?: number; url?: string };
          if (entry.msg === 'metrics listening' && typeof entry.url === 'string') metricsUrl = entry.url;
          if (entry.msg === 'listening' && typeof entry.port === 'number' && typeof entry.url === 'string') {
            clearTimeout(timer);
            resolve({ port: entry.port, url: entry.url });
          }
        } catch {
          // not JSON: an error line, kept in logs
        }
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`collector exited with code ${code} before listening:\n${logs.join('\n')}${buffered}`));
    });
  });

  if (metricsUrl === undefined) throw new Error(`collector logged "listening" without "metrics listening" first:\n${logs.join('\n')}`);
  return {
    ...listening,
    metricsUrl,
    dir,
    origin,
    child,
    logs,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      const done = exited(child);
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return done;
    },
    async kill9() {
      const done = exited(child);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await done;
    },
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `sakshya-collector ...args` with `env` (on top of an environment without SAKSHYA_*). On
 * PostgreSQL, a command for a collector directory a test started uses that collector's database.
 */
export async function runCollectorCli(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const flag = args.indexOf('--dir');
  const dir = flag >= 0 ? args[flag + 1] : env.SAKSHYA_COLLECTOR_DIR;
  const database = dir !== undefined && env.SAKSHYA_COLLECTOR_DATABASE === undefined && !args.includes('--database') ? (DATABASES.get(dir) ?? {}) : {};
  return runCollectorCliIn(args, { ...database, ...env });
}

function runCollectorCliIn(args: readonly string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawnCollectorBin(args, {
      cwd: REPO_ROOT,
      env: isolatedEnv({ SAKSHYA_COLLECTOR_ORIGIN: TEST_ORIGIN, SAKSHYA_COLLECTOR_METRICS_PORT: '0', ...env }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export interface InProcessCollector {
  url: string;
  port: number;
  dir: string;
  origin: string;
  container: Container;
  /** Log lines (pino JSON) of this collector. */
  logs: string[];
  stop(): Promise<void>;
}

/**
 * The same container and express app as `serve`, in this process, on 127.0.0.1 and a free port.
 * Faster than a child process; use it where process boundaries do not matter.
 */
export async function startCollectorInProcess(
  options: { dir?: string; config?: CollectorConfigOverrides; env?: NodeJS.ProcessEnv; now?: () => Date } = {},
): Promise<InProcessCollector> {
  const dir = options.dir ?? makeTempDir();
  const database = options.env?.SAKSHYA_COLLECTOR_DATABASE === undefined ? await databaseFor(dir) : {};
  const config = loadCollectorConfig(
    { SAKSHYA_COLLECTOR_ORIGIN: TEST_ORIGIN, SAKSHYA_VERIFY_WORKERS: '2', SAKSHYA_LOG_LEVEL: 'debug', ...TEST_RATE_ENV, ...database, ...options.env },
    { dir, port: '0', ...options.config },
  );
  const logs: string[] = [];
  const logger = createLogger('collector', config.logLevel, { write: (line: string) => void logs.push(line.trimEnd()) });
  const now = options.now;
  const container = await createContainer(config, now ? { logger, mode: 'bootstrap', now } : { logger, mode: 'bootstrap' });
  const server: Server = createServer(createApp(container));
  // The tests' fetch keeps idle connections for a few seconds; a server that closed them first
  // would race a request reusing one (ECONNRESET) on a loaded machine.
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    dir,
    origin: config.origin,
    container,
    logs,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await container.close();
    },
  };
}
