/** The catch-up section: a day's backlog of one office drained through the fault proxy at 256 kbit/s (bench/catch-up.ts). */
import { benchCatchUp } from '../catch-up.ts';
import { BUSY_MACHINE_SHARE, othersBusy } from '../lib/busy-machine.ts';
import { cpuBreakdown, cpuSnapshot } from '../lib/cpu-accounting.ts';
import { phase } from '../lib/phase.ts';
import { formatNumber } from '../lib/report.ts';
import type { RunContext, Section } from './section.ts';

export async function catchUpSection({ sizes, cleanup, earlier }: RunContext): Promise<Section> {
  const load = cpuSnapshot(undefined);
  const result = await phase(`catch-up: an office's day through a ${formatNumber((sizes.catchUp.bytesPerSecond * 8) / 1000)} kbit/s link`, () =>
    benchCatchUp(sizes.catchUp, cleanup),
  );
  const busy = othersBusy(cpuBreakdown(load, cpuSnapshot(undefined)));
  earlier.catchUp = result;
  const kbit = formatNumber((result.bytesPerSecond * 8) / 1000);
  const { canonicalLines: _lines, ...details } = result;
  return {
    rows: [
      {
        key: 'catchup.seconds',
        metric: `catch-up: ${formatNumber(result.records)} records of a day at ${kbit} kbit/s`,
        value: result.drainSeconds,
        unit: 's',
        reference: { label: 'bytes to collector ÷ link rate', value: result.limitSeconds, unit: 's' },
        ratio: result.drainSeconds / result.limitSeconds,
        target: { op: '<=', value: 1.2 },
      },
      { key: 'catchup.records_per_second', metric: 'catch-up: records acknowledged per second', value: result.recordsPerSecond, unit: 'records/s' },
      {
        key: 'catchup.wire_bytes_per_record',
        metric: 'catch-up: bytes on the wire per record (both ways)',
        value: result.wireBytesPerRecord,
        unit: 'B',
        reference: { label: 'raw JSON of one record', value: result.rawBytesPerRecord, unit: 'B' },
        ratio: result.wireBytesPerRecord / result.rawBytesPerRecord,
        target: { op: '<=', value: 0.5 },
      },
    ],
    notes: [
      `Catch-up: ${formatNumber(result.records)} records (${formatNumber(result.auditRecords)} audit events in office hours + ` +
        `${formatNumber(result.telemetryRecords)} telemetry, one every ${sizes.catchUp.telemetryEveryMinutes} min for 24 h), ` +
        `${formatNumber(result.rawBytesPerRecord)} B of canonical JSON each (${formatNumber(result.rawJsonBytes / 1e6)} MB), ` +
        `buffered through the local API in ${result.fillSeconds.toFixed(1)} s with the collector unreachable; then drained in ` +
        `${result.drainSeconds.toFixed(1)} s over ${result.connections} connection(s): ${formatNumber(result.bytesToCollector)} B to the collector, ` +
        `${formatNumber(result.bytesToAgent)} B back (TCP payload as counted by the proxy).` +
        (busy > BUSY_MACHINE_SHARE ? `  Other processes took ${(busy * 100).toFixed(0)} % of the CPU meanwhile.` : ''),
    ],
    details: { ...details, othersBusy: busy },
    disturbed: busy > BUSY_MACHINE_SHARE,
  };
}
