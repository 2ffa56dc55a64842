/**
 * `POST /api/v1/batches`: an agent delivers signed records (DESIGN "Wire protocol").
 * Room in ingest's queues (else 503 `ingest.busy`, before any other work) → authenticate →
 * Idempotency-Key → JSON body as sent (≤ MAX_BATCH_DECODED_BYTES on the wire;
 * inflated under the same limit by ingest) → ingest →
 * 200 `{ receipt, signature }`, sent only after the batch is committed.
 */
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { ProblemError } from '../../shared/problem.ts';
import { MAX_BATCH_DECODED_BYTES } from '../../shared/protocol.ts';
import { authenticatedAgent, requireAgent } from '../http/auth.ts';
import { methodNotAllowed } from '../http/errors.ts';
import type { EncodedBody } from '../../shared/body-encoding.ts';
import { encodedJsonBody } from '../http/json-body.ts';
import { limitByPrincipal } from '../http/limits.ts';
import type { BatchResult } from '../http/request-metrics.ts';
import { contextOf } from '../http/request-context.ts';
import type { AgentAuthService } from '../services/agent-auth.ts';
import type { IngestService } from '../services/ingest.ts';
import { rolesFor } from '../services/access.ts';
import type { PrincipalLimiter } from '../services/shared-rate-limiter.ts';

export const idempotencyKeySchema = z.uuid();

/** The Idempotency-Key header if it is a valid batch id (else the route refuses the request after authentication). */
function batchIdOf(req: Request): string | undefined {
  const key = req.get('idempotency-key');
  return key !== undefined && idempotencyKeySchema.safeParse(key).success ? key : undefined;
}

// The batch route needs the full AuthenticatedAgent, so it uses requireAgent; its line in
// ROUTE_ACCESS must say exactly that.
if (rolesFor('POST /api/v1/batches').join() !== 'agent') throw new Error('POST /batches admits agents only (requireAgent)');

export function batchesResource(deps: { auth: AgentAuthService; ingest: IngestService; principalLimiter: PrincipalLimiter }): Router {
  const router = Router();
  router.post(
    '/batches',
    // Backpressure first: a refused batch costs no token check, no jti write and no body read.
    (_req: Request, _res: Response, next) => {
      deps.ingest.assertRoom();
      next();
    },
    // A batch is idempotent: the same token with the same batch id again is a retry, not a replay.
    requireAgent(deps.auth, batchIdOf),
    limitByPrincipal(deps.principalLimiter),
    (req: Request, res: Response, next) => {
      const key = batchIdOf(req);
      if (key === undefined) {
        throw new ProblemError('request.invalid', 'an Idempotency-Key header holding the batch UUID is required');
      }
      res.locals.idempotencyKey = key;
      next();
    },
    encodedJsonBody(MAX_BATCH_DECODED_BYTES),
    async (req: Request, res: Response) => {
      const agent = authenticatedAgent(res);
      const { traceId, log } = contextOf(res);
      const batchLog = log.child({ agent: agent.agent, batchId: res.locals.idempotencyKey as string });
      const reply = await deps.ingest.ingest({
        agent,
        idempotencyKey: res.locals.idempotencyKey as string,
        body: req.body as EncodedBody,
        traceId,
        userAgent: req.get('user-agent'),
        log: batchLog,
      });
      const { receipt } = reply;
      batchLog.info(
        {
          accepted: receipt.accepted,
          duplicates: receipt.duplicates,
          highestSeq: receipt.highestSeq,
          ledger: receipt.ledger,
          checkpointSize: receipt.checkpoint.size,
          replayed: reply.replayed,
        },
        reply.replayed ? 'batch already received; stored receipt sent again' : 'batch committed',
      );
      const batchResult: BatchResult = {
        agent: agent.agent,
        accepted: reply.replayed ? 0 : receipt.accepted,
        duplicate: reply.replayed || (receipt.accepted === 0 && receipt.duplicates > 0),
      };
      res.locals.batchResult = batchResult;
      res.status(200).type('application/json').send(reply.json);
    },
  );
  router.all('/batches', methodNotAllowed);
  return router;
}
