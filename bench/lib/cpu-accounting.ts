/**
 * Where the CPU went during a timed phase, from Linux's own accounting (/proc), which costs
 * nothing to measure and does not perturb the run:
 *
 * - per thread of each collector process (/proc/PID/task/TID/stat): the main thread, the
 *   signature workers, libuv's pool (gzip, WebCrypto), V8's helpers (GC, compiler);
 * - a database server's processes, when the caller can count them (bench/lib/postgres-server.ts);
 * - this benchmark process itself (the load generator);
 * - the whole machine (/proc/stat), so that load from other processes is visible.
 *
 * Elsewhere than Linux the figures are absent, not wrong.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/** USER_HZ: the unit of /proc CPU times; 100 on every mainstream Linux architecture. */
const CLOCK_TICKS_PER_SECOND = 100;

interface ThreadSample {
  pid: number;
  tid: number;
  name: string;
  ticks: number;
}

export interface CpuSnapshot {
  at: number;
  /** The collector processes, in the order given, and their threads keyed `pid/tid`. */
  pids: number[];
  threads: Map<string, ThreadSample>;
  selfMicros: number;
  machine: { busy: number; total: number; steal: number } | undefined;
  /** CPU seconds of the database server so far, if counted. */
  database: number | undefined;
}

function readThreads(pid: number, threads: Map<string, ThreadSample>): void {
  const dir = `/proc/${pid}/task`;
  if (!existsSync(dir)) return;
  for (const tid of readdirSync(dir)) {
    try {
      const stat = readFileSync(`${dir}/${tid}/stat`, 'utf8');
      // "tid (comm) state ppid …": comm may hold spaces; the fields after it are fixed.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
      const name = readFileSync(`${dir}/${tid}/comm`, 'utf8').trim();
      threads.set(`${pid}/${tid}`, { pid, tid: Number(tid), name, ticks });
    } catch {
      // the thread ended between readdir and read
    }
  }
}

function readMachine(): CpuSnapshot['machine'] {
  if (!existsSync('/proc/stat')) return undefined;
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
  const busy = user! + nice! + system! + irq! + softirq!;
  return { busy, total: busy + idle! + iowait! + steal!, steal: steal! };
}

/**
 * Where the CPU stands now: the collector process(es) `pid`, this process, the machine, and the
 * database server if `database` counts it (seconds so far).
 */
export function cpuSnapshot(pid: number | readonly (number | undefined)[] | undefined, database?: () => number | undefined): CpuSnapshot {
  const pids = (Array.isArray(pid) ? pid : [pid]).filter((p): p is number => p !== undefined);
  const threads = new Map<string, ThreadSample>();
  for (const p of pids) readThreads(p, threads);
  const usage = process.cpuUsage();
  return { at: performance.now(), pids, threads, selfMicros: usage.user + usage.system, machine: readMachine(), database: database?.() };
}

/** The role of a collector thread, from the name Node and libuv give it. */
function threadGroup(name: string, isMain: boolean): string {
  if (isMain) return 'main thread (HTTP, body read, database, Merkle, receipts)';
  if (/^WorkerThread|^node-worker|^worker/i.test(name)) return 'batch-check workers (parse, schema, JCS, Ed25519 verify, hashes)';
  if (/libuv/i.test(name)) return 'libuv pool (gunzip, WebCrypto signing)';
  if (/V8/i.test(name)) return 'V8 helpers (GC, compiler)';
  return `other (${name})`;
}

export interface CpuBreakdown {
  wallSeconds: number;
  cores: number;
  /** CPU seconds per collector thread group (all collector processes together). */
  collector: { [group: string]: number };
  collectorTotal: number;
  /** CPU seconds of each collector process, in the order of the snapshot's pids. */
  collectorByProcess: number[];
  /** CPU seconds of the database server, if counted. */
  database: number | undefined;
  loadGenerator: number;
  /** Busy CPU seconds of the whole machine, and what neither process accounts for. */
  machineBusy: number | undefined;
  otherProcesses: number | undefined;
  steal: number | undefined;
}

export function cpuBreakdown(before: CpuSnapshot, after: CpuSnapshot): CpuBreakdown {
  const collector: { [group: string]: number } = {};
  const byProcess = new Map<number, number>();
  for (const [key, end] of after.threads) {
    const start = before.threads.get(key)?.ticks ?? 0;
    const seconds = (end.ticks - start) / CLOCK_TICKS_PER_SECOND;
    const group = threadGroup(end.name, end.tid === end.pid);
    collector[group] = (collector[group] ?? 0) + seconds;
    byProcess.set(end.pid, (byProcess.get(end.pid) ?? 0) + seconds);
  }
  const collectorTotal = Object.values(collector).reduce((a, b) => a + b, 0);
  const database = before.database !== undefined && after.database !== undefined ? after.database - before.database : undefined;
  const loadGenerator = (after.selfMicros - before.selfMicros) / 1e6;
  let machineBusy: number | undefined;
  let steal: number | undefined;
  if (before.machine && after.machine) {
    machineBusy = (after.machine.busy - before.machine.busy) / CLOCK_TICKS_PER_SECOND;
    steal = (after.machine.steal - before.machine.steal) / CLOCK_TICKS_PER_SECOND;
  }
  return {
    wallSeconds: (after.at - before.at) / 1000,
    cores: availableParallelism(),
    collector,
    collectorTotal,
    collectorByProcess: after.pids.map((pid) => byProcess.get(pid) ?? 0),
    database,
    loadGenerator,
    machineBusy,
    otherProcesses: machineBusy === undefined ? undefined : Math.max(0, machineBusy - collectorTotal - loadGenerator - (database ?? 0)),
    steal,
  };
}

/** How busy the machine is right now, from other processes (0…1 of all cores), over `millis`. */
export async function machineLoad(millis = 1000): Promise<number | undefined> {
  const before = readMachine();
  await new Promise((resolve) => setTimeout(resolve, millis));
  const after = readMachine();
  if (!before || !after) return undefined;
  return (after.busy - before.busy) / (after.total - before.total);
}
