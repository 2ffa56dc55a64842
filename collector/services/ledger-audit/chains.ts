/**
 * The chains (agent, epoch) as `ledger verify` follows them: each starts from its agent_epochs
 * row (the enrolled key, the stored head) and its stored key history (agent_keys); the record
 * pass advances it; at the end the stored head and key history MUST equal what the records give.
 */
import { jwkThumbprint, type Ed25519PublicJwk } from '../../../shared/crypto.ts';
import { publicKeyOf, type HistoryKey } from '../../../shared/key-history.ts';
import type { LedgerAuditSource } from '../../store/store.ts';
import type { Findings } from './findings.ts';

/** What the audit knows of one (agent, epoch): its stored row, and the chain as streamed so far. */
export interface ChainState {
  agent: string;
  epoch: number;
  /** The key history derived from the chain (shared/key-history.ts): the enrolled key, then each valid rotation. */
  keys: HistoryKey[];
  /** The stored key history (agent_keys), to compare with the derived one. */
  storedKeys: { fromSeq: number; kid: string }[];
  highestSeq: number;
  highestHash: string | null;
  witnessedSize: number | null;
  /** The last record of the chain seen in the stream. */
  seq: number;
  hash: string | null;
}

export function chainKey(agent: string, epoch: number): string {
  return `${agent}\u0000${epoch}`;
}

/** Every agent_epochs row, with its enrolled key (from seq 1) and its stored key history. */
export async function loadChains(source: LedgerAuditSource, findings: Findings): Promise<Map<string, ChainState>> {
  const chains = new Map<string, ChainState>();
  for await (const row of source.agentEpochs()) {
    const ref = { agent: row.agent, epoch: row.epoch };
    const keys: HistoryKey[] = [];
    try {
      const jwk = JSON.parse(row.publicJwk) as Ed25519PublicJwk;
      const enrolled: HistoryKey = { fromSeq: 1, kid: '', publicJwk: jwk };
      publicKeyOf(enrolled); // throws for anything but an Ed25519 public JWK, before the thumbprint is taken
      enrolled.kid = jwkThumbprint(jwk);
      if (enrolled.kid !== row.kid) {
        findings.add({ table: 'agent_epochs', row: ref, check: 'kid', message: 'kid is not the RFC 7638 thumbprint of public_jwk', expected: enrolled.kid, found: row.kid });
      }
      keys.push(enrolled);
    } catch (err) {
      findings.add({ table: 'agent_epochs', row: ref, check: 'public_jwk', message: `public_jwk is not an Ed25519 public JWK: ${(err as Error).message}` });
    }
    chains.set(chainKey(row.agent, row.epoch), {
      agent: row.agent,
      epoch: row.epoch,
      keys,
      storedKeys: [],
      highestSeq: row.highestSeq,
      highestHash: row.highestHash,
      witnessedSize: row.witnessedSize,
      seq: 0,
      hash: null,
    });
  }
  for await (const row of source.agentKeys()) {
    // Keys of a chain without an agent_epochs row are not compared: that chain's records are
    // named as unverifiable (missing_row) instead.
    chains.get(chainKey(row.agent, row.epoch))?.storedKeys.push({ fromSeq: row.fromSeq, kid: row.kid });
  }
  return chains;
}

/** After the record pass: each chain's stored head, key history and witnessed size. */
export async function checkChainRows(source: LedgerAuditSource, chains: Map<string, ChainState>, size: number, findings: Findings): Promise<void> {
  for (const chain of chains.values()) {
    const ref = { agent: chain.agent, epoch: chain.epoch };
    if (chain.highestSeq !== chain.seq || chain.highestHash !== chain.hash) {
      findings.add({
        table: 'agent_epochs',
        row: ref,
        check: 'chain_head',
        message: `the chain head (highest_seq, highest_hash) is not the last ledger entry of ${chain.agent} epoch ${chain.epoch}`,
        expected: `seq ${chain.seq} hash ${chain.hash ?? 'null'}`,
        found: `seq ${chain.highestSeq} hash ${chain.highestHash ?? 'null'}`,
      });
    }
    const derived = chain.keys;
    const stored = chain.storedKeys;
    for (let i = 0; i < Math.max(derived.length, stored.length); i++) {
      const want = derived[i];
      const have = stored[i];
      if (want && have && want.fromSeq === have.fromSeq && want.kid === have.kid) continue;
      findings.add({
        table: 'agent_keys',
        row: { ...ref, from_seq: (have ?? want)!.fromSeq },
        check: 'key_history',
        message: `the stored key history of ${chain.agent} epoch ${chain.epoch} differs from the one its enrolled key and key.rotated records give`,
        expected: want ? `from seq ${want.fromSeq} kid ${want.kid}` : 'no key',
        found: have ? `from seq ${have.fromSeq} kid ${have.kid}` : 'no key',
      });
      break;
    }
    if (chain.witnessedSize !== null && (chain.witnessedSize > size || !(await source.checkpointOfSize(chain.witnessedSize)))) {
      findings.add({
        table: 'agent_epochs',
        row: ref,
        check: 'witnessed_size',
        message: `witnessed_size ${chain.witnessedSize} names no stored checkpoint within the ${size} entries`,
      });
    }
  }
}
