/**
 * The timed collector ingest, run several times taking turns with verify-rate measurements
 * (verify, ingest, verify, ingest, …, verify; each ingest against the two around it), and the
 * run to report chosen from them.
 */
import { benchCollectorIngest, type IngestResult } from '../collector-ingest.ts';
import { BUSY_MACHINE_SHARE, othersBusy, waitForQuietMachine } from '../lib/busy-machine.ts';
import { phase } from '../lib/phase.ts';
import type { RunContext } from './section.ts';
import { DRIFT_LIMIT, verifyRate, verifyReference, type MeasuredVerifyRate, type VerifyReference } from './verify-reference.ts';

export interface IngestRun {
  verify: VerifyReference;
  ingest: IngestResult;
  ratio: number;
  disturbance: number;
}

/**
 * 0 for a clean measurement; above 0, how far other processes (during the ingest or during
 * both verify measurements) or a drift of the machine's speed disturbed it.
 */
function disturbance(verify: { drift: number; disturbed: boolean; before: { othersBusy: number } }, ingest: IngestResult): number {
  return (
    Math.max(0, othersBusy(ingest.cpu) - BUSY_MACHINE_SHARE) +
    (verify.disturbed ? verify.before.othersBusy : 0) +
    Math.max(0, Math.abs(verify.drift) - DRIFT_LIMIT)
  );
}

/** Which ingest to run: the default is the SQLite collector of the `ingest` benchmark. */
export interface IngestVariant {
  /** Names the runs in the progress lines. */
  label: string;
  /** Agent id prefix of run N is `${idPrefix}${N}`: ids are never reused within one process. */
  idPrefix: string;
  run: (idPrefix: string) => Promise<IngestResult>;
}

/**
 * Three ingest runs (one with `--quick`). The reported run is the one with the median ratio
 * among the undisturbed runs: a virtual machine's speed moves within minutes, and single runs
 * of the same code differ widely (docs/benchmarks.md); one run decides nothing. If every run
 * was disturbed, one more is made once the machine is quiet.
 */
export async function ingestRuns({ sizes, quick, cleanup }: RunContext, variant?: IngestVariant): Promise<{ chosen: IngestRun; runs: IngestRun[] }> {
  const { label: name, idPrefix: prefix, run } = variant ?? {
    label: 'collector ingest, end to end',
    idPrefix: 'BN-IN',
    run: (idPrefix: string) => benchCollectorIngest({ ...sizes.ingest, idPrefix }, cleanup),
  };
  const ingestRunCount = quick ? 1 : 3;
  const runs: IngestRun[] = [];
  const measure = async (before: MeasuredVerifyRate, label: string, idPrefix: string) => {
    const ingest = await phase(`${name}${label}`, () => run(idPrefix));
    const after = await verifyRate(`Ed25519 verify rate again${label}`, sizes.verifyMillis);
    const verify = verifyReference(before, after);
    runs.push({ verify, ingest, ratio: ingest.recordsPerSecond / verify.allCores, disturbance: disturbance(verify, ingest) });
    return after;
  };
  let before = await verifyRate('Ed25519 verify rate (1 core, all cores)', sizes.verifyMillis);
  for (let i = 1; i <= ingestRunCount; i++) before = await measure(before, ingestRunCount > 1 ? ` (run ${i} of ${ingestRunCount})` : '', `${prefix}${i}`);
  if (runs.every((run) => run.disturbance > 0)) {
    process.stderr.write('bench: the machine was busy or drifted during every ingest run; waiting for quiet and measuring once more\n');
    await waitForQuietMachine();
    await measure(await verifyRate('Ed25519 verify rate (extra run)', sizes.verifyMillis), ' (extra run)', `${prefix}X`);
  }
  const clean = runs.filter((run) => run.disturbance === 0);
  const candidates = (clean.length > 0 ? clean : runs).toSorted((a, b) => a.ratio - b.ratio);
  const chosen = candidates[Math.floor((candidates.length - 1) / 2)]!;
  // The other runs' records are not needed (the storage baselines replay the chosen run's).
  for (const run of runs) if (run !== chosen) run.ingest.timedBatches = [];
  return { chosen, runs };
}
