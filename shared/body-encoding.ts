/**
 * Request body encodings (`Content-Encoding`) and the decoded-size limit, for the two places
 * that decode a body: the HTTP reader (collector/http/json-body.ts), which inflates small
 * bodies as they stream in, and the batch-check workers, which inflate a batch themselves.
 *
 * Why a batch is inflated in the worker, in one synchronous call: Node's streaming gunzip hands
 * every 16 KiB of output to the thread pool and back, and a 400 KB batch then cost 6–9 µs of CPU
 * per record (thread pool, stream callbacks, the final concat on the event loop) against
 * 1.2–1.7 µs for `gunzipSync` into one buffer (docs/benchmarks.md). Both stop at the limit: a
 * gzip bomb is never inflated past it.
 */
import { gunzipSync } from 'node:zlib';
import { ProblemError } from './problem.ts';

export const BODY_ENCODINGS = ['identity', 'gzip'] as const;
export type BodyEncoding = (typeof BODY_ENCODINGS)[number];

/** A body as it came over the wire: not yet inflated. */
export interface EncodedBody {
  encoding: BodyEncoding;
  bytes: Uint8Array;
}

export function isBodyEncoding(value: string): value is BodyEncoding {
  return (BODY_ENCODINGS as readonly string[]).includes(value);
}

/** 413 `batch.too_large`; `where` is "on the wire", "after decompression", … */
export function bodyTooLarge(limit: number, where: string): ProblemError {
  return new ProblemError('batch.too_large', `the request body exceeds ${limit} bytes ${where}`, { limit });
}

export function unreadableBody(): ProblemError {
  return new ProblemError('request.malformed', 'the request body could not be read (bad encoding or truncated)');
}

/**
 * The decoded bytes of a body received with `encoding`, at most `limit` of them: gzip is
 * inflated in one call that stops as soon as the output passes `limit` (413
 * `batch.too_large`); a body that does not inflate is 400 `request.malformed`.
 */
export function decodeBody(bytes: Uint8Array, encoding: BodyEncoding, limit: number): Buffer {
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (encoding === 'identity') {
    if (input.length > limit) throw bodyTooLarge(limit, 'after decompression');
    return input;
  }
  try {
    return gunzipSync(input, { maxOutputLength: limit });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw bodyTooLarge(limit, 'after decompression');
    throw unreadableBody();
  }
}
