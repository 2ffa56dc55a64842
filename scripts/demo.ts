/**
 * `npm run demo` — the main job, end to end, on embedded SQLite in a temporary directory:
 * a collector, three enrolled agents writing audit records and telemetry, a collector outage the
 * agents survive by buffering, the collector back, every backlog drained, and the figures; then
 * a signed report bundle exported and verified offline with `sakshya-verify` against the
 * collector's published keys, and a tampered copy of it caught.
 *
 * Everything runs as real processes (`sakshya-collector serve`, `sakshya-agent run`) talking
 * real HTTP on 127.0.0.1; the demo drives them only through their public interfaces.
 * Pass `--keep` to keep the temporary directory for a look afterwards.
 */
import { execFile } from 'node:child_process';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { makeTempDir, runCollectorCli, startCollectorProcess, type CollectorProcess } from '../test/helpers/collector-process.ts';
import { initAgent, runAgentCli, startAgentProcess, type AgentProcess } from '../test/helpers/agent-process.ts';

const AGENTS = ['AS-KMR-001', 'AS-CCH-002', 'AS-DBR-003'];
const ORIGIN = 'demo.sakshya.local/collector';
const RECORDS_BEFORE_OUTAGE = 40;
const RECORDS_DURING_OUTAGE = 120;
const DRAIN_TIMEOUT_MS = 60_000;
const keep = process.argv.includes('--keep');
const VERIFY_BIN = fileURLToPath(new URL('../verifier/bin/sakshya-verify.ts', import.meta.url));

const say = (text = '') => process.stdout.write(text + '\n');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

interface DemoAgent {
  id: string;
  dir: string;
  process: AgentProcess;
  written: { audit: number; telemetry: number };
}

async function writeRecords(agent: DemoAgent, count: number, phase: string): Promise<void> {
  const url = `http://127.0.0.1:${agent.process.port}/v1/records`;
  for (let i = 0; i < count; i++) {
    const telemetry = i % 5 === 4;
    const payload = telemetry
      ? { kind: 'telemetry', type: 'service.health', body: { service: 'e-district-portal', up: true, responseMs: 40 + (i % 17), phase } }
      : {
          kind: 'audit',
          type: i % 2 ? 'certificate.issued' : 'application.received',
          body: { office: agent.id, operator: `op-${(i % 7) + 1}`, application: `${agent.id}-${phase}-${i}`, phase },
        };
    const response = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${agent.process.localToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(payload),
    });
    if (response.status !== 201) throw new Error(`${agent.id}: local API answered ${response.status}: ${await response.text()}`);
    agent.written[telemetry ? 'telemetry' : 'audit']++;
  }
}

