/**
 * Worker-thread half of the signature pool: for each record of a chunk, its RFC 8785 bytes,
 * the Ed25519 check of `sig` over JCS(record without sig), the record hash and the RFC 9162
 * leaf hash. Pure CPU work with no I/O, so the main thread keeps serving HTTP meanwhile.
 * The records arrive schema-checked (`batchSchema`), which `canonicalRecordTexts` relies on.
 */
import type { KeyObject } from 'node:crypto';
import { fromBase64Url, publicKeyFromJwk, verifyEd25519 } from '../../shared/crypto.ts';
import { leafHashOfCanonical, recordHashOfCanonical, canonicalRecordTexts, type RecordTexts, type SignedRecord } from '../../shared/record.ts';

export interface VerifyChunkTask {
  /** `x` of the enrolled Ed25519 public key (base64url). */
  publicKeyX: string;
  records: SignedRecord[];
}

export type VerifyChunkResult =
  | {
      ok: true;
      canonical: string[];
      recordHashes: string[];
      /** 32 bytes per record, in order: one buffer instead of n small ones to clone. */
      leafHashes: Uint8Array;
    }
  | { ok: false; index: number; reason: string };

const keys = new Map<string, KeyObject>();

function keyFor(x: string): KeyObject {
  let key = keys.get(x);
  if (!key) {
    key = publicKeyFromJwk({ kty: 'OKP', crv: 'Ed25519', x });
    if (keys.size > 1024) keys.clear();
    keys.set(x, key);
  }
  return key;
}

export default function verifyChunk(task: VerifyChunkTask): VerifyChunkResult {
  const key = keyFor(task.publicKeyX);
  const canonical: string[] = [];
  const recordHashes: string[] = [];
  const leafHashes = new Uint8Array(32 * task.records.length);
  for (let i = 0; i < task.records.length; i++) {
    const record = task.records[i]!;
    let texts: RecordTexts;
    try {
      texts = canonicalRecordTexts(record);
    } catch (err) {
      return { ok: false, index: i, reason: `no canonical form: ${(err as Error).message}` };
    }
    if (!verifyEd25519(key, Buffer.from(texts.signing, 'utf8'), fromBase64Url(record.sig))) {
      return { ok: false, index: i, reason: 'signature does not verify with the agent key valid at its seq' };
    }
    const bytes = Buffer.from(texts.canonical, 'utf8');
    canonical.push(texts.canonical);
    recordHashes.push(recordHashOfCanonical(bytes));
    leafHashes.set(leafHashOfCanonical(bytes), 32 * i);
  }
  return { ok: true, canonical, recordHashes, leafHashes };
}
