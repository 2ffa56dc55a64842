/**
 * The Node.js gate: on a Node that cannot run Sakshya's .ts files, the first command a reader
 * types stops at once and says which version to get and how (README, "Quickstart"). `npm ci` /
 * `npm install` stop on package.json's engines (`engine-strict`, .npmrc); `npm run demo`, `npm
 * test`, `npm run bench` and `npm run soak` on scripts/check-node.mjs, which `.ci/run` also asks
 * whether to provision Node 24. These checks run the script with a pretended version and hold
 * the four places to one floor.
 */
import { skipBecause } from '../../helpers/skip.ts';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SCRIPT = join(ROOT, 'scripts/check-node.mjs');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

function check(version: string, node = process.execPath): { status: number | null; stderr: string; stdout: string } {
  const run = spawnSync(node, [SCRIPT], { env: { ...process.env, SAKSHYA_CHECK_NODE_VERSION: version }, encoding: 'utf8' });
  return { status: run.status, stderr: run.stderr, stdout: run.stdout };
}

/** A semver range of the form the engines field uses here: `||` of `^a.b.c`, `>=a.b.c`, `<a.b.c` sets. */
function satisfies(version: string, range: string): boolean {
  const parse = (v: string) => v.replace(/^v/, '').split('.').map(Number) as [number, number, number];
  const compare = (a: number[], b: number[]) => a[0]! - b[0]! || a[1]! - b[1]! || a[2]! - b[2]!;
  const v = parse(version);
  return range.split('||').some((set) =>
    set.trim().split(/\s+/).every((comparator) => {
      const [, op, bound] = /^(\^|>=|<)(\d+\.\d+\.\d+)$/.exec(comparator) ?? assert.fail(`unexpected comparator ${comparator}`);
      const b = parse(bound!);
      if (op === '>=') return compare(v, b) >= 0;
      if (op === '<') return compare(v, b) < 0;
      return v[0] === b[0] && compare(v, b) >= 0;
    }),
  );
}

const VERSIONS = ['18.20.8', '20.19.0', '20.20.2', '22.12.0', '22.17.1', '22.18.0', '22.21.1', '23.0.0', '23.5.0', '23.6.0', '24.0.0', '24.21.0', '25.2.1'];

describe('the Node.js version gate', () => {
  const pkg = JSON.parse(read('package.json')) as { engines: { node: string }; scripts: { [name: string]: string } };
  const scriptRange = /const SUPPORTED_RANGE = '([^']+)';/.exec(read('scripts/check-node.mjs'))?.[1];

  it('stops Node 20 at once with exit 1, naming the version found, the version needed and how to get it', () => {
    const { status, stderr, stdout } = check('20.19.0');
    assert.equal(status, 1);
    assert.equal(stdout, '');
    assert.match(stderr, /Sakshya needs Node\.js 22\.18 or newer \(Node\.js 24 LTS recommended\); this is Node\.js 20\.19\.0\./);
    assert.match(stderr, /ERR_UNKNOWN_FILE_EXTENSION/);
    assert.match(stderr, /https:\/\/nodejs\.org\/en\/download/);
    assert.match(stderr, /nvm install 24/);
    assert.match(stderr, /npm ci/);
  });

  it('lets a supported Node through silently with exit 0', () => {
    for (const version of ['22.18.0', '24.21.0']) assert.deepEqual(check(version), { status: 0, stderr: '', stdout: '' }, version);
    assert.deepEqual(check(''), { status: 0, stderr: '', stdout: '' }, 'this process’s own Node (the one running the tests)');
  });

  it('accepts exactly the versions of package.json engines, which is the range the script names', () => {
    assert.equal(scriptRange, pkg.engines.node);
    for (const version of VERSIONS) {
      assert.equal(check(version).status === 0, satisfies(version, pkg.engines.node), `Node ${version}`);
    }
    // The floor the issue names: .ts files run by default from 22.18 (and 23.6 on the 23 line).
    assert.deepEqual(
      VERSIONS.filter((version) => satisfies(version, pkg.engines.node)),
      ['22.18.0', '22.21.1', '23.6.0', '24.0.0', '24.21.0', '25.2.1'],
    );
  });

  it('makes npm ci and npm install refuse an unsupported Node (engine-strict), and the lock file names the same engines', () => {
    assert.match(read('.npmrc'), /^engine-strict=true$/m);
    const lock = JSON.parse(read('package-lock.json')) as { packages: { '': { engines: { node: string } } } };
    assert.equal(lock.packages[''].engines.node, pkg.engines.node);
  });

  it('runs the check first in npm run demo, npm test, npm run bench and npm run soak', () => {
    for (const name of ['demo', 'test', 'bench', 'soak']) {
      assert.ok(pkg.scripts[name]!.startsWith('node scripts/check-node.mjs && '), `npm run ${name}: ${pkg.scripts[name]}`);
    }
  });

  it('has .ci/run provision Node 24 whenever the check fails, with a version the check accepts', () => {
    const ci = read('.ci/run');
    assert.match(ci, /^if ! node scripts\/check-node\.mjs >\/dev\/null 2>&1; then$/m);
    const pinned = /NODE24_VERSION="\$\{NODE24_VERSION:-(\d+\.\d+\.\d+)\}"/.exec(ci)?.[1];
    assert.ok(pinned, '.ci/run pins no NODE24_VERSION');
    assert.equal(check(pinned).status, 0, `.ci/run provisions Node ${pinned}`);
  });

  it('says the same floor in the README quickstart', () => {
    const quickstart = read('README.md').split('## Quickstart')[1]!.split('\n## ')[0]!;
    assert.match(quickstart, /Node\.js 24 LTS/);
    assert.match(quickstart, /22\.18/);
    assert.doesNotMatch(quickstart, /22\.12/);
  });

  it('runs on the old Node it refuses (the machine’s own /usr/bin/node, where it is older than 22.18)', function () {
    const old = '/usr/bin/node';
    if (!existsSync(old)) skipBecause(this, `${old} is absent: this machine has no system Node to try the gate on`);
    const found = spawnSync(old, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();
    if (satisfies(found, pkg.engines.node)) skipBecause(this, `${old} is Node ${found}, new enough: there is no old Node here to refuse`);
    const { status, stderr } = check('', old);
    assert.equal(status, 1);
    assert.match(stderr, new RegExp(`this is Node\\.js ${found.replace(/\./g, '\\.')}\\.`));
  });
});
