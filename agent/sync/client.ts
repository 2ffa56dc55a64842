/**
 * The collector client: one `POST /api/v1/batches` per call, and nothing else. It never retries
 * (got's own retry is disabled; the syncer's loop decides, through retry.ts) and never throws
 * for an HTTP status: every attempt ends as a receipt or a classified SendOutcome.
 *
 * Each request carries a fresh agent JWT (audience = the pinned origin), the batch id as
 * `Idempotency-Key`, `Content-Encoding: gzip`, a `traceparent` and `User-Agent:
 * sakshya-agent/<version>`.
 *
 * Key rotation (ADR 0006): the JWT is signed with the first of `tokenKeys()` — the key the
 * collector knows. Only if the collector answers 401 `auth.invalid_token` is the same batch
 * sent once more with each newer key in turn: the collector may have stored a rotation whose
 * receipt never arrived, and then knows only the new key.
 */
import got, { RequestError, TimeoutError } from 'got';
import { agentUserAgent } from '../../shared/agent-version.ts';
import type { SigningKey } from '../../shared/crypto.ts';
import { signAgentToken } from '../../shared/agent-token.ts';
import { API_PREFIX, signedReceiptSchema, describeZodError, type SignedReceipt } from '../../shared/protocol.ts';
import { PROBLEM_CONTENT_TYPE } from '../../shared/problem.ts';
import type { SendOutcome } from './retry.ts';

export interface ClientTimeouts {
  connectMs: number;
  responseMs: number;
}

export interface BatchClientOptions {
  collectorUrl: string;
  /** The collector origin pinned at enrollment: the JWT audience. */
  origin: string;
  agent: string;
  /** The key to sign JWTs with, when there is only one (tests). */
  key?: SigningKey;
  /** The keys to sign JWTs with, best first (read per request); overrides `key`. */
  tokenKeys?: () => SigningKey[];
  timeouts: ClientTimeouts;
}

export interface OutgoingBatch {
  batchId: string;
  /** gzip of the batch JSON. */
  gzipped: Buffer;
  traceparent: string;
}

export type SendResult = { ok: true; status: number; signed: SignedReceipt } | { ok: false; outcome: SendOutcome };

export class BatchClient {
  readonly url: string;
  readonly #options: BatchClientOptions;

  constructor(options: BatchClientOptions) {
    this.#options = options;
    this.url = `${options.collectorUrl.replace(/\/+$/, '')}${API_PREFIX}/batches`;
  }

  async send(batch: OutgoingBatch, signal?: AbortSignal): Promise<SendResult> {
    const keys = this.#options.tokenKeys?.() ?? (this.#options.key ? [this.#options.key] : []);
    if (keys.length === 0) throw new Error('BatchClient has no key to sign agent JWTs with');
    let result: SendResult | undefined;
    for (const key of keys) {
      result = await this.#sendWith(key, batch, signal);
      const refused = !result.ok && result.outcome.kind === 'http' && result.outcome.status === 401 && result.outcome.code === 'auth.invalid_token';
      if (!refused) break;
    }
    return result!;
  }

  async #sendWith(key: SigningKey, batch: OutgoingBatch, signal?: AbortSignal): Promise<SendResult> {
    const { agent, origin, timeouts } = this.#options;
    const jwt = await signAgentToken({ key, agent, audience: origin });
    let response;
    try {
      response = await got.post(this.url, {
        body: batch.gzipped,
        headers: {
          authorization: `Bearer ${jwt}`,
          'content-type': 'application/json',
          'content-encoding': 'gzip',
          'idempotency-key': batch.batchId,
          traceparent: batch.traceparent,
          accept: `application/json, ${PROBLEM_CONTENT_TYPE}`,
          'user-agent': agentUserAgent(),
        },
        timeout: { connect: timeouts.connectMs, send: timeouts.responseMs, response: timeouts.responseMs },
        retry: { limit: 0 },
        throwHttpErrors: false,
        followRedirect: false,
        responseType: 'text',
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      return { ok: false, outcome: outcomeOfError(err) };
    }
    const { statusCode, body } = response;
    if (statusCode >= 200 && statusCode < 300) {
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        return { ok: false, outcome: { kind: 'bad_receipt', reason: `HTTP ${statusCode} with a body that is not JSON` } };
      }
      const parsed = signedReceiptSchema.safeParse(json);
      if (!parsed.success) return { ok: false, outcome: { kind: 'bad_receipt', reason: `malformed receipt: ${describeZodError(parsed.error)}` } };
      return { ok: true, status: statusCode, signed: parsed.data };
    }
    const retryAfter = response.headers['retry-after'];
    return { ok: false, outcome: { kind: 'http', status: statusCode, retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined, ...parseProblem(body) } };
  }
}

/** The fields of a problem+json body the agent acts on; tolerant of any other body. */
export function parseProblem(body: string): { code?: string; detail?: string; expectedSeq?: number } {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return body.length > 0 ? { detail: body.slice(0, 200) } : {};
  }
  if (typeof json !== 'object' || json === null) return {};
  const problem = json as { code?: unknown; detail?: unknown; title?: unknown; expectedSeq?: unknown };
  const result: { code?: string; detail?: string; expectedSeq?: number } = {};
  if (typeof problem.code === 'string') result.code = problem.code;
  if (typeof problem.detail === 'string') result.detail = problem.detail;
  else if (typeof problem.title === 'string') result.detail = problem.title;
  if (typeof problem.expectedSeq === 'number') result.expectedSeq = problem.expectedSeq;
  return result;
}

function outcomeOfError(err: unknown): SendOutcome {
  if (err instanceof TimeoutError) return { kind: 'timeout', phase: err.event };
  if (err instanceof RequestError) return { kind: 'network', code: err.code, message: err.message };
  const error = err as { code?: unknown; message?: unknown };
  return { kind: 'network', code: typeof error.code === 'string' ? error.code : 'ERR_UNKNOWN', message: String(error.message ?? err) };
}
