/**
 * The PostgreSQL server of a benchmark run: the administrator URL of an existing throwaway
 * server (`SAKSHYA_BENCH_POSTGRES_URL`, else `SAKSHYA_TEST_POSTGRES_URL`), or else a private
 * cluster made for the run (`initdb` in a temp directory, as the `postgres` OS user when the run
 * is root, since the server refuses to run as root), on 127.0.0.1 and a free port, stopped and
 * removed at cleanup. Without either, the PostgreSQL benchmarks are skipped with a line that says why.
 *
 * The private cluster keeps the server's defaults that matter for the figures: `fsync` and
 * `synchronous_commit` on (a receipt is a promise), `wal_level = replica`, 128 MB of shared
 * buffers. Only `initdb` itself runs with `--no-sync` (its own files, not the benchmark's).
 *
 * The server's CPU time comes from /proc: the postmaster (whose pid is the first line of
 * `postmaster.pid` in the data directory, which a superuser can ask for) and the processes it
 * forked. A backend that exits meanwhile is reaped by the postmaster, whose `cutime` then holds it.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { freePort } from '../../test/helpers/nginx.ts';
import type { Cleanup } from './cleanup.ts';

export const BENCH_POSTGRES_URL_ENV = 'SAKSHYA_BENCH_POSTGRES_URL';
const TEST_POSTGRES_URL_ENV = 'SAKSHYA_TEST_POSTGRES_URL';
const CLOCK_TICKS_PER_SECOND = 100;

/** Runs `sql` on the database at `url` on a connection of its own. */
export async function sqlOn<R extends pg.QueryResultRow = pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

export interface BenchPostgres {
  /** Administrator URL (a superuser), for creating and sizing databases. */
  adminUrl: string;
  /** Where it came from, for the output. */
  source: string;
  /** `SELECT version()`, shortened. */
  version: string;
  /** The server settings that shape the figures. */
  settings: { [name: string]: string };
  /** CPU seconds the server's processes have used so far; undefined if they cannot be seen (another host). */
  cpuSeconds(): number | undefined;
}

export type PostgresAvailability = { server: BenchPostgres; skipped?: undefined } | { server?: undefined; skipped: string };

/** Where initdb and pg_ctl are: on the PATH, else the newest Debian-style /usr/lib/postgresql/N/bin. */
function findPostgresBin(): string | undefined {
  const onPath = spawnSync('sh', ['-c', 'command -v initdb'], { encoding: 'utf8' }).stdout.trim();
  // Through a symlink (/usr/local/bin/initdb → /usr/lib/postgresql/15/bin/initdb): pg_ctl is next to the real one.
  if (onPath !== '') return dirname(realpathSync(onPath));
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? join(root, versions[0]!, 'bin') : undefined;
}

/** uid and gid of the `postgres` OS user, from /etc/passwd. */
function postgresUser(): { uid: number; gid: number } | undefined {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((entry) => entry.startsWith('postgres:'));
  if (!line) return undefined;
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** utime + stime (+ cutime + cstime with `children`) of a process, in ticks; undefined if it is gone. */
function processTicks(pid: number, children: boolean): { ticks: number; ppid: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const own = Number(fields[11]) + Number(fields[12]);
    return { ticks: children ? own + Number(fields[13]) + Number(fields[14]) : own, ppid: Number(fields[1]) };
  } catch {
    return undefined;
  }
}

/** CPU seconds of the postmaster `root` and every process it forked (its reaped children included). */
export function processTreeSeconds(root: number): number | undefined {
  const own = processTicks(root, true);
  if (!own) return undefined;
  let ticks = own.ticks;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === root) continue;
    const child = processTicks(Number(entry), false);
    if (child?.ppid === root) ticks += child.ticks;
  }
  return ticks / CLOCK_TICKS_PER_SECOND;
}

