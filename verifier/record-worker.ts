/**
 * Worker-thread entry of the record pool (record-pool.ts): the bundle-wide context arrives once,
 * as piscina's workerData, and each task is one chunk of lines.
 */
import { workerData } from 'piscina';
import { checkRecordChunk, type ChunkResult, type RecordCheckContext, type RecordChunk } from './record-check.ts';

const context = workerData as RecordCheckContext;

export default function checkChunk(chunk: RecordChunk): ChunkResult {
  return checkRecordChunk(context, chunk);
}
