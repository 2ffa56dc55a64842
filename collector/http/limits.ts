/**
 * HTTP side of the rate limits (services/rate-limiter.ts holds the buckets):
 * - `limitByIp`: before authentication, keyed on the client address (`req.ip`: the socket's
 *   peer, or with SAKSHYA_TRUST_PROXY set, the address the trusted proxy reports). Cheap: no
 *   parsing, no database; it bounds what an unauthenticated flood can cost (JWT checks, the
 *   jti write).
 * - `limitByPrincipal`: after authentication, keyed on the VERIFIED subject (an agent id or a
 *   human token id), never on an address: agents behind one NAT do not share a bucket, and an
 *   agent cannot escape its bucket by changing address.
 * Refusals are 429 `rate.limited` with `Retry-After` (seconds), which the agent honours
 * (agent/sync/retry.ts).
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { ProblemError } from '../../shared/problem.ts';
import type { Principal } from '../services/access.ts';
import type { RateLimiter } from '../services/rate-limiter.ts';
import type { PrincipalLimiter } from '../services/shared-rate-limiter.ts';

function refuse(retryAfterSeconds: number, what: string): ProblemError {
  return new ProblemError('rate.limited', `too many requests ${what}; retry after ${retryAfterSeconds} s`, { retryAfterSeconds }, retryAfterSeconds);
}

export function limitByIp(limiter: RateLimiter, what = 'from this address'): RequestHandler {
  return (req: Request, _res: Response, next: NextFunction) => {
    const decision = limiter.take(req.ip ?? req.socket.remoteAddress ?? 'unknown');
    if (!decision.allowed) throw refuse(decision.retryAfterSeconds, what);
    next();
  };
}

function subjectOf(principal: Principal): string {
  return principal.role === 'agent' ? `agent:${principal.agent}` : `token:${principal.tokenId}`;
}

/**
 * MUST run after authentication: reads the principal (res.locals.principal) or the agent
 * (res.locals.agent). With several replicas the buckets are shared through the database
 * (services/shared-rate-limiter.ts), so an agent's limit is its limit, not one per replica.
 */
export function limitByPrincipal(limiter: PrincipalLimiter): RequestHandler {
  return async (_req: Request, res: Response, next: NextFunction) => {
    const principal = (res.locals.principal ?? (res.locals.agent ? { role: 'agent', ...(res.locals.agent as object) } : undefined)) as Principal | undefined;
    if (!principal) throw new Error('limitByPrincipal runs before authentication');
    const decision = await limiter.take(subjectOf(principal));
    if (!decision.allowed) throw refuse(decision.retryAfterSeconds, principal.role === 'agent' ? `from agent ${principal.agent}` : 'with this token');
    next();
  };
}
