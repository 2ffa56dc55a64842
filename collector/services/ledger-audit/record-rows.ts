/**
 * One records row of `ledger verify`: the shared re-check of the stored text
 * (shared/record-check.ts: JSON, canonical form, record v1, record hash, columns, kid and
 * signature against the key valid at its seq, `prev`), mapped onto the audit's check names, plus
 * what only the ledger stores: the leaf hash column, the chain's seq order, and the chain's key
 * history, which every valid key.rotated record extends (shared/key-history.ts).
 */
import { describeZodError } from '../../../shared/protocol.ts';
import { applyKeyRotation, KeyRotationError, keyAt, publicKeyOf } from '../../../shared/key-history.ts';
import { isKeyRotationRecord } from '../../../shared/key-rotation.ts';
import { GENESIS_PREV, leafHashOfCanonical, type SignedRecord } from '../../../shared/record.ts';
import { checkStoredRecord, type RecordExpectations, type RecordFinding } from '../../../shared/record-check.ts';
import type { AuditRecordRow } from '../../store/store.ts';
import { chainKey, type ChainState } from './chains.ts';
import { hex, recordRow, type Findings } from './findings.ts';

/** Records of chains with no agent_epochs row, counted per chain: reported once each, after the pass. */
export type Orphans = Map<string, { agent: string; epoch: number; count: number }>;

const BASE64URL_SHA256 = /^[A-Za-z0-9_-]{43}$/;

/** Checks one record row; returns its leaf hash (from its canonical text) and its chain's key. */
export function checkRecordRow(
  row: AuditRecordRow,
  chains: Map<string, ChainState>,
  orphans: Orphans,
  findings: Findings,
): { leaf: Buffer; chain: string; record: SignedRecord | undefined } {
  const ref = recordRow(row);
  const add = (check: string, message: string, expected?: string, found?: string) =>
    findings.add({ table: 'records', row: ref, check, message, ...(expected !== undefined ? { expected, found: found ?? '' } : {}) });

  const checked = checkStoredRecord({
    text: row.canonical,
    storedHash: row.recordHash,
    columns: { id: row.id, agent: row.agent, epoch: row.epoch, seq: row.seq, kind: row.kind, type: row.type, at: row.at },
    expect: (record): RecordExpectations => {
      const chain = chains.get(chainKey(record.agent, record.epoch));
      if (!chain) return {};
      // With no key (an unusable public_jwk, named with its row) the signature cannot be checked.
      const key = keyAt(chain.keys, record.seq);
      return {
        ...(key ? { key: { kid: key.kid, publicKey: publicKeyOf(key) } } : {}),
        ...(record.seq === chain.seq + 1 ? { prev: chain.hash ?? GENESIS_PREV } : {}),
      };
    },
  });
  const { record, hash } = checked;
  const leaf = leafHashOfCanonical(checked.bytes);
  const agent = record?.agent ?? row.agent;
  const epoch = record?.epoch ?? row.epoch;
  const seq = record?.seq ?? row.seq;

  // The text against the two hashes stored with it.
  const hashFinding = checked.findings.find((finding) => finding.code === 'record_hash');
  if (hashFinding) add('record_hash', 'record_hash is not sha256 of the canonical text', hashFinding.expected, hashFinding.found);
  if (!Buffer.isBuffer(row.leafHash) || !row.leafHash.equals(leaf)) {
    add('leaf_hash', 'leaf_hash is not sha256(0x00 || canonical text)', hex(leaf), Buffer.isBuffer(row.leafHash) ? hex(row.leafHash) : String(row.leafHash));
  }
  let prev: Extract<RecordFinding, { code: 'prev' }> | undefined;
  const kidDiffers = checked.findings.some((finding) => finding.code === 'kid');
  for (const finding of checked.findings) {
    switch (finding.code) {
      case 'not_json':
        add('canonical_json', 'the canonical text is not JSON');
        break;
      case 'not_canonical':
        add('canonical_form', 'the stored text is not the RFC 8785 canonical form of the record it holds');
        break;
      case 'not_record':
        add('record_schema', `the record does not match record v1: ${describeZodError(finding.error, 3)}`);
        break;
      case 'column':
        add(`column_${finding.column}`, `column ${finding.column} differs from the record's ${finding.column}`, String(finding.record), String(finding.stored));
        break;
      case 'kid':
        add('kid', `kid does not name the key of ${agent} epoch ${epoch} valid at seq ${seq}`, finding.expected, finding.found);
        break;
      case 'signature':
        // A record naming another key is reported as such; that it does not verify follows.
        if (!kidDiffers) add('signature', `the signature does not verify with the key of ${agent} epoch ${epoch} valid at seq ${seq}`);
        break;
      case 'prev':
        prev = finding; // named below, after the seq order of the chain
        break;
      case 'record_hash': // above
      case 'no_key': // never asked for: `expect` gives no key rather than null
        break;
    }
  }

  const key = chainKey(agent, epoch);
  const chain = chains.get(key);
  if (!chain) {
    const orphan = orphans.get(key) ?? { agent, epoch, count: 0 };
    orphan.count++;
    orphans.set(key, orphan);
    return { leaf, chain: key, record };
  }
  if (record && checked.signed && isKeyRotationRecord(record) && seq === chain.seq + 1) {
    try {
      chain.keys = applyKeyRotation(chain.keys, record);
    } catch (err) {
      if (!(err instanceof KeyRotationError)) throw err;
      add('key_rotation', `a signed key.rotated record that rotates to no valid key: ${err.message}`);
    }
  }
  const expectedSeq = chain.seq + 1;
  if (seq !== expectedSeq) {
    add(
      'chain_seq',
      chain.seq === 0
        ? `the first entry of ${agent} epoch ${epoch} has seq ${seq}, not 1`
        : `seq ${seq} follows seq ${chain.seq} of ${agent} epoch ${epoch}${seq > expectedSeq ? `: seqs ${expectedSeq}…${seq - 1} are missing` : ''}`,
      String(expectedSeq),
      String(seq),
    );
  } else if (prev) {
    add('chain_prev', `prev is not the hash of ${agent} epoch ${epoch} seq ${chain.seq}`, prev.expected, prev.found);
  }
  chain.seq = seq;
  // A changed text is reported above; link the next record to the hash stored when it came in.
  chain.hash = row.recordHash !== hash && BASE64URL_SHA256.test(row.recordHash) ? row.recordHash : hash;
  return { leaf, chain: key, record };
}
