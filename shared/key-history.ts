/**
 * Which agent key was valid for which records: a verifier asks for the key of (epoch, seq) and
 * checks the record's signature and `kid` against it. Shared by `sakshya-agent verify` (one
 * agent's outbox) and `sakshya-verify` (a report bundle's keys.json, one history per agent).
 *
 * Each epoch starts with the key enrolled with `init` (its thumbprint is pinned as `pins.kid`),
 * valid from seq 1. Key rotation (ADR 0006) appends entries: a `kind: agent, type: key.rotated`
 * record at seq s, signed by the old key, names the new public key, which signs from s + 1; the
 * verifier calls `add` as it streams past that record, so the history is built from the chain
 * itself and never needs more than the keys' count in memory.
 */
import type { KeyObject } from 'node:crypto';
import { jwkThumbprint, publicKeyFromJwk, type Ed25519PublicJwk } from './crypto.ts';

export interface KeyPeriod {
  epoch: number;
  /** First seq this key signs. */
  fromSeq: number;
  kid: string;
  publicKey: KeyObject;
}

export class KeyHistory {
  readonly #periods: KeyPeriod[] = [];

  /** Adds a key valid from (epoch, fromSeq) until the next period of that epoch. */
  add(epoch: number, fromSeq: number, publicJwk: Ed25519PublicJwk): KeyPeriod {
    const period = { epoch, fromSeq, kid: jwkThumbprint(publicJwk), publicKey: publicKeyFromJwk(publicJwk) };
    this.#periods.push(period);
    this.#periods.sort((a, b) => a.epoch - b.epoch || a.fromSeq - b.fromSeq);
    return period;
  }

  /** Thumbprints of every key `epoch` has used. */
  kids(epoch: number): Set<string> {
    return new Set(this.#periods.filter((period) => period.epoch === epoch).map((period) => period.kid));
  }

  /** Every key period added after the first of its epoch (the rotated keys), by epoch and fromSeq. */
  rotated(): KeyPeriod[] {
    return this.#periods.filter((period) => period.fromSeq > 1);
  }

  /** The key valid for record (epoch, seq), or undefined if none is known. */
  keyFor(epoch: number, seq: number): KeyPeriod | undefined {
    let found: KeyPeriod | undefined;
    for (const period of this.#periods) {
      if (period.epoch === epoch && period.fromSeq <= seq) found = period;
    }
    return found;
  }
}
