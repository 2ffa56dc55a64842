/**
 * The public, read-only view of the ledger: checkpoints, RFC 9162 proofs and the collector's
 * public keys. Nothing here reveals audit content (hashes and signatures only), so no
 * credentials are needed. Everything is read from committed state.
 *
 *   GET /checkpoint                          latest signed checkpoint (C2SP signed note), text/plain
 *   GET /checkpoints?size=N                  the stored checkpoint of exactly N leaves, text/plain
 *   GET /proofs/consistency?from=A&to=B      { from, to, path }
 *   GET /proofs/inclusion?id=ID[&size=N]     { index, size, leafHash, path }   (or index=I)
 *   GET /keys                                { origin, logKey, jwks }
 *
 * Hashes are base64url (no padding). `size` defaults to the latest checkpoint's size.
 */
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import type { ConsistencyProofAnswer, InclusionProofAnswer } from '../../shared/api-schemas.ts';
import { toBase64Url } from '../../shared/crypto.ts';
import { ProblemError } from '../../shared/problem.ts';
import { methodNotAllowed } from '../http/errors.ts';
import { parseQuery, sizeParam } from '../http/query.ts';
import type { CollectorPublicKeys } from '../keys.ts';
import type { LedgerService } from '../services/ledger.ts';

/** A checkpoint of a given size never changes; the latest does with every commit. */
const IMMUTABLE = 'public, max-age=86400, immutable';
const LATEST = 'no-cache';

export const checkpointQuery = z.strictObject({ size: sizeParam });
export const consistencyQuery = z.strictObject({ from: sizeParam, to: sizeParam });
export const inclusionQuery = z
  .strictObject({ id: z.uuid().optional(), index: sizeParam.optional(), size: sizeParam.optional() })
  .refine((q) => (q.id === undefined) !== (q.index === undefined), { message: 'give exactly one of id and index', path: ['id'] });

function sendNote(res: Response, note: string, cacheControl: string): void {
  res.status(200).setHeader('Cache-Control', cacheControl);
  res.type('text/plain').send(note);
}

export function ledgerResource(deps: { ledger: LedgerService; publicKeys: CollectorPublicKeys }): Router {
  const router = Router();

  router.get('/checkpoint', async (_req: Request, res: Response) => {
    const latest = await deps.ledger.latestCheckpoint();
    if (!latest) throw new ProblemError('resource.not_found', 'the ledger has no checkpoint yet');
    sendNote(res, latest.note, LATEST);
  });

  router.get('/checkpoints', async (req: Request, res: Response) => {
    const { size } = parseQuery(checkpointQuery, req);
    const checkpoint = await deps.ledger.checkpointOfSize(size);
    if (!checkpoint) throw new ProblemError('resource.not_found', `there is no checkpoint of size ${size}`, { size });
    sendNote(res, checkpoint.note, IMMUTABLE);
  });

  router.get('/proofs/consistency', async (req: Request, res: Response) => {
    const { from, to } = parseQuery(consistencyQuery, req);
    const proof = await deps.ledger.consistencyProof(from, to);
    res.status(200).setHeader('Cache-Control', IMMUTABLE);
    res.json({ from: proof.from, to: proof.to, path: proof.path.map(toBase64Url) } satisfies ConsistencyProofAnswer);
  });

  router.get('/proofs/inclusion', async (req: Request, res: Response) => {
    const query = parseQuery(inclusionQuery, req);
    const leaf = query.id !== undefined ? { id: query.id } : { index: query.index! };
    const proof = await deps.ledger.inclusionProof(leaf, query.size);
    // Without an explicit size the answer follows the latest checkpoint.
    res.status(200).setHeader('Cache-Control', query.size === undefined ? LATEST : IMMUTABLE);
    res.json({ index: proof.index, size: proof.size, leafHash: toBase64Url(proof.leafHash), path: proof.path.map(toBase64Url) } satisfies InclusionProofAnswer);
  });

  router.get('/keys', (_req: Request, res: Response) => {
    res.status(200).setHeader('Cache-Control', LATEST);
    res.json(deps.publicKeys);
  });

  for (const path of ['/checkpoint', '/checkpoints', '/proofs/consistency', '/proofs/inclusion', '/keys']) router.all(path, methodNotAllowed);
  return router;
}
