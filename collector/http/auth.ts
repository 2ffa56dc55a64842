/**
 * HTTP side of agent authentication: reads the Authorization header, asks AgentAuthService,
 * and leaves the authenticated agent on the response for the route. The token is never logged.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { AgentAuthService, AuthenticatedAgent } from '../services/agent-auth.ts';

export function requireAgent(auth: AgentAuthService): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    res.locals.agent = await auth.authenticate(req.get('authorization'));
    next();
  };
}

export function authenticatedAgent(res: Response): AuthenticatedAgent {
  const agent = res.locals.agent as AuthenticatedAgent | undefined;
  if (!agent) throw new Error('requireAgent middleware is not installed');
  return agent;
}
