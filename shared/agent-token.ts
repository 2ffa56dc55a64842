/**
 * The per-request agent credential: a compact JWS, header
 * `{ alg: "EdDSA", typ: "sakshya-agent+jwt", kid: <agent key thumbprint> }`, signed by the agent
 * key, claims `iss = sub = <agent>`, `aud = <collector origin>`, `iat`, `exp` (≤ 5 min later) and
 * a unique `jti`. Made fresh for every request, so a captured token is useless after minutes
 * and once used (the collector refuses a reused `jti`).
 */
import { SignJWT } from 'jose';
import type { SigningKey } from './crypto.ts';
import { newId } from './ids.ts';
import { AGENT_JWT_TYP, MAX_AGENT_JWT_LIFETIME_SECONDS } from './protocol.ts';

export const DEFAULT_AGENT_JWT_LIFETIME_SECONDS = 120;

export async function signAgentToken(options: {
  key: SigningKey;
  agent: string;
  audience: string;
  lifetimeSeconds?: number;
  nowSeconds?: number;
}): Promise<string> {
  const lifetime = Math.min(options.lifetimeSeconds ?? DEFAULT_AGENT_JWT_LIFETIME_SECONDS, MAX_AGENT_JWT_LIFETIME_SECONDS);
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'EdDSA', typ: AGENT_JWT_TYP, kid: options.key.kid })
    .setIssuer(options.agent)
    .setSubject(options.agent)
    .setAudience(options.audience)
    .setIssuedAt(now)
    .setExpirationTime(now + lifetime)
    .setJti(newId())
    .sign(options.key.privateKey);
}
