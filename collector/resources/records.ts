/**
 * `GET /api/v1/records/<id>`: one ledger record, `{ record, ledgerIndex, receivedAt }`, where
 * `record` is the stored canonical JSON, byte for byte. Records are audit content: the caller
 * MUST prove a role in RECORD_READERS, and the records service decides which rows it may see.
 */
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { ProblemError } from '../../shared/problem.ts';
import { principalOf, requireRole } from '../http/auth.ts';
import type { Authenticators } from '../services/authenticators.ts';
import { methodNotAllowed } from '../http/errors.ts';
import { limitByPrincipal } from '../http/limits.ts';
import { rolesFor, type Role } from '../services/access.ts';
import type { PrincipalLimiter } from '../services/shared-rate-limiter.ts';
import type { RecordsService } from '../services/records.ts';

/** Who may read records: declared in services/access.ts ROUTE_ACCESS. */
export const RECORD_READERS: readonly Role[] = rolesFor('GET /api/v1/records/:id');

export const recordIdSchema = z.uuid();

export function recordsResource(deps: { authenticators: Authenticators; records: RecordsService; principalLimiter: PrincipalLimiter }): Router {
  const router = Router();
  router.get('/records/:id', requireRole(RECORD_READERS, deps.authenticators), limitByPrincipal(deps.principalLimiter), async (req: Request, res: Response) => {
    const id = req.params.id as string;
    if (!recordIdSchema.safeParse(id).success) throw new ProblemError('request.invalid', 'the record id must be a UUID');
    const view = await deps.records.read(id, principalOf(res));
    // The canonical text goes out exactly as stored, so its hash can be checked against the ledger.
    res.status(200).setHeader('Cache-Control', 'private, no-store');
    res.type('application/json').send(`{"record":${view.canonical},"ledgerIndex":${view.ledgerIndex},"receivedAt":${JSON.stringify(view.receivedAt)}}`);
  });
  router.all('/records/:id', methodNotAllowed);
  return router;
}
