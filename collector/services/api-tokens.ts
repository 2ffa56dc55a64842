/**
 * Human bearer tokens: admins and auditors (services/access.ts has the roles).
 *
 * Invariants
 * - A token is `sakshya_` + 43 base64url characters (32 random bytes). It exists only on the
 *   issuer's stdout and in its holder's hands: only its sha256 is stored, and it is never
 *   logged or put in a record. The prefix keeps it apart from agent JWTs (a JWS always has
 *   two dots; a human token has none).
 * - A token proves its role until it expires or is revoked; a revoked, expired or unknown token
 *   is 401 `auth.invalid_token`, the same answer for every reason.
 * - Every issue and revocation is a record of the COLLECTOR chain (`api_token.issued`,
 *   `api_token.revoked`: id, name, role, by whom), committed in the same transaction as the row.
 * - Lookup is by the hash (a UNIQUE index), so checking a token costs one indexed read; comparing
 *   hashes of 256-bit random tokens leaks nothing useful through timing.
 */
import { randomBytes } from 'node:crypto';
import { sha256 } from '../../shared/crypto.ts';
import { ProblemError } from '../../shared/problem.ts';
import type { ApiToken, CollectorStore } from '../store/store.ts';
import { HUMAN_ROLES, type Actor, type HumanPrincipal, type HumanRole } from './access.ts';
import type { CollectorChain } from './collector-chain.ts';

export const API_TOKEN_PREFIX = 'sakshya_';
export const API_TOKEN_BYTES = 32;
/** Longest lifetime of a human token; `--ttl` defaults to it. */
export const MAX_API_TOKEN_TTL_SECONDS = 366 * 24 * 60 * 60;
export const DEFAULT_API_TOKEN_TTL_SECONDS = 90 * 24 * 60 * 60;
const API_TOKEN_PATTERN = /^sakshya_[A-Za-z0-9_-]{43}$/;
const BEARER_PATTERN = /^Bearer +(\S+) *$/i;
/** Names of token holders: people or teams, printable, short. */
const NAME_PATTERN = /^[\p{L}\p{N} ._@-]{1,64}$/u;
const TOKEN_ID_PATTERN = /^tok_[a-z0-9]{16}$/;

export class ApiTokenInputError extends Error {
  override name = 'ApiTokenInputError';
}

/** A token as `tokens list` shows it: never the token, never its hash. */
export interface ApiTokenListing {
  id: string;
  name: string;
  role: HumanRole;
  createdAt: string;
  createdBy: string;
  expiresAt: string | null;
  revokedAt: string | null;
  /** 'active' | 'expired' | 'revoked', at the time of listing. */
  state: 'active' | 'expired' | 'revoked';
}

function tokenHash(token: string): string {
  return sha256(token).toString('hex');
}

/** True if `authorization` is `Bearer <something shaped like a human token>` (unverified). */
export function looksLikeApiToken(authorization: string | undefined): boolean {
  const match = BEARER_PATTERN.exec(authorization ?? '');
  return match !== null && match[1]!.startsWith(API_TOKEN_PREFIX);
}

function newTokenId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return 'tok_' + Array.from(randomBytes(16), (b) => alphabet[b % 36]).join('');
}

export class ApiTokenService {
  readonly #store: CollectorStore;
  readonly #chain: CollectorChain;
  readonly #now: () => Date;

  constructor(options: { store: CollectorStore; chain: CollectorChain; now: () => Date }) {
    this.#store = options.store;
    this.#chain = options.chain;
    this.#now = options.now;
  }

  /**
   * Issues a token of `role` for `name`, valid `ttlSeconds`. Resolves with the token (to be
   * shown once) only after its hash and its `api_token.issued` record are committed.
   */
  async issue(role: string, name: string, ttlSeconds: number, by: Actor): Promise<{ token: string; id: string; expiresAt: string }> {
    if (!(HUMAN_ROLES as readonly string[]).includes(role)) throw new ApiTokenInputError(`invalid role "${role}": use ${HUMAN_ROLES.join(' or ')}`);
    if (!NAME_PATTERN.test(name)) throw new ApiTokenInputError('invalid --name: 1-64 letters, digits, spaces and . _ @ -');
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1 || ttlSeconds > MAX_API_TOKEN_TTL_SECONDS) {
      throw new ApiTokenInputError(`token lifetime must be between 1 second and ${MAX_API_TOKEN_TTL_SECONDS / 86400} days`);
    }
    const token = API_TOKEN_PREFIX + randomBytes(API_TOKEN_BYTES).toString('base64url');
    const now = this.#now();
    const row: ApiToken = {
      id: newTokenId(),
      name,
      role: role as HumanRole,
      tokenHash: tokenHash(token),
      createdAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + ttlSeconds * 1000).toISOString(),
      revokedAt: null,
      createdBy: by,
    };
    await this.#store.write(async (tx) => {
      await tx.putApiToken(row);
      await this.#chain.append(tx, 'api_token.issued', { id: row.id, name, role, expiresAt: row.expiresAt, by });
    });
    return { token, id: row.id, expiresAt: row.expiresAt! };
  }

  /** Revokes the active tokens with this id or name; resolves with what it revoked (maybe none). */
  async revoke(match: { id: string } | { name: string }, by: Actor): Promise<ApiTokenListing[]> {
    if ('id' in match && !TOKEN_ID_PATTERN.test(match.id)) throw new ApiTokenInputError(`invalid token id "${match.id}"`);
    if ('name' in match && !NAME_PATTERN.test(match.name)) throw new ApiTokenInputError('invalid --name');
    const revokedAt = this.#now().toISOString();
    const revoked = await this.#store.write(async (tx) => {
      const rows = await tx.revokeApiTokens(match, revokedAt);
      for (const row of rows) await this.#chain.append(tx, 'api_token.revoked', { id: row.id, name: row.name, role: row.role, by });
      return rows;
    });
    return revoked.map((row) => this.#listing(row));
  }

  async list(): Promise<ApiTokenListing[]> {
    return (await this.#store.listApiTokens()).map((row) => this.#listing(row));
  }

  #listing(row: ApiToken): ApiTokenListing {
    const expired = row.expiresAt !== null && Date.parse(row.expiresAt) <= this.#now().getTime();
    return {
      id: row.id,
      name: row.name,
      role: row.role,
      createdAt: row.createdAt,
      createdBy: row.createdBy,
      expiresAt: row.expiresAt,
      revokedAt: row.revokedAt,
      state: row.revokedAt !== null ? 'revoked' : expired ? 'expired' : 'active',
    };
  }

  /**
   * Checks an `Authorization` header value holding a human token. Resolves with its principal;
   * rejects with 401 `auth.invalid_token` (unknown, revoked and expired alike).
   */
  async authenticate(authorization: string | undefined): Promise<HumanPrincipal> {
    const token = BEARER_PATTERN.exec(authorization ?? '')?.[1];
    if (token === undefined || !API_TOKEN_PATTERN.test(token)) {
      throw new ProblemError('auth.invalid_token', 'an Authorization: Bearer <token> header with an admin or auditor token is required');
    }
    const row = await this.#store.findApiToken(tokenHash(token));
    const valid = row !== undefined && row.revokedAt === null && (row.expiresAt === null || Date.parse(row.expiresAt) > this.#now().getTime());
    if (!valid) throw new ProblemError('auth.invalid_token', 'the token is unknown, revoked or expired');
    return { role: row.role, tokenId: row.id, name: row.name };
  }
}
