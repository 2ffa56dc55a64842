/**
 * The witness's view of the collector's log: `GET /api/v1/checkpoints?size=N` (a signed note,
 * `text/plain`) and `GET /api/v1/proofs/consistency?from=A&to=B` (JSON). These endpoints are
 * public (they reveal only hashes and signatures), so no credentials are sent.
 *
 * Like the batch client it never retries and never throws for an HTTP status; every failed
 * fetch is classified here, once:
 *
 * | answer                                            | error                 | witness does            |
 * |---------------------------------------------------|-----------------------|-------------------------|
 * | network error, timeout, 3xx, 408, 429, 5xx        | LogUnavailableError   | retry later (backoff)   |
 * | 2xx with another content type, or unparseable JSON | LogUnavailableError   | retry later (a proxy or captive portal answered, not the collector) |
 * | any other 4xx (404: no such checkpoint, 400 …)    | LogRefusedError       | alarm `refused`         |
 * | 2xx JSON of the wrong shape                        | WitnessFailure        | alarm `bad_proof`       |
 */
import got, { RequestError, TimeoutError } from 'got';
import { agentUserAgent } from '../../shared/agent-version.ts';
import { z } from 'zod';
import { API_PREFIX, describeZodError } from '../../shared/protocol.ts';
import { PROBLEM_CONTENT_TYPE } from '../../shared/problem.ts';
import { parseProblem, type ClientTimeouts } from '../sync/client.ts';
import { WitnessFailure, type ConsistencyAnswer } from './checkpoint-verifier.ts';

/** Largest signed note accepted (C2SP notes are tiny; ours are a few hundred bytes). */
const MAX_NOTE_BYTES = 64 * 1024;

/** The log could not be asked (transient): retry later, never an alarm. */
export class LogUnavailableError extends Error {
  override name = 'LogUnavailableError';
  /** network | timeout | server_error | rate_limited | unexpected_response */
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** The collector answered, and refused (4xx): it will not show the checkpoint or proof. */
export class LogRefusedError extends Error {
  override name = 'LogRefusedError';
  readonly status: number;
  readonly code: string | undefined;
  constructor(status: number, code: string | undefined, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const consistencyAnswerSchema = z.object({
  from: z.number().int().min(0),
  to: z.number().int().min(0),
  path: z.array(z.string()).max(128),
});

export interface LogClientOptions {
  collectorUrl: string;
  timeouts: ClientTimeouts;
}

export interface LogReader {
  /** The signed note of the checkpoint of exactly `size`. */
  checkpoint(size: number, signal?: AbortSignal): Promise<string>;
  /** The RFC 9162 consistency proof from `from` to `to`. */
  consistency(from: number, to: number, signal?: AbortSignal): Promise<ConsistencyAnswer>;
}

export class LogClient implements LogReader {
  readonly #base: string;
  readonly #timeouts: ClientTimeouts;

  constructor(options: LogClientOptions) {
    this.#base = `${options.collectorUrl.replace(/\/+$/, '')}${API_PREFIX}`;
    this.#timeouts = options.timeouts;
  }

  async checkpoint(size: number, signal?: AbortSignal): Promise<string> {
    const body = await this.#get(`/checkpoints?size=${size}`, 'text/plain', signal);
    if (Buffer.byteLength(body, 'utf8') > MAX_NOTE_BYTES) throw new LogUnavailableError('unexpected_response', `checkpoint ${size}: answer larger than ${MAX_NOTE_BYTES} bytes`);
    return body;
  }

  async consistency(from: number, to: number, signal?: AbortSignal): Promise<ConsistencyAnswer> {
    const body = await this.#get(`/proofs/consistency?from=${from}&to=${to}`, 'application/json', signal);
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      throw new LogUnavailableError('unexpected_response', `consistency proof ${from} → ${to}: the answer is not JSON`);
    }
    const parsed = consistencyAnswerSchema.safeParse(json);
    if (!parsed.success) throw new WitnessFailure('bad_proof', `consistency proof ${from} → ${to}: ${describeZodError(parsed.error)}`);
    return parsed.data;
  }

  async #get(path: string, contentType: string, signal?: AbortSignal): Promise<string> {
    const url = this.#base + path;
    let response;
    try {
      response = await got(url, {
        headers: { accept: `${contentType}, ${PROBLEM_CONTENT_TYPE}`, 'user-agent': agentUserAgent() },
        timeout: { connect: this.#timeouts.connectMs, response: this.#timeouts.responseMs },
        retry: { limit: 0 },
        throwHttpErrors: false,
        followRedirect: false,
        responseType: 'text',
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      if (err instanceof TimeoutError) throw new LogUnavailableError('timeout', `GET ${path}: timed out (${err.event})`);
      const code = err instanceof RequestError ? err.code : ((err as { code?: string }).code ?? 'ERR_UNKNOWN');
      throw new LogUnavailableError('network', `GET ${path}: ${code}: ${(err as Error).message}`);
    }
    const { statusCode, body } = response;
    if (statusCode >= 200 && statusCode < 300) {
      const type = String(response.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (type !== contentType) throw new LogUnavailableError('unexpected_response', `GET ${path}: HTTP ${statusCode} with content type ${JSON.stringify(type)}, not ${contentType}`);
      return body;
    }
    const problem = parseProblem(body);
    const detail = `GET ${path}: HTTP ${statusCode}${problem.code ? ` ${problem.code}` : ''}${problem.detail ? `: ${problem.detail}` : ''}`;
    if (statusCode === 429) throw new LogUnavailableError('rate_limited', detail);
    if (statusCode >= 500) throw new LogUnavailableError('server_error', detail);
    if (statusCode < 400 || statusCode === 408) throw new LogUnavailableError(statusCode === 408 ? 'timeout' : 'unexpected_response', detail);
    throw new LogRefusedError(statusCode, problem.code, detail);
  }
}
