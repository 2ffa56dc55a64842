/**
 * Where the CPU went during a timed phase, from Linux's own accounting (/proc), which costs
 * nothing to measure and does not perturb the run:
 *
 * - per thread of the collector process (/proc/PID/task/TID/stat): the main thread, the
 *   signature workers, libuv's pool (gzip, WebCrypto), V8's helpers (GC, compiler);
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
  name: string;
  ticks: number;
}

export interface CpuSnapshot {
  at: number;
  threads: Map<number, ThreadSample>;
  selfMicros: number;
  machine: { busy: number; total: number; steal: number } | undefined;
}

function readThreads(pid: number | undefined): Map<number, ThreadSample> {
  const threads = new Map<number, ThreadSample>();
  const dir = `/proc/${pid}/task`;
  if (pid === undefined || !existsSync(dir)) return threads;
  for (const tid of readdirSync(dir)) {
    try {
      const stat = readFileSync(`${dir}/${tid}/stat`, 'utf8');
      // "tid (comm) state ppid …": comm may hold spaces; the fields after it are fixed.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
      const name = readFileSync(`${dir}/${tid}/comm`, 'utf8').trim();
      threads.set(Number(tid), { name, ticks });
    } catch {
      // the thread ended between readdir and read
    }
  }
  return threads;
}

function readMachine(): CpuSnapshot['machine'] {
  if (!existsSync('/proc/stat')) return undefined;
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
  const busy = user! + nice! + system! + irq! + softirq!;
  return { busy, total: busy + idle! + iowait! + steal!, steal: steal! };
}

export function cpuSnapshot(pid: number | undefined): CpuSnapshot {
  const usage = process.cpuUsage();
  return { at: performance.now(), threads: readThreads(pid), selfMicros: usage.user + usage.system, machine: readMachine() };
}

/** The role of a collector thread, from the name Node and libuv give it. */
function threadGroup(name: string, isMain: boolean): string {
  if (isMain) return 'main thread (HTTP, body read, SQLite, Merkle, receipts)';
  if (/^WorkerThread|^node-worker|^worker/i.test(name)) return 'batch-check workers (parse, schema, JCS, Ed25519 verify, hashes)';
  if (/libuv/i.test(name)) return 'libuv pool (gunzip, WebCrypto signing)';
  if (/V8/i.test(name)) return 'V8 helpers (GC, compiler)';
  return `other (${name})`;
}

export interface CpuBreakdown {
  wallSeconds: number;
  cores: number;
  /** CPU seconds per collector thread group. */
  collector: { [group: string]: number };
  collectorTotal: number;
  loadGenerator: number;
  /** Busy CPU seconds of the whole machine, and what neither process accounts for. */
  machineBusy: number | undefined;
  otherProcesses: number | undefined;
  steal: number | undefined;
}

export function cpuBreakdown(before: CpuSnapshot, after: CpuSnapshot, mainTid: number | undefined): CpuBreakdown {
  const collector: { [group: string]: number } = {};
  for (const [tid, end] of after.threads) {
    const start = before.threads.get(tid)?.ticks ?? 0;
    const seconds = (end.ticks - start) / CLOCK_TICKS_PER_SECOND;
    const group = threadGroup(end.name, tid === mainTid);
    collector[group] = (collector[group] ?? 0) + seconds;
  }
  const collectorTotal = Object.values(collector).reduce((a, b) => a + b, 0);
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
    loadGenerator,
    machineBusy,
    otherProcesses: machineBusy === undefined ? undefined : Math.max(0, machineBusy - collectorTotal - loadGenerator),
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