function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n', 1)[0]);
    return Number.isInteger(pid) && existsSync(`/proc/${pid}`) ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function describeServer(adminUrl: string, source: string, dataDir: string | undefined): Promise<BenchPostgres> {
  const [row] = await sqlOn<{ version: string }>(adminUrl, 'SELECT version()');
  const names = ['shared_buffers', 'synchronous_commit', 'fsync', 'wal_level', 'max_connections', 'data_directory'];
  const settings: { [name: string]: string } = {};
  for (const { name, setting, unit } of await sqlOn<{ name: string; setting: string; unit: string | null }>(
    adminUrl,
    'SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1)',
    [names],
  )) {
    settings[name] = unit === '8kB' ? `${(Number(setting) * 8) / 1024} MB` : setting;
  }
  const dir = dataDir ?? settings.data_directory;
  delete settings.data_directory;
  const pid = dir === undefined ? undefined : postmasterPid(dir);
  return {
    adminUrl,
    source,
    version: /^PostgreSQL [\d.]+/.exec(row!.version)?.[0] ?? row!.version,
    settings,
    cpuSeconds: () => (pid === undefined ? undefined : processTreeSeconds(pid)),
  };
}

/** A private cluster in a temp directory; undefined with the reason if this machine cannot make one. */
async function startPrivateCluster(cleanup: Cleanup): Promise<PostgresAvailability> {
  const bin = findPostgresBin();
  if (bin === undefined) return { skipped: `no initdb on this machine (install PostgreSQL 15 or later, or set ${BENCH_POSTGRES_URL_ENV} to an administrator URL)` };
  const asRoot = process.getuid?.() === 0;
  const user = asRoot ? postgresUser() : undefined;
  if (asRoot && user === undefined) return { skipped: `running as root and there is no "postgres" OS user to run initdb as (or set ${BENCH_POSTGRES_URL_ENV})` };
  const home = cleanup.tempDir('sakshya-bench-pg-');
  if (user) chownSync(home, user.uid, user.gid);
  const dataDir = join(home, 'data');
  const as = user ? { uid: user.uid, gid: user.gid } : {};
  execFileSync(join(bin, 'initdb'), ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--encoding=UTF8', '--locale=C', '--no-sync'], { ...as, stdio: 'ignore', cwd: home });
  const port = await freePort();
  const options = `-p ${port} -k ${home} -c listen_addresses=127.0.0.1`;
  const started = spawn(join(bin, 'pg_ctl'), ['-D', dataDir, '-o', options, '-l', join(home, 'server.log'), '-w', '-t', '60', 'start'], { ...as, stdio: 'ignore', cwd: home });
  const code = await new Promise<number | null>((resolve) => started.once('exit', resolve));
  if (code !== 0) {
    const log = existsSync(join(home, 'server.log')) ? readFileSync(join(home, 'server.log'), 'utf8').slice(-2000) : '';
    throw new Error(`pg_ctl start of the benchmark's PostgreSQL cluster failed (${code}):\n${log}`);
  }
  cleanup.defer('stop the benchmark PostgreSQL cluster', () => {
    execFileSync(join(bin, 'pg_ctl'), ['-D', dataDir, '-m', 'fast', '-w', 'stop'], { ...as, stdio: 'ignore', cwd: home });
  });
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return { server: await describeServer(adminUrl, `a private cluster made for this run (${join(bin, 'initdb')}, port ${port})`, dataDir) };
}

/** The run's PostgreSQL server: the one the environment names, else a private cluster, else why not. */
export async function benchPostgres(cleanup: Cleanup): Promise<PostgresAvailability> {
  for (const name of [BENCH_POSTGRES_URL_ENV, TEST_POSTGRES_URL_ENV]) {
    const url = process.env[name];
    if (url !== undefined && url !== '') return { server: await describeServer(url, `${name}`, undefined) };
  }
  return startPrivateCluster(cleanup);
}

export interface BenchDatabase {
  name: string;
  url: string;
}

/** A fresh database on the run's server (UTF8, "C" locale, as the collector wants), dropped at cleanup. */
export async function benchDatabase(server: BenchPostgres, cleanup: Cleanup): Promise<BenchDatabase> {
  const name = `sakshya_bench_${randomBytes(6).toString('hex')}`;
  await sqlOn(server.adminUrl, `CREATE DATABASE ${name} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`);
  cleanup.defer(`drop database ${name}`, async () => {
    await sqlOn(server.adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });
  const url = new URL(server.adminUrl);
  url.pathname = `/${name}`;
  return { name, url: url.href };
}
