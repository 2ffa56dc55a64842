/**
 * The Ed25519 verify rate as the reference of the ingest ratio: measured just before and just
 * after each ingest run, with how busy other processes kept the machine meanwhile.
 */
import { measureEd25519VerifyRate } from '../ed25519-verify-rate.ts';
import { BUSY_MACHINE_SHARE, othersBusy } from '../lib/busy-machine.ts';
import { cpuBreakdown, cpuSnapshot } from '../lib/cpu-accounting.ts';
import { phase } from '../lib/phase.ts';

/** Above this change of the verify rate from before to after the ingest, the machine's speed drifted. */
export const DRIFT_LIMIT = 0.1;

/** The verify rate, and how busy other processes kept the machine meanwhile. */
export async function verifyRate(label: string, millis: number) {
  const before = cpuSnapshot(undefined);
  const rate = await phase(label, () => measureEd25519VerifyRate(millis));
  return { ...rate, othersBusy: othersBusy(cpuBreakdown(before, cpuSnapshot(undefined))) };
}

export type MeasuredVerifyRate = Awaited<ReturnType<typeof verifyRate>>;

/**
 * The verify-rate reference for one ingest run, from the measurements just before and just after
 * it: a shared or virtual machine's speed drifts, and the ratio must compare like with like. The
 * reference is the mean of the measurements that other processes left undisturbed (of both, if
 * neither was).
 */
export function verifyReference(before: MeasuredVerifyRate, after: MeasuredVerifyRate) {
  const clean = [before, after].filter((rate) => rate.othersBusy <= BUSY_MACHINE_SHARE);
  const used = clean.length > 0 ? clean : [before, after];
  return {
    cores: before.cores,
    perCore: used.reduce((sum, rate) => sum + rate.perCore, 0) / used.length,
    allCores: used.reduce((sum, rate) => sum + rate.allCores, 0) / used.length,
    /** Relative change of the all-cores rate from before to after the ingest, if both were undisturbed. */
    drift: clean.length === 2 ? after.allCores / before.allCores - 1 : 0,
    /** Whether other processes disturbed every verify measurement. */
    disturbed: clean.length === 0,
    /** Which measurements the reference uses. */
    used: clean.length === 1 ? (clean[0] === before ? 'before' : 'after') : 'both',
    before,
    after,
  };
}

export type VerifyReference = ReturnType<typeof verifyReference>;
