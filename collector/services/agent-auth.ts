/**
 * Agent authentication for the batch endpoint: a fresh, short-lived EdDSA JWT per request,
 * signed by the agent's enrolled key (shared/agent-token.ts describes the token).
 *
 * Rules
 * - The key is looked up ONLY by the `sub`/`iss` claim's agent in its current epoch. Key
 *   material or locations named by the token (`jwk`, `jku`, `x5u`, `x5c` headers) are never
 *   used; the header `kid` MUST equal the thumbprint of the epoch's CURRENT key: the enrolled
 *   key, or after a key rotation (ADR 0006) the newest key of its history; a retired key → 401.
 * - `alg` MUST be EdDSA and `typ` MUST be `sakshya-agent+jwt`; `aud` MUST be this collector's
 *   origin, as a string (an array, even one naming only this origin, is refused); `iss` = `sub`
 *   = the agent; `jti`, `iat` and `exp` are required, and the token MUST NOT live longer than
 *   MAX_AGENT_JWT_LIFETIME_SECONDS.
 * - A `jti` is accepted once: it is remembered (durably) until the token could no longer be
 *   accepted anyway, so a captured token cannot be replayed, not even after a restart. It is
 *   remembered with the Idempotency-Key of its request: the same token with the same key again
 *   is that request sent again — a load balancer retrying it on another replica after the first
 *   failed, perhaps after it remembered the token — and is admitted, because a batch is
 *   idempotent (its id is the key; a batch stored already is answered with its receipt). A
 *   captured token thus buys nothing but that one batch again.
 * - Every failure is 401 `auth.invalid_token`, except a valid token of a revoked agent: 403
 *   `agent.revoked`, so the agent stops retrying.
 */
import type { KeyObject } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import { publicKeyFromJwk } from '../../shared/crypto.ts';
import { ProblemError } from '../../shared/problem.ts';
import { AGENT_JWT_TYP, MAX_AGENT_JWT_LIFETIME_SECONDS } from '../../shared/protocol.ts';
import { AGENT_ID_PATTERN, COLLECTOR_AGENT_ID } from '../../shared/record.ts';
import type { Ed25519PublicJwk } from '../../shared/crypto.ts';
import type { CollectorStore } from '../store/store.ts';

/** Longest token accepted at all; longer strings are refused before any parsing. */
export const MAX_AGENT_JWT_LENGTH = 4096;
export const MAX_JTI_LENGTH = 128;

export interface AuthenticatedAgent {
  agent: string;
  /** The agent's current epoch: the only one whose key was accepted. */
  epoch: number;
  /** The epoch's current (newest) key, which signed the token. */
  kid: string;
  publicJwk: Ed25519PublicJwk;
  jti: string;
}

import type { IngestObserver } from './metrics.ts';

function invalid(detail: string): ProblemError {
  return new ProblemError('auth.invalid_token', detail);
}

export class AgentAuthService {
  readonly #store: CollectorStore;
  readonly #origin: string;
  readonly #clockToleranceSeconds: number;
  readonly #now: () => Date;
  readonly #keys = new Map<string, KeyObject>();
  readonly #observer: Pick<IngestObserver, 'signaturesVerified'> | undefined;

  constructor(options: { store: CollectorStore; origin: string; clockToleranceSeconds: number; now: () => Date; observer?: Pick<IngestObserver, 'signaturesVerified'> }) {
    this.#store = options.store;
    this.#observer = options.observer;
    this.#origin = options.origin;
    this.#clockToleranceSeconds = options.clockToleranceSeconds;
    this.#now = options.now;
  }

  #keyFor(jwk: Ed25519PublicJwk): KeyObject {
    let key = this.#keys.get(jwk.x);
    if (!key) {
      key = publicKeyFromJwk(jwk);
      if (this.#keys.size >= 10_000) this.#keys.clear();
      this.#keys.set(jwk.x, key);
    }
    return key;
  }

