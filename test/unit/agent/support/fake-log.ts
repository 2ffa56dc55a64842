/**
 * An in-memory transparency log that serves the collector's read endpoints faithfully
 * (`GET /api/v1/checkpoint`, `/checkpoints?size=N`, `/proofs/consistency?from=A&to=B`), with a
 * real Ed25519 log key, real C2SP signed checkpoints and real RFC 9162 proofs — and, on demand,
 * misbehaviour: scripted answers per request, and a forked history (`rewrite`) re-signed with
 * the real key. Used alone (witness tests) and inside the fake collector.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type Request, type Response, type Router } from 'express';
import { signCheckpoint } from '../../../../shared/checkpoint.ts';
import { fromBase64Url, generateSigningKey, sha256, toBase64Url, type SigningKey } from '../../../../shared/crypto.ts';
import { consistencyProof, leafHash, rootHash } from '../../../../shared/merkle.ts';
import { problemBody, PROBLEM_CONTENT_TYPE, type ProblemCode } from '../../../../shared/problem.ts';
import { noteSignerFromSigningKey, verifierKeyString, type NoteSigner } from '../../../../shared/signed-note.ts';

export interface CheckpointRef {
  size: number;
  root: string;
}

/** What to answer one log request with, instead of the truth. */
export type LogBehaviour =
  /** Answer truthfully (to script a later request). */
  | { kind: 'truth' }
  | { kind: 'problem'; code: ProblemCode; retryAfter?: string }
  | { kind: 'status'; status: number; body?: string; contentType?: string }
  | { kind: 'hang' }
  | { kind: 'reset' }
  /** A checkpoint request answered with this note text. */
  | { kind: 'note'; note: string }
  /** A consistency request answered with this JSON. */
  | { kind: 'proof'; answer: unknown }
  /** Answer truthfully, but flip one bit of the first proof element. */
  | { kind: 'flip_proof_bit' };

export class FakeLog {
  readonly origin: string;
  readonly key: SigningKey;
  readonly signer: NoteSigner;
  /** The verifier key string agents pin. */
  readonly verifierKey: string;
  readonly leaves: Buffer[] = [];
  readonly notes = new Map<number, string>();
  readonly behaviours: LogBehaviour[] = [];
  /** Paths (with query) of every log request, in order. */
  readonly requests: string[] = [];
  #hanging: Response[] = [];
  #server: Server | undefined;
  url = '';

  constructor(origin: string, key: SigningKey = generateSigningKey().key) {
    this.origin = origin;
    this.key = key;
    this.signer = noteSignerFromSigningKey(origin, key);
    this.verifierKey = verifierKeyString(origin, fromBase64Url(key.publicJwk.x));
  }

  get size(): number {
    return this.leaves.length;
  }

  /** Appends leaves and signs the checkpoint of the new size. */
  appendLeaves(leafHashes: readonly Buffer[]): CheckpointRef {
    this.leaves.push(...leafHashes);
    return this.#sign(this.leaves.length);
  }

