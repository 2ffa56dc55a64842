/**
 * The log as each replica serves it, checked the way an auditor would: signed checkpoints
 * fetched from every replica verify with the one log key, and any two are consistent (RFC 9162
 * consistency proofs, served by another replica than the one that served the newer checkpoint);
 * records are included in a checkpoint of one replica by a proof from another.
 */
import assert from 'node:assert/strict';
import { verifyCheckpoint, type Checkpoint } from '../../shared/checkpoint.ts';
import { fromBase64Url } from '../../shared/crypto.ts';
import { leafHash, verifyConsistency, verifyInclusion } from '../../shared/merkle.ts';
import { API_PREFIX } from '../../shared/protocol.ts';
import { parseVerifierKey, type NoteVerifier } from '../../shared/signed-note.ts';
import type { Replica } from './replica-fleet.ts';

export interface ServedCheckpoint {
  /** The replica that served it. */
  replica: number;
  note: string;
}

async function getOk(url: string): Promise<Response> {
  const response = await fetch(url);
  if (response.status !== 200) throw new Error(`GET ${url} answered ${response.status}: ${await response.text()}`);
  return response;
}

/** The log verifier key every given replica publishes; throws unless they all publish the same. */
export async function sharedLogKey(replicas: readonly Replica[]): Promise<NoteVerifier> {
  const published = await Promise.all(replicas.map(async (replica) => ((await (await getOk(`${replica.url}${API_PREFIX}/keys`)).json()) as { logKey: string }).logKey));
  for (const [i, key] of published.entries()) assert.equal(key, published[0], `replica ${replicas[i]!.n} publishes another log key than replica ${replicas[0]!.n}`);
  return parseVerifierKey(published[0]!);
}

export async function fetchCheckpoint(replica: Replica): Promise<ServedCheckpoint> {
  return { replica: replica.n, note: await (await getOk(`${replica.url}${API_PREFIX}/checkpoint`)).text() };
}

/**
 * Fetches the latest checkpoint of every running replica every `intervalMs` until stopped. A
 * replica that does not answer (dying, restarting) is skipped for that round.
 */
export function sampleCheckpoints(replicas: () => readonly Replica[], intervalMs: number): { stop(): Promise<ServedCheckpoint[]> } {
  const samples: ServedCheckpoint[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const round = await Promise.allSettled(replicas().map(fetchCheckpoint));
      for (const result of round) if (result.status === 'fulfilled') samples.push(result.value);
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return samples;
    },
  };
}

/** Picks a replica other than `not` (round robin over `from`), so no replica vouches for itself. */
function another(from: readonly Replica[], not: number, turn: number): Replica {
  const others = from.filter((replica) => replica.n !== not);
  assert.ok(others.length > 0, 'cross-checking needs at least two live replicas');
  return others[turn % others.length]!;
}

export interface ConsistencyCheck {
  /** Checkpoints checked. */
  checkpoints: number;
  /** Distinct tree sizes among them. */
  sizes: number;
  /** Consistency proofs fetched and verified. */
  proofs: number;
}

/**
 * Verifies every served checkpoint with `logKey` (and `origin`), requires one root per size, and
 * verifies a consistency proof between each pair of consecutive sizes, fetched from a live
 * replica other than the one that served the larger checkpoint.
 */
export async function assertCheckpointsConsistent(options: {
  served: readonly ServedCheckpoint[];
  logKey: NoteVerifier;
  origin: string;
  live: readonly Replica[];
}): Promise<ConsistencyCheck> {
  const bySize = new Map<number, Checkpoint & { replica: number }>();
  for (const served of options.served) {
    const checkpoint = verifyCheckpoint(served.note, options.logKey, options.origin);
    const seen = bySize.get(checkpoint.size);
    if (seen) {
      assert.ok(seen.rootHash.equals(checkpoint.rootHash), `replicas ${seen.replica} and ${served.replica} serve two roots for size ${checkpoint.size}`);
    } else {
      bySize.set(checkpoint.size, { ...checkpoint, replica: served.replica });
    }
  }
  const sizes = [...bySize.keys()].filter((size) => size > 0).sort((a, b) => a - b);
  let proofs = 0;
  for (let i = 1; i < sizes.length; i++) {
    const older = bySize.get(sizes[i - 1]!)!;
    const newer = bySize.get(sizes[i]!)!;
    const prover = another(options.live, newer.replica, i);
    const answer = (await (await getOk(`${prover.url}${API_PREFIX}/proofs/consistency?from=${older.size}&to=${newer.size}`)).json()) as { path: string[] };
    assert.doesNotThrow(
      () => verifyConsistency(older.size, newer.size, answer.path.map(fromBase64Url), older.rootHash, newer.rootHash),
      `replica ${prover.n}'s proof that size ${older.size} (served by replica ${older.replica}) is a prefix of size ${newer.size} (served by replica ${newer.replica})`,
    );
    proofs++;
  }
  return { checkpoints: options.served.length, sizes: sizes.length, proofs };
}

/**
 * For each record: the latest checkpoint of one live replica, and the inclusion proof at that
 * size from another; the proof must lead from the record's leaf hash (its canonical text, as
 * stored) to that checkpoint's root.
 */
export async function assertIncludedAcross(options: {
  records: ReadonlyArray<{ id: string; ledgerIndex: number; canonical: string }>;
  logKey: NoteVerifier;
  origin: string;
  live: readonly Replica[];
}): Promise<number> {
  let checked = 0;
  for (const [i, record] of options.records.entries()) {
    const witness = options.live[i % options.live.length]!;
    const checkpoint = verifyCheckpoint((await fetchCheckpoint(witness)).note, options.logKey, options.origin);
    const prover = another(options.live, witness.n, i);
    const answer = (await (await getOk(`${prover.url}${API_PREFIX}/proofs/inclusion?id=${record.id}&size=${checkpoint.size}`)).json()) as {
      index: number;
      size: number;
      leafHash: string;
      path: string[];
    };
    const leaf = leafHash(Buffer.from(record.canonical, 'utf8'));
    assert.deepEqual({ index: answer.index, size: answer.size, leafHash: answer.leafHash }, { index: record.ledgerIndex, size: checkpoint.size, leafHash: leaf.toString('base64url') });
    assert.doesNotThrow(
      () => verifyInclusion(leaf, answer.index, answer.size, answer.path.map(fromBase64Url), checkpoint.rootHash),
      `record ${record.id}: replica ${prover.n}'s inclusion proof against replica ${witness.n}'s checkpoint of size ${checkpoint.size}`,
    );
    checked++;
  }
  return checked;
}
