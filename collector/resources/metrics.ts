/** `GET /metrics`: the Prometheus exposition (services/metrics.ts), on the metrics listener only. */
import { Router, type Request, type Response } from 'express';
import { methodNotAllowed } from '../http/errors.ts';
import { METRICS_CONTENT_TYPE, type CollectorMetrics } from '../services/metrics.ts';

export function metricsResource(deps: { metrics: CollectorMetrics }): Router {
  const router = Router();
  router.get('/metrics', async (_req: Request, res: Response) => {
    const text = await deps.metrics.exposition();
    res.status(200).type(METRICS_CONTENT_TYPE).send(text);
  });
  router.all('/metrics', methodNotAllowed);
  return router;
}
