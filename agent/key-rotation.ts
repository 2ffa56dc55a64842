/**
 * `sakshya-agent rotate-key` (ADR 0006): replaces the agent's signing key without losing a
 * record or the ability to verify any of them.
 *
 * ## Steps, and what a crash after each leaves behind
 * 1. A new Ed25519 key is generated and written to `agent-key-<kid>.jwk` (0600), fsynced with
 *    its directory entry. Crash: an unused key file that no record names and that never signed
 *    anything; the agent goes on with the old key. (It is reported by the next `rotate-key`;
 *    deleting it is safe.)
 * 2. ONE outbox transaction appends the `kind: agent, type: key.rotated` record, signed with the
 *    OLD key (its kid is the old kid), body `{ newKey, newKid }`, and records the new key as the
 *    signing key from the next seq on. Crash before COMMIT: step 1's state. After COMMIT: the
 *    rotation is done; every later record, from any process (`run`, `emit`), is signed with
 *    the new key, which is already on disk.
 * 3. The rotation record travels to the collector like any other record; until a receipt
 *    acknowledges it, agent JWTs are still signed with the old key (the one the collector
 *    knows), so the rotation record and the records after it go in batches the old key
 *    authenticates; after it, with the new key.
 *
 * 4. Once a verified receipt acknowledges the rotation record, the old key is retired: its file
 *    is replaced (write to a temporary file, fsync, rename, fsync the directory) by its PUBLIC
 *    half, which `verify` still needs (`agent-key.jwk` is the anchor it starts from). Crash:
 *    the file is either still the private key or already the public one; both are consistent,
 *    and the next acknowledgement retires it again. Until then the old private key is kept: it
 *    signs JWTs while the collector does not know the new key.
 *
 * `rotate-key` may run while `sakshya-agent run` is running: the outbox picks the signing key
 * inside each append transaction, and the running syncer picks the JWT key per request.
 */
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { generateSigningKey } from '../shared/crypto.ts';
import { AgentKeyring, retireKeyFile, ROTATED_KEY_FILE_PATTERN, rotatedKeyFileName, writeKeyFileDurably } from './keys.ts';
import type { SqliteOutbox } from './outbox/sqlite-outbox.ts';

export interface RotationResult {
  /** Seq of the key.rotated record. */
  seq: number;
  id: string;
  oldKid: string;
  newKid: string;
  /** First seq the new key signs. */
  fromSeq: number;
  keyFile: string;
  /** Key files no outbox row names (left by an interrupted rotation): unused, safe to delete. */
  unusedKeyFiles: string[];
}

/** Rotates the agent key of the outbox in `dir` (see the header). Throws, changing nothing, on failure. */
export function rotateAgentKey(dir: string, outbox: SqliteOutbox, keyring: AgentKeyring = new AgentKeyring(dir), now: Date = new Date()): RotationResult {
  const current = outbox.signingKeyRef();
  keyring.signingKey(current); // the current key must be loadable before anything is written
  const { key, privateJwk } = generateSigningKey();
  const keyFile = rotatedKeyFileName(key.kid);
  writeKeyFileDurably(dir, keyFile, privateJwk);
  let result;
  try {
    result = outbox.rotateKey({ expectedOldKid: current.kid, newKey: key.publicJwk, newKid: key.kid, keyFile }, keyring, now);
  } catch (err) {
    // Remove the new key only if the outbox surely does not name it (a failed COMMIT may still
    // have reached the disk; when in doubt, keep the file: an unused key file is harmless).
    let named = true;
    try {
      named = outbox.keyRefs().some((ref) => ref.file === keyFile);
    } catch {
      // the outbox cannot say: keep it
    }
    if (!named) rmSync(join(dir, keyFile), { force: true });
    throw err;
  }
  const named = new Set(outbox.keyRefs().map((ref) => ref.file));
  const unusedKeyFiles = readdirSync(dir).filter((file) => ROTATED_KEY_FILE_PATTERN.test(file) && !named.has(file));
  return { seq: result.seq, id: result.id, oldKid: result.oldKid, newKid: key.kid, fromSeq: result.seq + 1, keyFile, unusedKeyFiles };
}

/**
 * Retires every key the collector no longer accepts (keys before the newest one whose rotation
 * was acknowledged): each such private key file is replaced by its public half (keys.ts).
 * Returns the files retired now. Safe to call after every acknowledgement, and to repeat.
 */
export function retireAcknowledgedKeys(dir: string, outbox: SqliteOutbox): string[] {
  const refs = outbox.keyRefs();
  if (refs.length < 2) return [];
  const known = outbox.authKeyRefs()[0]!;
  const retired: string[] = [];
  for (const ref of refs) {
    if (ref.fromSeq >= known.fromSeq) break;
    if (retireKeyFile(dir, ref)) retired.push(ref.file);
  }
  return retired;
}
