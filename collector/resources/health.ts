/** `GET /healthz` (the process answers, with its version) and `GET /readyz` (the database answers too). */
import { Router, type Request, type Response } from 'express';
import type { Health, Readiness } from '../../shared/api-schemas.ts';
import { ProblemError } from '../../shared/problem.ts';
import type { CollectorStore } from '../store/store.ts';

export function healthResource(deps: { store: CollectorStore; version: string }): Router {
  const router = Router();
  router.get('/healthz', (_req: Request, res: Response) => {
    res.status(200).json({ status: 'ok', version: deps.version } satisfies Health);
  });
  router.get('/readyz', async (_req: Request, res: Response) => {
    try {
      await deps.store.ping();
    } catch {
      throw new ProblemError('service.unavailable', 'the database does not answer', {}, 5);
    }
    res.status(200).json({ status: 'ready' } satisfies Readiness);
  });
  return router;
}
