/**
 * The setup every fault scenario shares: a real collector process, N real agents that reach it
 * through the fault proxy, writers that keep posting records to the agents' local APIs (noting
 * every 201), and the invariant check at the end. Agents and the collector can be killed and
 * restarted at any time; writers wait for the agent to come back.
 */
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { runCollectorCli, startCollectorProcess, type CollectorProcess } from './collector-process.ts';
import { fetchAgentStatus, initAgent, startAgentProcess, type AgentProcess } from './agent-process.ts';
import { startFaultProxy, type FaultProxy } from './fault-proxy.ts';
import { checkFaultInvariants, writeThroughLocalApi, type AcknowledgedRecord, type FaultInvariantReport } from './ledger-invariants.ts';

export interface FleetAgent {
  agentId: string;
  dir: string;
  env: { [name: string]: string };
  /** The running process, or undefined while it is down. */
  process: AgentProcess | undefined;
  acknowledged: AcknowledgedRecord[];
  /** Write requests sent (acknowledged or not). */
  attempted: number;
  start(): Promise<AgentProcess>;
  kill9(): Promise<void>;
}

export interface Fleet {
  collector: CollectorProcess;
  /** Agents reach the collector through it (its target follows collector restarts). */
  proxy: FaultProxy;
  agents: FleetAgent[];
  /** SIGKILL the collector (if running) and start it again on the same data dir. */
  restartCollector(options?: { killFirst?: boolean }): Promise<CollectorProcess>;
  collectorDown(): Promise<void>;
  collectorUp(): Promise<CollectorProcess>;
  close(): Promise<void>;
}

/**
 * Sync settings for fault scenarios: short timeouts so a black-holed request is abandoned in
 * seconds, quick backoff, small batches so a run has many batch boundaries for faults to hit.
 */
export const FAULT_AGENT_ENV: { [name: string]: string } = {
  SAKSHYA_AGENT_SYNC_INTERVAL_MS: '50',
  SAKSHYA_AGENT_BATCH_MAX_RECORDS: '50',
  SAKSHYA_AGENT_CONNECT_TIMEOUT_MS: '1000',
  SAKSHYA_AGENT_RESPONSE_TIMEOUT_MS: '3000',
  SAKSHYA_AGENT_BACKOFF_BASE_MS: '50',
  SAKSHYA_AGENT_BACKOFF_MAX_MS: '500',
  SAKSHYA_AGENT_CIRCUIT_COOLDOWN_MS: '500',
};

/** Process starts take seconds on a busy 2-core machine; a scenario restarts them many times. */
const START_TIMEOUT_MS = 60_000;

export async function startFleet(options: { agents: number; prefix?: string; agentEnv?: { [name: string]: string }; seed?: number }): Promise<Fleet> {
  let collector: CollectorProcess | undefined = await startCollectorProcess({ timeoutMs: START_TIMEOUT_MS });
  const dir = collector.dir;
  const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: collector.port }, seed: options.seed ?? 1 });
  const agents: FleetAgent[] = [];
  const env = { ...FAULT_AGENT_ENV, ...options.agentEnv };
  // Tokens one after the other (each CLI writes the collector's own chain); `init`s in parallel.
  const tokens: Array<{ agentId: string; token: string }> = [];
  for (let n = 1; n <= options.agents; n++) {
    const agentId = `${options.prefix ?? 'AS-FLT'}-${String(n).padStart(3, '0')}`;
    const token = await runCollectorCli(['agents', 'enroll', '--agent', agentId], { SAKSHYA_COLLECTOR_DIR: dir });
    if (token.code !== 0) throw new Error(`enroll ${agentId} failed: ${token.stderr}`);
    tokens.push({ agentId, token: token.stdout.trim() });
  }
  // Enrolled through the proxy, so the pinned collector URL is the proxy's.
  const inits = await Promise.all(tokens.map(({ agentId, token }) => initAgent({ collectorUrl: proxy.url, agentId, token, env })));
  for (const [n, init] of inits.entries()) {
    const { agentId } = tokens[n]!;
    const agent: FleetAgent = {
      agentId,
      dir: init.dir,
      env,
      process: undefined,
      acknowledged: [],
      attempted: 0,
      async start() {
        agent.process = await startAgentProcess({ dir: init.dir, env, startTimeoutMs: START_TIMEOUT_MS });
        return agent.process;
      },
      async kill9() {
        const running = agent.process;
        agent.process = undefined;
        await running?.kill9();
      },
    };
    agents.push(agent);
  }
  await Promise.all(agents.map((agent) => agent.start()));

  const fleet: Fleet = {
    get collector() {
      if (!collector) throw new Error('the collector is down');
      return collector;
    },
    proxy,
    agents,
    async collectorDown() {
      await collector?.kill9();
      collector = undefined;
    },
    async collectorUp() {
      collector = await startCollectorProcess({ dir, timeoutMs: START_TIMEOUT_MS });
      proxy.setTarget({ host: '127.0.0.1', port: collector.port });
      return collector;
    },
    async restartCollector(restart = {}) {
      if (restart.killFirst !== false) await fleet.collectorDown();
      return fleet.collectorUp();
    },
    async close() {
      await Promise.all(agents.map((agent) => agent.kill9()));
      await collector?.stop();
      await proxy.close();
    },
  };
  return fleet;
}

