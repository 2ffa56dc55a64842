/**
 * `GET /api/v1/openapi.json`: the API's OpenAPI 3.1 description (openapi/document.ts), public.
 * Built once per process, when the first app is made: it depends only on the code and the
 * package version.
 */
import { Router, type Request, type Response } from 'express';
import { methodNotAllowed } from '../http/errors.ts';
import { buildOpenApiDocument } from './openapi/document.ts';

let documentText: string | undefined;

export function openApiResource(): Router {
  const text = (documentText ??= JSON.stringify(buildOpenApiDocument()));
  const router = Router();
  router.get('/openapi.json', (_req: Request, res: Response) => {
    // Public and the same for every caller, but it changes with an upgrade: revalidate.
    res.status(200).setHeader('Cache-Control', 'no-cache');
    res.type('application/json').send(text);
  });
  router.all('/openapi.json', methodNotAllowed);
  return router;
}
