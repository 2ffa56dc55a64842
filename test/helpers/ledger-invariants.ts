/**
 * The invariant checker end-to-end tests finish with: every record an agent's local API
 * acknowledged (201) is in the collector's ledger exactly once, under the same id and seq, and the
 * agent's chain in the ledger is gapless with every `prev` link intact. It reads the collector's
 * database directly — the SQLite file (read-only) or, given its URL, the PostgreSQL database —
 * so it checks the stored truth, not an API's summary of it.
 */
import { ledgerRows } from './ledger-sql.ts';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import pg from 'pg';
import { GENESIS_PREV, recordHashOfCanonical } from '../../shared/record.ts';
import { runCollectorCli } from './collector-process.ts';
import { runAgentCli } from './agent-process.ts';

export interface AcknowledgedRecord {
  id: string;
  seq: number;
}

export interface LedgerCheck {
  agent: string;
  inLedger: number;
  acknowledged: number;
  lost: number;
  duplicated: number;
}

interface LedgerRow {
  id: string;
  epoch: number;
  seq: number;
  record_hash: string;
  canonical: string;
}

/** Where the collector keeps its ledger: `collector.db` in its data directory, or the PostgreSQL database `database` names. */
export interface LedgerLocation {
  collectorDir: string;
  /** SAKSHYA_COLLECTOR_DATABASE of a collector on PostgreSQL; absent for SQLite. */
  database?: string | undefined;
}

const SQLITE_AGENT_ROWS = 'SELECT id, epoch, seq, record_hash, canonical FROM records WHERE agent = ? ORDER BY epoch, seq, ledger_index';
// BIGINTs come back from node-postgres as text; these are far below 2^31.
const POSTGRES_AGENT_ROWS = 'SELECT id, epoch::integer AS epoch, seq::integer AS seq, record_hash, canonical FROM records WHERE agent = $1 ORDER BY epoch, seq, ledger_index';

/** Reads one agent's ledger rows at a time from either database, read-only. */
interface LedgerReader {
  rows(agent: string): Promise<LedgerRow[]>;
  close(): Promise<void>;
}

async function openLedgerReader(location: LedgerLocation): Promise<LedgerReader> {
  if (location.database !== undefined) {
    const client = new pg.Client({ connectionString: location.database });
    await client.connect();
    await client.query('SET default_transaction_read_only = on');
    return {
      rows: async (agent) => (await client.query<LedgerRow>(POSTGRES_AGENT_ROWS, [agent])).rows,
      close: () => client.end(),
    };
  }
  const db = new Database(join(location.collectorDir, 'collector.db'), { readonly: true, fileMustExist: true });
  const statement = db.prepare(SQLITE_AGENT_ROWS);
  return {
    rows: async (agent) => statement.all(agent) as LedgerRow[],
    close: async () => void db.close(),
  };
}

/** The agent's records in the collector's SQLite ledger (`collector.db` in `collectorDir`) against what was acknowledged. */
export function checkAgentInLedger(collectorDir: string, agent: string, acknowledged: readonly AcknowledgedRecord[]): LedgerCheck {
  {
    // The ledger of the test collector in this directory, on whichever backend the tests run.
    return checkLedgerRows(agent, ledgerRows<LedgerRow>(collectorDir, 'SELECT id, epoch, seq, record_hash, canonical FROM records WHERE agent = ? ORDER BY epoch, seq, ledger_index', [agent]), acknowledged);
  }
}

/** The same check on the collector's PostgreSQL database at `databaseUrl`. */
export async function checkAgentInPostgresLedger(databaseUrl: string, agent: string, acknowledged: readonly AcknowledgedRecord[]): Promise<LedgerCheck> {
  const reader = await openLedgerReader({ collectorDir: '', database: databaseUrl });
  try {
    return checkLedgerRows(agent, await reader.rows(agent), acknowledged);
  } finally {
    await reader.close();
  }
}

/** Counts lost and duplicated records; throws on a chain that has a gap or a broken link, or on a record stored under another seq. */
function checkLedgerRows(agent: string, rows: readonly LedgerRow[], acknowledged: readonly AcknowledgedRecord[]): LedgerCheck {
  const perId = new Map<string, number>();
  for (const row of rows) perId.set(row.id, (perId.get(row.id) ?? 0) + 1);
  const perSeq = new Map<string, number>();
  for (const row of rows) perSeq.set(`${row.epoch}/${row.seq}`, (perSeq.get(`${row.epoch}/${row.seq}`) ?? 0) + 1);
  const duplicated = [...perId.values(), ...perSeq.values()].filter((n) => n > 1).length;
  const lost = acknowledged.filter((r) => !perId.has(r.id)).length;

  // Chain: per epoch, seq 1..n gapless and each prev = hash of the record before it.
  let previousHash = GENESIS_PREV;
  let expectedSeq = 1;
  let epoch = rows[0]?.epoch;
  for (const row of rows) {
    if (row.epoch !== epoch) {
      epoch = row.epoch;
      expectedSeq = 1;
      previousHash = GENESIS_PREV;
    }
    const record = JSON.parse(row.canonical) as { prev: string; seq: number };
    assert.equal(row.seq, expectedSeq, `${agent} epoch ${row.epoch}: gap before seq ${row.seq}`);
    assert.equal(record.prev, previousHash, `${agent} epoch ${row.epoch} seq ${row.seq}: prev does not link`);
    previousHash = recordHashOfCanonical(Buffer.from(row.canonical, 'utf8'));
    expectedSeq++;
  }
  const bySeq = new Map(rows.map((r) => [r.id, r.seq]));
  for (const ack of acknowledged) {
    if (bySeq.has(ack.id)) assert.equal(bySeq.get(ack.id), ack.seq, `record ${ack.id} acknowledged as seq ${ack.seq}`);
  }
  return { agent, inLedger: rows.length, acknowledged: acknowledged.length, lost, duplicated };
}

