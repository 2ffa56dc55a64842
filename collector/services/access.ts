/**
 * Who may do what. A principal is whoever a request's credentials prove; a role is the kind of
 * principal. Every route declares the roles it admits in ONE table, `ROUTE_ACCESS` below (the
 * resources look their line up by key; a test checks that every route of the app has a line);
 * services decide, per row, what a principal of an admitted role may see (an agent: only its
 * own records).
 *
 * Roles (DESIGN invariant 5, least privilege)
 * - `agent`: a fresh EdDSA JWT signed by its enrolled key (services/agent-auth.ts). Submits its
 *   own records and reads its own records. Nothing else.
 * - `auditor`: a human bearer token (services/api-tokens.ts). Reads any agent's records (each
 *   read is a record of the COLLECTOR chain), proofs and checkpoints, and the fleet view (each
 *   read is a record of the COLLECTOR chain); exports report bundles (each export is a
 *   record of the COLLECTOR chain) and fetches only the exports its own token started.
 *   Never writes.
 * - `admin`: a human bearer token. Issues enrollment tokens, revokes agents, reads the fleet
 *   view (versions, last contact, backlog: what running the fleet needs; not recorded, like
 *   every admin request that changes nothing). Does NOT read audit content: an admin who wants
 *   to read records needs an auditor token, issued (and recorded) like any other.
 * - `public`: no credentials: health, checkpoints, proofs, public keys (hashes and signatures
 *   only, no audit content) and the API's OpenAPI description; `POST /enroll` proves itself with
 *   its one-time token.
 *
 * Adding a role: a member of `Role` and of `Principal`, an authenticator in
 * services/authenticators.ts, and a line in each access rule below.
 */

export type Role = 'agent' | 'auditor' | 'admin';
export type HumanRole = Exclude<Role, 'agent'>;
export const HUMAN_ROLES: readonly HumanRole[] = ['admin', 'auditor'];

/** An agent, proved by a JWT signed with the key of its current epoch. */
export interface AgentPrincipal {
  role: 'agent';
  agent: string;
  epoch: number;
}

/** A person, proved by a bearer token issued with `sakshya-collector tokens issue`. */
export interface HumanPrincipal {
  role: HumanRole;
  /** The token's public id (never the token). */
  tokenId: string;
  /** Whom the token was issued to. */
  name: string;
}

export type Principal = AgentPrincipal | HumanPrincipal;

/**
 * Who acted, as the COLLECTOR chain records it: `admin:<name>#<token id>` for a token holder,
 * `cli:<os user>` for the local operator running a CLI command. Never a secret.
 */
export type Actor = string;

export function actorOf(principal: HumanPrincipal): Actor {
  return `${principal.role}:${principal.name}#${principal.tokenId}`;
}

export function cliActor(osUser: string): Actor {
  return `cli:${osUser}`;
}

/** The roles each route admits; `public` needs no credentials. Keys are `METHOD path` under /api/v1 (or at the root). */
export const ROUTE_ACCESS = {
  'GET /healthz': 'public',
  'GET /readyz': 'public',
  'POST /api/v1/enroll': 'public',
  'GET /api/v1/checkpoint': 'public',
  'GET /api/v1/checkpoints': 'public',
  'GET /api/v1/proofs/consistency': 'public',
  'GET /api/v1/proofs/inclusion': 'public',
  'GET /api/v1/keys': 'public',
  'GET /api/v1/openapi.json': 'public',
  'POST /api/v1/batches': ['agent'],
  'GET /api/v1/records/:id': ['agent', 'auditor'],
  // The fleet view: per (agent, epoch) state, no audit content (services/fleet.ts).
  'GET /api/v1/agents': ['admin', 'auditor'],
  'GET /api/v1/agents/:id': ['admin', 'auditor'],
  'POST /api/v1/agents/:id/enrollment-tokens': ['admin'],
  'POST /api/v1/agents/:id/revoke': ['admin'],
  // Exports are audit content: auditors only, and each job only for the token that started it (services/reports.ts).
  'POST /api/v1/reports': ['auditor'],
  'GET /api/v1/reports/:id': ['auditor'],
  'GET /api/v1/reports/:id/bundle.tar.gz': ['auditor'],
} as const satisfies { [route: string]: 'public' | readonly Role[] };

export type RouteKey = keyof typeof ROUTE_ACCESS;

/** The roles `route` admits (throws for a public route: it has no roles to require). */
export function rolesFor(route: RouteKey): readonly Role[] {
  const access = ROUTE_ACCESS[route];
  if (access === 'public') throw new Error(`${route} is public; it requires no role`);
  return access;
}

/**
 * MUST return true only if `principal` may read a record of `owner` (agent id and epoch). An
 * agent reads only its own CURRENT epoch: a key enrolled with `--replace` cannot read what the
 * replaced key wrote.
 */
export function mayReadRecordsOf(principal: Principal, owner: { agent: string; epoch: number }): boolean {
  switch (principal.role) {
    case 'agent':
      return principal.agent === owner.agent && principal.epoch === owner.epoch;
    case 'auditor':
      return true;
    case 'admin':
      return false;
  }
}

/** MUST return true only if `principal` may read the fleet view (services/fleet.ts). */
export function mayReadFleet(principal: Principal): principal is HumanPrincipal {
  return principal.role === 'admin' || principal.role === 'auditor';
}
