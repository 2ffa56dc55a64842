/**
 * The local API: how applications on this server hand records to the agent.
 *
 * - MUST be bound to 127.0.0.1 only (`listenLocalApi`); it is not a network service.
 * - Every request MUST carry `Authorization: Bearer <contents of local-token>` (constant-time
 *   compare), checked before the body is read.
 * - `POST /v1/records` `{ kind, type, at?, body }` answers 201 `{ id, seq }` only after the record
 *   is committed to the outbox. Witness records (kind `agent`, type `witness.*`) are refused:
 *   only the agent's witness writes them.
 * - Buffer cap (agent/outbox/buffer-cap.ts): above the soft cap telemetry is answered 507
 *   `buffer.telemetry_refused`, at the hard cap audit records 507 `buffer.full`; both refusals
 *   are counted and summarised in a signed `telemetry.dropped` record. A full disk is 507
 *   `storage.full`. A 507 means the record was NOT stored: the caller keeps it or retries later.
 * - `GET /v1/status` answers the agent status, with `delivery` (`status --check`'s verdict with
 *   its default limits), which the container health check reads.
 * - `GET /metrics` answers the Prometheus metrics (agent/metrics/agent-metrics.ts) WITHOUT a
 *   token: numbers only, for a scraper on this server (node_exporter's textfile collector).
 * - Errors are problem+json (shared/problem.ts), made in one error handler; no stack traces.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Logger } from '../../shared/logger.ts';
import { describeZodError } from '../../shared/protocol.ts';
import { PROBLEM_CONTENT_TYPE, ProblemError } from '../../shared/problem.ts';
import { BufferCapError, newRecordSchema, RecordRejectedError, type RecordSigner, type SqliteOutbox } from '../outbox/sqlite-outbox.ts';
import { isDropSummaryRecord, logBufferRefusal } from '../outbox/buffer-refusal.ts';
import { DEFAULT_MAX_PENDING_AGE_MS, deliveryProblems, readAgentStatus } from '../status.ts';
import { isWitnessRecordType } from '../witness/witness-state.ts';
import { isKeyRotationRecord } from '../../shared/key-rotation.ts';
import { tokenMatches } from './local-token.ts';
import { AgentMetrics, METRICS_CONTENT_TYPE } from '../metrics/agent-metrics.ts';

export const LOCAL_API_HOST = '127.0.0.1';
/** A record body is at most 64 KiB canonical; leave room for the envelope and whitespace. */
export const MAX_LOCAL_REQUEST_BYTES = 256 * 1024;

export interface LocalApiOptions {
  outbox: SqliteOutbox;
  key: RecordSigner;
  localToken: string;
  logger: Logger;
  /** The run's metrics, shared with its syncer; made here if not given. */
  metrics?: AgentMetrics;
}

