import assert from 'node:assert/strict';
import {
  agentMatchesGlob,
  ALL_BUNDLE_FILES,
  manifestSchema,
  MANIFEST_LISTED_FILES,
  recordMatchesFilter,
  reportFilterSchema,
  type ReportFilter,
} from '../../../shared/report/bundle-format.ts';

const filter = (over: Partial<ReportFilter> = {}): ReportFilter => ({
  from: '2026-11-22T00:00:00.000Z',
  to: '2026-11-23T00:00:00.000Z',
  agent: null,
  kind: null,
  type: null,
  ...over,
});

describe('report bundle format', () => {
  it('agent globs match * as any run and ? as exactly one character, anchored at both ends', () => {
    assert.equal(agentMatchesGlob('AS-KMR-001', 'AS-KMR-*'), true);
    assert.equal(agentMatchesGlob('AS-KMR-', 'AS-KMR-*'), true);
    assert.equal(agentMatchesGlob('AS-KMR-001', 'AS-?MR-00?'), true);
    assert.equal(agentMatchesGlob('AS-KMR-0012', 'AS-?MR-00?'), false);
    assert.equal(agentMatchesGlob('XAS-KMR-001', 'AS-*'), false);
    assert.equal(agentMatchesGlob('AS-KMR-001', 'AS-KMR-001'), true);
  });

  it('the date range is from-inclusive, to-exclusive and compares instants, not strings', () => {
    const f = filter();
    assert.equal(recordMatchesFilter({ agent: 'A-1', kind: 'audit', type: 'a.b', at: '2026-11-22T00:00:00Z' }, f), true);
    assert.equal(recordMatchesFilter({ agent: 'A-1', kind: 'audit', type: 'a.b', at: '2026-11-22T23:59:59.999999Z' }, f), true);
    assert.equal(recordMatchesFilter({ agent: 'A-1', kind: 'audit', type: 'a.b', at: '2026-11-23T00:00:00Z' }, f), false);
    assert.equal(recordMatchesFilter({ agent: 'A-1', kind: 'audit', type: 'a.b', at: '2026-11-21T23:59:59.999Z' }, f), false);
  });

  it('kind, type and agent filters are exact or glob matches', () => {
    const at = '2026-11-22T10:00:00.000Z';
    assert.equal(recordMatchesFilter({ agent: 'AS-1', kind: 'audit', type: 'a.b', at }, filter({ kind: 'telemetry' })), false);
    assert.equal(recordMatchesFilter({ agent: 'AS-1', kind: 'audit', type: 'a.b', at }, filter({ type: 'a.c' })), false);
    assert.equal(recordMatchesFilter({ agent: 'AS-1', kind: 'audit', type: 'a.b', at }, filter({ agent: 'BS-*' })), false);
    assert.equal(recordMatchesFilter({ agent: 'AS-1', kind: 'audit', type: 'a.b', at }, filter({ agent: 'AS-*', kind: 'audit', type: 'a.b' })), true);
  });

  it('a filter needs millisecond UTC bounds with from before to, and a glob of agent-id characters', () => {
    assert.equal(reportFilterSchema.safeParse(filter()).success, true);
    assert.equal(reportFilterSchema.safeParse(filter({ from: '2026-11-22T00:00:00Z' })).success, false);
    assert.equal(reportFilterSchema.safeParse(filter({ to: '2026-11-22T00:00:00.000Z' })).success, false);
    assert.equal(reportFilterSchema.safeParse(filter({ agent: 'as-*' })).success, false);
    assert.equal(reportFilterSchema.safeParse(filter({ agent: 'AS-[12]' })).success, false);
  });

  it('the manifest lists every bundle file except itself and its signature', () => {
    assert.deepEqual([...MANIFEST_LISTED_FILES].sort(), ALL_BUNDLE_FILES.filter((f) => !f.startsWith('manifest.')));
    assert.deepEqual(Object.keys(manifestSchema.shape.files.shape).sort(), [...MANIFEST_LISTED_FILES].sort());
  });
});
