/**
 * How the agent is started. Its bin carries the V8 flags that keep its memory flat under a long
 * drain (`--max-semi-space-size`, docs/operations.md, "Memory while draining a long backlog") in
 * its shebang line, so they apply however an operator starts it (shell, npm's bin link, systemd
 * ExecStart). The test harness and the benchmarks execute the bin the same way; this checks that
 * the running process really got the flag.
 */
import { skipBecause } from '../../helpers/skip.ts';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_BIN, initAgent, startAgentProcess, type AgentProcess } from '../../helpers/agent-process.ts';
import { COLLECTOR_BIN, startCollectorProcess } from '../../helpers/collector-process.ts';
import { FakeCollector } from '../../unit/agent/support/fake-collector.ts';

const AGENT = 'AS-LAUNCH-001';
const SEMI_SPACE_FLAG = '--max-semi-space-size=8';

describe('sakshya-agent launch', function () {
  this.timeout(60_000);
  let collector: FakeCollector;
  let root: string;
  let agentProcess: AgentProcess | undefined;

  beforeEach(async () => {
    collector = await FakeCollector.start();
    root = mkdtempSync(join(tmpdir(), 'sakshya-agent-launch-'));
  });

  afterEach(async () => {
    await agentProcess?.stop();
    agentProcess = undefined;
    await collector.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('names the capped young generation in the bin\u2019s shebang line', () => {
    const firstLine = readFileSync(AGENT_BIN, 'utf8').split('\n', 1)[0];
    assert.equal(firstLine, `#!/usr/bin/env -S node ${SEMI_SPACE_FLAG}`);
  });

  it('runs `sakshya-agent run` with that flag when the bin is executed as an operator does', async function () {
    if (process.platform !== 'linux') skipBecause(this, 'reads /proc/<pid>/cmdline, which only Linux has');
    const { dir } = await initAgent({ collectorUrl: collector.url, agentId: AGENT, token: collector.issueToken(AGENT), dir: join(root, 'agent') });
    agentProcess = await startAgentProcess({ dir });
    const argv = readFileSync(`/proc/${agentProcess.child.pid}/cmdline`, 'utf8').split('\0');
    assert.ok(argv.includes(SEMI_SPACE_FLAG), `node started with ${SEMI_SPACE_FLAG}: ${argv.join(' ')}`);
    assert.ok(argv.includes(AGENT_BIN) && argv.includes('run'), argv.join(' '));
    assert.equal(await agentProcess.stop(), 0);
  });
});

describe('sakshya-collector launch', function () {
  this.timeout(60_000);

  it('names the capped young generation in the bin\u2019s shebang line and runs `serve` with it', async function () {
    const firstLine = readFileSync(COLLECTOR_BIN, 'utf8').split('\n', 1)[0];
    assert.equal(firstLine, `#!/usr/bin/env -S node ${SEMI_SPACE_FLAG}`);
    if (process.platform !== 'linux') skipBecause(this, 'reads /proc/<pid>/cmdline, which only Linux has');
    const collector = await startCollectorProcess();
    try {
      const argv = readFileSync(`/proc/${collector.child.pid}/cmdline`, 'utf8').split('\0');
      assert.ok(argv.includes(SEMI_SPACE_FLAG), `node started with ${SEMI_SPACE_FLAG}: ${argv.join(' ')}`);
      assert.ok(argv.includes(COLLECTOR_BIN) && argv.includes('serve'), argv.join(' '));
    } finally {
      await collector.stop();
    }
  });
});
