import assert from 'node:assert/strict';
import { ConfigError } from '../../../shared/config.ts';
import { DEFAULT_HARD_CAP_BYTES, DEFAULT_SOFT_CAP_BYTES, loadAgentConfig } from '../../../agent/config.ts';

describe('agent/config buffer caps', () => {
  const base = { SAKSHYA_AGENT_DIR: '/tmp/sakshya-agent-config-test' };

  it('defaults to a 512 MiB soft cap and a 1 GiB hard cap', () => {
    const config = loadAgentConfig(base);
    assert.deepEqual(config.bufferCap, { softBytes: DEFAULT_SOFT_CAP_BYTES, hardBytes: DEFAULT_HARD_CAP_BYTES });
    assert.equal(DEFAULT_SOFT_CAP_BYTES, 512 * 1024 * 1024);
    assert.equal(DEFAULT_HARD_CAP_BYTES, 1024 * 1024 * 1024);
  });

  it('reads both caps from the environment', () => {
    const config = loadAgentConfig({ ...base, SAKSHYA_AGENT_SOFT_CAP_BYTES: '100000', SAKSHYA_AGENT_HARD_CAP_BYTES: '200000' });
    assert.deepEqual(config.bufferCap, { softBytes: 100_000, hardBytes: 200_000 });
  });

  it('refuses a soft cap not below the hard cap, and caps too small to hold a record, listing every problem', () => {
    assert.throws(
      () => loadAgentConfig({ ...base, SAKSHYA_AGENT_SOFT_CAP_BYTES: '200000', SAKSHYA_AGENT_HARD_CAP_BYTES: '200000' }),
      (err: unknown) => err instanceof ConfigError && err.problems.some((p) => /SAKSHYA_AGENT_SOFT_CAP_BYTES: must be less than SAKSHYA_AGENT_HARD_CAP_BYTES/.test(p)),
    );
    assert.throws(
      () => loadAgentConfig({ ...base, SAKSHYA_AGENT_SOFT_CAP_BYTES: '10', SAKSHYA_AGENT_HARD_CAP_BYTES: 'lots' }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.problems.some((p) => p.startsWith('SAKSHYA_AGENT_SOFT_CAP_BYTES: must be at least')) &&
        err.problems.some((p) => p.startsWith('SAKSHYA_AGENT_HARD_CAP_BYTES: must be a number')),
    );
  });
});
