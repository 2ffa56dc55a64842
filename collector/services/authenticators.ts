/**
 * One authenticator per role: given an Authorization header value, says whether it carries a
 * credential of its kind (`recognises`: an agent JWT by its JWS `typ`, a human token by its
 * `sakshya_` prefix) and proves the principal (`authenticate`). The container makes them; the
 * HTTP side (http/auth.ts `requireRole`) picks one per request.
 */
import { decodeProtectedHeader } from 'jose';
import { ProblemError } from '../../shared/problem.ts';
import { AGENT_JWT_TYP } from '../../shared/protocol.ts';
import type { HumanRole, Principal, Role } from './access.ts';
import type { AgentAuthService } from './agent-auth.ts';
import { looksLikeApiToken, type ApiTokenService } from './api-tokens.ts';

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
