/** Every command answers `--version` with the package's version and exit 0 (the design's command list). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { runAgentCli } from '../helpers/agent-process.ts';
import { runCollectorCli } from '../helpers/collector-process.ts';
import { runVerifyCli } from '../helpers/verifier-process.ts';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

describe('every command: --version', function () {
  this.timeout(60_000);
  for (const [name, run] of [
    ['sakshya-collector', () => runCollectorCli(['--version'])],
    ['sakshya-agent', () => runAgentCli(['--version'])],
    ['sakshya-verify', () => runVerifyCli(['--version'])],
  ] as const) {
    it(`${name} --version prints the package version and exits 0`, async () => {
      const result = await run();
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, `${VERSION}\n`);
    });
  }
});
