/** Helpers shared by the collector security and fuzz tests. */
import { ledgerRows } from '../../helpers/ledger-sql.ts';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { InProcessCollector } from '../../helpers/collector-process.ts';
import { TestAgent } from './test-agent.ts';

/** Tables that hold ledger state or its bookkeeping: a refused request changes none of them. */
export const LEDGER_TABLES = ['records', 'merkle_subtrees', 'checkpoints', 'receipts', 'quarantine', 'agent_keys', 'agents'] as const;

/** Row count and a sha256 over every row of each ledger table (by primary key order). */
export function ledgerFingerprint(dir: string): { [table: string]: { rows: number; sha256: string } } {
  const result: { [table: string]: { rows: number; sha256: string } } = {};
  for (const table of LEDGER_TABLES) {
    const hash = createHash('sha256');
    const rows = ledgerRows<object>(dir, `SELECT * FROM ${table} ORDER BY 1, 2`);
    for (const row of rows) hash.update(JSON.stringify(row, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('hex') : v)));
    result[table] = { rows: rows.length, sha256: hash.digest('hex') };
  }
  return result;
}

/** Runs `fn` and asserts that no ledger table changed. */
export async function expectNothingStored(collector: InProcessCollector, fn: () => Promise<void>): Promise<void> {
  const before = ledgerFingerprint(collector.dir);
  await fn();
  assert.deepEqual(ledgerFingerprint(collector.dir), before, 'a ledger table changed');
}

let counter = 0;

/** A new agent, enrolled through the real HTTP endpoint with a token issued by the service. */
export async function enrolledAgent(collector: InProcessCollector, prefix = 'AS-SEC'): Promise<TestAgent> {
  const agent = new TestAgent(`${prefix}-${String(++counter).padStart(3, '0')}`, collector.url, collector.origin);
  const { token } = await collector.container.enrollment.issueToken(agent.id);
  const answer = await agent.enroll(token);
  assert.equal(answer.status, 200, answer.text);
  return agent;
}

/** A human bearer token of `role`, issued as the CLI would (by the local operator). */
export async function humanToken(collector: InProcessCollector, role: 'admin' | 'auditor', name = `${role}-${++counter}`): Promise<{ token: string; id: string }> {
  return collector.container.apiTokens.issue(role, name, 3600, 'cli:test');
}

/** The records of the COLLECTOR chain, parsed, in seq order. */
export function collectorChain(dir: string): { seq: number; type: string; body: { [key: string]: unknown } }[] {
  return ledgerRows<{ canonical: string }>(dir, `SELECT canonical FROM records WHERE agent = 'COLLECTOR' ORDER BY seq`).map(
    (row) => JSON.parse(row.canonical) as { seq: number; type: string; body: { [key: string]: unknown } },
  );
}