async function agentStatus(agent: DemoAgent): Promise<{ pending: number; acked: number; lastError?: unknown }> {
  const result = await runAgentCli(['status', '--json'], { SAKSHYA_AGENT_DIR: agent.dir });
  if (result.code !== 0) throw new Error(`${agent.id}: status failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as { pending: number; acked: number; lastError?: unknown };
}

async function waitForDrain(agents: DemoAgent[]): Promise<void> {
  const deadline = Date.now() + DRAIN_TIMEOUT_MS;
  for (;;) {
    const statuses = await Promise.all(agents.map(agentStatus));
    if (statuses.every((s) => s.pending === 0)) return;
    if (Date.now() > deadline) throw new Error(`backlogs did not drain in ${DRAIN_TIMEOUT_MS} ms: ${JSON.stringify(statuses)}`);
    await sleep(250);
  }
}

/** Runs `sakshya-verify` as an auditor would; its exit code is part of the answer. */
async function runVerifier(args: string[]): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [VERIFY_BIN, ...args], { maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout };
  } catch (err) {
    const failed = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof failed.code !== 'number') throw err;
    return { code: failed.code, stdout: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

async function main(): Promise<void> {
  const base = makeTempDir('sakshya-demo-');
  const collectorDir = join(base, 'collector');
  const port = await freePort();
  const collectorEnv = { SAKSHYA_COLLECTOR_DIR: collectorDir, SAKSHYA_COLLECTOR_ORIGIN: ORIGIN, SAKSHYA_COLLECTOR_PORT: String(port), SAKSHYA_COLLECTOR_METRICS_PORT: '0' };
  let collector: CollectorProcess | undefined;
  const agents: DemoAgent[] = [];
  try {
    say(`Sakshya demo — working directory ${base}`);
    collector = await startCollectorProcess({ dir: collectorDir, env: collectorEnv });
    say(`1. Collector listening on ${collector.url} (origin ${ORIGIN}, embedded SQLite)`);

    for (const id of AGENTS) {
      const enroll = await runCollectorCli(['agents', 'enroll', '--agent', id], collectorEnv);
      if (enroll.code !== 0) throw new Error(`enroll ${id}: ${enroll.stderr}`);
      const dir = join(base, id);
      await initAgent({ collectorUrl: collector.url, agentId: id, token: enroll.stdout.trim(), dir });
      const agentProcess = await startAgentProcess({ dir });
      agents.push({ id, dir, process: agentProcess, written: { audit: 0, telemetry: 0 } });
    }
    say(`2. Enrolled and started ${agents.length} agents: ${AGENTS.join(', ')} (each one-time token handed to init in a 0600 file, never on a command line)`);

    await Promise.all(agents.map((a) => writeRecords(a, RECORDS_BEFORE_OUTAGE, 'online')));
    await waitForDrain(agents);
    say(`3. Each agent recorded ${RECORDS_BEFORE_OUTAGE} events; all acknowledged by signed receipts`);

    await collector.stop();
    say('4. Collector stopped: the link to the data centre is down');
    await Promise.all(agents.map((a) => writeRecords(a, RECORDS_DURING_OUTAGE, 'outage')));
    for (const agent of agents) {
      const status = await agentStatus(agent);
      say(`   ${agent.id}: ${status.pending} records buffered in its outbox, still answering local writes`);
    }

    await sleep(1500);
    collector = await startCollectorProcess({ dir: collectorDir, env: collectorEnv });
    say(`5. Collector back on ${collector.url}; agents drain their backlogs`);
    const drainStarted = Date.now();
    await waitForDrain(agents);
    say(`   every backlog is zero after ${((Date.now() - drainStarted) / 1000).toFixed(1)} s`);

    const list = await runCollectorCli(['agents', 'list', '--json'], collectorEnv);
    const stats = await runCollectorCli(['ledger', 'stats', '--json'], collectorEnv);
    if (list.code !== 0 || stats.code !== 0) throw new Error(`collector CLI failed: ${list.stderr}${stats.stderr}`);
    const perAgent = JSON.parse(list.stdout) as Array<{ agent: string; epoch: number; highestSeq: number; ledgerEntries: number }>;
    const ledger = JSON.parse(stats.stdout) as { size: number; byKind: { [kind: string]: number }; checkpoint: { size: number; root: string } };

    say('');
    say('agent        epoch  written (audit+telemetry)  acknowledged  in ledger  highest seq');
    for (const agent of agents) {
      const row = perAgent.find((r) => r.agent === agent.id);
      const status = await agentStatus(agent);
      const written = agent.written.audit + agent.written.telemetry;
      say(
        `${agent.id.padEnd(12)} ${String(row?.epoch ?? '-').padStart(5)}  ${`${written} (${agent.written.audit}+${agent.written.telemetry})`.padStart(25)}  ${String(status.acked).padStart(12)}  ${String(row?.ledgerEntries ?? 0).padStart(9)}  ${String(row?.highestSeq ?? 0).padStart(11)}`,
      );
      if (!row || row.ledgerEntries !== written || status.acked !== written) {
        throw new Error(`${agent.id}: wrote ${written}, acknowledged ${status.acked}, ledger holds ${row?.ledgerEntries ?? 0}`);
      }
    }
    say('');
    say(`Ledger size ${ledger.size} (${Object.entries(ledger.byKind).map(([k, n]) => `${k} ${n}`).join(', ')}), checkpoint size ${ledger.checkpoint.size} root ${ledger.checkpoint.root}`);
    say('Nothing lost, nothing duplicated.');

    // The auditor's part: the state publishes the collector's keys; the bundle is checked offline.
    const day = new Date().toISOString().slice(0, 10);
    const nextDay = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    const bundle = join(base, `report-${day}`);
    const exported = await runCollectorCli(['report', 'export', '--from', day, '--to', nextDay, '--agent', 'AS-*', '--out', bundle, '--json'], collectorEnv);
    if (exported.code !== 0) throw new Error(`report export: ${exported.stderr}`);
    const summary = JSON.parse(exported.stdout) as { counts?: { records?: number } };
    say('');
    say(`6. Report exported for ${day} (agents AS-*): ${summary.counts?.records ?? '?'} records, signed manifest, inclusion proofs → ${bundle}`);
    const keysFile = join(base, 'collector-keys.json');
    writeFileSync(keysFile, await (await fetch(`${collector.url}/api/v1/keys`)).text());
    const verified = await runVerifier([bundle, '--collector-key', keysFile]);
    say(`7. sakshya-verify, offline, with the collector keys the state published (exit ${verified.code}):`);
    for (const line of verified.stdout.trimEnd().split('\n')) say(`   ${line}`);
    if (verified.code !== 0) throw new Error('the exported report did not verify');

    const tampered = `${bundle}-tampered`;
    cpSync(bundle, tampered, { recursive: true });
    const recordsFile = join(tampered, 'records.jsonl');
    writeFileSync(recordsFile, readFileSync(recordsFile, 'utf8').replace('"kind":"audit"', '"kind":"agent"'));
    const caught = await runVerifier([tampered, '--collector-key', keysFile]);
    say(`8. The same bundle with one record's kind edited: sakshya-verify exits ${caught.code}`);
    for (const line of caught.stdout.trimEnd().split('\n').filter((l) => /FAILED|records\.jsonl/.test(l)).slice(0, 3)) say(`   ${line}`);
    if (caught.code !== 1) throw new Error('a tampered report was not caught');
  } finally {
    await Promise.all(agents.map((a) => a.process.stop()));
    await collector?.stop();
    if (keep) say(`(kept ${base})`);
    else rmSync(base, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${(err as Error).message}\n`);
  process.exitCode = 1;
});
