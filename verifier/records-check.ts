/**
 * Streams records.jsonl and proofs.jsonl side by side, line by line, hands chunks of line pairs
 * to the record pool, and feeds the results in file order to the checks across records (ledger
 * indexes strictly ascending; chain-tracker.ts). At most `maxInFlight` chunks are read ahead of
 * the oldest unfinished one, so memory stays flat however many records the bundle has.
 */
import { join } from 'node:path';
import { BUNDLE_FILES } from '../shared/report/bundle-format.ts';
import type { ChainTracker } from './chain-tracker.ts';
import { LineTooLongError, readLines, type Line } from './line-reader.ts';
import type { ProblemList } from './problems.ts';
import type { ChunkResult, RecordChunk } from './record-check.ts';
import type { RecordPool } from './record-pool.ts';

export const DEFAULT_CHUNK_RECORDS = 512;

export interface RecordsOutcome {
  /** Record lines read. */
  lines: number;
  /** Record lines that passed every check. */
  verified: number;
  byKind: { [kind: string]: number };
}

export async function checkRecordFiles(
  dir: string,
  pool: RecordPool,
  tracker: ChainTracker,
  problems: ProblemList,
  options: { chunkRecords?: number; maxInFlight?: number } = {},
): Promise<RecordsOutcome> {
  const chunkRecords = options.chunkRecords ?? DEFAULT_CHUNK_RECORDS;
  const maxInFlight = options.maxInFlight ?? Math.max(2, pool.threads * 2);
  const outcome: RecordsOutcome = { lines: 0, verified: 0, byKind: {} };
  let lastIndex: { index: number; line: number } | null = null;

  const consume = (result: ChunkResult): void => {
    for (const problem of result.problems) problems.add(problem);
    for (const record of result.records) {
      let found = tracker.add(record);
      if (record.ledgerIndex !== undefined) {
        if (lastIndex !== null && record.ledgerIndex <= lastIndex.index) {
          found++;
          problems.add({
            check: 'records.ledger_order',
            file: BUNDLE_FILES.proofs,
            line: record.line,
            ...(record.id !== undefined ? { id: record.id } : {}),
            expected: `> ${lastIndex.index}`,
            found: record.ledgerIndex,
            message: `ledger index not above line ${lastIndex.line}'s: records must be in strictly ascending ledger order (records reordered or repeated)`,
          });
        }
        lastIndex = { index: record.ledgerIndex, line: record.line };
      }
      if (record.kind !== undefined) outcome.byKind[record.kind] = (outcome.byKind[record.kind] ?? 0) + 1;
      if (record.problems + found === 0) outcome.verified++;
    }
  };

  const inFlight: Promise<ChunkResult>[] = [];
  // (line, newline) pairs of the chunk being filled.
  let pendingRecords: Buffer[] = [];
  let pendingProofs: Buffer[] = [];
  let firstLine = 1;
  const flush = async (): Promise<void> => {
    if (pendingRecords.length === 0) return;
    const count = pendingRecords.length / 2;
    const chunk: RecordChunk = { firstLine, count, records: Buffer.concat(pendingRecords), proofs: Buffer.concat(pendingProofs) };
    firstLine += count;
    pendingRecords = [];
    pendingProofs = [];
    inFlight.push(pool.check(chunk));
    if (inFlight.length >= maxInFlight) consume(await inFlight.shift()!);
  };

  const NL = Buffer.from('\n');
  const recordsPath = join(dir, BUNDLE_FILES.records);
  const proofs = readLines(join(dir, BUNDLE_FILES.proofs));
  let proofsDone = false;
  let missingProofsFrom: number | null = null;
  const unterminated = (file: string, line: Line): void =>
    problems.add({ check: 'file.no_final_newline', file, line: line.number, message: 'the last line does not end with a newline: the file was cut short or edited' });

  try {
    for await (const line of readLines(recordsPath)) {
      outcome.lines++;
      if (!line.terminated) unterminated(BUNDLE_FILES.records, line);
      let proofLine: Line | undefined;
      if (!proofsDone) {
        const next = await proofs.next();
        if (next.done) proofsDone = true;
        else proofLine = next.value;
      }
      if (proofLine) {
        if (!proofLine.terminated) unterminated(BUNDLE_FILES.proofs, proofLine);
        pendingProofs.push(Buffer.from(proofLine.bytes), NL);
      } else {
        missingProofsFrom ??= line.number;
      }
      pendingRecords.push(Buffer.from(line.bytes), NL);
      if (pendingRecords.length / 2 >= chunkRecords) await flush();
    }
    await flush();
    let extra = 0;
    let firstExtra = 0;
    if (!proofsDone) {
      for await (const line of { [Symbol.asyncIterator]: () => proofs }) {
        extra++;
        if (firstExtra === 0) firstExtra = line.number;
      }
    }
    if (extra > 0) {
      problems.add({ check: 'proofs.extra_lines', file: BUNDLE_FILES.proofs, line: firstExtra, expected: outcome.lines, found: outcome.lines + extra, message: `proofs.jsonl has ${extra} more line(s) than records.jsonl: a record was removed without its proof, or proofs were added` });
    }
    if (missingProofsFrom !== null) {
      problems.add({ check: 'proofs.missing_lines', file: BUNDLE_FILES.proofs, line: missingProofsFrom, expected: outcome.lines, found: missingProofsFrom - 1, message: `proofs.jsonl ends before records.jsonl: records from line ${missingProofsFrom} on have no proof` });
    }
  } catch (err) {
    if (!(err instanceof LineTooLongError)) throw err;
    const file = err.path === recordsPath ? BUNDLE_FILES.records : BUNDLE_FILES.proofs;
    problems.add({ check: 'file.line_too_long', file, line: err.line, message: `${err.message}; the rest of the records were not checked` });
  } finally {
    while (inFlight.length > 0) consume(await inFlight.shift()!);
    await proofs.return(undefined);
  }
  return outcome;
}