export function createLocalApi(options: LocalApiOptions): express.Express {
  const { outbox, key, localToken, logger } = options;
  const metrics = options.metrics ?? new AgentMetrics({ outbox });
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  // Before the token check: a metrics scraper holds no secret and can write nothing.
  app.get('/metrics', async (_req: Request, res: Response) => {
    res.status(200).type(METRICS_CONTENT_TYPE).send(await metrics.exposition());
  });

  app.use((req: Request, _res: Response, next: NextFunction) => {
    const header = req.get('authorization');
    const match = header === undefined ? null : /^Bearer ([^\s]+)$/i.exec(header.trim());
    if (!tokenMatches(match?.[1], localToken)) {
      next(new ProblemError('auth.invalid_token', 'send Authorization: Bearer <contents of the agent dir\u2019s local-token file>'));
      return;
    }
    next();
  });

  app.post(
    '/v1/records',
    (req: Request, _res: Response, next: NextFunction) => {
      if (!req.is('application/json')) {
        next(new ProblemError('request.unsupported_media_type', 'send the record as Content-Type: application/json'));
        return;
      }
      next();
    },
    express.json({ limit: MAX_LOCAL_REQUEST_BYTES, strict: true }),
    (req: Request, res: Response) => {
      const parsed = newRecordSchema.safeParse(req.body);
      if (!parsed.success) throw new ProblemError('request.invalid', describeZodError(parsed.error));
      if (isWitnessRecordType(parsed.data.kind, parsed.data.type)) {
        throw new ProblemError('request.invalid', `kind agent, type ${parsed.data.type}: witness records are written by the agent itself`);
      }
      if (isKeyRotationRecord(parsed.data)) {
        throw new ProblemError('request.invalid', 'kind agent, type key.rotated: key rotation records are written by `sakshya-agent rotate-key` only');
      }
      if (isDropSummaryRecord(parsed.data)) {
        throw new ProblemError('request.invalid', `kind agent, type ${parsed.data.type}: drop summaries are written by the agent itself`);
      }
      let result;
      try {
        result = outbox.append(parsed.data, key);
      } catch (err) {
        if (err instanceof RecordRejectedError) throw new ProblemError('request.invalid', err.message);
        if (err instanceof BufferCapError) {
          logBufferRefusal(logger, err);
          metrics.bufferRefused();
          throw new ProblemError(err.level === 'soft' ? 'buffer.telemetry_refused' : 'buffer.full', err.message, {
            pendingBytes: err.pendingBytes,
            softCapBytes: err.cap.softBytes,
            hardCapBytes: err.cap.hardBytes,
          });
        }
        if ((err as { code?: unknown }).code === 'SQLITE_FULL') {
          logger.error({ err }, 'the agent disk is full: record refused');
          throw new ProblemError('storage.full', 'the agent\u2019s disk is full: the record was NOT stored');
        }
        throw err;
      }
      logger.debug({ id: result.id, seq: result.seq, kind: parsed.data.kind, type: parsed.data.type }, 'record stored');
      res.status(201).json({ id: result.id, seq: result.seq });
    },
  );

  app.get('/v1/status', (_req: Request, res: Response) => {
    const status = readAgentStatus(outbox);
    const problems = deliveryProblems(status, { maxPendingAgeMs: DEFAULT_MAX_PENDING_AGE_MS, nowMs: Date.now() });
    res.json({ ...status, delivery: { delivering: problems.length === 0, problems } });
  });

  for (const path of ['/v1/records', '/v1/status', '/metrics']) {
    app.all(path, (req: Request) => {
      throw new ProblemError('method.not_allowed', `${req.method} is not allowed on ${path}`);
    });
  }

  app.use((req: Request) => {
    throw new ProblemError('resource.not_found', `no resource at ${req.path}`);
  });

  // The one place errors become responses.
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const problem = toProblem(err);
    // 507s are expected answers, logged where they are decided (buffer-refusal.ts, the full disk above).
    if (problem.status >= 500 && problem.status !== 507) logger.error({ err }, 'local api request failed');
    if (problem.code === 'auth.invalid_token') res.set('WWW-Authenticate', 'Bearer');
    res.status(problem.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem.toBody()));
  });

  return app;
}

function toProblem(err: unknown): ProblemError {
  if (err instanceof ProblemError) return err;
  const parserError = err as { type?: unknown; status?: unknown };
  if (parserError.type === 'entity.parse.failed') return new ProblemError('request.malformed', 'the body is not valid JSON');
  if (parserError.type === 'entity.too.large') return new ProblemError('batch.too_large', `the body exceeds ${MAX_LOCAL_REQUEST_BYTES} bytes`);
  if (parserError.type === 'encoding.unsupported' || parserError.type === 'charset.unsupported') {
    return new ProblemError('request.unsupported_media_type', 'unsupported body encoding or charset');
  }
  return new ProblemError('internal.error', 'internal error');
}

/** Listens on 127.0.0.1 only; port 0 picks a free port. Resolves once listening. */
export async function listenLocalApi(app: express.Express, port: number): Promise<{ server: Server; port: number }> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, LOCAL_API_HOST, (err?: Error) => {
      if (err) {
        reject(err);
        return;
      }
      resolve({ server, port: (server.address() as AddressInfo).port });
    });
  });
}

