/**
 * The agent's Ed25519 signing keys: `<agent dir>/agent-key.jwk`, the key enrolled at `init`, and
 * after each `rotate-key` (ADR 0006) `<agent dir>/agent-key-<kid>.jwk`: private JWKs of mode
 * 0600. Which key signs what is in the outbox (`signing_keys`, outbox/signing-keys.ts); the
 * AgentKeyring loads the file an outbox KeyRef names, once per process, and checks that it is
 * that key. Reading refuses a key that group or others can read (shared/crypto.ts).
 *
 * Crash behaviour: a file is created exclusively (`wx`) and written in one call; a crash while
 * writing `agent-key.jwk` leaves a partial file in a directory that has no pins yet, which the
 * next `init` removes (agent/enroll.ts). A rotated key file is written, fsynced and its
 * directory entry fsynced BEFORE the outbox names it; a crash before that leaves a file that no
 * record names and no record was signed with. A key file is rewritten once only: when the key is
 * retired after an acknowledged rotation, its private JWK is replaced by the public half
 * (`retireKeyFile`, atomic rename), so a stolen disk no longer holds keys the agent stopped using.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  generateSigningKey,
  jwkThumbprint,
  KeyFileError,
  publicJwkOf,
  readPrivateKeyFile,
  writePrivateKeyFile,
  type Ed25519PrivateJwk,
  type Ed25519PublicJwk,
  type SigningKey,
} from '../shared/crypto.ts';
import { ENROLLED_KEY_FILE, OutboxError, type KeyRef, type KeySource } from './outbox/sqlite-outbox.ts';

export const AGENT_KEY_FILE = ENROLLED_KEY_FILE;
/** Rotated key files: `agent-key-<kid>.jwk`. */
export const ROTATED_KEY_FILE_PATTERN = /^agent-key-[A-Za-z0-9_-]{43}\.jwk$/;

export function rotatedKeyFileName(kid: string): string {
  return `agent-key-${kid}.jwk`;
}

export function agentKeyPath(dir: string): string {
  return join(dir, AGENT_KEY_FILE);
}

/** Generates a new key and writes it to a new file (mode 0600). MUST NOT overwrite an existing key. */
export function createAgentKey(dir: string): SigningKey {
  const { key, privateJwk } = generateSigningKey();
  writePrivateKeyFile(agentKeyPath(dir), privateJwk);
  return key;
}

export function loadAgentKey(dir: string): SigningKey {
  return readPrivateKeyFile(agentKeyPath(dir));
}

/**
 * Writes a new private key file (0600) and makes it durable: the file's data and its directory
 * entry are fsynced before this returns, so an outbox commit that names it cannot outlive it.
 * MUST NOT overwrite an existing file.
 */
export function writeKeyFileDurably(dir: string, file: string, jwk: Ed25519PrivateJwk): void {
  const path = join(dir, file);
  writePrivateKeyFile(path, jwk);
  fsyncPath(path);
  fsyncPath(dir);
}

/** Loads (once per process) the private keys outbox KeyRefs name, from the agent directory. */
export class AgentKeyring implements KeySource {
  readonly dir: string;
  readonly #keys = new Map<string, SigningKey>();

  constructor(dir: string) {
    this.dir = dir;
  }

  signingKey(ref: KeyRef): SigningKey {
    let key = this.#keys.get(ref.kid);
    if (key === undefined) {
      key = readPrivateKeyFile(join(this.dir, ref.file));
      if (key.kid !== ref.kid) throw new OutboxError(`${ref.file} holds key ${key.kid}, not the signing key ${ref.kid} the outbox names`);
      this.#keys.set(ref.kid, key);
    }
    return key;
  }
}

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Retires a key the collector no longer accepts (ADR 0006): replaces its private key file by the
 * public half, atomically (temporary file, fsync, rename, directory fsync). Returns false if the
 * file holds no private key any more. Throws if the file is not the key `ref` names.
 */
export function retireKeyFile(dir: string, ref: KeyRef): boolean {
  const path = join(dir, ref.file);
  const jwk = JSON.parse(readFileSync(path, 'utf8')) as Partial<Ed25519PrivateJwk>;
  if (jwk.d === undefined) return false;
  const publicJwk = publicJwkOf(jwk as Ed25519PublicJwk);
  if (jwkThumbprint(publicJwk) !== ref.kid) throw new OutboxError(`${ref.file} holds another key than ${ref.kid}; not retiring it`);
  const temporary = `${path}.retiring`;
  writeFileSync(temporary, JSON.stringify(publicJwk) + '\n', { mode: 0o600 });
  fsyncPath(temporary);
  renameSync(temporary, path);
  fsyncPath(dir);
  return true;
}

/** The public half of the enrolled key (`agent-key.jwk`), whether or not it has been retired. */
export function readEnrolledPublicKey(dir: string): Ed25519PublicJwk {
  const path = agentKeyPath(dir);
  try {
    return publicJwkOf(JSON.parse(readFileSync(path, 'utf8')) as Ed25519PublicJwk);
  } catch (err) {
    throw new KeyFileError(`cannot read the enrolled key ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
