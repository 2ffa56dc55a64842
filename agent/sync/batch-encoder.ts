/**
 * Encodes a batch for the wire: `{ batchId, agent, epoch, records, backlog, witness? }` as JSON,
 * then gzip. `witness` is the newest checkpoint this agent verified (agent/witness/), if any.
 * Records are spliced in as their stored canonical text, never parsed and re-serialised, so the
 * bytes sent are the bytes signed, and encoding costs one string concatenation.
 */
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { Backlog } from '../../shared/protocol.ts';

const gzipAsync = promisify(gzip);

export interface BatchEnvelope {
  batchId: string;
  agent: string;
  epoch: number;
  backlog: Backlog;
  witness?: { size: number; root: string } | undefined;
}

/** JSON text of a batch whose `records` are the given canonical record texts. */
export function encodeBatchJson(envelope: BatchEnvelope, canonicalRecords: readonly string[]): string {
  return (
    `{"batchId":${JSON.stringify(envelope.batchId)},"agent":${JSON.stringify(envelope.agent)},"epoch":${envelope.epoch},` +
    `"records":[${canonicalRecords.join(',')}],"backlog":${JSON.stringify(envelope.backlog)}` +
    (envelope.witness ? `,"witness":${JSON.stringify({ size: envelope.witness.size, root: envelope.witness.root })}` : '') +
    '}'
  );
}

/** gzip of the batch JSON (off the event loop's critical path: zlib runs on the thread pool). */
export async function gzipBatch(json: string): Promise<Buffer> {
  return gzipAsync(Buffer.from(json, 'utf8'));
}
