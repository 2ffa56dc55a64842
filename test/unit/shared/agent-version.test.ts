import assert from 'node:assert/strict';
import { agentUserAgent, agentVersion, agentVersionFromUserAgent } from '../../../shared/agent-version.ts';
import { packageVersion } from '../../../shared/package-version.ts';
import { batchSchema } from '../../../shared/protocol.ts';

describe('shared/agent-version', () => {
  it("names this package's version in the User-Agent, and reads it back", () => {
    assert.equal(agentVersion(), packageVersion());
    assert.equal(agentUserAgent(), `sakshya-agent/${packageVersion()}`);
    assert.equal(agentVersionFromUserAgent(agentUserAgent()), packageVersion());
    assert.equal(agentVersionFromUserAgent('sakshya-agent/1.2.3-rc.1+b7 (linux; x64)'), '1.2.3-rc.1+b7');
  });

  it('reads no version from another client, a malformed token or a version outside the batch field\'s bounds', () => {
    for (const header of [undefined, '', 'got (https://github.com/sindresorhus/got)', 'curl/8.5.0', 'xsakshya-agent/1.0', 'sakshya-agent/', 'sakshya-agent 1.0', `sakshya-agent/${'1'.repeat(65)}`, 'sakshya-agent/1.0;drop', 'sakshya-agent/1.0\u00e9']) {
      assert.equal(agentVersionFromUserAgent(header), undefined, String(header));
    }
  });

  it('makes agentVersion optional in a batch and bounds it like the User-Agent', () => {
    const batch = { batchId: '0192f7b4-0000-7000-8000-00000000abcd', agent: 'AS-VER-001', epoch: 1, records: [], backlog: { pending: 0, oldestAt: null } };
    // records: [] is refused either way; the agentVersion issue is what is looked at.
    const issues = (value: unknown) => (batchSchema.safeParse(value).error?.issues ?? []).filter((issue) => issue.path[0] === 'agentVersion' || issue.code === 'unrecognized_keys');
    assert.deepEqual(issues(batch), []);
    assert.deepEqual(issues({ ...batch, agentVersion: '0.1.0' }), []);
    for (const bad of ['', '1'.repeat(65), '1.0 beta', 7]) assert.equal(issues({ ...batch, agentVersion: bad }).length, 1, String(bad));
  });
});
