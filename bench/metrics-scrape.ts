/**
 * What one Prometheus scrape of the collector costs with N agents (the ledger-wide gauges read
 * every agent's state from the store): `node bench/metrics-scrape.ts 2000`. An in-process
 * collector on SQLite, N enrolled epochs with a contact each, then 7 scrapes; prints the median,
 * min and max time and the exposition's size.
 */
import { performance } from 'node:perf_hooks';
import { startCollectorInProcess } from '../test/helpers/collector-process.ts';
const agents = Number(process.argv[2] ?? 2000);
const c = await startCollectorInProcess({ env: { SAKSHYA_LOG_LEVEL: 'warn' } });
const jwk = { kty: 'OKP', crv: 'Ed25519', x: 'A'.repeat(43) } as const;
await c.container.store.write(async (tx) => {
  for (let i = 0; i < agents; i++) {
    const agent = `AS-SCR-${String(i).padStart(5, '0')}`;
    await tx.createAgentEpoch({ agent, epoch: 1, publicJwk: jwk, kid: `k${i}`, enrolledAt: new Date().toISOString() });
    await tx.recordAgentContact(agent, 1, { lastSeenAt: new Date().toISOString(), backlog: { pending: i, oldestAt: null }, version: '0.1.0' });
  }
});
const times: number[] = [];
let bytes = 0;
for (let i = 0; i < 7; i++) {
  const t = performance.now();
  const text = await c.container.metrics.exposition();
  times.push(performance.now() - t);
  bytes = text.length;
}
times.sort((a, b) => a - b);
console.log(JSON.stringify({ agents, medianMs: Math.round(times[3]!), minMs: Math.round(times[0]!), maxMs: Math.round(times[6]!), bytes }));
await c.stop();
