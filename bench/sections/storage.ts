/**
 * The `storage` benchmark: bytes on disk per record on SQLite and on PostgreSQL
 * (bench/storage-cost.ts), in full batches and in one-record batches, the table it comes from,
 * and what that makes for a state that sends 15 million records a day.
 */
import { bytesPerRecord, LEDGER_TABLES, measureStorage, type BackendStorage } from '../storage-cost.ts';
import { phase } from '../lib/phase.ts';
import { formatBytes, formatCount, formatNumber, type Row } from '../lib/report.ts';
import type { RunContext, Section } from './section.ts';

/** The projection's daily volume: a state's offices together. */
export const RECORDS_PER_DAY = 15_000_000;

/** Whole bytes; the model's noise (a few bytes either way) shows as such, not as 1e-17. */
const wholeBytes = (bytes: number) => `${formatCount(bytes)} B`;

function backendRows(result: BackendStorage, key: string): Row[] {
  const { model, full, small, canonicalBytesPerRecord } = result;
  const name = result.backend;
  const rows: Row[] = [];
  for (const batchSize of [full.records / full.batches, small.records / small.batches]) {
    rows.push({
      key: `storage.${key}.bytes_per_record_batch_${batchSize}`,
      metric: `${name}: bytes on disk per record, batches of ${batchSize} (records, Merkle nodes, checkpoints, receipts, with indexes)`,
      value: bytesPerRecord(model, batchSize),
      unit: 'B',
      reference: { label: 'canonical JSON of a record', value: canonicalBytesPerRecord, unit: 'B' },
      ratio: bytesPerRecord(model, batchSize) / canonicalBytesPerRecord,
    });
  }
  if (result.afterFull.walBytes !== undefined && result.empty.walBytes !== undefined && result.afterSmall.walBytes !== undefined) {
    rows.push(
      {
        key: `storage.${key}.wal_bytes_per_record_batch_${full.records / full.batches}`,
        metric: `${name}: WAL written per record, batches of ${full.records / full.batches}`,
        value: (result.afterFull.walBytes - result.empty.walBytes) / full.records,
        unit: 'B',
      },
      {
        key: `storage.${key}.wal_bytes_per_record_batch_${small.records / small.batches}`,
        metric: `${name}: WAL written per record, batches of ${small.records / small.batches}`,
        value: (result.afterSmall.walBytes - result.afterFull.walBytes) / small.records,
        unit: 'B',
      },
    );
  }
  const size = small.records / small.batches;
  rows.push(
    {
      key: `storage.${key}.write_lock_ms_per_small_batch`,
      metric: `${name}: write lock held per ${size}-record batch, all agents at once (commit included)`,
      value: result.smallBatchLock.heldMsPerTransaction,
      unit: 'ms',
    },
    {
      key: `storage.${key}.write_lock_ms_per_small_batch_alone`,
      metric: `${name}: write lock held per ${size}-record batch, one agent alone`,
      value: result.serialSmallBatchLock.heldMsPerTransaction,
      unit: 'ms',
    },
    {
      key: `storage.${key}.small_batch_ceiling`,
      metric: `${name}: ${size}-record batches a second the single writer can take (1000 ÷ ms alone)`,
      value: 1000 / result.serialSmallBatchLock.heldMsPerTransaction,
      unit: 'batches/s',
    },
  );
  return rows;
}

function backendNotes(result: BackendStorage): string[] {
  const { model, full, small } = result;
  const sizes = [full.records / full.batches, small.records / small.batches];
  const lines = [
    `${result.database ? `${result.database.version} (${result.database.source})` : result.backend}: ${formatCount(full.records)} records in ${formatCount(full.batches)} batches ` +
      `(${full.seconds.toFixed(1)} s), then ${formatCount(small.records)} in ${formatCount(small.batches)} batches (${small.seconds.toFixed(1)} s, ` +
      `${formatNumber(small.batches / small.seconds)} batches/s). ` +
      `The database in all: ${formatBytes(result.empty.totalBytes)} after enrollment, ${formatBytes(result.afterFull.totalBytes)} after the full batches ` +
      `(${formatCount((result.afterFull.totalBytes - result.empty.totalBytes) / full.records)} B/record), ${formatBytes(result.afterSmall.totalBytes)} after the small ones.`,
    `  bytes = per record + per batch ÷ batch size (solved from the two phases; indexes included; in brackets, a table's indexes after the full batches):`,
  ];
  for (const table of [...LEDGER_TABLES, 'other']) {
    const index = table === 'other' ? undefined : result.afterFull.indexes[table];
    lines.push(
      `    ${table.padEnd(16)} ${wholeBytes(model.perRecord[table]!).padStart(7)}/record + ${wholeBytes(model.perBatch[table]!).padStart(7)}/batch` +
        `  → ${sizes.map((size) => `${wholeBytes(bytesPerRecord(model, size, [table])).padStart(7)} at ${size}`).join(', ')}` +
        (index !== undefined ? `  [indexes ${formatBytes(index)} of ${formatBytes(result.afterFull.tables[table]!)}]` : ''),
    );
  }
  lines.push(
    `  ${formatNumber(RECORDS_PER_DAY / 1e6)} million records a day: ` +
      sizes
        .map((size) => {
          const perDay = bytesPerRecord(model, size) * RECORDS_PER_DAY;
          return `batches of ${size}: ${formatBytes(perDay)}/day, ${formatBytes(perDay * 365)}/year`;
        })
        .join('; ') +
      ' (ledger tables; "other" — agents, JWT ids, fleet — does not grow with the ledger).',
  );
  return lines;
}

export async function storageSection(context: RunContext): Promise<Section> {
  const { sizes, cleanup } = context;
  const results: BackendStorage[] = [];
  results.push(
    await phase(`storage per record on SQLite (${formatNumber(sizes.storage.records)} + ${formatNumber(sizes.storage.small.records)} records)`, () =>
      measureStorage(sizes.storage, cleanup, undefined, 'BN-SQ'),
    ),
  );
  const available = await context.postgres();
  const notes: string[] = [];
  if (available.server) {
    const server = available.server;
    results.push(
      await phase(`storage per record on PostgreSQL (${formatNumber(sizes.storage.records)} + ${formatNumber(sizes.storage.small.records)} records)`, () =>
        measureStorage(sizes.storage, cleanup, server, 'BN-SP'),
      ),
    );
  } else {
    notes.push(`storage on PostgreSQL: skipped: ${available.skipped}`);
  }
  const rows = results.flatMap((result) => backendRows(result, result.backend === 'SQLite' ? 'sqlite' : 'pg'));
  notes.push(`Bytes on disk per record (${sizes.storage.agents} agents; the workload's records, ${formatNumber(results[0]!.canonicalBytesPerRecord)} B of canonical JSON each):`);
  for (const result of results) notes.push(...backendNotes(result));
  return {
    rows,
    notes,
    details: Object.fromEntries(results.map((result) => [result.backend === 'SQLite' ? 'sqlite' : 'postgres', result])),
  };
}
