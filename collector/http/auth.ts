/**
 * HTTP side of authentication: reads the Authorization header, asks the authenticator of an
 * admitted role (services/authenticators.ts), and leaves the principal on the response for the
 * route. The token is never logged.
 *
 * `requireRole(roles, authenticators)` is how a route declares who may call it. An
 * authenticator first says whether a token is of its kind (`recognises`), so that with several
 * roles the right one checks it; a token no admitted role recognises is 401 `auth.invalid_token`.
 *
 * A valid credential of a role the route does not admit is 403 `auth.forbidden` (an auditor
 * token on an admin route): the caller is known, the action is not theirs.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { ProblemError } from '../../shared/problem.ts';
import type { Principal, Role } from '../services/access.ts';
import type { AgentAuthService, AuthenticatedAgent } from '../services/agent-auth.ts';
import { looksLikeApiToken } from '../services/api-tokens.ts';
import type { Authenticators } from '../services/authenticators.ts';

const ALL_ROLES: readonly Role[] = ['agent', 'auditor', 'admin'];

/** Admits a request only with the credentials of one of `roles`; sets the principal for the route. */
export function requireRole(roles: readonly Role[], authenticators: Authenticators): RequestHandler {
  if (roles.length === 0) throw new Error('requireRole needs at least one role');
  return async (req: Request, res: Response, next: NextFunction) => {
    const authorization = req.get('authorization');
    const recognising = roles.filter((r) => authenticators[r].recognises(authorization));
    let role = recognising[0];
    if (role === undefined) {
      // A credential of a role this route does not admit: prove it first (a forged one stays
      // 401), then refuse with 403. Anything else is 401.
      const other = ALL_ROLES.find((r) => !roles.includes(r) && authenticators[r].recognises(authorization));
      if (other !== undefined) {
        const principal = await authenticators[other].authenticate(authorization).catch((err: unknown) => {
          if (err instanceof ProblemError && err.code === 'auth.forbidden') return undefined; // a human token of yet another role
          throw err;
        });
        throw new ProblemError('auth.forbidden', `this resource admits only: ${roles.join(', ')}${principal ? ` (not ${principal.role})` : ''}`);
      }
      // With a single role its authenticator gives the precise reason for a bad token.
      if (roles.length === 1) role = roles[0]!;
      else throw new ProblemError('auth.invalid_token', `this resource requires the credentials of: ${roles.join(', ')}`);
    }
    res.locals.principal = await authenticateAs(recognising.length > 0 ? recognising : [role], authenticators, authorization);
    next();
  };
}

/**
 * The principal of the first of `roles` that admits the credential. Several roles may recognise
 * one credential (admin and auditor tokens look alike); one that refuses it as another role's
 * (403) passes it on to the next, and the last one's answer stands.
 */
async function authenticateAs(roles: readonly Role[], authenticators: Authenticators, authorization: string | undefined): Promise<Principal> {
  for (let i = 0; ; i++) {
    try {
      return await authenticators[roles[i]!].authenticate(authorization);
    } catch (err) {
      const anotherRole = err instanceof ProblemError && err.code === 'auth.forbidden';
      if (!anotherRole || i === roles.length - 1) throw err;
    }
  }
}

export function principalOf(res: Response): Principal {
  const principal = res.locals.principal as Principal | undefined;
  if (!principal) throw new Error('requireRole middleware is not installed');
  return principal;
}

/**
 * For the batch route, which needs the full AuthenticatedAgent (its key, its jti): admits
 * agents only, like `requireRole(['agent'])`; a human token is 403. `requestKeyOf` names the
 * request's idempotency key (the batch id), if it has a valid one: the token is remembered
 * with it, so the same request sent again by a load balancer is not taken for a replay.
 */
export function requireAgent(auth: AgentAuthService, requestKeyOf?: (req: Request) => string | undefined): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    const authorization = req.get('authorization');
    if (looksLikeApiToken(authorization)) throw new ProblemError('auth.forbidden', 'this resource admits only agents');
    res.locals.agent = await auth.authenticate(authorization, requestKeyOf?.(req));
    next();
  };
}

export function authenticatedAgent(res: Response): AuthenticatedAgent {
  const agent = res.locals.agent as AuthenticatedAgent | undefined;
  if (!agent) throw new Error('requireAgent middleware is not installed');
  return agent;
}
