/**
 * The agent's Ed25519 signing key: `<agent dir>/agent-key.jwk`, a private JWK of mode 0600,
 * written once at `init` and read by every command that signs (records, agent JWTs).
 * Reading refuses a key that group or others can read (shared/crypto.ts).
 *
 * Crash behaviour: the file is created exclusively (`wx`) and written in one call; a crash while
 * writing leaves a partial file in a directory that has no pins yet, which the next `init`
 * removes (agent/enroll.ts). The key is never rewritten afterwards.
 */
import { join } from 'node:path';
import { generateSigningKey, readPrivateKeyFile, writePrivateKeyFile, type SigningKey } from '../shared/crypto.ts';

export const AGENT_KEY_FILE = 'agent-key.jwk';

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
