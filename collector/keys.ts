/**
 * The collector's three Ed25519 keys.
 *
 * Invariants
 * - Each key has one job: `log-key` signs checkpoints (C2SP signed note), `receipt-key` signs
 *   receipts (and later report manifests), `collector-chain-key` signs the records of the
 *   collector's own chain (agent `COLLECTOR`, epoch 1). A leak of one does not forge the others.
 * - Private keys are JWK files of mode 0600 in a directory of mode 0700; a key file that group
 *   or others can read is refused at start (shared/crypto.ts readPrivateKeyFile), and so is a
 *   keys directory they can write to (shared/private-files.ts).
 * - A key is never overwritten: once a checkpoint or receipt is signed, its key is the identity
 *   that agents and auditors pinned.
 *
 * On-disk layout
 *   <dir>/keys/log-key.jwk  <dir>/keys/receipt-key.jwk  <dir>/keys/collector-chain-key.jwk
 *
 * Crash behaviour
 * - Keys are created one at a time, each with O_EXCL, before the database knows any of them. A
 *   crash between two files leaves some keys present: the next start creates only the missing
 *   ones. A crash while writing a file can leave it empty or truncated: the next start refuses
 *   it with a clear error (an operator must remove it), because silently replacing a key that
 *   may already have signed something would break pinned identities.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { CollectorPublicKeys } from '../shared/api-schemas.ts';
import { fromBase64Url, generateSigningKey, readPrivateKeyFile, writePrivateKeyFile, type SigningKey } from '../shared/crypto.ts';
import { assertPrivateDirectory, ensurePrivateDirectory } from '../shared/private-files.ts';
import { verifierKeyString } from '../shared/signed-note.ts';

export const KEYS_DIR_NAME = 'keys';
export const KEY_FILES = {
  log: 'log-key.jwk',
  receipt: 'receipt-key.jwk',
  chain: 'collector-chain-key.jwk',
} as const;

export interface CollectorKeys {
  /** Signs checkpoints (C2SP signed note, key name = origin). */
  log: SigningKey;
  /** Signs receipts and report manifests (JWS, EdDSA). */
  receipt: SigningKey;
  /** Signs the records of the collector's own chain. */
  chain: SigningKey;
}

export function keysDirectory(collectorDir: string): string {
  return join(collectorDir, KEYS_DIR_NAME);
}

/** Creates every missing key file (mode 0600, never overwriting one), then loads all three. */
export function ensureCollectorKeys(collectorDir: string): { keys: CollectorKeys; created: string[] } {
  const dir = keysDirectory(collectorDir);
  ensurePrivateDirectory(dir);
  const created: string[] = [];
  for (const file of Object.values(KEY_FILES)) {
    const path = join(dir, file);
    if (existsSync(path)) continue;
    writePrivateKeyFile(path, generateSigningKey().privateJwk);
    created.push(file);
  }
  return { keys: loadCollectorKeys(collectorDir), created };
}

/** Loads the three keys; throws KeyFileError naming the file if one is missing or unsafe. */
export function loadCollectorKeys(collectorDir: string): CollectorKeys {
  const dir = keysDirectory(collectorDir);
  assertPrivateDirectory(dir);
  return {
    log: readPrivateKeyFile(join(dir, KEY_FILES.log)),
    receipt: readPrivateKeyFile(join(dir, KEY_FILES.receipt)),
    chain: readPrivateKeyFile(join(dir, KEY_FILES.chain)),
  };
}

/** What the collector publishes (`GET /api/v1/keys`): never a private key (its schema: shared/api-schemas.ts). */
export type { CollectorPublicKeys };

export function publicKeysOf(origin: string, keys: CollectorKeys): CollectorPublicKeys {
  return {
    origin,
    logKey: verifierKeyString(origin, fromBase64Url(keys.log.publicJwk.x)),
    jwks: { keys: [{ ...keys.receipt.publicJwk, kid: keys.receipt.kid, alg: 'EdDSA', use: 'sig' }] },
  };
}