  /**
   * Checks an `Authorization` header value. Resolves with the agent it proves, after its `jti`
   * is durably remembered (with `requestKey`, the request's Idempotency-Key if it is an
   * idempotent request); rejects with a ProblemError (401 or 403).
   */
  async authenticate(authorization: string | undefined, requestKey?: string): Promise<AuthenticatedAgent> {
    const match = /^Bearer +([A-Za-z0-9_.-]+) *$/i.exec(authorization ?? '');
    if (!match) throw invalid('an Authorization: Bearer <agent JWT> header is required');
    const token = match[1]!;
    if (token.length > MAX_AGENT_JWT_LENGTH) throw invalid('the bearer token is too long');

    let header: ReturnType<typeof decodeProtectedHeader>;
    let unverified: JWTPayload;
    try {
      header = decodeProtectedHeader(token);
      unverified = decodeJwt(token);
    } catch {
      throw invalid('the bearer token is not a compact JWT');
    }
    if (header.alg !== 'EdDSA') throw invalid('the token must be signed with alg EdDSA');
    if (header.typ !== AGENT_JWT_TYP) throw invalid(`the token typ must be ${AGENT_JWT_TYP}`);
    // jwtVerify's `audience` check also passes an aud ARRAY that contains the origin: a token made
    // for several collectors would then be good at each. The protocol's aud is one string.
    if (unverified.aud !== this.#origin) throw invalid("the token aud must be exactly this collector's origin, as a string");
    const agent = unverified.sub;
    if (typeof agent !== 'string' || !AGENT_ID_PATTERN.test(agent) || unverified.iss !== agent || agent === COLLECTOR_AGENT_ID) {
      throw invalid('the token must name an agent id as both iss and sub');
    }

    const enrolled = await this.#store.currentEpoch(agent);
    if (!enrolled) throw invalid('the token names an agent that is not enrolled');
    // The newest key of the epoch (ADR 0006): after a rotation the retired key no longer authenticates.
    const signing = (await this.#store.agentKeys(agent, enrolled.epoch)).at(-1) ?? { kid: enrolled.kid, publicJwk: enrolled.publicJwk };
    if (header.kid !== signing.kid) throw invalid("the token kid is not the thumbprint of the agent's current key");

    const now = this.#now();
    let payload: JWTPayload;
    this.#observer?.signaturesVerified(1);
    try {
      ({ payload } = await jwtVerify(token, this.#keyFor(signing.publicJwk), {
        algorithms: ['EdDSA'],
        audience: this.#origin,
        issuer: agent,
        subject: agent,
        typ: AGENT_JWT_TYP,
        maxTokenAge: `${MAX_AGENT_JWT_LIFETIME_SECONDS}s`,
        clockTolerance: this.#clockToleranceSeconds,
        requiredClaims: ['jti', 'iat', 'exp', 'iss', 'sub', 'aud'],
        currentDate: now,
      }));
    } catch (err) {
      throw invalid(`the token does not verify: ${(err as Error).message}`);
    }
    const { exp, iat, jti } = payload;
    if (typeof exp !== 'number' || typeof iat !== 'number' || exp - iat > MAX_AGENT_JWT_LIFETIME_SECONDS) {
      throw invalid(`the token must not live longer than ${MAX_AGENT_JWT_LIFETIME_SECONDS} seconds (exp - iat)`);
    }
    if (typeof jti !== 'string' || jti.length === 0 || jti.length > MAX_JTI_LENGTH) {
      throw invalid(`the token jti must be a string of 1-${MAX_JTI_LENGTH} characters`);
    }
    if (enrolled.revokedAt !== null) {
      throw new ProblemError('agent.revoked', `agent ${agent} was revoked at ${enrolled.revokedAt}`);
    }
    const nowSeconds = Math.floor(now.getTime() / 1000);
    const fresh = await this.#store.rememberJti(jti, agent, exp + this.#clockToleranceSeconds, nowSeconds, requestKey);
    if (!fresh) throw invalid('the token was already used (jti replay); make a new token for every request');
    return { agent, epoch: enrolled.epoch, kid: signing.kid, publicJwk: signing.publicJwk, jti };
  }
}
