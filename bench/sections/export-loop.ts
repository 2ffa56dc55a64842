/**
 * The export-loop section: the collector's event loop and /healthz while a 10^5-record export
 * runs, against the same collector idle; and, for comparison, with the export on the event loop
 * itself (bench/export-loop.ts).
 */
import { benchExportLoop, exportLoopReport } from '../export-loop.ts';
import { BUSY_MACHINE_SHARE, othersBusy } from '../lib/busy-machine.ts';
import { cpuBreakdown, cpuSnapshot } from '../lib/cpu-accounting.ts';
import { phase } from '../lib/phase.ts';
import { formatNumber } from '../lib/report.ts';
import type { RunContext, Section } from './section.ts';

export async function exportLoopSection({ sizes, cleanup }: RunContext): Promise<Section> {
  const { records } = sizes.exportLoop;
  const load = cpuSnapshot(undefined);
  const result = await phase(`the collector's event loop and /healthz during an export of ${formatNumber(records)} records`, () => benchExportLoop(sizes.exportLoop, cleanup));
  const busy = othersBusy(cpuBreakdown(load, cpuSnapshot(undefined)));
  const { rows, notes } = exportLoopReport(result);
  if (busy > BUSY_MACHINE_SHARE) notes.push(`  Other processes took ${(busy * 100).toFixed(0)} % of the CPU meanwhile.`);
  return {
    rows,
    notes,
    details: { ...result, othersBusy: busy },
    disturbed: busy > BUSY_MACHINE_SHARE,
  };
}
