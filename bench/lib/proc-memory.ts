/**
 * Peak memory of a child process from /proc/<pid>/status: `VmHWM` is the kernel's own high-water
 * mark of the resident set, so one read at the end gives the true peak; for a child that exits
 * by itself (a CLI), a sampler reads it periodically and keeps the last value seen before exit.
 * Linux only: elsewhere the figures are undefined and the benchmarks say so.
 */
import { readFileSync } from 'node:fs';

/** `VmHWM` (peak RSS) and `VmRSS` (current) in bytes, or undefined once the process is gone. */
export function readProcessMemory(pid: number): { peakBytes: number; rssBytes: number } | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kib = (name: string) => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
    return match ? Number(match[1]) * 1024 : undefined;
  };
  const peakBytes = kib('VmHWM');
  const rssBytes = kib('VmRSS');
  return peakBytes === undefined || rssBytes === undefined ? undefined : { peakBytes, rssBytes };
}

/** Reads a process's VmHWM every `intervalMs` until stopped; the highest value seen. */
export class PeakRssSampler {
  readonly #pid: number;
  readonly #timer: NodeJS.Timeout;
  #peak: number | undefined;

  constructor(pid: number, intervalMs = 50) {
    this.#pid = pid;
    this.sample();
    this.#timer = setInterval(() => this.sample(), intervalMs);
  }

  sample(): number | undefined {
    const memory = readProcessMemory(this.#pid);
    if (memory && (this.#peak === undefined || memory.peakBytes > this.#peak)) this.#peak = memory.peakBytes;
    return this.#peak;
  }

  /** Stops sampling (a last read first, if the process is still there); the peak in bytes. */
  stop(): number | undefined {
    this.sample();
    clearInterval(this.#timer);
    return this.#peak;
  }
}

export const MiB = 1024 * 1024;

/** Bytes in MiB, for the table; NaN where the figure is absent. */
export const mib = (bytes: number | undefined) => (bytes === undefined ? NaN : bytes / MiB);
