/**
 * .ci/run's ensure_debian_packages: installs a command's Debian packages only when the command
 * is missing, non-interactively and without recommended packages, through sudo unless root, and
 * with services kept from starting (a policy-rc.d answering 101 for the length of the install).
 * The function is cut out of .ci/run and run by bash against stand-ins for apt-get, sudo and id,
 * which log what they were asked to do.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CI_RUN = readFileSync(join(ROOT, '.ci/run'), 'utf8');
const FUNCTION = /^ensure_debian_packages\(\) \{\n[\s\S]*?\n\}\n/m.exec(CI_RUN)?.[0];
const MISSING = 'sakshya-test-missing-tool';

interface Run {
  status: number | null;
  stderr: string;
  log: string[];
  policyLeft: boolean;
}

function withStubs(options: { uid: number; aptFails?: boolean; policyExists?: boolean }, call: string): Run {
  const dir = mkdtempSync(join(tmpdir(), 'sakshya-ci-run-'));
  try {
    const bin = join(dir, 'bin');
    const log = join(dir, 'log');
    const policy = join(dir, 'policy-rc.d');
    spawnSync('mkdir', [bin]);
    const stub = (name: string, body: string) => {
      writeFileSync(join(bin, name), `#!/bin/bash\n${body}\n`);
      chmodSync(join(bin, name), 0o755);
    };
    stub('id', `[ "$1" = -u ] && echo ${options.uid}`);
    // sudo runs what it is given (tee, chmod, rm on the policy file; env apt-get), after logging it.
    stub('sudo', `echo "sudo $*" >> ${log}; exec "$@"`);
    stub(
      'apt-get',
      [
        `echo "apt-get $* DEBIAN_FRONTEND=$DEBIAN_FRONTEND policy=$( [ -x ${policy} ] && ${policy} x start; echo $? )" >> ${log}`,
        options.aptFails ? 'echo "E: Unable to locate package" >&2; exit 100' : '',
        `if [ "$1" = install ]; then printf '#!/bin/sh\\n' > ${bin}/${MISSING}; chmod 755 ${bin}/${MISSING}; fi`,
      ].join('\n'),
    );
    if (options.policyExists) writeFileSync(policy, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    const script = `set -euo pipefail\n${FUNCTION}\n${call}\n`;
    const run = spawnSync('bash', ['-c', script], {
      encoding: 'utf8',
      env: { PATH: `${bin}:${process.env.PATH}`, POLICY_RC_D: policy, HOME: dir },
    });
    return {
      status: run.status,
      stderr: run.stderr,
      log: existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [],
      policyLeft: existsSync(policy) && !options.policyExists,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('.ci/run: ensure_debian_packages', () => {
  it('is defined in .ci/run and provisions promtool (package prometheus) and curl', () => {
    assert.ok(FUNCTION, 'no ensure_debian_packages() { … } in .ci/run');
    assert.match(CI_RUN, /^ensure_debian_packages promtool prometheus$/m);
    assert.match(CI_RUN, /^ensure_debian_packages curl curl$/m, 'curl, for the textfile script’s test');
    assert.ok(CI_RUN.indexOf('ensure_debian_packages promtool') < CI_RUN.indexOf('npm test'), 'promtool is provisioned after the tests run');
    assert.doesNotMatch(CI_RUN, /systemctl|prometheus --|\/usr\/bin\/prometheus/, '.ci/run starts no Prometheus server');
  });

  it('does nothing when the command is there', () => {
    const run = withStubs({ uid: 1000 }, 'ensure_debian_packages bash some-package');
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(run.log, []);
  });

  it('installs the packages through sudo when not root, non-interactively, without recommends, with services kept from starting', () => {
    const run = withStubs({ uid: 1000 }, `ensure_debian_packages ${MISSING} pkg-one pkg-two && command -v ${MISSING} >/dev/null`);
    assert.equal(run.status, 0, run.stderr);
    const apt = run.log.filter((line) => line.startsWith('apt-get'));
    assert.deepEqual(apt, [
      'apt-get update -q DEBIAN_FRONTEND=noninteractive policy=101',
      'apt-get install -y -q --no-install-recommends pkg-one pkg-two DEBIAN_FRONTEND=noninteractive policy=101',
    ]);
    assert.ok(run.log.some((line) => /^sudo env DEBIAN_FRONTEND=noninteractive apt-get install /.test(line)), run.log.join('\n'));
    assert.ok(run.log.some((line) => /^sudo rm -f .*policy-rc\.d$/.test(line)), 'the policy file is removed through sudo');
    assert.equal(run.policyLeft, false, 'the policy-rc.d it placed is removed after the install');
    assert.match(run.stderr, /installing pkg-one pkg-two/);
  });

  it('uses no sudo as root', () => {
    const run = withStubs({ uid: 0 }, `ensure_debian_packages ${MISSING} pkg-one`);
    assert.equal(run.status, 0, run.stderr);
    assert.ok(run.log.length === 2 && run.log.every((line) => line.startsWith('apt-get ')), run.log.join('\n'));
  });

  it('leaves a policy-rc.d the machine already has alone', () => {
    const run = withStubs({ uid: 0, policyExists: true }, `ensure_debian_packages ${MISSING} pkg-one`);
    assert.equal(run.status, 0, run.stderr);
    assert.ok(run.log.every((line) => line.endsWith('policy=0')), run.log.join('\n'));
  });

  it('stops CI with apt-get’s output when the install fails, and removes the policy file', () => {
    const run = withStubs({ uid: 0, aptFails: true }, `ensure_debian_packages ${MISSING} pkg-one; echo not reached`);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /Unable to locate package/);
    assert.doesNotMatch(run.stderr, /not reached/);
    assert.equal(run.policyLeft, false);
  });
});
