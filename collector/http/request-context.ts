/**
 * Per-request context: the W3C trace id (from `traceparent`, or a new one) and a pino child
 * logger that carries it, so every log line about a request, and about the batch it carries,
 * can be found with one grep. The trace id is answered in `x-trace-id`, and our span in
 * `traceparent`.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Logger } from '../../shared/logger.ts';
import { newTraceContext, parseTraceparent } from '../../shared/trace.ts';

export interface RequestContext {
  traceId: string;
  log: Logger;
}

/** The full request path (mount point included), without the query string. */
export function pathOf(req: Request): string {
  return req.originalUrl.split('?', 1)[0]!;
}

const QUIET_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

export function requestContext(logger: Logger): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const incoming = parseTraceparent(req.get('traceparent'));
    const trace = newTraceContext(incoming?.traceId);
    const log = logger.child({ traceId: trace.traceId });
    const context: RequestContext = { traceId: trace.traceId, log };
    res.locals.context = context;
    res.setHeader('x-trace-id', trace.traceId);
    res.setHeader('traceparent', trace.traceparent);
    const started = process.hrtime.bigint();
    const path = pathOf(req);
    res.on('finish', () => {
      const line = {
        method: req.method,
        path,
        status: res.statusCode,
        ms: Number((process.hrtime.bigint() - started) / 1000n) / 1000,
      };
      if (QUIET_PATHS.has(path)) log.debug(line, 'request');
      else log.info(line, 'request');
    });
    next();
  };
}

export function contextOf(res: Response): RequestContext {
  const context = res.locals.context as RequestContext | undefined;
  if (!context) throw new Error('request context middleware is not installed');
  return context;
}