/** POSTs one record to an agent's local API and returns what the 201 acknowledged. */
export async function writeThroughLocalApi(
  port: number,
  localToken: string,
  record: { kind: string; type: string; at?: string; body: { [key: string]: unknown } },
): Promise<AcknowledgedRecord> {
  const response = await fetch(`http://127.0.0.1:${port}/v1/records`, {
    method: 'POST',
    headers: { authorization: `Bearer ${localToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(record),
  });
  const body = (await response.json()) as AcknowledgedRecord;
  assert.equal(response.status, 201, `local API answered ${response.status}: ${JSON.stringify(body)}`);
  return body;
}

export interface AgentUnderTest {
  agentId: string;
  /** The agent's data directory (its outbox). */
  dir: string;
  /** Every record its local API answered 201 for. */
  acknowledged: readonly AcknowledgedRecord[];
  /** Records the writers tried to write; defaults to the acknowledged count. */
  written?: number;
}

export interface FaultInvariantReport {
  written: number;
  acknowledged: number;
  /** Ledger entries of these agents. */
  inLedger: number;
  lost: number;
  duplicated: number;
  /** Everything else that is wrong, one line each; empty when the invariant holds. */
  problems: string[];
  /** What was checked, for docs/reliability.md. */
  checkedBy: string;
}

export const FAULT_INVARIANT_CHECKS =
  'acked ids once in ledger (id and agent/epoch/seq); outbox = ledger by hash, backlog 0; chains gapless; `ledger verify` (incl. checkpoints); `sakshya-agent verify`';

/**
 * The ONE check every fault scenario ends with (stop or quiesce the agents first, so their
 * backlogs are final). It does not throw for what it finds: it returns the counts and problems,
 * so the scenario can record its outcome before asserting (`assertFaultInvariants`).
 *
 * - every acknowledged record is in the ledger exactly once, by id and by (agent, epoch, seq),
 *   with the seq it was acknowledged under;
 * - every record in the agent's outbox is in the ledger with the same hash (nothing committed
 *   locally was lost, acknowledged to a caller or not), and none is still pending;
 * - each chain in the ledger is gapless from seq 1 with every `prev` link intact;
 * - `sakshya-collector ledger verify --json` is intact: it recomputes every stored checkpoint's
 *   root from the records, so consecutive checkpoints are consistent prefixes of one log;
 * - `sakshya-agent verify --json` is ok for every agent.
 */
export async function checkFaultInvariants(options: LedgerLocation & { agents: readonly AgentUnderTest[] }): Promise<FaultInvariantReport> {
  const problems: string[] = [];
  let lost = 0;
  let duplicated = 0;
  let inLedger = 0;
  const ledger = await openLedgerReader(options);
  try {
    for (const agent of options.agents) {
      const rows = await ledger.rows(agent.agentId);
      inLedger += rows.length;
      const byId = new Map<string, LedgerRow[]>();
      const bySeq = new Map<string, number>();
      for (const row of rows) {
        byId.set(row.id, [...(byId.get(row.id) ?? []), row]);
        bySeq.set(`${row.epoch}/${row.seq}`, (bySeq.get(`${row.epoch}/${row.seq}`) ?? 0) + 1);
      }
      for (const [id, copies] of byId) {
        if (copies.length > 1) {
          duplicated += copies.length - 1;
          problems.push(`${agent.agentId}: record ${id} is in the ledger ${copies.length} times`);
        }
      }
      for (const [key, count] of bySeq) {
        if (count > 1) {
          duplicated += count - 1;
          problems.push(`${agent.agentId}: epoch/seq ${key} is in the ledger ${count} times`);
        }
      }
      for (const ack of agent.acknowledged) {
        const copies = byId.get(ack.id);
        if (!copies) {
          lost++;
          if (lost <= 20) problems.push(`${agent.agentId}: acknowledged record ${ack.id} (seq ${ack.seq}) is not in the ledger`);
        } else if (copies[0]!.seq !== ack.seq) {
          problems.push(`${agent.agentId}: record ${ack.id} was acknowledged as seq ${ack.seq} but the ledger holds it at seq ${copies[0]!.seq}`);
        }
      }
      problems.push(...chainProblems(agent.agentId, rows));
      problems.push(...outboxProblems(agent, byId));
    }
  } finally {
    await ledger.close();
  }

  const collectorEnv = { SAKSHYA_COLLECTOR_DIR: options.collectorDir, ...(options.database !== undefined ? { SAKSHYA_COLLECTOR_DATABASE: options.database } : {}) };
  const [verified, ...agentVerifies] = await Promise.all([
    runCollectorCli(['ledger', 'verify', '--json'], collectorEnv),
    ...options.agents.map((agent) => runAgentCli(['verify', '--json'], { SAKSHYA_AGENT_DIR: agent.dir }, { timeoutMs: 120_000 })),
  ]);
  const ledgerReport = parseJson<{ intact?: boolean; findings?: unknown[] }>(verified!.stdout);
  if (verified!.code !== 0 || ledgerReport?.intact !== true) {
    problems.push(`ledger verify: exit ${verified!.code}, ${JSON.stringify(ledgerReport?.findings?.slice(0, 3) ?? verified!.stderr.trim().slice(0, 500))}`);
  }
  for (const [n, result] of agentVerifies.entries()) {
    const report = parseJson<{ ok?: boolean }>(result.stdout);
    if (result.code !== 0 || report?.ok !== true) {
      problems.push(`sakshya-agent verify ${options.agents[n]!.agentId}: exit ${result.code}, ${result.stdout.trim().slice(0, 500) || result.stderr.trim().slice(0, 500)}`);
    }
  }

  return {
    written: options.agents.reduce((sum, agent) => sum + (agent.written ?? agent.acknowledged.length), 0),
    acknowledged: options.agents.reduce((sum, agent) => sum + agent.acknowledged.length, 0),
    inLedger,
    lost,
    duplicated,
    problems,
    checkedBy: FAULT_INVARIANT_CHECKS,
  };
}

/** Throws with every problem listed unless the invariant held. */
export function assertFaultInvariants(report: FaultInvariantReport): void {
  assert.deepEqual(
    { lost: report.lost, duplicated: report.duplicated, problems: report.problems },
    { lost: 0, duplicated: 0, problems: [] },
    `the invariant did not hold (${report.acknowledged} acknowledged, ${report.inLedger} in the ledger)`,
  );
}

function parseJson<T>(text: string): T | undefined {
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}

/** Per epoch: seq 1…n gapless and each `prev` the hash of the record before it. */
function chainProblems(agent: string, rows: readonly LedgerRow[]): string[] {
  const problems: string[] = [];
  let epoch: number | undefined;
  let expectedSeq = 1;
  let previousHash = GENESIS_PREV;
  for (const row of rows) {
    if (row.epoch !== epoch) {
      epoch = row.epoch;
      expectedSeq = 1;
      previousHash = GENESIS_PREV;
    }
    const record = JSON.parse(row.canonical) as { prev: string };
    if (row.seq !== expectedSeq) problems.push(`${agent} epoch ${row.epoch}: expected seq ${expectedSeq}, found ${row.seq}`);
    if (record.prev !== previousHash) problems.push(`${agent} epoch ${row.epoch} seq ${row.seq}: prev does not link to the record before it`);
    previousHash = recordHashOfCanonical(Buffer.from(row.canonical, 'utf8'));
    expectedSeq = row.seq + 1;
    if (problems.length > 20) break;
  }
  return problems;
}

/** The agent's outbox against the ledger: every local record stored once, same hash, none pending. */
function outboxProblems(agent: AgentUnderTest, ledgerById: ReadonlyMap<string, LedgerRow[]>): string[] {
  const problems: string[] = [];
  const outbox = new Database(join(agent.dir, 'outbox.db'), { readonly: true, fileMustExist: true });
  try {
    const chains = outbox.prepare('SELECT epoch, head_seq, acked_seq FROM chains').all() as Array<{ epoch: number; head_seq: number; acked_seq: number }>;
    for (const chain of chains) {
      if (chain.acked_seq !== chain.head_seq) problems.push(`${agent.agentId} epoch ${chain.epoch}: backlog not drained (acked ${chain.acked_seq} of ${chain.head_seq})`);
    }
    let missing = 0;
    for (const row of outbox.prepare('SELECT epoch, seq, id, hash FROM records ORDER BY epoch, seq').iterate() as Iterable<{ epoch: number; seq: number; id: string; hash: string }>) {
      const stored = ledgerById.get(row.id)?.[0];
      if (!stored) {
        if (++missing <= 10) problems.push(`${agent.agentId}: outbox record ${row.id} (epoch ${row.epoch} seq ${row.seq}) is not in the ledger`);
      } else if (stored.record_hash !== row.hash || stored.seq !== row.seq || stored.epoch !== row.epoch) {
        problems.push(`${agent.agentId}: outbox record ${row.id} differs from the ledger's copy`);
      }
    }
    if (missing > 10) problems.push(`${agent.agentId}: … ${missing - 10} more outbox records not in the ledger`);
  } finally {
    outbox.close();
  }
  return problems;
}
