/**
 * Admin actions on agents (roles: services/access.ts ROUTE_ACCESS):
 *
 *   POST /agents/<id>/enrollment-tokens   body {} or { ttlSeconds?, replace? }  → 201 { agent, token, expiresAt, replace }
 *                                         (409 enroll.agent_active for an active id without `replace: true`)
 *   POST /agents/<id>/revoke              no body  → 200 { agent, epoch, revokedAt, revokedIndex, alreadyRevoked, voidedTokens }
 *
 * Each use is a record of the COLLECTOR chain naming the admin token (services/enrollment.ts).
 * The enrollment token is in this answer only: never logged, never stored (its hash is).
 */
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import type { EnrollmentTokenIssued } from '../../shared/api-schemas.ts';
import { ProblemError } from '../../shared/problem.ts';
import { agentIdSchema, describeZodError } from '../../shared/protocol.ts';
import { principalOf, requireRole } from '../http/auth.ts';
import type { Authenticators } from '../services/authenticators.ts';
import { methodNotAllowed } from '../http/errors.ts';
import { jsonBody } from '../http/json-body.ts';
import { limitByPrincipal } from '../http/limits.ts';
import { contextOf } from '../http/request-context.ts';
import { actorOf, rolesFor, type HumanPrincipal } from '../services/access.ts';
import { DEFAULT_ENROLLMENT_TOKEN_TTL_SECONDS, EnrollmentInputError, MAX_ENROLLMENT_TOKEN_TTL_SECONDS, type EnrollmentService } from '../services/enrollment.ts';
import type { PrincipalLimiter } from '../services/shared-rate-limiter.ts';

const MAX_ADMIN_BODY_BYTES = 1024;
export const issueBodySchema = z.strictObject({
  ttlSeconds: z.number().int().min(1).max(MAX_ENROLLMENT_TOKEN_TTL_SECONDS).optional(),
  /** The agent's disk or key is lost: the token may enroll over its active epoch, revoking it. */
  replace: z.boolean().optional(),
});

function agentParam(req: Request): string {
  const id = req.params.id as string;
  if (!agentIdSchema.safeParse(id).success) throw new ProblemError('request.invalid', 'the agent id must be 3-64 of A-Z, 0-9 and -');
  return id;
}

function inputProblem<T>(fn: () => Promise<T>): Promise<T> {
  return fn().catch((err: unknown) => {
    if (err instanceof EnrollmentInputError) throw new ProblemError('request.invalid', err.message);
    throw err;
  });
}

export function agentsResource(deps: { authenticators: Authenticators; enrollment: EnrollmentService; principalLimiter: PrincipalLimiter }): Router {
  const router = Router();
  const admins = [requireRole(rolesFor('POST /api/v1/agents/:id/enrollment-tokens'), deps.authenticators), limitByPrincipal(deps.principalLimiter)];

  router.post('/agents/:id/enrollment-tokens', ...admins, ...jsonBody(MAX_ADMIN_BODY_BYTES), async (req: Request, res: Response) => {
    const agent = agentParam(req);
    const parsed = issueBodySchema.safeParse(req.body ?? {});
    if (!parsed.success) throw new ProblemError('request.invalid', describeZodError(parsed.error));
    const by = actorOf(principalOf(res) as HumanPrincipal);
    const ttl = parsed.data.ttlSeconds ?? DEFAULT_ENROLLMENT_TOKEN_TTL_SECONDS;
    const { token, expiresAt, replace } = await inputProblem(() => deps.enrollment.issueToken(agent, ttl, by, { replace: parsed.data.replace === true }));
    contextOf(res).log.info({ agent, expiresAt, by, replace }, replace ? 'replacement enrollment token issued' : 'enrollment token issued');
    res.status(201).json({ agent, token, expiresAt, replace } satisfies EnrollmentTokenIssued);
  });

  router.post(
    '/agents/:id/revoke',
    requireRole(rolesFor('POST /api/v1/agents/:id/revoke'), deps.authenticators),
    limitByPrincipal(deps.principalLimiter),
    async (req: Request, res: Response) => {
      const agent = agentParam(req);
      const by = actorOf(principalOf(res) as HumanPrincipal);
      const result = await inputProblem(() => deps.enrollment.revokeAgent(agent, by));
      contextOf(res).log.warn({ ...result, by }, result.alreadyRevoked ? 'agent was already revoked' : 'agent revoked');
      res.status(200).json(result);
    },
  );

  router.all('/agents/:id/enrollment-tokens', methodNotAllowed);
  router.all('/agents/:id/revoke', methodNotAllowed);
  return router;
}
