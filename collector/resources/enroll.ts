/**
 * `POST /api/v1/enroll`: an agent trades a one-time enrollment token and its public key for an
 * epoch and the collector keys it pins (origin, log verifier key, receipt key).
 */
import { Router, type Request, type Response } from 'express';
import { ProblemError } from '../../shared/problem.ts';
import { describeZodError, enrollRequestSchema } from '../../shared/protocol.ts';
import { methodNotAllowed } from '../http/errors.ts';
import { jsonBody } from '../http/json-body.ts';
import { limitByIp } from '../http/limits.ts';
import { contextOf } from '../http/request-context.ts';
import type { RateLimiter } from '../services/rate-limiter.ts';
import type { EnrollmentService } from '../services/enrollment.ts';

export const MAX_ENROLL_BODY_BYTES = 16 * 1024;

/** Enrollment is rate limited per address BEFORE the body is read and the token looked up: guessing tokens is slow. */
export function enrollResource(deps: { enrollment: EnrollmentService; enrollLimiter: RateLimiter }): Router {
  const router = Router();
  router.post('/enroll', limitByIp(deps.enrollLimiter, 'to enroll from this address'), ...jsonBody(MAX_ENROLL_BODY_BYTES), async (req: Request, res: Response) => {
    const parsed = enrollRequestSchema.safeParse(req.body);
    if (!parsed.success) {
      throw new ProblemError('request.invalid', describeZodError(parsed.error), {
        errors: parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message })),
      });
    }
    const response = await deps.enrollment.enroll(parsed.data);
    contextOf(res).log.info({ agent: response.agent, epoch: response.epoch }, 'agent enrolled');
    res.status(200).json(response);
  });
  router.all('/enroll', methodNotAllowed);
  return router;
}
