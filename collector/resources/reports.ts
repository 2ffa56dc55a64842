/**
 * Report exports for auditors (roles: services/access.ts ROUTE_ACCESS):
 *
 *   POST /reports                        { from, to, agent?, kind?, type?, checkpointSize? }
 *                                        → 202 { id, status: "running", …, links } + Location
 *   GET  /reports/<id>                   → 200 { id, status: running|done|failed|expired, filter, checkpointSize,
 *                                            createdAt, finishedAt, expiredAt?, counts?, manifestSha256?,
 *                                            bundleBytes?, problem?, links }
 *   GET  /reports/<id>/bundle.tar.gz     → 200 application/gzip (the bundle, docs/report-bundle.md);
 *                                            410 `report.expired` once the retention has deleted it
 *
 * A job is visible only to the auditor token that started it (another token gets 404). One
 * export runs at a time: a second POST meanwhile is 429 `report.busy` with Retry-After. Below
 * the disk floor a POST is 507 `report.storage_full`. Either way, and for a bad filter (400),
 * nothing is started.
 */
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import type { LinkedReportJob } from '../../shared/api-schemas.ts';
import { ProblemError } from '../../shared/problem.ts';
import { API_PREFIX } from '../../shared/protocol.ts';
import { principalOf, requireRole } from '../http/auth.ts';
import type { Authenticators } from '../services/authenticators.ts';
import { methodNotAllowed } from '../http/errors.ts';
import { jsonBody } from '../http/json-body.ts';
import { limitByPrincipal } from '../http/limits.ts';
import { contextOf } from '../http/request-context.ts';
import { rolesFor, type HumanPrincipal } from '../services/access.ts';
import type { PrincipalLimiter } from '../services/shared-rate-limiter.ts';
import { parseReportRequest } from '../services/report/filter-input.ts';
import type { ReportJobView, ReportService } from '../services/reports.ts';

const MAX_REPORT_REQUEST_BYTES = 2048;
export const reportIdSchema = z.uuid();

function reportId(req: Request): string {
  const id = req.params.id as string;
  if (!reportIdSchema.safeParse(id).success) throw new ProblemError('request.invalid', 'the report id must be a UUID');
  return id;
}

function withLinks(view: ReportJobView): LinkedReportJob {
  const self = `${API_PREFIX}/reports/${view.id}`;
  return { ...view, links: view.status === 'done' ? { self, bundle: `${self}/bundle.tar.gz` } : { self } };
}

export function reportsResource(deps: { authenticators: Authenticators; reports: ReportService; principalLimiter: PrincipalLimiter }): Router {
  const router = Router();
  const limit = limitByPrincipal(deps.principalLimiter);

  router.post('/reports', requireRole(rolesFor('POST /api/v1/reports'), deps.authenticators), limit, ...jsonBody(MAX_REPORT_REQUEST_BYTES), async (req: Request, res: Response) => {
    const request = parseReportRequest(req.body);
    const principal = principalOf(res) as HumanPrincipal;
    const view = withLinks(await deps.reports.start(request, principal));
    contextOf(res).log.info({ report: view.id, filter: view.filter, checkpointSize: view.checkpointSize, tokenId: principal.tokenId }, 'report export started');
    res.status(202).setHeader('Location', view.links.self).setHeader('Cache-Control', 'no-store').json(view);
  });

  router.get('/reports/:id', requireRole(rolesFor('GET /api/v1/reports/:id'), deps.authenticators), limit, async (req: Request, res: Response) => {
    const view = withLinks(await deps.reports.status(reportId(req), principalOf(res) as HumanPrincipal));
    res.status(200).setHeader('Cache-Control', 'private, no-store').json(view);
  });

  router.get('/reports/:id/bundle.tar.gz', requireRole(rolesFor('GET /api/v1/reports/:id/bundle.tar.gz'), deps.authenticators), limit, async (req: Request, res: Response) => {
    const bundle = await deps.reports.bundle(reportId(req), principalOf(res) as HumanPrincipal);
    res.status(200);
    res.setHeader('Content-Type', 'application/gzip');
    res.setHeader('Content-Length', String(bundle.bytes));
    res.setHeader('Content-Disposition', `attachment; filename="${bundle.fileName}"`);
    res.setHeader('Cache-Control', 'private, no-store');
    try {
      await pipeline(createReadStream(bundle.path), res);
    } catch (err) {
      // The client went away mid-download: nothing to answer, and not a server fault.
      if ((err as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE') throw err;
      contextOf(res).log.info({ report: req.params.id }, 'bundle download ended early by the client');
    }
  });

  router.all('/reports', methodNotAllowed);
  router.all('/reports/:id', methodNotAllowed);
  router.all('/reports/:id/bundle.tar.gz', methodNotAllowed);
  return router;
}
