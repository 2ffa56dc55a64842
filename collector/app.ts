/**
 * The collector's express application: request context (trace id, child logger), the
 * resources, then 404 and the one error handler. Built from the container; owns no state.
 * It sits above the container and the resources, so that imports only run down: bin → app →
 * container → resources → http → services → store (test/unit/collector/layering.test.ts).
 */
import express, { type Express } from 'express';
import { API_PREFIX } from '../shared/protocol.ts';
import type { Container } from './container.ts';
import { agentsResource } from './resources/agents.ts';
import { batchesResource } from './resources/batches.ts';
import { enrollResource } from './resources/enroll.ts';
import { fleetResource } from './resources/fleet.ts';
import { healthResource } from './resources/health.ts';
import { metricsResource } from './resources/metrics.ts';
import { ledgerResource } from './resources/ledger.ts';
import { openApiResource } from './resources/openapi.ts';
import { recordsResource } from './resources/records.ts';
import { reportsResource } from './resources/reports.ts';
import { errorHandler, notFound } from './http/errors.ts';
import { limitByIp } from './http/limits.ts';
import { requestContext } from './http/request-context.ts';
import { requestMetrics } from './http/request-metrics.ts';
import { securityHeaders } from './http/security-headers.ts';

/**
 * The metrics listener's application: `GET /metrics` (Prometheus text format) and nothing else.
 * It runs on its own port so the API's rate limits, authentication and proxies never stand
 * between Prometheus and the numbers, and the numbers are never on the public port.
 */
export function createMetricsApp(container: Pick<Container, 'metrics' | 'logger'>): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(requestContext(container.logger));
  app.use(metricsResource({ metrics: container.metrics }));
  app.use(notFound);
  app.use(errorHandler);
  return app;
}

export function createApp(container: Container): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const { config, limiters } = container;
  if (config.trustProxy !== undefined) app.set('trust proxy', config.trustProxy);
  app.use(securityHeaders({ tls: config.tlsCert !== undefined }));
  app.use(requestContext(container.logger));
  app.use(requestMetrics(container.metrics));
  app.use(healthResource({ store: container.store, version: container.version }));
  // Per address, before any authentication or body parsing (health checks are exempt above).
  app.use(limitByIp(limiters.ip));
  app.use(API_PREFIX, openApiResource());
  app.use(API_PREFIX, enrollResource({ enrollment: container.enrollment, enrollLimiter: limiters.enroll }));
  app.use(API_PREFIX, batchesResource({ auth: container.agentAuth, ingest: container.ingest, principalLimiter: limiters.principal }));
  app.use(API_PREFIX, ledgerResource({ ledger: container.ledger, publicKeys: container.publicKeys }));
  app.use(API_PREFIX, recordsResource({ authenticators: container.authenticators, records: container.records, principalLimiter: limiters.principal }));
  app.use(API_PREFIX, agentsResource({ authenticators: container.authenticators, enrollment: container.enrollment, principalLimiter: limiters.principal }));
  app.use(API_PREFIX, fleetResource({ authenticators: container.authenticators, fleet: container.fleet, principalLimiter: limiters.principal }));
  app.use(API_PREFIX, reportsResource({ authenticators: container.authenticators, reports: container.reports, principalLimiter: limiters.principal }));
  app.use(notFound);
  app.use(errorHandler);
  return app;
}
