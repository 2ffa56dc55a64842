/**
 * A minimal agent for collector tests: a real Ed25519 key, a real hash chain, real JWTs and real
 * HTTP. It builds batches the way the agent does, and lets a test bend any part of them.
 */
import { gzipSync } from 'node:zlib';
import { signAgentToken } from '../../../shared/agent-token.ts';
import { generateSigningKey, publicKeyFromJwk, type SigningKey } from '../../../shared/crypto.ts';
import { newId } from '../../../shared/ids.ts';
import { API_PREFIX, type Batch, type EnrollResponse, type SignedReceipt } from '../../../shared/protocol.ts';
import { GENESIS_PREV, recordHash, signRecord, type RecordKind, type SignedRecord } from '../../../shared/record.ts';
import type { KeyObject } from 'node:crypto';
import { collectorApiValidator } from '../../helpers/openapi-validator.ts';

export interface SendOptions {
  token?: string;
  idempotencyKey?: string | null;
  gzip?: boolean;
  headers?: { [name: string]: string };
  /** Raw body instead of JSON.stringify(batch). */
  rawBody?: string | Buffer;
}

export interface HttpAnswer<T = unknown> {
  status: number;
  headers: Headers;
  text: string;
  body: T;
}

export class TestAgent {
  readonly id: string;
  key: SigningKey;
  epoch = 1;
  seq = 0;
  prev = GENESIS_PREV;
  enrollment: EnrollResponse | undefined;
  /** Where it sends; a test may point it at a restarted collector. */
  collectorUrl: string;
  readonly origin: string;

  constructor(id: string, collectorUrl: string, origin: string) {
    this.id = id;
    this.key = generateSigningKey().key;
    this.collectorUrl = collectorUrl;
    this.origin = origin;
  }

  get receiptKey(): KeyObject {
    if (!this.enrollment) throw new Error('not enrolled');
    return publicKeyFromJwk(this.enrollment.receiptKey);
  }

  async enroll(token: string): Promise<HttpAnswer<EnrollResponse>> {
    const answer = await request<EnrollResponse>(`${this.collectorUrl}${API_PREFIX}/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token, agent: this.id, publicKey: this.key.publicJwk }),
    });
    if (answer.status === 200) {
      this.enrollment = answer.body;
      this.epoch = answer.body.epoch;
      this.seq = 0;
      this.prev = GENESIS_PREV;
    }
    return answer;
  }

  /** Starts over with a new key, as a re-installed agent does before enrolling again. */
  newKey(): void {
    this.key = generateSigningKey().key;
  }

  /** The next record of this agent's chain (advances the chain); `at` defaults to now. */
  next(body: { [key: string]: unknown } = { n: this.seq + 1 }, kind: RecordKind = 'audit', type = 'certificate.issued', at = new Date().toISOString()): SignedRecord {
    const record = signRecord(
      {
        v: 1,
        id: newId(),
        agent: this.id,
        epoch: this.epoch,
        seq: this.seq + 1,
        prev: this.prev,
        kind,
        type,
        at,
        body,
        kid: this.key.kid,
      },
      this.key.privateKey,
    );
    this.seq = record.seq;
    this.prev = recordHash(record);
    return record;
  }

  records(count: number): SignedRecord[] {
    return Array.from({ length: count }, () => this.next());
  }

  batch(records: SignedRecord[], batchId = newId()): Batch {
    return { batchId, agent: this.id, epoch: this.epoch, records, backlog: { pending: records.length, oldestAt: records[0]?.at ?? null } };
  }

  token(options: { audience?: string; nowSeconds?: number; lifetimeSeconds?: number; key?: SigningKey; agent?: string } = {}): Promise<string> {
    return signAgentToken({
      key: options.key ?? this.key,
      agent: options.agent ?? this.id,
      audience: options.audience ?? this.origin,
      ...(options.nowSeconds !== undefined ? { nowSeconds: options.nowSeconds } : {}),
      ...(options.lifetimeSeconds !== undefined ? { lifetimeSeconds: options.lifetimeSeconds } : {}),
    });
  }

  async send(batch: Batch | unknown, options: SendOptions = {}): Promise<HttpAnswer> {
    const token = options.token ?? (await this.token());
    const json = options.rawBody ?? JSON.stringify(batch);
    const headers: { [name: string]: string } = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const key = options.idempotencyKey === undefined ? (batch as Batch).batchId : options.idempotencyKey;
    if (key !== null) headers['idempotency-key'] = key;
    let body: string | Buffer = json;
    if (options.gzip) {
      body = gzipSync(json);
      headers['content-encoding'] = 'gzip';
    }
    Object.assign(headers, options.headers);
    return request(`${this.collectorUrl}${API_PREFIX}/batches`, { method: 'POST', headers, body });
  }

  async sendOk(batch: Batch, options: SendOptions = {}): Promise<SignedReceipt> {
    const answer = await this.send(batch, options);
    if (answer.status !== 200) throw new Error(`expected 200, got ${answer.status}: ${answer.text}`);
    return answer.body as SignedReceipt;
  }
}

/**
 * One HTTP request to the collector. Every answer is held to the collector's OpenAPI document
 * (test/helpers/openapi-validator.ts): an undocumented status, problem code, content type or
 * body shape throws an AssertionError here, whatever the test then checks.
 */
export async function request<T = unknown>(url: string, init: RequestInit): Promise<HttpAnswer<T>> {
  const response = await fetch(url, init);
  const text = await response.text();
  collectorApiValidator().assert({ method: init.method ?? 'GET', url, status: response.status, contentType: response.headers.get('content-type'), text });
  let body: unknown = undefined;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: response.status, headers: response.headers, text, body: body as T };
}
