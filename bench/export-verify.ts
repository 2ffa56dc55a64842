/**
 * Export and verify a report bundle.
 *
 * 1. Export: `measureExport` (bench/export-memory.ts) fills a temporary collector with N signed,
 *    chained records of 20 simulated agents through the collector's own `LedgerService.append`
 *    (records, Merkle subtrees and a signed checkpoint per batch, as ingest writes them), then
 *    runs `exportReport` over the whole range in a child process that reports its own wall time,
 *    CPU time and peak RSS (VmHWM).
 * 2. Verify: `sakshya-verify BUNDLE --collector-key KEY --json` in a child process (its default
 *    worker pool: one thread per core), its VmHWM sampled every 20 ms. The key file is the
 *    `collector` member of the bundle's keys.json, standing in for the keys an auditor obtains
 *    out of band (here we trust our own collector); the verdict must be `ok` with every record
 *    verified. Its time includes process start-up (≈ 0.3 s), as an auditor sees it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VERIFY_BIN } from '../test/helpers/verifier-process.ts';
import { measureExport } from './export-memory.ts';
import type { Cleanup } from './lib/cleanup.ts';
import { MiB } from './lib/proc-memory.ts';
import { runSampled } from './lib/sampled-child.ts';

export interface ExportVerifyOptions {
  records: number;
  timeoutMs: number;
}

export interface ExportVerifyResult {
  /** Workload records filled into the ledger. */
  recordsFilled: number;
  fillSeconds: number;
  /** Records in the bundle (the agents' and the collector's own chain), as sakshya-verify counted them. */
  bundleRecords: number;
  bundleBytes: number;
  export: { seconds: number; cpuSeconds: number; recordsPerSecond: number; peakRssBytes: number };
  verify: { seconds: number; recordsPerSecond: number; peakRssBytes: number | undefined; threads: string };
}

/** The environment of a child command: this process's without SAKSHYA_* settings. */
function childEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('SAKSHYA_')) env[name] = value;
  return env;
}

export async function benchExportVerify(options: ExportVerifyOptions, cleanup: Cleanup): Promise<ExportVerifyResult> {
  const exported = await measureExport(options.records, cleanup);
  const bundle = exported.bundleDir!;

  const keysFile = join(cleanup.tempDir('sakshya-bench-verify-'), 'collector-key.json');
  const { collector } = JSON.parse(readFileSync(join(bundle, 'keys.json'), 'utf8')) as { collector: unknown };
  writeFileSync(keysFile, JSON.stringify(collector));

  const verified = await runSampled(process.execPath, [VERIFY_BIN, bundle, '--collector-key', keysFile, '--json'], childEnv(), cleanup, options.timeoutMs);
  let verdict: { ok?: boolean; records?: { total: number; verified: number } } = {};
  try {
    verdict = JSON.parse(verified.stdout) as typeof verdict;
  } catch {
    // reported below with the exit code
  }
  const records = verdict.records;
  if (verified.code !== 0 || verdict.ok !== true || !records || records.verified !== records.total || records.total < options.records) {
    throw new Error(`sakshya-verify did not accept the bundle (exit ${verified.code}): ${verified.stdout.slice(0, 1000)} ${verified.stderr.slice(-1000)}`);
  }
  return {
    recordsFilled: options.records,
    fillSeconds: exported.fillSeconds,
    bundleRecords: records.total,
    bundleBytes: exported.bundleBytes,
    export: {
      seconds: exported.seconds,
      cpuSeconds: exported.cpuSeconds,
      recordsPerSecond: records.total / exported.seconds,
      peakRssBytes: exported.peakRssMiB * MiB,
    },
    verify: {
      seconds: verified.seconds,
      recordsPerSecond: records.total / verified.seconds,
      peakRssBytes: verified.peakRssBytes,
      threads: 'default: one per core',
    },
  };
}
