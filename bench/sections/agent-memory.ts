/** The agent-memory section: peak RSS of the real agent draining backlogs of 10^4 and 10^6 records on loopback (bench/agent-memory.ts). */
import { benchAgentMemory, MID_DRAIN_RECORDS } from '../agent-memory.ts';
import { phase } from '../lib/phase.ts';
import { MiB, mib } from '../lib/proc-memory.ts';
import { formatNumber, type Row } from '../lib/report.ts';
import type { RunContext, Section } from './section.ts';

export async function agentMemorySection({ sizes, cleanup }: RunContext): Promise<Section> {
  const { backlogs } = sizes.agentMemory;
  const drains = await phase(`agent memory: draining backlogs of ${backlogs.map(formatNumber).join(' and ')} records`, () =>
    benchAgentMemory(sizes.agentMemory, cleanup, (line) => process.stderr.write(`${line} … `)),
  );
  const small = drains[0]!;
  const rows: Row[] = [];
  for (const drain of drains) {
    const vsSmall = drain !== small;
    rows.push({
      key: `agent_memory.peak_rss_mib.${drain.records}`,
      metric: `agent peak RSS (VmHWM), backlog of ${formatNumber(drain.records)}${drain.drained < drain.records ? `, first ${formatNumber(drain.drained)} drained` : ''}`,
      value: mib(drain.peakRssBytes),
      unit: 'MiB',
      ...(vsSmall
        ? {
            reference: { label: `backlog of ${formatNumber(small.records)}`, value: mib(small.peakRssBytes), unit: 'MiB' },
            ratio: mib(drain.peakRssBytes) / mib(small.peakRssBytes),
            target: { op: '<=' as const, value: 1.5 },
          }
        : {}),
    });
  }
  for (const drain of drains) {
    if (drain.midDrainPeakBytes === undefined || drain.drained < drain.records) continue;
    // Flat means: no growth with the backlog once the drain is under way.
    rows.push({
      key: `agent_memory.peak_rss_growth_after_mid_drain.${drain.records}`,
      metric: `agent peak RSS, backlog of ${formatNumber(drain.records)}: at the end vs after ${formatNumber(MID_DRAIN_RECORDS)}`,
      value: mib(drain.peakRssBytes),
      unit: 'MiB',
      reference: { label: `after ${formatNumber(MID_DRAIN_RECORDS)} drained`, value: mib(drain.midDrainPeakBytes), unit: 'MiB' },
      ratio: mib(drain.peakRssBytes) / mib(drain.midDrainPeakBytes),
      target: { op: '<=' as const, value: 1.1 },
    });
  }
  for (const drain of drains) {
    const vsSmall = drain !== small;
    rows.push({
      key: `agent_memory.drain_records_per_second.${drain.records}`,
      metric: `agent drain rate, backlog of ${formatNumber(drain.records)} (loopback)`,
      value: drain.drainRecordsPerSecond,
      unit: 'records/s',
      ...(vsSmall ? { reference: { label: `backlog of ${formatNumber(small.records)}`, value: small.drainRecordsPerSecond, unit: 'records/s' }, ratio: drain.drainRecordsPerSecond / small.drainRecordsPerSecond } : {}),
    });
  }
  return {
    rows,
    notes: drains.map(
      (drain) =>
        `Agent memory, backlog of ${formatNumber(drain.records)}: outbox filled in ${drain.fillSeconds.toFixed(1)} s (${formatNumber(drain.fillRecordsPerSecond)} records/s, ` +
        `${formatNumber(drain.outboxBytes / MiB)} MiB file), ${formatNumber(drain.drained)} records drained in ${drain.drainSeconds.toFixed(1)} s; VmHWM ${formatNumber(mib(drain.startPeakBytes))} MiB at start, ` +
        (drain.midDrainPeakBytes === undefined ? '' : `${formatNumber(mib(drain.midDrainPeakBytes))} MiB after ${formatNumber(MID_DRAIN_RECORDS)} drained, `) +
        `${formatNumber(mib(drain.peakRssBytes))} MiB at the end, VmRSS ${formatNumber(mib(drain.endRssBytes))} MiB at the end.`,
    ),
    details: { drains },
  };
}
