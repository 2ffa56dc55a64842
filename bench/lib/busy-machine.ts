/**
 * Other processes on the machine (a test run, a build): waiting for them to leave it quiet
 * before measuring, and how much of it they took during a measurement, so that disturbed
 * figures are flagged as such.
 */
import { machineLoad, type CpuBreakdown } from './cpu-accounting.ts';

/** Above this share of all cores busy from other processes, the figures are flagged as disturbed. */
export const BUSY_MACHINE_SHARE = 0.15;
/** How long to wait for other processes (a test run, a build) to leave the machine quiet. */
const QUIET_WAIT_SECONDS = 45;

/** Waits (up to QUIET_WAIT_SECONDS) until other processes leave the CPU mostly idle; the last load seen. */
export async function waitForQuietMachine(): Promise<number | undefined> {
  let load: number | undefined;
  for (let waited = 0; waited < QUIET_WAIT_SECONDS; waited++) {
    load = await machineLoad(1000);
    if (load === undefined || load <= BUSY_MACHINE_SHARE) return load;
    if (waited === 0) process.stderr.write(`bench: ${(load * 100).toFixed(0)} % of the CPU is busy; waiting up to ${QUIET_WAIT_SECONDS} s for it to settle\n`);
  }
  process.stderr.write(`bench: warning: ${((load ?? 0) * 100).toFixed(0)} % of the CPU is still busy (other processes); figures will be low\n`);
  return load;
}

/** Share of all cores that other processes used during a measurement (0 where /proc is absent). */
export function othersBusy(cpu: CpuBreakdown): number {
  return cpu.otherProcesses === undefined ? 0 : cpu.otherProcesses / (cpu.cores * cpu.wallSeconds);
}
