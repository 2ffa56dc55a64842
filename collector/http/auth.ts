/**
 * HTTP side of authentication: reads the Authorization header, asks the authenticator of an
 * admitted role, and leaves the principal on the response for the route. The token is never
 * logged.
 *
 * `requireRole(roles, authenticators)` is how a route declares who may call it. An
 * authenticator first says whether a token is of its kind (`recognises`: an agent JWT by its
 * JWS `typ`, a human token by its `sakshya_` prefix), so that with several roles the right one
 * checks it; a token no admitted role recognises is 401 `auth.invalid_token`.
 *
 * A valid credential of a role the route does not admit is 403 `auth.forbidden` (an auditor
 * token on an admin route): the caller is known, the action is not theirs.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { decodeProtectedHeader } from 'jose';
import { ProblemError } from '../../shared/problem.ts';
import { AGENT_JWT_TYP } from '../../shared/protocol.ts';
import type { HumanRole, Principal, Role } from '../services/access.ts';
import type { AgentAuthService, AuthenticatedAgent } from '../services/agent-auth.ts';
import { looksLikeApiToken, type ApiTokenService } from '../services/api-tokens.ts';

export interface Authenticator {
  /** True if `authorization` carries a credential of this authenticator's kind (unverified). */
  recognises(authorization: string | undefined): boolean;
  /** Verifies the credential; MUST reject with a ProblemError (401/403) if it does not prove a principal. */
  authenticate(authorization: string | undefined): Promise<Principal>;
}

export type Authenticators = { [R in Role]: Authenticator };

/** The JWS header `typ` of a bearer token, if it is a compact JWS at all. */
function bearerTyp(authorization: string | undefined): string | undefined {
  const match = /^Bearer +([A-Za-z0-9_.-]+) *$/i.exec(authorization ?? '');
  if (!match) return undefined;
  try {
    const typ = decodeProtectedHeader(match[1]!).typ;
    return typeof typ === 'string' ? typ : undefined;
  } catch {
    return undefined;
  }
}

/** Agents: a fresh EdDSA JWT signed by the enrolled key (services/agent-auth.ts). */
export function agentAuthenticator(auth: AgentAuthService): Authenticator {
  return {
    recognises: (authorization) => bearerTyp(authorization) === AGENT_JWT_TYP,
    async authenticate(authorization) {
      const agent = await auth.authenticate(authorization);
      return { role: 'agent', agent: agent.agent, epoch: agent.epoch };
    },
  };
}

/**
 * Humans (admin, auditor): a bearer token issued by `tokens issue`. One authenticator per role;
 * both recognise any human token, and each admits only tokens of its own role.
 */
export function humanAuthenticator(role: HumanRole, tokens: ApiTokenService): Authenticator {
  return {
    recognises: (authorization) => looksLikeApiToken(authorization),
    async authenticate(authorization) {
      const principal = await tokens.authenticate(authorization);
      if (principal.role !== role) throw new ProblemError('auth.forbidden', `this action needs an ${role} token, not an ${principal.role} token`);
      return principal;
    },
  };
}

const ALL_ROLES: readonly Role[] = ['agent', 'auditor', 'admin'];

/** Admits a request only with the credentials of one of `roles`; sets the principal for the route. */
export function requireRole(roles: readonly Role[], authenticators: Authenticators): RequestHandler {
  if (roles.length === 0) throw new Error('requireRole needs at least one role');
  return async (req: Request, res: Response, next: NextFunction) => {
    const authorization = req.get('authorization');
    let role = roles.find((r) => authenticators[r].recognises(authorization));
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
    res.locals.principal = await authenticators[role].authenticate(authorization);
    next();
  };
}

export function principalOf(res: Response): Principal {
  const principal = res.locals.principal as Principal | undefined;
  if (!principal) throw new Error('requireRole middleware is not installed');
  return principal;
}

/**
 * For the batch route, which needs the full AuthenticatedAgent (its key, its jti): admits
 * agents only, like `requireRole(['agent'])`; a human token is 403.
 */
export function requireAgent(auth: AgentAuthService): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    const authorization = req.get('authorization');
    if (looksLikeApiToken(authorization)) throw new ProblemError('auth.forbidden', 'this resource admits only agents');
    res.locals.agent = await auth.authenticate(authorization);
    next();
  };
}

export function authenticatedAgent(res: Response): AuthenticatedAgent {
  const agent = res.locals.agent as AuthenticatedAgent | undefined;
  if (!agent) throw new Error('requireAgent middleware is not installed');
  return agent;
}
