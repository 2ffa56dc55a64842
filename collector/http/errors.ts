/**
 * The one place where errors become HTTP answers: RFC 9457 `application/problem+json` bodies
 * from the shared catalogue (shared/problem.ts). Routes and services throw; this module
 * answers.
 *
 * - ProblemError: its code, status, detail and extras (and Retry-After if it has one).
 * - Body-parser errors: too large → 413 `batch.too_large`; unparseable → 400
 *   `request.malformed`; unsupported encoding or charset → 415.
 * - StoreUnavailableError (database read-only, full, I/O error, busy): 503
 *   `service.unavailable` with Retry-After; nothing was acknowledged.
 * - IngestBusyError (a ProblemError: ingest's check or write queue is full): 503 `ingest.busy`
 *   with Retry-After, logged at warn with the queue; nothing was stored.
 * - Anything else: logged with the trace id, answered 500 `internal.error` with no stack.
 */
import type { ErrorRequestHandler, NextFunction, Request, RequestHandler, Response } from 'express';
import { MAX_BATCH_DECODED_BYTES } from '../../shared/protocol.ts';
import { PROBLEM_CONTENT_TYPE, ProblemError } from '../../shared/problem.ts';
import { IngestBusyError } from '../services/ingest-admission.ts';
import { StoreUnavailableError } from '../store/store.ts';
import { contextOf, pathOf } from './request-context.ts';

/** Seconds a client should wait before retrying after a 503. */
export const STORE_UNAVAILABLE_RETRY_AFTER_SECONDS = 5;

interface HttpLikeError {
  type?: unknown;
  status?: unknown;
  statusCode?: unknown;
  limit?: unknown;
}

/** Maps a thrown value to a ProblemError, or undefined if it is unexpected (a bug). */
export function toProblem(err: unknown): ProblemError | undefined {
  if (err instanceof ProblemError) return err;
  if (err instanceof StoreUnavailableError) {
    return new ProblemError('service.unavailable', 'the ledger database cannot accept writes now; retry later', {}, STORE_UNAVAILABLE_RETRY_AFTER_SECONDS);
  }
  const http = (err ?? {}) as HttpLikeError;
  switch (http.type) {
    case 'entity.too.large': {
      const limit = typeof http.limit === 'number' ? http.limit : MAX_BATCH_DECODED_BYTES;
      return new ProblemError('batch.too_large', `the request body exceeds ${limit} bytes after decompression`, { limit });
    }
    case 'entity.parse.failed':
      return new ProblemError('request.malformed', 'the request body is not valid JSON');
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new ProblemError('request.unsupported_media_type', (err as Error).message);
    case 'request.aborted':
    case 'request.size.invalid':
      return new ProblemError('request.malformed', (err as Error).message);
  }
  // Other client errors raised by body parsing (e.g. a gzip stream that does not inflate).
  const status = typeof http.status === 'number' ? http.status : http.statusCode;
  if (status === 400) return new ProblemError('request.malformed', 'the request body could not be read (bad encoding or truncated)');
  return undefined;
}

export function sendProblem(res: Response, problem: ProblemError): void {
  res.locals.problemCode = problem.code; // for the batch counters (request-metrics.ts)
  if (problem.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(problem.retryAfterSeconds));
  res.status(problem.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem.toBody()));
}

export const notFound: RequestHandler = (req: Request, _res: Response, next: NextFunction) => {
  next(new ProblemError('resource.not_found', `there is no resource at ${req.method} ${pathOf(req)}`));
};

export const methodNotAllowed: RequestHandler = (req: Request, _res: Response, next: NextFunction) => {
  next(new ProblemError('method.not_allowed', `${req.method} is not allowed on ${pathOf(req)}`));
};

export const errorHandler: ErrorRequestHandler = (err: unknown, req: Request, res: Response, next: NextFunction) => {
  if (res.headersSent) {
    next(err);
    return;
  }
  const { log, traceId } = contextOf(res);
  const problem = toProblem(err);
  if (problem === undefined) {
    log.error({ err, method: req.method, path: pathOf(req) }, 'unexpected error');
    sendProblem(res, new ProblemError('internal.error', `internal error; quote trace id ${traceId}`, { traceId }));
    return;
  }
  if (err instanceof StoreUnavailableError) {
    log.warn({ reason: err.reason, method: req.method, path: pathOf(req) }, 'database unavailable; answered 503');
  } else if (err instanceof IngestBusyError) {
    log.warn(
      { reason: `${err.queue}_queue_full`, code: err.code, load: err.load, retryAfterSeconds: err.retryAfterSeconds, method: req.method, path: pathOf(req) },
      `ingest ${err.queue} queue full; batch refused with 503 ingest.busy`,
    );
  } else if (problem.status >= 500) {
    log.error({ code: problem.code, detail: problem.message }, 'request failed');
  } else {
    log.info({ code: problem.code, status: problem.status, detail: problem.message }, 'request refused');
  }
  sendProblem(res, problem);
};
