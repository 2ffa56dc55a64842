/**
 * Several collector replicas on one PostgreSQL database behind a real nginx, and real agents
 * sending through it: what the end-to-end replica tests share.
 *
 * Replica 1 serves first (it creates the keys and migrates); every other replica gets a copy of
 * its keys directory and the same SAKSHYA_COLLECTOR_DATABASE. Each replica keeps the port the
 * fleet picked for it, so a restarted replica is back in nginx's upstream list as it was. Agents
 * are enrolled with tokens from the collector's CLI and `init --collector <nginx>`; writers post
 * a fixed number of records to each agent's local API, spread over time, noting every 201.
 */
import { copyFileSync, cpSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeTempDir, runCollectorCli, startCollectorProcess, type CollectorProcess } from './collector-process.ts';
import { fetchAgentStatus, initAgent, runAgentCli, startAgentProcess, type AgentProcess } from './agent-process.ts';
import { writeThroughLocalApi, type AcknowledgedRecord } from './ledger-invariants.ts';
import { freePort, startNginx, type NginxProxy } from './nginx.ts';

/** Process starts take seconds on a busy 2-core machine. */
const START_TIMEOUT_MS = 60_000;

/** Small batches (many batch boundaries for a kill to hit), quick backoff, short timeouts. */
export const REPLICA_AGENT_ENV: { [name: string]: string } = {
  SAKSHYA_AGENT_SYNC_INTERVAL_MS: '50',
  SAKSHYA_AGENT_BATCH_MAX_RECORDS: '20',
  SAKSHYA_AGENT_CONNECT_TIMEOUT_MS: '2000',
  SAKSHYA_AGENT_RESPONSE_TIMEOUT_MS: '10000',
  SAKSHYA_AGENT_BACKOFF_BASE_MS: '50',
  SAKSHYA_AGENT_BACKOFF_MAX_MS: '500',
  SAKSHYA_AGENT_CIRCUIT_COOLDOWN_MS: '500',
};

/** Agent log messages that mean the collector refused a batch for good or a receipt did not verify. */
export const REFUSAL_LOG_MESSAGES = ['batch refused by the collector', 'receipt rejected; nothing acknowledged'];

export interface Replica {
  /** 1-based, as the test names it. */
  n: number;
  port: number;
  dir: string;
  url: string;
  /** The running process, or undefined while it is down. */
  process: CollectorProcess | undefined;
  /** Every process it ran, in order (a restart is a new one). */
  history: CollectorProcess[];
  start(): Promise<CollectorProcess>;
  /** SIGTERM (graceful) and wait for the exit; resolves to the exit code. */
  stop(): Promise<number | null>;
  kill9(): Promise<void>;
}

export interface StreamingAgent {
  agentId: string;
  dir: string;
  process: AgentProcess;
  /** Every record its local API answered 201 for. */
  acknowledged: AcknowledgedRecord[];
}

export interface ReplicaFleet {
  databaseUrl: string;
  replicas: Replica[];
  nginx: NginxProxy;
  agents: StreamingAgent[];
  /** Environment for `sakshya-collector` commands on this database (replica 1's keys). */
  cliEnv: NodeJS.ProcessEnv;
  live(): Replica[];
  /** Writes every process's log (agents, replicas, nginx) into a new directory, for a failed test to point at; returns it. */
  saveLogs(): string;
  close(): Promise<void>;
}

