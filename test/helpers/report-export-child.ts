/**
 * Runs one `exportReport` in this process and prints its manifest's counts as JSON: for tests
 * that bound the exporter's memory by running this script with `--max-old-space-size`.
 *
 *   node --max-old-space-size=MIB test/helpers/report-export-child.ts COLLECTOR_DIR OUT_DIR FILTER_JSON
 *
 * Exports against the latest checkpoint into OUT_DIR (created). Exit code 0 only if it finished.
 */
import { mkdirSync } from 'node:fs';
import { loadCollectorConfig } from '../../collector/config.ts';
import { createContainer } from '../../collector/container.ts';
import { exportReport } from '../../collector/services/report/export-report.ts';
import { createLogger } from '../../shared/logger.ts';
import type { ReportFilter } from '../../shared/report/bundle-format.ts';
import { TEST_ORIGIN } from './collector-process.ts';

const [dir, out, filterJson, database] = process.argv.slice(2);
if (!dir || !out || !filterJson) throw new Error('usage: report-export-child.ts COLLECTOR_DIR OUT_DIR FILTER_JSON');
const config = loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: dir, SAKSHYA_COLLECTOR_ORIGIN: TEST_ORIGIN, SAKSHYA_VERIFY_WORKERS: '1', ...(database ? { SAKSHYA_COLLECTOR_DATABASE: database } : {}) });
const container = await createContainer(config, { mode: 'existing', logger: createLogger('export-child', 'silent') });
try {
  const checkpoint = await container.store.latestCheckpoint();
  if (!checkpoint) throw new Error(`${dir} has no checkpoint`);
  mkdirSync(out);
  const { store, publicKeys, keys } = container;
  const { manifest } = await exportReport(
    { store, origin: config.origin, reportKey: keys.receipt, publicKeys },
    { filter: JSON.parse(filterJson) as ReportFilter, checkpointSize: checkpoint.size, dir: out },
  );
  process.stdout.write(`${JSON.stringify(manifest.counts)}\n`);
} finally {
  await container.close();
}
