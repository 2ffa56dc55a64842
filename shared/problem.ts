/**
 * The error catalogue: every error that crosses a process boundary has a stable code, an HTTP
 * status and a title. Bodies are RFC 9457 `application/problem+json`:
 * `{ type: "urn:sakshya:problem:<code>", title, status, detail, code, ...extras }`.
 * Codes are an API: never rename one; add a new one instead.
 */
export const PROBLEM_TYPE_PREFIX = 'urn:sakshya:problem:';
export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

export const PROBLEMS = {
  'request.malformed': { status: 400, title: 'The request could not be parsed' },
  'request.invalid': { status: 400, title: 'The request does not match the schema' },
  'batch.invalid': { status: 400, title: 'The batch or one of its records is invalid' },
  'auth.invalid_token': { status: 401, title: 'Missing, invalid or expired credentials' },
  'enroll.token_invalid': { status: 401, title: 'The enrollment token is unknown, used, expired or for another agent' },
  'auth.forbidden': { status: 403, title: 'These credentials do not allow this action' },
  'agent.revoked': { status: 403, title: 'This agent has been revoked' },
  'resource.not_found': { status: 404, title: 'No such resource' },
  'method.not_allowed': { status: 405, title: 'Method not allowed on this resource' },
  'batch.out_of_order': { status: 409, title: 'The batch does not continue the stored chain' },
  'record.equivocation': { status: 409, title: 'A record conflicts with one already stored for the same sequence number' },
  'enroll.agent_active': { status: 409, title: 'The agent id is enrolled and active; only a replacement token (--replace) may enroll it again' },
  'batch.epoch_stale': { status: 409, title: 'The batch is for an epoch that is not the agent\u2019s current one' },
  'report.not_ready': { status: 409, title: 'The report export has not finished, or it failed' },
  'report.elsewhere': { status: 409, title: 'The report bundle is kept by another collector replica' },
  'report.expired': { status: 410, title: 'The report bundle was kept for the retention period and has been deleted; export it again' },
  'idempotency.key_reused': { status: 422, title: 'The Idempotency-Key was already used for a different batch' },
  'batch.too_large': { status: 413, title: 'The request body is too large' },
  'request.unsupported_media_type': { status: 415, title: 'Unsupported content type or encoding' },
  'rate.limited': { status: 429, title: 'Too many requests' },
  'report.busy': { status: 429, title: 'A report export is already running; try again later' },
  'internal.error': { status: 500, title: 'Internal error' },
  'service.unavailable': { status: 503, title: 'The service cannot accept this request now' },
  'ingest.busy': { status: 503, title: 'Too many batches are waiting to be checked or written; send this one again after Retry-After' },
  'storage.full': { status: 507, title: 'The local buffer is full' },
  'report.storage_full': { status: 507, title: 'The collector\u2019s disk is below the free space kept for it: no report export now' },
  'buffer.telemetry_refused': { status: 507, title: 'The agent buffer is above its soft cap: telemetry is refused, audit records are still accepted' },
  'buffer.full': { status: 507, title: 'The agent buffer is at its hard cap: the record was refused' },
} as const satisfies { [code: string]: { status: number; title: string } };

export type ProblemCode = keyof typeof PROBLEMS;

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ProblemCode;
  [extra: string]: unknown;
}

/** An error meant for the caller. `extras` are added to the problem body (e.g. expectedSeq). */
export class ProblemError extends Error {
  override name = 'ProblemError';
  readonly code: ProblemCode;
  readonly status: number;
  readonly extras: { [key: string]: unknown };
  /** Seconds, for 429/503 answers: sent as Retry-After. */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ProblemCode, detail: string, extras: { [key: string]: unknown } = {}, retryAfterSeconds?: number) {
    super(detail);
    this.code = code;
    this.status = PROBLEMS[code].status;
    this.extras = extras;
    this.retryAfterSeconds = retryAfterSeconds;
  }

  toBody(): ProblemBody {
    return problemBody(this.code, this.message, this.extras);
  }
}

export function problemBody(code: ProblemCode, detail: string, extras: { [key: string]: unknown } = {}): ProblemBody {
  const { status, title } = PROBLEMS[code];
  return { ...extras, type: PROBLEM_TYPE_PREFIX + code, title, status, detail, code };
}

export function isProblemCode(value: unknown): value is ProblemCode {
  return typeof value === 'string' && Object.hasOwn(PROBLEMS, value);
}
