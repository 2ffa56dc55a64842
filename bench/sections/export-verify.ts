/**
 * The export-verify section: a report bundle of 10^5 records exported and verified, each in a
 * child process (bench/export-verify.ts); verification against the verify rate of the ingest
 * section, or one measured here if the ingest did not run.
 */
import { benchExportVerify } from '../export-verify.ts';
import { phase } from '../lib/phase.ts';
import { MiB, mib } from '../lib/proc-memory.ts';
import { formatNumber } from '../lib/report.ts';
import type { RunContext, Section } from './section.ts';
import { verifyRate } from './verify-reference.ts';

export async function exportVerifySection({ sizes, cleanup, earlier }: RunContext): Promise<Section> {
  const result = await phase(`export and verify a bundle of ${formatNumber(sizes.exportVerify.records)} records`, () => benchExportVerify(sizes.exportVerify, cleanup));
  let reference = earlier.verifyRate;
  let verifyDetails: unknown;
  if (!reference) {
    const rate = await verifyRate('Ed25519 verify rate (1 core, all cores)', sizes.verifyMillis);
    reference = rate;
    verifyDetails = rate;
  }
  const n = formatNumber(result.bundleRecords);
  return {
    rows: [
      { key: 'export.records_per_second', metric: `report export of ${n} records (exportReport, one process)`, value: result.export.recordsPerSecond, unit: 'records/s' },
      { key: 'export.peak_rss_mib', metric: 'report export: peak RSS (VmHWM)', value: mib(result.export.peakRssBytes), unit: 'MiB' },
      {
        key: 'verify.bundle_records_per_second',
        metric: `sakshya-verify of ${n} records`,
        value: result.verify.recordsPerSecond,
        unit: 'records/s',
        reference: { label: 'Ed25519 verify, all cores', value: reference.allCores, unit: 'verifies/s' },
        ratio: result.verify.recordsPerSecond / reference.allCores,
      },
      { key: 'verify.peak_rss_mib', metric: 'sakshya-verify: peak RSS (VmHWM)', value: mib(result.verify.peakRssBytes), unit: 'MiB' },
    ],
    notes: [
      `Export and verify: ${formatNumber(result.recordsFilled)} records appended to a collector's ledger in ${result.fillSeconds.toFixed(1)} s (bench/export-memory.ts); ` +
        `the bundle holds ${n} records (with the collector's own chain), ${formatNumber(result.bundleBytes / MiB)} MiB. Export ${result.export.seconds.toFixed(1)} s ` +
        `(${result.export.cpuSeconds.toFixed(1)} CPU-s), verify ${result.verify.seconds.toFixed(1)} s (${result.verify.threads}; process start-up included).`,
    ],
    details: { ...result, ...(verifyDetails ? { verifyRate: verifyDetails } : {}) },
  };
}