export interface Writers {
  /** Stops the writers and waits for their last requests. */
  stop(): Promise<void>;
}

/**
 * `perAgent` concurrent writers per agent, each posting one audit record every `pauseMs` (a
 * steady stream). A write that fails (agent killed, restarting) is counted as attempted only;
 * the writer waits for the agent to be back.
 */
export function startWriters(fleet: Fleet, options: { perAgent?: number; pauseMs?: number; scenario: string }): Writers {
  let stopped = false;
  const loops: Promise<void>[] = [];
  for (const agent of fleet.agents) {
    for (let w = 0; w < (options.perAgent ?? 2); w++) {
      loops.push(
        (async () => {
          for (let i = 0; !stopped; i++) {
            const running = agent.process;
            if (!running) {
              await sleep(20);
              continue;
            }
            agent.attempted++;
            try {
              agent.acknowledged.push(
                await writeThroughLocalApi(running.port, running.localToken, {
                  kind: 'audit',
                  type: 'certificate.issued',
                  body: { scenario: options.scenario, writer: w, i, applicant: `A-${i}`, office: agent.agentId },
                }),
              );
            } catch {
              await sleep(20);
            }
            if (options.pauseMs) await sleep(options.pauseMs);
          }
        })(),
      );
    }
  }
  return {
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

/** Waits until every running agent reports an empty backlog. */
export async function waitDrained(fleet: Fleet, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pending = await Promise.all(
      fleet.agents.map(async (agent) => {
        if (!agent.process) throw new Error(`${agent.agentId} is not running`);
        return (await fetchAgentStatus<{ pending: number }>(agent.process)).pending;
      }),
    );
    if (pending.every((n) => n === 0)) return;
    if (Date.now() > deadline) throw new Error(`backlogs did not drain within ${timeoutMs} ms: pending ${pending.join(', ')}`);
    await sleep(100);
  }
}

/**
 * Runs the invariant check over everything the fleet wrote so far. By default it first stops
 * every agent (SIGKILL: the outbox is already durable); `keepAgents` leaves them running, which
 * is sound only once writers are stopped and backlogs drained (nothing changes the outboxes).
 */
export async function checkFleet(fleet: Fleet, options: { keepAgents?: boolean } = {}): Promise<FaultInvariantReport> {
  if (!options.keepAgents) await Promise.all(fleet.agents.map((agent) => agent.kill9()));
  return checkFaultInvariants({
    collectorDir: fleet.collector.dir,
    agents: fleet.agents.map((agent) => ({ agentId: agent.agentId, dir: agent.dir, acknowledged: agent.acknowledged, written: agent.attempted })),
  });
}

/** Records committed in an agent's outbox but not yet acknowledged, read from the file itself. */
export function pendingInOutbox(agent: FleetAgent): number {
  const db = new Database(join(agent.dir, 'outbox.db'), { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare('SELECT COALESCE(SUM(head_seq - acked_seq), 0) AS pending FROM chains').get() as { pending: number };
    return row.pending;
  } finally {
    db.close();
  }
}
