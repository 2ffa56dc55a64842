/**
 * Agent key rotation (ADR 0006): the `kind: agent, type: key.rotated` record.
 *
 * An agent rotates its key by appending, to its own chain, a record signed with the OLD key
 * (its `kid` names the old key) whose body carries the new public key:
 * `{ "newKey": { "kty": "OKP", "crv": "Ed25519", "x": … }, "newKid": <RFC 7638 thumbprint> }`.
 * Every record after it (seq + 1 on, same epoch) MUST be signed with the new key. The chain
 * itself is therefore the key history: whoever trusts the epoch's enrolled key can follow every
 * rotation from the records, and the collector, `ledger verify`, `sakshya-agent verify` and
 * `sakshya-verify` all apply the same rules, here (the body) and in key-history.ts (the history).
 */
import { z } from 'zod';
import { jwkThumbprint, publicKeyFromJwk, type Ed25519PublicJwk } from './crypto.ts';
import { describeZodError, sha256B64Schema } from './protocol.ts';

export const KEY_ROTATED_TYPE = 'key.rotated';

/** The body of a key.rotated record: strict, the new key with exactly its defining members. */
export const keyRotatedBodySchema = z.strictObject({
  newKey: z.strictObject({
    kty: z.literal('OKP'),
    crv: z.literal('Ed25519'),
    x: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'base64url of 32 bytes'),
  }),
  newKid: sha256B64Schema,
});

/** Why a key.rotated body names no valid new key. */
export type KeyRotationFailure = 'body' | 'unusable_key' | 'kid_mismatch' | 'key_reused';

export interface KeyRotation {
  newKey: Ed25519PublicJwk;
  newKid: string;
}

/** Whether a record (of any shape) is a key rotation, by its kind and type alone. */
export function isKeyRotationRecord(record: { kind: string; type: string }): boolean {
  return record.kind === 'agent' && record.type === KEY_ROTATED_TYPE;
}

/**
 * Checks the body of a key.rotated record whose signature the caller verified with `currentKid`'s
 * key. Returns the rotation, or why it is not a valid one: the body is not the strict schema,
 * `newKid` is not the thumbprint of `newKey`, the key is not a usable Ed25519 key, or it is a key
 * the chain used before (`usedKids`, the current one included).
 */
export function checkKeyRotation(
  body: unknown,
  usedKids: ReadonlySet<string>,
): { ok: true; rotation: KeyRotation } | { ok: false; failure: KeyRotationFailure; reason: string } {
  const parsed = keyRotatedBodySchema.safeParse(body);
  if (!parsed.success) return { ok: false, failure: 'body', reason: `key.rotated body: ${describeZodError(parsed.error)}` };
  const newKey: Ed25519PublicJwk = { kty: 'OKP', crv: 'Ed25519', x: parsed.data.newKey.x };
  try {
    publicKeyFromJwk(newKey);
  } catch (err) {
    return { ok: false, failure: 'unusable_key', reason: `key.rotated newKey is not a usable Ed25519 key: ${(err as Error).message}` };
  }
  const thumbprint = jwkThumbprint(newKey);
  if (thumbprint !== parsed.data.newKid) return { ok: false, failure: 'kid_mismatch', reason: 'key.rotated newKid is not the RFC 7638 thumbprint of newKey' };
  if (usedKids.has(thumbprint)) return { ok: false, failure: 'key_reused', reason: 'key.rotated names a key this chain has already used' };
  return { ok: true, rotation: { newKey, newKid: thumbprint } };
}