  /** Appends `n` leaves of arbitrary data. */
  grow(n: number): CheckpointRef {
    const start = this.leaves.length;
    return this.appendLeaves(Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`${this.origin} leaf ${start + i} ${Math.random()}`))));
  }

  /** The checkpoint of `size` (default: the current size) as receipts name it. */
  ref(size = this.leaves.length): CheckpointRef {
    return { size, root: toBase64Url(rootHash(this.leaves.slice(0, size))) };
  }

  /**
   * Forks history: replaces leaf `index` and re-signs, with the real key, the checkpoint of every
   * size that includes it — what a collector whose operators rewrote a past entry would serve.
   */
  rewrite(index: number): void {
    this.leaves[index] = sha256(Buffer.concat([this.leaves[index]!, Buffer.from('forged')]));
    for (let size = index + 1; size <= this.leaves.length; size++) if (this.notes.has(size)) this.#sign(size);
  }

  /** Forgets everything from `size` on (a collector restored from an old backup). */
  truncate(size: number): void {
    this.leaves.length = size;
    for (const n of [...this.notes.keys()]) if (n > size) this.notes.delete(n);
  }

  #sign(size: number): CheckpointRef {
    const root = rootHash(this.leaves.slice(0, size));
    this.notes.set(size, signCheckpoint({ origin: this.origin, size, rootHash: root, extensions: [] }, this.signer));
    return { size, root: toBase64Url(root) };
  }

  /** The read endpoints, to mount at the root of an express app. */
  routes(): Router {
    const router = express.Router();
    router.get('/api/v1/checkpoint', (req, res) => {
      if (this.#misbehave(req, res, 'checkpoint')) return;
      res.type('text/plain').send(this.notes.get(this.leaves.length) ?? '');
    });
    router.get('/api/v1/checkpoints', (req, res) => {
      if (this.#misbehave(req, res, 'checkpoint')) return;
      const size = Number(req.query.size);
      const note = this.notes.get(size);
      if (note === undefined) {
        sendProblem(res, 'resource.not_found', `no checkpoint of size ${String(req.query.size)}`);
        return;
      }
      res.type('text/plain').send(note);
    });
    router.get('/api/v1/proofs/consistency', (req, res) => {
      const behaviour = this.behaviours[0];
      if (behaviour?.kind !== 'flip_proof_bit' && this.#misbehave(req, res, 'proof')) return;
      if (behaviour?.kind === 'flip_proof_bit') {
        this.behaviours.shift();
        this.requests.push(req.originalUrl);
      }
      const from = Number(req.query.from);
      const to = Number(req.query.to);
      if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 1 || to < from || to > this.leaves.length) {
        sendProblem(res, 'request.invalid', `no consistency proof from ${String(req.query.from)} to ${String(req.query.to)}`);
        return;
      }
      const path = consistencyProof(from, to, (i) => this.leaves[i]!).map((hash) => Buffer.from(hash));
      if (behaviour?.kind === 'flip_proof_bit' && path.length > 0) path[0]![0]! ^= 0x01;
      res.json({ from, to, path: path.map(toBase64Url) });
    });
    return router;
  }

  /** Consumes and carries out the next scripted behaviour; true if it answered. */
  #misbehave(req: Request, res: Response, endpoint: 'checkpoint' | 'proof'): boolean {
    this.requests.push(req.originalUrl);
    const behaviour = this.behaviours.shift();
    switch (behaviour?.kind) {
      case undefined:
      case 'truth':
        return false;
      case 'problem': {
        const body = problemBody(behaviour.code, 'scripted');
        res.status(body.status).type(PROBLEM_CONTENT_TYPE);
        if (behaviour.retryAfter) res.set('retry-after', behaviour.retryAfter);
        res.send(JSON.stringify(body));
        return true;
      }
      case 'status':
        res.status(behaviour.status).type(behaviour.contentType ?? 'text/html').send(behaviour.body ?? '<html>captive portal</html>');
        return true;
      case 'hang':
        this.#hanging.push(res);
        return true;
      case 'reset':
        res.socket?.destroy();
        return true;
      case 'note':
        if (endpoint !== 'checkpoint') throw new Error('scripted a note for a proof request');
        res.type('text/plain').send(behaviour.note);
        return true;
      case 'proof':
        if (endpoint !== 'proof') throw new Error('scripted a proof for a checkpoint request');
        res.json(behaviour.answer);
        return true;
      case 'flip_proof_bit':
        throw new Error('flip_proof_bit is for proof requests');
    }
  }

  async serve(): Promise<string> {
    const app = express();
    app.use(this.routes());
    this.#server = createServer(app);
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    for (const res of this.#hanging) res.destroy();
    this.#hanging = [];
    if (!this.#server) return;
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server!.close(() => resolve()));
  }
}

function sendProblem(res: Response, code: ProblemCode, detail: string): void {
  const body = problemBody(code, detail);
  res.status(body.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(body));
}
