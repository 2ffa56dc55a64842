// The whole test suite, as `npm test` runs it: three groups of mocha runs at once, each line of
// output prefixed with its group, exit code non-zero if any group failed. The groups are
// independent processes (every test makes its own temp dirs, ports and databases), so running
// them side by side keeps the suite well inside CI's time while the slow end-to-end and fault
// tests mostly wait on timers and child processes.
//
// - sqlite:      unit, contract and collector integration tests (the collector on SQLite)
// - system:      end-to-end and fault-injection tests (real processes, proxies, kill -9), and
//                the agent's, verifier's and monitoring integration tests
// - postgres:    the collector integration tests again, on PostgreSQL (SAKSHYA_TEST_BACKEND)
//
// The postgres group needs SAKSHYA_TEST_POSTGRES_URL (`. .ci/postgres.sh` starts a throwaway
// server and sets it). Without it the group is skipped with a message, except in CI, where that
// fails the run. `node scripts/test.mjs sqlite` runs one group.
import { spawn } from 'node:child_process';

const MOCHA = ['node_modules/mocha/bin/mocha.js'];
const GROUPS = {
  sqlite: { globs: ['test/unit/**/*.test.ts', 'test/contract/**/*.test.ts', 'test/integration/collector/**/*.test.ts'], env: {} },
  system: {
    globs: ['test/e2e/**/*.test.ts', 'test/faults/**/*.test.ts', 'test/integration/*.test.ts', 'test/integration/agent/**/*.test.ts', 'test/integration/verifier/**/*.test.ts', 'test/integration/monitoring/**/*.test.ts'],
    env: {},
  },
  postgres: { globs: ['test/integration/collector/**/*.test.ts'], env: { SAKSHYA_TEST_BACKEND: 'postgres' }, needsPostgres: true },
};

const wanted = process.argv.slice(2);
const names = wanted.length > 0 ? wanted : Object.keys(GROUPS);
for (const name of names) if (!(name in GROUPS)) throw new Error(`no test group ${name}; groups: ${Object.keys(GROUPS).join(', ')}`);

function run(name) {
  const group = GROUPS[name];
  if (group.needsPostgres && !process.env.SAKSHYA_TEST_POSTGRES_URL) {
    const message = `the ${name} group needs SAKSHYA_TEST_POSTGRES_URL (\`. .ci/postgres.sh\` starts a throwaway PostgreSQL and sets it)`;
    if (process.env.CI === 'true') {
      process.stdout.write(`[${name}] FAILED: ${message}; CI must provide it\n`);
      return Promise.resolve({ name, code: 1, seconds: 0 });
    }
    process.stdout.write(`[${name}] skipped: ${message}\n`);
    return Promise.resolve({ name, code: 0, seconds: 0, skipped: true });
  }
  const started = Date.now();
  const child = spawn(process.execPath, [...MOCHA, ...group.globs], { env: { ...process.env, ...group.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  for (const stream of [child.stdout, child.stderr]) {
    let buffered = '';
    stream.setEncoding('utf8').on('data', (chunk) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop();
      for (const line of lines) process.stdout.write(`[${name}] ${line}\n`);
    });
    stream.on('end', () => buffered && process.stdout.write(`[${name}] ${buffered}\n`));
  }
  return new Promise((resolve) => child.on('close', (code) => resolve({ name, code: code ?? 1, seconds: Math.round((Date.now() - started) / 1000) })));
}

const results = await Promise.all(names.map(run));
process.stdout.write('\n');
for (const r of results) process.stdout.write(`test group ${r.name}: ${r.skipped ? 'skipped' : r.code === 0 ? 'passed' : `FAILED (exit ${r.code})`}${r.skipped ? '' : ` in ${r.seconds} s`}\n`);
process.exitCode = results.some((r) => r.code !== 0) ? 1 : 0;