export async function startReplicaFleet(options: {
  databaseUrl: string;
  replicas: number;
  agents: number;
  prefix: string;
  nginxBinary: string;
  collectorEnv?: NodeJS.ProcessEnv;
}): Promise<ReplicaFleet> {
  const replicas: Replica[] = [];
  for (let n = 1; n <= options.replicas; n++) {
    const port = await freePort();
    const dir = makeTempDir(`sakshya-replica-${n}-`);
    const env = { SAKSHYA_COLLECTOR_DATABASE: options.databaseUrl, SAKSHYA_COLLECTOR_PORT: String(port), SAKSHYA_LOG_LEVEL: 'info', ...options.collectorEnv };
    const replica: Replica = {
      n,
      port,
      dir,
      url: `http://127.0.0.1:${port}`,
      process: undefined,
      history: [],
      async start() {
        replica.process = await startCollectorProcess({ dir, env, timeoutMs: START_TIMEOUT_MS });
        replica.history.push(replica.process);
        return replica.process;
      },
      async stop() {
        const running = replica.process;
        replica.process = undefined;
        return (await running?.stop('SIGTERM')) ?? null;
      },
      async kill9() {
        const running = replica.process;
        replica.process = undefined;
        await running?.kill9();
      },
    };
    replicas.push(replica);
  }
  const [first, ...others] = replicas as [Replica, ...Replica[]];
  const agents: StreamingAgent[] = [];
  let nginx: NginxProxy | undefined;
  const close = async () => {
    await Promise.all(agents.map((agent) => agent.process.kill9()));
    await nginx?.stop();
    await Promise.all(replicas.map((replica) => replica.kill9()));
  };
  try {
    await first.start();
    for (const replica of others) cpSync(join(first.dir, 'keys'), join(replica.dir, 'keys'), { recursive: true });
    const othersStarted = Promise.all(others.map((replica) => replica.start()));

    // Meanwhile, the enrollment tokens (the CLI writes them to the database). nginx, and the
    // agents' enrollment through it, wait for every replica: no request may go to another
    // replica before the test breaks one.
    const cliEnv = { SAKSHYA_COLLECTOR_DIR: first.dir, SAKSHYA_COLLECTOR_DATABASE: options.databaseUrl, SAKSHYA_LOG_LEVEL: 'warn' };
    const ids = Array.from({ length: options.agents }, (_, i) => `${options.prefix}-${String(i + 1).padStart(3, '0')}`);
    // The database's writer lock orders the CLIs' writes; they need not wait for each other.
    const tokens = await Promise.all(
      ids.map(async (agentId) => {
        const result = await runCollectorCli(['agents', 'enroll', '--agent', agentId], cliEnv);
        if (result.code !== 0) throw new Error(`enroll ${agentId} failed: ${result.stderr}`);
        return result.stdout.trim();
      }),
    );
    await othersStarted;
    nginx = await startNginx({ upstreams: replicas.map((replica) => replica.port), binary: options.nginxBinary });
    const proxyUrl = nginx.url;
    const inits = await Promise.all(ids.map((agentId, i) => initAgent({ collectorUrl: proxyUrl, agentId, token: tokens[i]!, env: REPLICA_AGENT_ENV })));
    const processes = await Promise.all(inits.map((init) => startAgentProcess({ dir: init.dir, env: REPLICA_AGENT_ENV, startTimeoutMs: START_TIMEOUT_MS })));
    for (const [i, init] of inits.entries()) agents.push({ agentId: init.agentId, dir: init.dir, process: processes[i]!, acknowledged: [] });
    const proxy = nginx;
    return {
      databaseUrl: options.databaseUrl,
      replicas,
      nginx: proxy,
      agents,
      cliEnv,
      live: () => replicas.filter((replica) => replica.process !== undefined),
      saveLogs() {
        const dir = makeTempDir('sakshya-replica-logs-');
        for (const agent of agents) writeFileSync(join(dir, `${agent.agentId}.log`), agent.process.logs.map((line) => JSON.stringify(line)).join('\n'));
        for (const replica of replicas) {
          const lines = replica.history.flatMap((process, i) => [`--- process ${i + 1}`, ...process.logs]);
          writeFileSync(join(dir, `replica-${replica.n}.log`), lines.join('\n'));
        }
        for (const file of ['access.log', 'error.log']) if (existsSync(join(proxy.dir, file))) copyFileSync(join(proxy.dir, file), join(dir, `nginx-${file}`));
        return dir;
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

export interface Stream {
  /** The fewest records any one agent has had acknowledged so far; throws once a write failed. */
  least(): number;
  /** Settles once every writer is done: undefined, or the error of the first write that failed (never rejects). */
  done: Promise<unknown>;
}

/**
 * Writes `perAgent` audit records to every agent's local API, one every `pauseMs`. The agents
 * stay up, so every write must be acknowledged: a failed one ends its writer, and `done` says why.
 */
export function streamRecords(fleet: ReplicaFleet, options: { perAgent: number; pauseMs: number; scenario: string }): Stream {
  const writers = fleet.agents.map(async (agent) => {
    for (let i = 0; i < options.perAgent; i++) {
      agent.acknowledged.push(
        await writeThroughLocalApi(agent.process.port, agent.process.localToken, {
          kind: 'audit',
          type: 'certificate.issued',
          body: { scenario: options.scenario, i, applicant: `A-${i}`, office: agent.agentId },
        }),
      );
      await sleep(options.pauseMs);
    }
  });
  let failure: unknown;
  const done = Promise.all(writers).then(
    () => undefined,
    (err: unknown) => (failure = err),
  );
  return {
    least() {
      if (failure !== undefined) throw failure;
      return Math.min(...fleet.agents.map((agent) => agent.acknowledged.length));
    },
    done,
  };
}

/** Waits until every agent's backlog is empty (through its local API), then confirms with `sakshya-agent status --json`. */
export async function waitDrained(fleet: ReplicaFleet, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const statuses = await Promise.all(fleet.agents.map((agent) => fetchAgentStatus<{ pending: number }>(agent.process)));
    if (statuses.every((status) => status.pending === 0)) break;
    if (Date.now() > deadline) {
      const stuck = statuses.flatMap((status, i) => (status.pending === 0 ? [] : [`${fleet.agents[i]!.agentId}: ${JSON.stringify(status)}`]));
      throw new Error(`backlogs did not drain within ${timeoutMs} ms:\n${stuck.join('\n')}`);
    }
    await sleep(100);
  }
  await Promise.all(
    fleet.agents.map(async (agent) => {
      const status = await runAgentCli(['status', '--json'], { SAKSHYA_AGENT_DIR: agent.dir });
      const pending = (JSON.parse(status.stdout) as { pending: number }).pending;
      if (pending !== 0) throw new Error(`${agent.agentId}: status says ${pending} pending after the local API said 0`);
    }),
  );
}

/** The agents' log lines that say a batch was refused for good (or its receipt did not verify). */
export function refusals(fleet: ReplicaFleet): string[] {
  return fleet.agents.flatMap((agent) =>
    agent.process.logs.filter((line) => REFUSAL_LOG_MESSAGES.includes(String(line.msg))).map((line) => `${agent.agentId}: ${JSON.stringify(line)}`),
  );
}
