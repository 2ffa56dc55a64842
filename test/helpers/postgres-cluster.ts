/**
 * A private PostgreSQL cluster a test owns, for tests that stop and start the server itself
 * (SAKSHYA_TEST_POSTGRES_URL names a server shared by the whole run, which no test may stop).
 * As .ci/postgres.sh does: initdb in a temp directory (trust authentication, UTF8, "C" locale),
 * 127.0.0.1 and a free port, its unix socket in that directory; as root the server runs as the
 * `postgres` OS user (PostgreSQL refuses to run as root). Without initdb and pg_ctl the test is
 * skipped with a line that says so — in CI, a failure.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { makeTempDir } from './collector-process.ts';
import { freePort } from './nginx.ts';
import { skipUnlessCi } from './skip.ts';

const DEBIAN_BIN_ROOT = '/usr/lib/postgresql';

/** The directory holding initdb and pg_ctl: on PATH, else the newest /usr/lib/postgresql/<version>/bin. */
export function postgresBinDir(): string | undefined {
  const initdb = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' }).stdout.trim();
  if (initdb !== '' && existsSync(join(dirname(initdb), 'pg_ctl'))) return dirname(initdb);
  if (!existsSync(DEBIAN_BIN_ROOT)) return undefined;
  const versions = readdirSync(DEBIAN_BIN_ROOT).sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const bin = join(DEBIAN_BIN_ROOT, version, 'bin');
    if (existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'pg_ctl'))) return bin;
  }
  return undefined;
}

/** initdb and pg_ctl's directory; skips the test (fails it in CI) when this machine has none. */
export function requirePostgresBinaries(context: Mocha.Context): string {
  const bin = postgresBinDir();
  if (bin === undefined) skipUnlessCi(context, 'this test runs a PostgreSQL server of its own and needs initdb and pg_ctl (Debian: apt-get install postgresql)');
  return bin;
}

export interface PostgresCluster {
  port: number;
  /** postgres://postgres@127.0.0.1:<port>/postgres, as SAKSHYA_TEST_POSTGRES_URL would be. */
  adminUrl: string;
  dir: string;
  /** `pg_ctl stop -m fast`: sessions are ended, open transactions rolled back; returns once the server is down. */
  stop(): Promise<void>;
  /** `pg_ctl start` on the same port and data; returns once the server takes connections. */
  start(): Promise<void>;
  /** `pg_ctl restart -m fast`. */
  restart(): Promise<void>;
  /** Stops the server (immediate: the data is thrown away) and removes its directory. */
  destroy(): Promise<void>;
}

/** initdb, then start, a throwaway cluster; `bin` from requirePostgresBinaries. */
export async function startPostgresCluster(bin: string): Promise<PostgresCluster> {
  const dir = makeTempDir('sakshya-pg-cluster-');
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    if (!Number.isInteger(uid) || uid <= 0) throw new Error('running as root, PostgreSQL needs the `postgres` OS user to run as, and there is none');
    chownSync(dir, uid, gid);
  }
  const run = (tool: string, args: string[]) => runTool(asRoot, join(bin, tool), args);
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  const port = await freePort();
  await run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C']);
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c max_connections=100 -c fsync=off`;
  const start = () => run('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '60', '-o', options, 'start']);
  await start();
  let running = true;
  return {
    port,
    adminUrl: `postgres://postgres@127.0.0.1:${port}/postgres`,
    dir,
    async stop() {
      await run('pg_ctl', ['-D', data, '-w', '-t', '60', '-m', 'fast', 'stop']);
      running = false;
    },
    async start() {
      await start();
      running = true;
    },
    async restart() {
      await run('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '60', '-m', 'fast', '-o', options, 'restart']);
      running = true;
    },
    async destroy() {
      if (running) await run('pg_ctl', ['-D', data, '-w', '-t', '60', '-m', 'immediate', 'stop']).catch(() => undefined);
      running = false;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs a PostgreSQL tool (as `postgres` when we are root); rejects with its output if it fails. */
function runTool(asPostgres: boolean, path: string, args: string[]): Promise<void> {
  const [command, commandArgs] = asPostgres ? ['runuser', ['-u', 'postgres', '--', path, ...args]] : [path, args];
  return new Promise((resolve, reject) => {
    // pg_ctl's server inherits stdout/stderr: give it none, or this promise waits for the server.
    const child = spawn(command, commandArgs, { stdio: ['ignore', 'pipe', 'pipe'], cwd: '/' });
    let output = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${path} ${args.join(' ')} exited ${code}: ${output.trim()}`))));
  });
}
