/**
 * JSON request bodies, read by hand so that every limit holds while the bytes arrive:
 * - `Content-Type: application/json`, `Content-Encoding` identity or gzip; others are 415.
 * - The bytes on the wire are counted (`compressedLimit`): a `Content-Length` over it is
 *   refused before one byte is read, and a chunked body is cut off as soon as it passes it.
 * - The decoded bytes are counted (`limit`): a gzip bomb is cut off after `limit` bytes of
 *   output, never inflated to the end (413 `batch.too_large`). `jsonBody` inflates as the
 *   bytes arrive; `encodedJsonBody` (batches) leaves the inflating, under the same limit, to
 *   the consumer (shared/body-encoding.ts says why).
 * - Nesting depth is checked on the text before `JSON.parse` (at most MAX_JSON_DEPTH levels):
 *   400 `request.malformed`, before any schema runs.
 * - A body that does not inflate or parse is 400 `request.malformed`.
 * After a refusal the rest of the body (at most `compressedLimit` bytes) is read and dropped,
 * so the client sees the answer instead of a reset connection; past that the connection is
 * closed.
 */
import { Transform, type TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { bodyTooLarge, isBodyEncoding, unreadableBody, type EncodedBody } from '../../shared/body-encoding.ts';
import { MAX_JSON_DEPTH, parseJsonText } from '../../shared/json-text.ts';
import { ProblemError } from '../../shared/problem.ts';

export { jsonDepthExceeds, MAX_JSON_DEPTH } from '../../shared/json-text.ts';

export interface JsonBodyLimits {
  /** Most bytes after decompression. */
  limit: number;
  /** Most bytes on the wire; defaults to `limit`. */
  compressedLimit?: number;
  /** Deepest nesting of arrays and objects; defaults to MAX_JSON_DEPTH. */
  maxDepth?: number;
}

/** Counts bytes through it and fails as soon as more than `limit` passed. */
class ByteLimit extends Transform {
  bytes = 0;
  readonly #limit: number;
  readonly #error: () => Error;
  constructor(limit: number, error: () => Error) {
    super();
    this.#limit = limit;
    this.#error = error;
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.#limit) callback(this.#error());
    else callback(null, chunk);
  }
}

/**
 * Reads `req` through the limits; resolves with the decoded bytes, or with the bytes as sent if
 * `inflate` is false (gzip is then only counted on the wire; identity against both limits).
 */
export async function readLimitedBody(
  req: NodeJS.ReadableStream & { headers?: { [name: string]: unknown } },
  encoding: string,
  limits: Required<JsonBodyLimits>,
  inflate = true,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  const wire = new ByteLimit(limits.compressedLimit, () => bodyTooLarge(limits.compressedLimit, 'on the wire'));
  const decoded = new ByteLimit(limits.limit, () => bodyTooLarge(limits.limit, 'after decompression'));
  // `req` is piped, not part of the pipeline: a failure must not destroy the request (and its
  // socket) before the answer is sent. The caller drains or closes it.
  // A client that goes away mid-body: `pipe` does not forward that, so end the pipeline here.
  let aborted = false;
  const onAborted = () => {
    if (aborted) return;
    aborted = true;
    wire.destroy(new ProblemError('request.malformed', 'the request body was cut off'));
  };
  const onClose = () => {
    if (!(req as { readableEnded?: boolean }).readableEnded) onAborted();
  };
  req.once('aborted', onAborted);
  req.once('error', onAborted);
  req.once('close', onClose);
  req.pipe(wire);
  try {
    if (encoding === 'gzip' && inflate) await pipeline(wire, createGunzip(), decoded, sink);
    else if (encoding === 'gzip') await pipeline(wire, sink);
    else await pipeline(wire, decoded, sink);
  } catch (err) {
    req.unpipe(wire);
    if (err instanceof ProblemError) throw err;
    throw unreadableBody();
  } finally {
    req.removeListener('aborted', onAborted);
    req.removeListener('error', onAborted);
    req.removeListener('close', onClose);
  }
  if (aborted) throw new ProblemError('request.malformed', 'the request body was cut off');
  return Buffer.concat(chunks);
}

/**
 * Reads and drops the rest of a refused body, so the client can read our answer instead of a
 * reset; past `limit` more bytes the socket is closed.
 */
function drainBounded(req: Request, limit: number): void {
  if (req.readableEnded) return;
  let dropped = 0;
  req.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > limit) req.socket.destroy();
  });
  req.resume();
}

/**
 * Reads a JSON request body through the limits (see the module comment) into `req.body`, unparsed:
 * the decoded bytes (a Buffer), or with `inflate` false an EncodedBody, the bytes as sent.
 */
function jsonBodyReader(limit: number, options: Omit<JsonBodyLimits, 'limit'>, inflate: boolean): RequestHandler {
  const limits: Required<JsonBodyLimits> = { limit, compressedLimit: options.compressedLimit ?? limit, maxDepth: options.maxDepth ?? MAX_JSON_DEPTH };
  return async (req: Request, res: Response, next: NextFunction) => {
    const encoding = (req.get('content-encoding') ?? 'identity').trim().toLowerCase();
    if (!isBodyEncoding(encoding)) {
      throw new ProblemError('request.unsupported_media_type', `Content-Encoding ${encoding} is not supported; send identity or gzip`);
    }
    if (!req.is('application/json')) {
      throw new ProblemError('request.unsupported_media_type', 'the body must be Content-Type: application/json');
    }
    const charset = /;\s*charset=("?)([^";]+)\1/i.exec(req.get('content-type') ?? '')?.[2]?.toLowerCase();
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
      throw new ProblemError('request.unsupported_media_type', `charset ${charset} is not supported; send utf-8`);
    }
    const declared = Number(req.get('content-length'));
    if (Number.isFinite(declared) && declared > limits.compressedLimit) {
      res.setHeader('Connection', 'close');
      throw bodyTooLarge(limits.compressedLimit, 'on the wire (Content-Length)');
    }
    let bytes: Buffer;
    try {
      bytes = await readLimitedBody(req, encoding, limits, inflate);
    } catch (err) {
      drainBounded(req, limits.compressedLimit);
      res.setHeader('Connection', 'close');
      throw err;
    }
    req.body = inflate ? bytes : ({ encoding, bytes } satisfies EncodedBody);
    next();
  };
}

/**
 * Reads a JSON request body through the wire limit and hands it on as sent, as `req.body` (an
 * EncodedBody): for POST /batches, whose body is inflated (with `decodeBody`, under `limit`),
 * parsed and checked in a batch-check worker. An identity body is held to `limit` here.
 */
export function encodedJsonBody(limit: number, options: Omit<JsonBodyLimits, 'limit'> = {}): RequestHandler {
  return jsonBodyReader(limit, options, false);
}

/** Reads a JSON request body through the limits and parses it (nesting checked first) into `req.body`. */
export function jsonBody(limit: number, options: Omit<JsonBodyLimits, 'limit'> = {}): RequestHandler[] {
  const maxDepth = options.maxDepth ?? MAX_JSON_DEPTH;
  const parse: RequestHandler = (req: Request, _res: Response, next: NextFunction) => {
    req.body = parseJsonText((req.body as Buffer).toString('utf8'), maxDepth);
    next();
  };
  return [jsonBodyReader(limit, options, true), parse];
}
