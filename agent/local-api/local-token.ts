/**
 * The local API's bearer token: `<agent dir>/local-token`, 32 random bytes as base64url, mode
 * 0600. Local applications read it from the file; only users who can read the file can write
 * records. Compared in constant time; never logged.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { closeSync, fstatSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export const LOCAL_TOKEN_FILE = 'local-token';
const TOKEN_BYTES = 32;

export class LocalTokenError extends Error {
  override name = 'LocalTokenError';
}

export function localTokenPath(dir: string): string {
  return join(dir, LOCAL_TOKEN_FILE);
}

/** Writes a fresh token to a new file of mode 0600. MUST NOT overwrite an existing token. */
export function createLocalToken(dir: string): string {
  const token = randomBytes(TOKEN_BYTES).toString('base64url');
  const fd = openSync(localTokenPath(dir), 'wx', 0o600);
  try {
    writeSync(fd, token + '\n');
  } finally {
    closeSync(fd);
  }
  return token;
}

/** Reads the token; refuses a file that group or others can read, like a private key. */
export function readLocalToken(dir: string): string {
  const path = localTokenPath(dir);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    throw new LocalTokenError(`cannot open ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    const mode = fstatSync(fd).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new LocalTokenError(`${path} has mode ${mode.toString(8).padStart(4, '0')}; it must not be readable by group or others (chmod 600 ${path})`);
    }
    const token = readFileSync(fd, 'utf8').trim();
    if (token.length < 32) throw new LocalTokenError(`${path} does not hold a token`);
    return token;
  } finally {
    closeSync(fd);
  }
}

/** Constant-time comparison of a presented token with the expected one. */
export function tokenMatches(presented: string | undefined, expected: string): boolean {
  if (presented === undefined) return false;
  const a = Buffer.from(presented, 'utf8');
  const b = Buffer.from(expected, 'utf8');
  // Compare equal-length buffers so the timing does not depend on where they differ.
  const same = timingSafeEqual(a.length === b.length ? a : b, b);
  return same && a.length === b.length;
}
