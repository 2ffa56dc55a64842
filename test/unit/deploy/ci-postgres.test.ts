/**
 * .ci/postgres.sh: sourced by .ci/run before `npm test`, it leaves a given
 * SAKSHYA_TEST_POSTGRES_URL alone, and otherwise starts a throwaway PostgreSQL that answers on
 * the URL it exports and is stopped and removed when the shell exits.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { skipUnlessCi } from '../../helpers/skip.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** True if the script will find a PostgreSQL server to run without installing one. */
function serverInstalled(): boolean {
  if (spawnSync('bash', ['-c', 'command -v initdb && command -v pg_ctl']).status === 0) return true;
  return existsSync('/usr/lib/postgresql') && readdirSync('/usr/lib/postgresql').some((version) => existsSync(join('/usr/lib/postgresql', version, 'bin', 'initdb')));
}

function sourced(commands: string, env: NodeJS.ProcessEnv): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync('bash', ['-c', `set -euo pipefail\n. .ci/postgres.sh\n${commands}`], { cwd: ROOT, encoding: 'utf8', env, timeout: 120_000 });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('.ci/postgres.sh', function () {
  this.timeout(120_000);

  it('is sourced by .ci/run before the tests', () => {
    const ciRun = readFileSync(join(ROOT, '.ci/run'), 'utf8');
    assert.match(ciRun, /^\. \.ci\/postgres\.sh$/m);
    assert.ok(ciRun.indexOf('. .ci/postgres.sh') < ciRun.indexOf('npm test'));
  });

  it('leaves a server named by SAKSHYA_TEST_POSTGRES_URL alone', () => {
    const run = sourced('echo "$SAKSHYA_TEST_POSTGRES_URL"; echo "${SAKSHYA_PG_CI_DIR:-none}"', { ...process.env, SAKSHYA_TEST_POSTGRES_URL: 'postgres://given@db.example/x' });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(run.stdout.trim().split('\n'), ['postgres://given@db.example/x', 'none']);
  });

  it('otherwise starts a server that answers on the exported URL, and removes it when the shell exits', async function () {
    if (!serverInstalled()) skipUnlessCi(this, 'no PostgreSQL server installed here (initdb); .ci/postgres.sh would install it with apt-get');
    const env = { ...process.env };
    delete env.SAKSHYA_TEST_POSTGRES_URL;
    const query = `node -e "const pg = require('pg'); const c = new pg.Client(process.env.SAKSHYA_TEST_POSTGRES_URL); c.connect().then(() => c.query('SHOW server_encoding')).then((r) => { console.log(r.rows[0].server_encoding); return c.end(); })"`;
    const run = sourced(`echo "$SAKSHYA_TEST_POSTGRES_URL"; echo "$SAKSHYA_PG_CI_DIR"; ${query}`, env);
    assert.equal(run.status, 0, run.stderr);
    const [url, dir, encoding] = run.stdout.trim().split('\n');
    assert.match(url!, /^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
    assert.equal(encoding, 'UTF8');
    assert.equal(existsSync(dir!), false, 'the data directory is removed at exit');
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
    await assert.rejects(client.connect(), /ECONNREFUSED/, 'the server is stopped at exit');
  });
});
