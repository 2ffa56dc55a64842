/**
 * A small in-process collector that speaks wire protocol v1 faithfully enough to test the agent
 * alone: enrollment with one-time tokens, agent JWT checks, record signature and chain checks,
 * duplicates, out-of-order answers, signed receipts, Idempotency-Key replay. Tests can script
 * misbehaviour per batch request (errors, hangs, lost responses, tampered receipts).
 * Its ledger is a real Merkle log (fake-log.ts): receipts name true signed checkpoints, and the
 * log's read endpoints serve them and their consistency proofs, so agents witness it.
 * The real collector is exercised in test/integration/agent/sync.test.ts.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Request, type Response } from 'express';
import { decodeJwt, jwtVerify } from 'jose';
import { canonicalJson } from '../../../../shared/canonical-json.ts';
import { generateSigningKey, publicKeyFromJwk, type Ed25519PublicJwk, type SigningKey } from '../../../../shared/crypto.ts';
import { batchSchema, describeZodError, type Receipt, type SignedReceipt } from '../../../../shared/protocol.ts';
import { problemBody, PROBLEM_CONTENT_TYPE, type ProblemCode } from '../../../../shared/problem.ts';
import { signReceipt } from '../../../../shared/receipt.ts';
import { GENESIS_PREV, leafHashOfCanonical, recordHash, verifyRecordSignature, type SignedRecord } from '../../../../shared/record.ts';
import { FakeLog } from './fake-log.ts';

export const FAKE_ORIGIN = 'fake.sakshya.local/collector';

/** What to do with one batch request instead of (or around) normal processing. */
export type Behaviour =
  /** Behave normally. */
  | { kind: 'none' }
  | { kind: 'problem'; code: ProblemCode; detail?: string; extras?: { [key: string]: unknown }; retryAfter?: string }
  | { kind: 'hang' }
  /** Process and commit the batch, then drop the connection before answering. */
  | { kind: 'commit_then_drop' }
  /** Answer with the receipt signed by some other key. */
  | { kind: 'foreign_signature' }
  /** Change one field of the receipt after signing it. */
  | { kind: 'tamper_receipt' }
  /** Answer with a correctly signed receipt for a different batch id. */
  | { kind: 'wrong_batch' }
  /** Forget everything stored above `seq` for the agent (a collector restored from a backup). */
  | { kind: 'rollback_to'; seq: number };

export interface BatchRequestLog {
  batchId: string;
  idempotencyKey: string | undefined;
  traceparent: string | undefined;
  contentEncoding: string | undefined;
  firstSeq: number;
  lastSeq: number;
  count: number;
  backlog: unknown;
  status: number;
}

interface AgentEntry {
  publicJwk: Ed25519PublicJwk;
  epoch: number;
  highestSeq: number;
  highestHash: string;
  records: Map<number, string>;
}

export class FakeCollector {
  readonly receiptKey: SigningKey = generateSigningKey().key;
  readonly origin = FAKE_ORIGIN;
  readonly agents = new Map<string, AgentEntry>();
  readonly tokens = new Map<string, string>();
  readonly behaviours: Behaviour[] = [];
  readonly requests: BatchRequestLog[] = [];
  readonly receipts = new Map<string, SignedReceipt>();
  readonly usedJtis = new Set<string>();
  /** The ledger: every accepted record's leaf, with signed checkpoints and proofs. */
  readonly log = new FakeLog(FAKE_ORIGIN);
  /** Batch bodies as received (parsed JSON), in order. */
  readonly batches: Array<{ [key: string]: unknown }> = [];
  url = '';
  #server: Server | undefined;
  #hanging: Response[] = [];

