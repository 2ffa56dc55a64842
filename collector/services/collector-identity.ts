/**
 * The collector's keys are the log's identity: every replica of one database MUST sign with the
 * same log, receipt and chain keys, or agents would meet checkpoints and receipts they cannot
 * verify. The first `serve`/`migrate` on a database records the public keys (migration 0011);
 * every later start, on any replica, compares its own keys with them and refuses to run with
 * another one, naming both fingerprints (RFC 7638 thumbprints).
 *
 * A database from before the keys were recorded gets them recorded by its next start, but only
 * if its newest checkpoint verifies with this replica's log key: a replica given a fresh keys
 * directory cannot claim an existing log.
 */
import { fromBase64Url } from '../../shared/crypto.ts';
import { NoteError, noteVerifierFromPublicKey, verifyNote } from '../../shared/signed-note.ts';
import type { CollectorStore, StoredCollectorKey } from '../store/store.ts';

/** The keys of this replica, as they are compared. */
export interface ReplicaKeys {
  log: { kid: string; publicJwk: StoredCollectorKey['publicJwk'] };
  receipt: { kid: string; publicJwk: StoredCollectorKey['publicJwk'] };
  chain: { kid: string; publicJwk: StoredCollectorKey['publicJwk'] };
}

const ROLES = ['log', 'receipt', 'chain'] as const;
const FILES = { log: 'log-key.jwk', receipt: 'receipt-key.jwk', chain: 'collector-chain-key.jwk' } as const;

/** This replica's keys are not the ones the database was initialised with. */
export class CollectorKeyMismatchError extends Error {
  override name = 'CollectorKeyMismatchError';
}

/** Throws naming every key of this replica that differs from the recorded one (log key first); a role not recorded is not compared. */
export function assertRecordedKeys(stored: readonly StoredCollectorKey[], keys: ReplicaKeys): void {
  const differing = ROLES.flatMap((role) => {
    const recorded = stored.find((key) => key.role === role);
    return recorded === undefined || recorded.kid === keys[role].kid
      ? []
      : [`this collector's ${role} key (keys/${FILES[role]}, fingerprint ${keys[role].kid}) is not the one the database was initialised with (fingerprint ${recorded.kid})`];
  });
  if (differing.length > 0) {
    throw new CollectorKeyMismatchError(
      `${differing.join('; ')}; every replica of one database must use the same keys directory: copy it from the first replica (docs/operations-collector.md, "Several replicas")`,
    );
  }
}

/**
 * At `serve` and `migrate` (inside the write lock, so two replicas starting together agree):
 * records the keys if none are, after checking an existing log's newest checkpoint against the
 * log key; else compares. Throws CollectorKeyMismatchError.
 */
export async function ensureCollectorIdentity(store: CollectorStore, keys: ReplicaKeys, options: { origin: string; now: () => Date }): Promise<void> {
  await store.write(async (tx) => {
    const stored = await tx.collectorKeys();
    assertRecordedKeys(stored, keys);
    if (stored.length === ROLES.length) return;
    if (stored.length === 0) {
      const latest = await tx.latestCheckpoint();
      if (latest !== undefined) {
        try {
          verifyNote(latest.note, [noteVerifierFromPublicKey(options.origin, fromBase64Url(keys.log.publicJwk.x))]);
        } catch (err) {
          if (!(err instanceof NoteError)) throw err;
          throw new CollectorKeyMismatchError(
            `this collector's log key (keys/${FILES.log}, fingerprint ${keys.log.kid}) did not sign the newest checkpoint in the database (size ${latest.size}); ` +
              'start it with the keys directory the database was created with',
          );
        }
      }
    }
    const recordedAt = options.now().toISOString();
    await tx.putCollectorKeys(ROLES.filter((role) => !stored.some((k) => k.role === role)).map((role) => ({ role, kid: keys[role].kid, publicJwk: keys[role].publicJwk, recordedAt })));
  });
}

/** For commands that only read: compares with the recorded keys (none recorded yet: nothing to compare). */
export async function assertCollectorIdentity(store: CollectorStore, keys: ReplicaKeys): Promise<void> {
  assertRecordedKeys(await store.collectorKeys(), keys);
}
