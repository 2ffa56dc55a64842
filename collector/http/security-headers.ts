/**
 * Secure response headers on EVERY answer (errors and 404s included), set before any route
 * runs. The collector serves JSON and text to programs, never HTML to browsers, so the
 * strictest settings cost nothing:
 * - `X-Content-Type-Options: nosniff`: a JSON body is never sniffed into something executable.
 * - `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'`: nothing may load.
 * - `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`, `Cross-Origin-Resource-Policy:
 *   same-origin`.
 * - `Cache-Control: no-store` by default: answers carry credentials-gated or changing data.
 *   Routes that serve immutable public data (a checkpoint of a given size, a proof) override it.
 * - `Strict-Transport-Security` only when the collector itself terminates TLS (a proxy that
 *   terminates TLS sets it there: docs/security.md).
 * Express's `X-Powered-By` is disabled in app.ts.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';

export const HSTS_VALUE = 'max-age=31536000';

export function securityHeaders(options: { tls: boolean }): RequestHandler {
  return (_req: Request, res: Response, next: NextFunction) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Content-Security-Policy', "default-src 'none'; frame-ancestors 'none'");
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    res.setHeader('Cache-Control', 'no-store');
    if (options.tls) res.setHeader('Strict-Transport-Security', HSTS_VALUE);
    next();
  };
}
