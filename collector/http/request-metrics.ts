/**
 * Counts every finished request for `/metrics` (services/metrics.ts): duration by method, route
 * TEMPLATE and status; requests by credential; and, for `POST /api/v1/batches`, the batch's
 * outcome. Route templates come from ROUTE_ACCESS (the one table of routes), so a label never
 * holds a raw path: an id in a path, or a path that matches no route ("unmatched"), cannot
 * grow the series without bound.
 *
 * Routes leave what the counters need on `res.locals`: the principal (http/auth.ts), the
 * problem code (http/errors.ts) and the batch result (resources/batches.ts).
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { ROUTE_ACCESS, type Principal } from '../services/access.ts';
import type { AuthenticatedAgent } from '../services/agent-auth.ts';
import type { CollectorMetrics, Credential } from '../services/metrics.ts';
import { pathOf } from './request-context.ts';

/** What the batch route leaves on `res.locals.batchResult` for the counters. */
export interface BatchResult {
  agent: string;
  /** Records this answer appended (0 for a stored receipt sent again). */
  accepted: number;
  /** Nothing new: a stored receipt sent again, or every record of the batch stored already. */
  duplicate: boolean;
}

const BATCHES_ROUTE = '/api/v1/batches';
export const UNMATCHED_ROUTE = 'unmatched';

interface RouteTemplate {
  method: string;
  path: string;
  pattern: RegExp;
}

const TEMPLATES: readonly RouteTemplate[] = Object.keys(ROUTE_ACCESS).map((key) => {
  const [method, path] = key.split(' ') as [string, string];
  const pattern = new RegExp(`^${path.split('/').map((part) => (part.startsWith(':') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/')}$`);
  return { method, path, pattern };
});

/** The route template a request matched (by path; another method on a known path keeps the path's template). */
export function routeTemplateOf(method: string, path: string): string {
  const wanted = method === 'HEAD' ? 'GET' : method;
  const byPath = TEMPLATES.filter((t) => t.pattern.test(path));
  return (byPath.find((t) => t.method === wanted) ?? byPath[0])?.path ?? UNMATCHED_ROUTE;
}

function credentialOf(res: Response): Credential {
  const principal = res.locals.principal as Principal | undefined;
  if (principal !== undefined) return principal.role === 'agent' ? { kind: 'agent', name: principal.agent } : { kind: principal.role, name: principal.name };
  const agent = res.locals.agent as AuthenticatedAgent | undefined;
  if (agent !== undefined) return { kind: 'agent', name: agent.agent };
  return { kind: 'anonymous' };
}

export function requestMetrics(metrics: CollectorMetrics): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const started = process.hrtime.bigint();
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = routeTemplateOf(req.method, pathOf(req));
      metrics.request(req.method, route, res.statusCode, seconds, credentialOf(res));
      if (route === BATCHES_ROUTE && req.method === 'POST') {
        const batch = res.locals.batchResult as BatchResult | undefined;
        if (res.statusCode === 200 && batch !== undefined) {
          metrics.batch({ kind: batch.duplicate ? 'duplicate' : 'accepted', agent: batch.agent, records: batch.accepted });
        } else {
          metrics.batch({ kind: 'refused', code: (res.locals.problemCode as string | undefined) ?? `http.${res.statusCode}` });
        }
      }
    });
    next();
  };
}
