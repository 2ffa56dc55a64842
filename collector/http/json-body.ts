/**
 * JSON request bodies: `Content-Type: application/json`, `Content-Encoding` identity or gzip,
 * at most `limit` bytes after decompression (so a small gzip body cannot inflate past it).
 * Other types or encodings are 415; parse errors become problems in http/errors.ts.
 */
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { ProblemError } from '../../shared/problem.ts';

const ACCEPTED_ENCODINGS = new Set(['identity', 'gzip']);

const requireJson: RequestHandler = (req: Request, _res: Response, next: NextFunction) => {
  const encoding = (req.get('content-encoding') ?? 'identity').trim().toLowerCase();
  if (!ACCEPTED_ENCODINGS.has(encoding)) {
    throw new ProblemError('request.unsupported_media_type', `Content-Encoding ${encoding} is not supported; send identity or gzip`);
  }
  if (!req.is('application/json')) {
    throw new ProblemError('request.unsupported_media_type', 'the body must be Content-Type: application/json');
  }
  next();
};

export function jsonBody(limit: number): RequestHandler[] {
  return [requireJson, express.json({ limit, strict: true, inflate: true, type: 'application/json' })];
}