  static async start(): Promise<FakeCollector> {
    const collector = new FakeCollector();
    const server = createServer(collector.#app());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    collector.#server = server;
    collector.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return collector;
  }

  async stop(): Promise<void> {
    for (const res of this.#hanging) res.destroy();
    this.#server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }

  get ledgerSize(): number {
    return this.log.size;
  }

  issueToken(agent: string): string {
    const token = `tok-${agent}-${Math.random().toString(36).slice(2)}-${Date.now()}`;
    this.tokens.set(token, agent);
    return token;
  }

  /** Records stored for `agent`, in seq order, as canonical text. */
  stored(agent: string): string[] {
    const entry = this.agents.get(agent);
    if (!entry) return [];
    return [...entry.records.entries()].sort((a, b) => a[0] - b[0]).map(([, text]) => text);
  }

  #app(): express.Express {
    const app = express();
    app.post('/api/v1/enroll', express.json(), (req: Request, res: Response) => {
      const { token, agent, publicKey } = req.body as { token: string; agent: string; publicKey: Ed25519PublicJwk };
      if (this.tokens.get(token) !== agent) {
        sendProblem(res, 'enroll.token_invalid', 'the enrollment token is unknown, used, expired or for another agent');
        return;
      }
      this.tokens.delete(token);
      const epoch = (this.agents.get(agent)?.epoch ?? 0) + 1;
      this.agents.set(agent, { publicJwk: publicKey, epoch, highestSeq: 0, highestHash: GENESIS_PREV, records: new Map() });
      res.json({ agent, epoch, origin: this.origin, logKey: this.log.verifierKey, receiptKey: { ...this.receiptKey.publicJwk, kid: this.receiptKey.kid } });
    });
    app.use(this.log.routes());
    app.post('/api/v1/batches', express.raw({ type: () => true, limit: '16mb' }), (req: Request, res: Response) => {
      void this.#batch(req, res).catch((err: unknown) => sendProblem(res, 'internal.error', (err as Error).message));
    });
    return app;
  }

  async #batch(req: Request, res: Response): Promise<void> {
    const log: BatchRequestLog = {
      batchId: '',
      idempotencyKey: req.get('idempotency-key'),
      traceparent: req.get('traceparent'),
      contentEncoding: req.get('content-encoding'),
      firstSeq: 0,
      lastSeq: 0,
      count: 0,
      backlog: undefined,
      status: 0,
    };
    this.requests.push(log);
    const answer = (status: number, body: unknown, type = 'application/json', headers: { [k: string]: string } = {}) => {
      log.status = status;
      res.status(status).set(headers).type(type).send(JSON.stringify(body));
    };
    const behaviour = this.behaviours.shift();
    const raw = req.body as Buffer; // body-parser has already inflated a gzip body
    let json: { batchId?: string; records?: Array<{ seq: number }>; backlog?: unknown };
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch {
      answer(400, problemBody('request.malformed', 'not JSON'), PROBLEM_CONTENT_TYPE);
      return;
    }
    log.batchId = json.batchId ?? '';
    log.count = json.records?.length ?? 0;
    log.firstSeq = json.records?.[0]?.seq ?? 0;
    log.lastSeq = json.records?.at(-1)?.seq ?? 0;
    log.backlog = json.backlog;
    this.batches.push(json as { [key: string]: unknown });

    if (behaviour?.kind === 'hang') {
      this.#hanging.push(res);
      return;
    }
    if (behaviour?.kind === 'problem') {
      const { status } = problemBody(behaviour.code, '');
      answer(status, problemBody(behaviour.code, behaviour.detail ?? 'scripted', behaviour.extras), PROBLEM_CONTENT_TYPE, behaviour.retryAfter ? { 'retry-after': behaviour.retryAfter } : {});
      return;
    }

    // Authentication: a fresh agent JWT for the enrolled key, audience = origin, jti once.
    const token = /^Bearer (.+)$/.exec(req.get('authorization') ?? '')?.[1];
    const subject = token ? (decodeJwt(token).sub ?? '') : '';
    const entry = this.agents.get(subject);
    try {
      if (!token || !entry) throw new Error('no token or unknown agent');
      const { payload } = await jwtVerify(token, publicKeyFromJwk(entry.publicJwk), { audience: this.origin, issuer: subject, typ: 'sakshya-agent+jwt' });
      if (this.usedJtis.has(String(payload.jti))) throw new Error('jti reused');
      this.usedJtis.add(String(payload.jti));
    } catch (err) {
      answer(401, problemBody('auth.invalid_token', (err as Error).message), PROBLEM_CONTENT_TYPE);
      return;
    }
    if (behaviour?.kind === 'rollback_to') {
      for (const seq of [...entry.records.keys()]) if (seq > behaviour.seq) entry.records.delete(seq);
      entry.highestSeq = behaviour.seq;
      entry.highestHash = behaviour.seq === 0 ? GENESIS_PREV : recordHash(JSON.parse(entry.records.get(behaviour.seq)!) as SignedRecord);
    }

    const previous = this.receipts.get(log.idempotencyKey ?? '');
    if (previous) {
      answer(200, previous);
      return;
    }
    const parsed = batchSchema.safeParse(json);
    if (!parsed.success) {
      answer(400, problemBody('batch.invalid', describeZodError(parsed.error)), PROBLEM_CONTENT_TYPE);
      return;
    }
    const batch = parsed.data;
    if (batch.agent !== subject || batch.epoch !== entry.epoch) {
      answer(403, problemBody('auth.forbidden', 'batch for another agent or epoch'), PROBLEM_CONTENT_TYPE);
      return;
    }
    const key = publicKeyFromJwk(entry.publicJwk);
    let highestSeq = entry.highestSeq;
    let highestHash = entry.highestHash;
    let duplicates = 0;
    const fresh: Array<[number, string]> = [];
    for (const record of batch.records as SignedRecord[]) {
      if (!verifyRecordSignature(record, key)) {
        answer(400, problemBody('batch.invalid', `record ${record.seq}: bad signature`), PROBLEM_CONTENT_TYPE);
        return;
      }
      const hash = recordHash(record);
      if (record.seq <= highestSeq) {
        const stored = entry.records.get(record.seq);
        if (stored !== undefined && recordHash(JSON.parse(stored) as SignedRecord) === hash) {
          duplicates += 1;
          continue;
        }
        answer(409, problemBody('record.equivocation', `record ${record.seq} differs from the stored one`), PROBLEM_CONTENT_TYPE);
        return;
      }
      if (record.seq !== highestSeq + 1 || record.prev !== highestHash) {
        answer(409, problemBody('batch.out_of_order', `expected seq ${entry.highestSeq + 1}`, { expectedSeq: entry.highestSeq + 1 }), PROBLEM_CONTENT_TYPE);
        return;
      }
      fresh.push([record.seq, canonicalJson(record)]);
      highestSeq = record.seq;
      highestHash = hash;
    }
    for (const [seq, text] of fresh) entry.records.set(seq, text);
    entry.highestSeq = highestSeq;
    entry.highestHash = highestHash;
    const first = this.ledgerSize;
    const checkpoint = fresh.length > 0 ? this.log.appendLeaves(fresh.map(([, text]) => leafHashOfCanonical(Buffer.from(text, 'utf8')))) : this.log.ref();
    const receipt: Receipt = {
      v: 1,
      collector: this.origin,
      batchId: batch.batchId,
      agent: batch.agent,
      epoch: batch.epoch,
      accepted: fresh.length,
      duplicates,
      highestSeq,
      ledger: fresh.length > 0 ? { first, last: this.ledgerSize - 1 } : null,
      checkpoint,
      receivedAt: new Date().toISOString(),
    };
    let signed = await signReceipt(receipt, this.receiptKey.privateKey, this.receiptKey.kid);
    this.receipts.set(batch.batchId, signed);
    switch (behaviour?.kind) {
      case 'commit_then_drop':
        log.status = -1;
        res.destroy();
        return;
      case 'foreign_signature':
        signed = await signReceipt(receipt, generateSigningKey().key.privateKey, this.receiptKey.kid);
        break;
      case 'tamper_receipt':
        signed = { ...signed, receipt: { ...receipt, highestSeq: receipt.highestSeq + 1 } };
        break;
      case 'wrong_batch':
        signed = await signReceipt({ ...receipt, batchId: crypto.randomUUID() }, this.receiptKey.privateKey, this.receiptKey.kid);
        break;
    }
    answer(200, signed);
  }
}

function sendProblem(res: Response, code: ProblemCode, detail: string): void {
  const body = problemBody(code, detail);
  res.status(body.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
}
