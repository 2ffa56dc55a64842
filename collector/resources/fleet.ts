/**
 * The fleet view (roles: services/access.ts ROUTE_ACCESS; rules: services/fleet.ts):
 *
 *   GET /agents?status=&silentFor=&backlogOver=&limit=&cursor=   → 200 { agents: FleetAgent[], nextCursor }
 *   GET /agents/<id>                                             → 200 FleetAgent & { previousEpochs }
 *
 * Answers follow shared/api-schemas.ts. Query parameters are parsed strictly (an unknown or
 * repeated one is 400 `request.invalid`). Each read by an auditor is a `fleet.read` record of
 * the COLLECTOR chain.
 */
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { FLEET_DEFAULT_LIMIT, fleetListQuerySchema } from '../../shared/api-schemas.ts';
import { ProblemError } from '../../shared/problem.ts';
import { agentIdSchema } from '../../shared/protocol.ts';
import { principalOf, requireRole } from '../http/auth.ts';
import { methodNotAllowed } from '../http/errors.ts';
import { limitByPrincipal } from '../http/limits.ts';
import { parseQuery } from '../http/query.ts';
import { rolesFor } from '../services/access.ts';
import type { Authenticators } from '../services/authenticators.ts';
import type { FleetFilter, FleetService } from '../services/fleet.ts';
import type { PrincipalLimiter } from '../services/shared-rate-limiter.ts';

const noQuerySchema = z.strictObject({});

function filterOf(req: Request): FleetFilter {
  const query = parseQuery(fleetListQuerySchema, req);
  return {
    status: query.status,
    silentFor: query.silentFor,
    backlogOver: query.backlogOver === undefined ? undefined : Number(query.backlogOver),
    limit: query.limit === undefined ? FLEET_DEFAULT_LIMIT : Number(query.limit),
    cursor: query.cursor,
  };
}

export function fleetResource(deps: { authenticators: Authenticators; fleet: FleetService; principalLimiter: PrincipalLimiter }): Router {
  const router = Router();

  router.get('/agents', requireRole(rolesFor('GET /api/v1/agents'), deps.authenticators), limitByPrincipal(deps.principalLimiter), async (req: Request, res: Response) => {
    const page = await deps.fleet.list(filterOf(req), principalOf(res));
    res.status(200).setHeader('Cache-Control', 'private, no-store');
    res.json(page);
  });

  router.get('/agents/:id', requireRole(rolesFor('GET /api/v1/agents/:id'), deps.authenticators), limitByPrincipal(deps.principalLimiter), async (req: Request, res: Response) => {
    const id = req.params.id as string;
    if (!agentIdSchema.safeParse(id).success) throw new ProblemError('request.invalid', 'the agent id must be 3-64 of A-Z, 0-9 and -');
    parseQuery(noQuerySchema, req);
    const detail = await deps.fleet.get(id, principalOf(res));
    res.status(200).setHeader('Cache-Control', 'private, no-store');
    res.json(detail);
  });

  router.all('/agents', methodNotAllowed);
  router.all('/agents/:id', methodNotAllowed);
  return router;
}
