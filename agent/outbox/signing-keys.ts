/**
 * The chain's signing keys (ADR 0006). The epoch's enrolled key (`pins.kid`, in
 * `agent-key.jwk`) signs from seq 1 and is not a row; every rotated key is a `signing_keys` row
 * (schema 3), valid from the seq after its `key.rotated` record. The key that signs the next
 * record is the last of them, read inside each append transaction (sqlite-outbox.ts, invariant
 * 7), so a rotation by another process takes effect for the very next record of every writer.
 */
import type { Database, Statement } from 'better-sqlite3';
import type { SigningKey } from '../../shared/crypto.ts';
import type { ChainTable } from './chain-table.ts';
import type { Pins } from './state-values.ts';

/** Where one signing key of the chain is: the first seq it signs and its private key file. */
export interface KeyRef {
  epoch: number;
  fromSeq: number;
  kid: string;
  /** File name of the private JWK in the agent directory. */
  file: string;
}

/** Loads the private key a KeyRef names (agent/keys.ts: AgentKeyring). */
export interface KeySource {
  signingKey(ref: KeyRef): SigningKey;
}

/** Signs records: one fixed key (which MUST be the current one), or a source of every key. */
export type RecordSigner = SigningKey | KeySource;

/** The file of the key enrolled at `init` (agent/keys.ts). */
export const ENROLLED_KEY_FILE = 'agent-key.jwk';

export class SigningKeys {
  readonly #pins: () => Pins;
  readonly #chains: ChainTable;
  readonly #stmts: {
    signingKeys: Statement<[number], { epoch: number; from_seq: number; kid: string; key_file: string }>;
    insertSigningKey: Statement<[number, number, string, string, string, string]>;
  };

  constructor(db: Database, pins: () => Pins, chains: ChainTable) {
    this.#pins = pins;
    this.#chains = chains;
    this.#stmts = {
      signingKeys: db.prepare('SELECT epoch, from_seq, kid, key_file FROM signing_keys WHERE epoch = ? ORDER BY from_seq'),
      insertSigningKey: db.prepare('INSERT INTO signing_keys (epoch, from_seq, kid, public_jwk, key_file, added_at) VALUES (?, ?, ?, ?, ?, ?)'),
    };
  }

  /** Every signing key of `epoch`, by fromSeq: the enrolled key (from seq 1), then each rotated one. */
  refs(epoch = this.#pins().epoch): KeyRef[] {
    const pins = this.#pins();
    const refs: KeyRef[] = epoch === pins.epoch ? [{ epoch, fromSeq: 1, kid: pins.kid, file: ENROLLED_KEY_FILE }] : [];
    for (const row of this.#stmts.signingKeys.all(epoch)) refs.push({ epoch: row.epoch, fromSeq: row.from_seq, kid: row.kid, file: row.key_file });
    return refs;
  }

  /** The key that signs the next record of the current epoch. */
  current(): KeyRef {
    return this.refs().at(-1)!;
  }

  /**
   * The keys to sign agent JWTs with, best first: the newest key whose `key.rotated` record the
   * collector has acknowledged (or the enrolled key) — the key the collector knows — then any
   * newer key whose rotation is not acknowledged yet (tried if the first is refused, as it is
   * when the collector stored the rotation but its receipt was lost).
   */
  forAuth(): KeyRef[] {
    const refs = this.refs();
    const acked = this.#chains.get(this.#pins().epoch).ackedSeq;
    let known = 0;
    refs.forEach((ref, i) => {
      if (ref.fromSeq - 1 <= acked) known = i;
    });
    return refs.slice(known);
  }

  /** Makes `kid` (public half `x`, private JWK in `file`) the key of `epoch` from `fromSeq` on. */
  add(key: { epoch: number; fromSeq: number; kid: string; x: string; file: string }, addedAt: string): void {
    this.#stmts.insertSigningKey.run(key.epoch, key.fromSeq, key.kid, JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: key.x }), key.file, addedAt);
  }
}
