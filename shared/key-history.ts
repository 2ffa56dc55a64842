/**
 * Which agent key is valid at which seq, and how a `key.rotated` record changes that (ADR 0006).
 * One rule for the collector's ingest (collector/services/batch-keys.ts), `ledger verify`,
 * `sakshya-agent verify` and `sakshya-verify`.
 *
 * An epoch's history is its keys by ascending `fromSeq`: the key enrolled for the epoch, from
 * seq 1, then one key per valid key.rotated record of the chain, from the seq after it. The key
 * valid at seq s is the one with the largest fromSeq ≤ s (`keyAt`). A key.rotated record at seq
 * s, whose signature the caller verified with the key valid at s, appends its new key from s + 1
 * (`applyKeyRotation`): its body MUST pass `checkKeyRotation` against every key the epoch has
 * used, and it MUST come after every rotation the history holds. Both functions are pure; a
 * history is plain data (it crosses worker threads), and `publicKeyOf` parses each key once.
 *
 * KeyHistory holds the histories of several epochs for the verifiers, which seed it with the
 * enrolled key (or with keys.json) and follow the chain's rotations with `rotate`.
 */
import type { KeyObject } from 'node:crypto';
import { jwkThumbprint, publicKeyFromJwk, type Ed25519PublicJwk } from './crypto.ts';
import { checkKeyRotation, type KeyRotationFailure } from './key-rotation.ts';

/** One key of an epoch's history: valid from `fromSeq` until the next key's fromSeq. */
export interface HistoryKey {
  /** First seq this key signs. */
  fromSeq: number;
  /** RFC 7638 thumbprint of `publicJwk`. */
  kid: string;
  publicJwk: Ed25519PublicJwk;
}

/** A key.rotated record that does not extend the history: why, as a stable code. */
export class KeyRotationError extends Error {
  override name = 'KeyRotationError';
  /** `not_last`: the history already holds a key from after the record's seq. */
  readonly failure: KeyRotationFailure | 'not_last';

  constructor(failure: KeyRotationFailure | 'not_last', message: string) {
    super(message);
    this.failure = failure;
  }
}

/** The key valid at `seq`: the one with the largest fromSeq ≤ seq. `history` MUST be by ascending fromSeq. */
export function keyAt<K extends { fromSeq: number }>(history: readonly K[], seq: number): K | undefined {
  let found: K | undefined;
  for (const key of history) if (key.fromSeq <= seq) found = key;
  return found;
}

/**
 * The history after the key.rotated record at `rotation.seq` (body `rotation.body`): `history`
 * with the new key appended, valid from seq + 1. Throws KeyRotationError if the body names no
 * valid new key or a key the history holds, or if the history holds a key from after seq.
 * The caller MUST have checked the record's kind and type and its signature.
 */
export function applyKeyRotation(history: readonly HistoryKey[], rotation: { seq: number; body: unknown }): HistoryKey[] {
  const checked = checkKeyRotation(rotation.body, new Set(history.map((key) => key.kid)));
  if (!checked.ok) throw new KeyRotationError(checked.failure, checked.reason);
  const last = history.at(-1);
  if (last !== undefined && last.fromSeq > rotation.seq) {
    throw new KeyRotationError('not_last', `key.rotated at seq ${rotation.seq} precedes the key the history holds from seq ${last.fromSeq}`);
  }
  return [...history, { fromSeq: rotation.seq + 1, kid: checked.rotation.newKid, publicJwk: checked.rotation.newKey }];
}

const publicKeys = new WeakMap<HistoryKey, KeyObject>();

/** The key's KeyObject, parsed once per history entry (parsing a key costs more than a verify). Throws on an unusable JWK. */
export function publicKeyOf(key: HistoryKey): KeyObject {
  let publicKey = publicKeys.get(key);
  if (publicKey === undefined) {
    publicKey = publicKeyFromJwk(key.publicJwk);
    publicKeys.set(key, publicKey);
  }
  return publicKey;
}

export interface KeyPeriod extends HistoryKey {
  epoch: number;
  publicKey: KeyObject;
}

/** The key histories of several epochs of one agent. */
export class KeyHistory {
  readonly #epochs = new Map<number, KeyPeriod[]>();

  /** Adds a key valid from (epoch, fromSeq) until the next key of that epoch: a key known from outside the chain. */
  add(epoch: number, fromSeq: number, publicJwk: Ed25519PublicJwk): KeyPeriod {
    const period: KeyPeriod = { epoch, fromSeq, kid: jwkThumbprint(publicJwk), publicJwk, publicKey: publicKeyFromJwk(publicJwk) };
    const keys = this.#keysOf(epoch);
    let at = keys.length;
    while (at > 0 && keys[at - 1]!.fromSeq > fromSeq) at--;
    keys.splice(at, 0, period);
    return period;
  }

  /** Applies the key.rotated record at (epoch, seq) (applyKeyRotation); returns the new key. Throws KeyRotationError. */
  rotate(epoch: number, seq: number, body: unknown): KeyPeriod {
    const keys = this.#keysOf(epoch);
    const added = applyKeyRotation(keys, { seq, body }).at(-1)!;
    const period: KeyPeriod = { ...added, epoch, publicKey: publicKeyOf(added) };
    keys.push(period);
    return period;
  }

  /** The history of `epoch`, by fromSeq. */
  keys(epoch: number): readonly KeyPeriod[] {
    return this.#epochs.get(epoch) ?? [];
  }

  /** Thumbprints of every key `epoch` has used. */
  kids(epoch: number): Set<string> {
    return new Set(this.keys(epoch).map((period) => period.kid));
  }

  /** Every key period after the first of its epoch (the rotated keys), by epoch and fromSeq. */
  rotated(): KeyPeriod[] {
    const epochs = [...this.#epochs.keys()].sort((a, b) => a - b);
    return epochs.flatMap((epoch) => this.keys(epoch).filter((period) => period.fromSeq > 1));
  }

  /** The key valid for record (epoch, seq), or undefined if none is known. */
  keyFor(epoch: number, seq: number): KeyPeriod | undefined {
    return keyAt(this.keys(epoch), seq);
  }

  #keysOf(epoch: number): KeyPeriod[] {
    let keys = this.#epochs.get(epoch);
    if (keys === undefined) {
      keys = [];
      this.#epochs.set(epoch, keys);
    }
    return keys;
  }
}
