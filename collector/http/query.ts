/**
 * Query-string parsing for GET resources: one strict zod schema per route (an unknown or
 * repeated parameter is an error, never ignored), failures as 400 `request.invalid` listing
 * every problem.
 */
import type { Request } from 'express';
import { z } from 'zod';
import { ProblemError } from '../../shared/problem.ts';
import { describeZodError } from '../../shared/protocol.ts';

/** A tree size or ledger index in a query: decimal, no sign or leading zeros, a safe integer. */
export const sizeParam = z
  .string()
  .regex(/^(0|[1-9][0-9]*)$/, 'must be a non-negative decimal integer without leading zeros')
  .transform(Number)
  .refine(Number.isSafeInteger, 'is too large');

export function parseQuery<T extends z.ZodType>(schema: T, req: Request): z.output<T> {
  const parsed = schema.safeParse({ ...(req.query as object) });
  if (!parsed.success) {
    throw new ProblemError('request.invalid', describeZodError(parsed.error), {
      errors: parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message })),
    });
  }
  return parsed.data;
}
