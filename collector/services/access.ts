/**
 * Who may do what. A principal is whoever a request's credentials prove; a role is the kind of
 * principal. Routes declare the roles they admit in ONE constant next to their path (e.g.
 * `RECORD_READERS` in resources/records.ts); services decide, per row, what a principal of an
 * admitted role may see (an agent: only its own records).
 *
 * Today only agents hold credentials. The auditor role (read everything) and the admin role
 * (enroll, revoke) arrive with issue 4: they add a member to `Role` and to `Principal`, an
 * authenticator in http/auth.ts, and a line to each access rule below.
 */

export type Role = 'agent';

/** An agent, proved by a JWT signed with the key of its current epoch. */
export interface AgentPrincipal {
  role: 'agent';
  agent: string;
  epoch: number;
}

export type Principal = AgentPrincipal;

/** MUST return true only if `principal` may read the records of `owner` (an agent id). */
export function mayReadRecordsOf(principal: Principal, owner: string): boolean {
  switch (principal.role) {
    case 'agent':
      return principal.agent === owner;
  }
}
