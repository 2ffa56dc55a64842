/**
 * `sakshya-agent verify`: re-checks the whole outbox from the stored bytes, trusting nothing the
 * agent computed when it wrote them (stored hashes, the chain head, the acknowledged prefix).
 *
 * For every record, in (epoch, seq) order (the re-check every verifier shares,
 * shared/record-check.ts, with the outbox's own columns):
 * - `canonical` parses as JSON and re-canonicalises (RFC 8785) to the very same text;
 * - it is a valid record v1 (schema), and its fields agree with the row (`epoch`, `seq`, `id`,
 *   `kind`, `at`) and with the pinned agent id; `bytes` is its UTF-8 length;
 * - the stored `hash` equals sha256(canonical) recomputed;
 * - its signature verifies with the agent key valid for (epoch, seq) (shared/key-history.ts) and its
 *   `kid` names that key; the key history starts from the enrolled key (`agent-key.jwk`, whose
 *   thumbprint MUST be the pinned kid) and follows every `key.rotated` record of the chain
 *   (ADR 0006), and the outbox's `signing_keys` rows MUST be exactly the rotated keys it gives;
 * - seq runs 1, 2, 3 … per epoch without gaps, and `prev` is the recomputed hash of the record
 *   before it (the genesis value for seq 1);
 * - the acknowledged prefix holds: every seq ≤ `chains.acked_seq` names a stored receipt of its
 *   epoch whose highest seq covers it, and no later seq is marked acknowledged.
 * For every epoch, the chain head (`chains.head_seq`, `head_hash`) is the last record and its
 * recomputed hash. For every receipt: its text is canonical, it is a valid receipt for this
 * agent, its JWS verifies against the PINNED receipt key, and the row's columns agree with it.
 * The witness's last verified checkpoint verifies with the pinned log key and origin.
 *
 * It streams: it reads the outbox through OutboxAuditSource (agent/outbox/audit-source.ts), one
 * read-only snapshot whose records come through one cursor and receipts in keyset pages; memory
 * holds one epoch's running state and at most MAX_LISTED_PROBLEMS problems, whatever the outbox
 * size. A running agent may go on writing meanwhile: the verifier sees one consistent snapshot
 * and changes nothing.
 */
import type { KeyObject } from 'node:crypto';
import { z } from 'zod';
import { verifyCheckpoint, type Checkpoint } from '../../shared/checkpoint.ts';
import { canonicalJson } from '../../shared/canonical-json.ts';
import { jwkThumbprint, publicKeyFromJwk, toBase64Url, type Ed25519PublicJwk } from '../../shared/crypto.ts';
import { agentIdSchema, describeZodError, ed25519PublicJwkSchema, epochSchema, receiptSchema } from '../../shared/protocol.ts';
import { verifyReceipt } from '../../shared/receipt.ts';
import { GENESIS_PREV } from '../../shared/record.ts';
import { checkStoredRecord, type RecordFinding } from '../../shared/record-check.ts';
import { parseVerifierKey } from '../../shared/signed-note.ts';
import { OutboxAuditSource, type AuditChainRow, type AuditReceiptRow, type AuditRecordRow } from '../outbox/audit-source.ts';
import type { WitnessAlarm } from '../outbox/state-values.ts';
import { isKeyRotationRecord } from '../../shared/key-rotation.ts';
import { KeyHistory, KeyRotationError } from '../../shared/key-history.ts';
import { MAX_LISTED_PROBLEMS, type VerifyProblem, type VerifyReport } from './verify-report.ts';

/** The outbox cannot be verified at all (not an outbox, no pins). */
export class OutboxVerifyError extends Error {
  override name = 'OutboxVerifyError';
}

const pinsSchema = z.object({
  collector: z.string(),
  origin: z.string(),
  logKey: z.string(),
  receiptKey: ed25519PublicJwkSchema,
  agent: agentIdSchema,
  epoch: epochSchema,
  kid: z.string(),
});
type VerifiedPins = z.infer<typeof pinsSchema>;

interface EpochScan {
  epoch: number;
  chain: AuditChainRow | undefined;
  expectedSeq: number;
  /** Recomputed hash of the previous record; undefined right after a gap. */
  prevHash: string | undefined;
  lastSeq: number;
  lastHash: string;
}

class Findings {
  readonly problems: VerifyProblem[] = [];
  count = 0;

  add(problem: VerifyProblem): void {
    this.count += 1;
    if (this.problems.length < MAX_LISTED_PROBLEMS) this.problems.push(problem);
  }
}

export interface VerifyOutboxOptions {
  /** Path of outbox.db. */
  path: string;
  /** The agent's public key (from its key file); its thumbprint MUST be the pinned kid. */
  agentKey: Ed25519PublicJwk;
}

/** Verifies the outbox at `path` (see the header). Resolves to the report; `ok` only if intact. */
export async function verifyOutbox(options: VerifyOutboxOptions): Promise<VerifyReport> {
  const source = OutboxAuditSource.open(options.path);
  try {
    if (source.schemaVersion < 1) throw new OutboxVerifyError(`${options.path} is not an outbox (schema version ${source.schemaVersion})`);
    return await new OutboxVerifier(source, options).run();
  } finally {
    source.close();
  }
}

class OutboxVerifier {
  readonly #source: OutboxAuditSource;
  readonly #options: VerifyOutboxOptions;
  readonly #findings = new Findings();
  readonly #keys = new KeyHistory();
  readonly #checked = { records: 0, epochs: 0, receipts: 0, acknowledged: 0, witnessCheckpoint: null as number | null };
  readonly #warnings: string[] = [];

  constructor(source: OutboxAuditSource, options: VerifyOutboxOptions) {
    this.#source = source;
    this.#options = options;
  }

  async run(): Promise<VerifyReport> {
    const pins = this.#readPins();
    if (pins !== undefined) {
      const kid = jwkThumbprint(this.#options.agentKey);
      if (kid !== pins.kid) {
        this.#add({ table: 'state', key: 'pins', check: 'kid_mismatch', expected: pins.kid, found: kid, message: 'the agent key file is not the key enrolled (pinned kid)' });
      }
      this.#keys.add(pins.epoch, 1, this.#options.agentKey);
      this.#scanRecords(pins);
      this.#checkSigningKeys();
      await this.#scanReceipts(pins);
      this.#checkWitnessCheckpoint(pins);
      this.#readAlarm();
    }
    const findings = this.#findings;
    return {
      ok: findings.count === 0,
      outbox: this.#options.path,
      agent: pins?.agent ?? null,
      schemaVersion: this.#source.schemaVersion,
      checked: this.#checked,
      problemCount: findings.count,
      problems: findings.problems,
      problemsTruncated: findings.count > findings.problems.length,
      warnings: this.#warnings,
    };
  }

  #add(problem: VerifyProblem): void {
    this.#findings.add(problem);
  }

  #readPins(): VerifiedPins | undefined {
    const text = this.#source.pinsText();
    if (text === undefined) {
      this.#add({ table: 'state', key: 'pins', check: 'pins_missing', message: 'the outbox has no enrollment (pins); nothing can be verified' });
      return undefined;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      this.#add({ table: 'state', key: 'pins', check: 'pins_invalid', message: 'the pins are not JSON; nothing can be verified' });
      return undefined;
    }
    const parsed = pinsSchema.safeParse(json);
    if (!parsed.success) {
      this.#add({ table: 'state', key: 'pins', check: 'pins_invalid', message: `the pins are invalid (${describeZodError(parsed.error)}); nothing can be verified` });
      return undefined;
    }
    return parsed.data;
  }

  // ---- records and chains ---------------------------------------------------------------

  #scanRecords(pins: VerifiedPins): void {
    const chains = new Map<number, AuditChainRow>();
    for (const row of this.#source.chains()) chains.set(row.epoch, row);
    let scan: EpochScan | undefined;
    const seen = new Set<number>();
    for (const row of this.#source.records()) {
      if (scan === undefined || row.epoch !== scan.epoch) {
        if (scan !== undefined) this.#finishEpoch(scan);
        scan = { epoch: row.epoch, chain: chains.get(row.epoch), expectedSeq: 1, prevHash: GENESIS_PREV, lastSeq: 0, lastHash: GENESIS_PREV };
        seen.add(row.epoch);
        if (scan.chain === undefined) {
          this.#add({ table: 'chains', epoch: row.epoch, check: 'chain_missing', message: `records of epoch ${row.epoch} exist but the epoch has no chain row` });
        }
      }
      this.#checkRecord(row, scan, pins);
    }
    if (scan !== undefined) this.#finishEpoch(scan);
    for (const chain of chains.values()) {
      if (seen.has(chain.epoch)) continue;
      this.#finishEpoch({ epoch: chain.epoch, chain, expectedSeq: 1, prevHash: GENESIS_PREV, lastSeq: 0, lastHash: GENESIS_PREV });
    }
  }

  #checkRecord(row: AuditRecordRow, scan: EpochScan, pins: VerifiedPins): void {
    const where = { table: 'records' as const, epoch: row.epoch, seq: row.seq, id: row.id };
    this.#checked.records += 1;

    if (row.seq !== scan.expectedSeq) {
      const missing = row.seq - 1 === scan.expectedSeq ? `record ${scan.expectedSeq} is missing` : `records ${scan.expectedSeq}..${row.seq - 1} are missing`;
      this.#add({ ...where, check: 'seq_gap', expected: scan.expectedSeq, found: row.seq, message: `the chain has a gap: ${missing}` });
      scan.prevHash = undefined;
    }
    const expectedPrev = row.seq === 1 ? GENESIS_PREV : scan.prevHash;
    const checked = checkStoredRecord({
      text: row.canonical,
      storedHash: row.hash,
      columns: { agent: pins.agent, epoch: row.epoch, seq: row.seq, id: row.id, kind: row.kind, at: row.at },
      expect: () => ({ key: this.#keys.keyFor(row.epoch, row.seq) ?? null, ...(expectedPrev !== undefined ? { prev: expectedPrev } : {}) }),
    });
    const { record, hash, bytes } = checked;
    this.#reportRecordFindings(row, where, checked.findings, bytes.length);
    if (record !== undefined && checked.signed && isKeyRotationRecord(record) && row.seq === scan.expectedSeq) {
      try {
        this.#keys.rotate(row.epoch, row.seq, record.body);
      } catch (err) {
        if (!(err instanceof KeyRotationError)) throw err;
        this.#add({ ...where, check: 'bad_key_rotation', message: `a signed key.rotated record that names no valid new key: ${err.message}` });
      }
    }
    const prev = checked.findings.find((finding) => finding.code === 'prev');
    if (prev) this.#add({ ...where, check: 'prev_mismatch', expected: prev.expected, found: prev.found, message: `prev is not the hash of record ${row.seq - 1}` });

    const chain = scan.chain;
    if (chain !== undefined) {
      if (row.seq <= chain.ackedSeq) {
        this.#checked.acknowledged += 1;
        if (row.ackedBatch === null) {
          this.#add({ ...where, check: 'not_acknowledged', expected: `seq ≤ acked_seq ${chain.ackedSeq} names its receipt`, found: null, message: 'inside the acknowledged prefix, but no receipt is named' });
        } else if (row.receiptBatch === null) {
          this.#add({ ...where, check: 'receipt_missing', found: row.ackedBatch, message: 'acknowledged by a receipt that is not stored' });
        } else if (row.receiptEpoch !== row.epoch || (row.receiptHighest ?? 0) < row.seq) {
          this.#add({
            ...where,
            batchId: row.ackedBatch,
            check: 'receipt_does_not_cover',
            expected: `epoch ${row.epoch}, highest seq ≥ ${row.seq}`,
            found: `epoch ${row.receiptEpoch}, highest seq ${row.receiptHighest}`,
            message: 'the receipt named does not cover this record',
          });
        }
      } else if (row.ackedBatch !== null) {
        this.#add({ ...where, check: 'acked_beyond_prefix', expected: null, found: row.ackedBatch, message: `marked acknowledged beyond the acknowledged prefix (acked_seq ${chain.ackedSeq})` });
      }
    }

    scan.prevHash = hash;
    scan.expectedSeq = row.seq + 1;
    scan.lastSeq = row.seq;
    scan.lastHash = hash;
  }

  /** The outbox's `signing_keys` rows are exactly the rotated keys the chain gives. */
  #checkSigningKeys(): void {
    const rows = this.#source.signingKeys();
    if (rows === undefined) return;
    const derived = this.#keys.rotated();
    for (let i = 0; i < Math.max(rows.length, derived.length); i++) {
      const row = rows[i];
      const want = derived[i];
      if (row && want && row.epoch === want.epoch && row.fromSeq === want.fromSeq && row.kid === want.kid) continue;
      this.#add({
        table: 'signing_keys',
        epoch: (row ?? want)!.epoch,
        seq: (row?.fromSeq ?? want?.fromSeq)!,
        check: 'key_history_mismatch',
        expected: want ? `epoch ${want.epoch} from seq ${want.fromSeq} kid ${want.kid}` : null,
        found: row ? `epoch ${row.epoch} from seq ${row.fromSeq} kid ${row.kid}` : null,
        message: 'the signing keys the outbox names differ from the ones its key.rotated records give',
      });
      return;
    }
  }

  /** The shared re-check's findings (shared/record-check.ts) under this verifier's names, and the stored length; `prev` is the caller's. */
  #reportRecordFindings(row: AuditRecordRow, where: { table: 'records'; epoch: number; seq: number; id: string }, findings: RecordFinding[], length: number): void {
    const hash = findings.find((finding) => finding.code === 'record_hash');
    if (hash) this.#add({ ...where, check: 'hash_mismatch', expected: hash.expected, found: hash.found, message: 'the stored hash is not sha256 of the stored canonical text' });
    if (row.bytes !== length) this.#add({ ...where, check: 'bytes_mismatch', expected: length, found: row.bytes, message: 'the stored length is not the canonical text\u2019s' });
    const kidDiffers = findings.some((finding) => finding.code === 'kid');
    for (const finding of findings) {
      switch (finding.code) {
        case 'not_json':
          this.#add({ ...where, check: 'canonical_unparseable', message: `the stored record is not JSON: ${finding.reason}` });
          break;
        case 'not_canonical': {
          const again = finding.canonical ?? '';
          const at = firstDifference(again, row.canonical);
          this.#add({
            ...where,
            check: 'not_canonical',
            expected: again.slice(at, at + 40),
            found: row.canonical.slice(at, at + 40),
            message: `the stored text is not its own canonical form (first difference at character ${at})`,
          });
          break;
        }
        case 'not_record':
          this.#add({ ...where, check: 'schema', message: `not a valid record: ${describeZodError(finding.error)}` });
          break;
        case 'column':
          this.#add({ ...where, check: 'field_mismatch', expected: finding.stored, found: finding.record, message: `the record's ${finding.column} differs from the row's` });
          break;
        case 'no_key':
          this.#add({ ...where, check: 'no_key', message: `no agent key is known for epoch ${row.epoch} seq ${row.seq}` });
          break;
        case 'kid':
          this.#add({ ...where, check: 'kid_mismatch', expected: finding.expected, found: finding.found, message: 'the record names another key than the one valid for it' });
          break;
        case 'signature':
          if (!kidDiffers) this.#add({ ...where, check: 'bad_signature', message: 'the record\u2019s signature does not verify with the agent key' });
          break;
        case 'record_hash': // above
        case 'prev': // after the key rotation, by the caller
          break;
      }
    }
  }

  #finishEpoch(scan: EpochScan): void {
    this.#checked.epochs += 1;
    const chain = scan.chain;
    if (chain === undefined) return;
    const where = { table: 'chains' as const, epoch: scan.epoch };
    if (chain.headSeq !== scan.lastSeq) {
      this.#add({ ...where, check: 'head_seq_mismatch', expected: scan.lastSeq, found: chain.headSeq, message: 'the chain head is not the last stored record' });
    }
    if (chain.headHash !== scan.lastHash) {
      this.#add({ ...where, check: 'head_hash_mismatch', expected: scan.lastHash, found: chain.headHash, message: 'the chain head hash is not the last record\u2019s recomputed hash' });
    }
    if (chain.ackedSeq < 0 || chain.ackedSeq > chain.headSeq) {
      this.#add({ ...where, check: 'acked_beyond_head', expected: `0..${chain.headSeq}`, found: chain.ackedSeq, message: 'the acknowledged prefix is longer than the chain' });
    }
  }

  // ---- receipts -------------------------------------------------------------------------

  async #scanReceipts(pins: VerifiedPins): Promise<void> {
    const receiptKey = publicKeyFromJwk(pins.receiptKey);
    for (const row of this.#source.receipts()) await this.#checkReceipt(row, pins, receiptKey);
  }

  async #checkReceipt(row: AuditReceiptRow, pins: VerifiedPins, receiptKey: KeyObject): Promise<void> {
    this.#checked.receipts += 1;
    const where = { table: 'receipts' as const, batchId: row.batchId };
    let json: unknown;
    try {
      json = JSON.parse(row.receipt);
    } catch (err) {
      this.#add({ ...where, check: 'unparseable', message: `the stored receipt is not JSON: ${(err as Error).message}` });
      return;
    }
    let again: string | undefined;
    try {
      again = canonicalJson(json);
    } catch {
      again = undefined;
    }
    if (again !== row.receipt) {
      const at = firstDifference(again ?? '', row.receipt);
      this.#add({ ...where, check: 'not_canonical', expected: (again ?? '').slice(at, at + 40), found: row.receipt.slice(at, at + 40), message: `the stored receipt is not its own canonical form (first difference at character ${at})` });
    }
    const parsed = receiptSchema.safeParse(json);
    if (!parsed.success) {
      this.#add({ ...where, check: 'schema', message: `not a valid receipt: ${describeZodError(parsed.error)}` });
      return;
    }
    const receipt = parsed.data;
    try {
      await verifyReceipt({ receipt, signature: row.signature }, receiptKey);
    } catch (err) {
      this.#add({ ...where, check: 'bad_signature', message: `${(err as Error).message} (pinned receipt key)` });
    }
    const fields: Array<[string, unknown, unknown]> = [
      ['batchId', row.batchId, receipt.batchId],
      ['agent', pins.agent, receipt.agent],
      ['epoch', row.epoch, receipt.epoch],
      ['highestSeq', row.highestSeq, receipt.highestSeq],
      ['accepted', row.accepted, receipt.accepted],
      ['duplicates', row.duplicates, receipt.duplicates],
    ];
    for (const [field, expected, found] of fields) {
      if (expected !== found) {
        this.#add({ ...where, check: 'field_mismatch', expected: expected as string | number, found: found as string | number, message: `the receipt's ${field} differs from the row's` });
      }
    }
  }

  // ---- witness --------------------------------------------------------------------------

  #checkWitnessCheckpoint(pins: VerifiedPins): void {
    const row = this.#source.witnessCheckpoint();
    if (row === undefined) return;
    this.#checked.witnessCheckpoint = row.size;
    const where = { table: 'witness_checkpoint' as const, key: String(row.size) };
    let checkpoint: Checkpoint;
    try {
      checkpoint = verifyCheckpoint(row.note, parseVerifierKey(pins.logKey), pins.origin);
    } catch (err) {
      this.#add({ ...where, check: 'bad_signature', message: `the stored checkpoint does not verify with the pinned log key: ${(err as Error).message}` });
      return;
    }
    if (checkpoint.size !== row.size) this.#add({ ...where, check: 'field_mismatch', expected: checkpoint.size, found: row.size, message: 'the stored size is not the signed checkpoint\u2019s' });
    const root = toBase64Url(checkpoint.rootHash);
    if (root !== row.root) this.#add({ ...where, check: 'field_mismatch', expected: root, found: row.root, message: 'the stored root is not the signed checkpoint\u2019s' });
  }

  #readAlarm(): void {
    const text = this.#source.witnessAlarmText();
    if (text === undefined) return;
    try {
      const alarm = JSON.parse(text) as WitnessAlarm;
      this.#warnings.push(
        `witness alarm active since ${alarm.raisedAt}: ${alarm.reason} (verified size ${alarm.previous?.size ?? 'none'}, offered size ${alarm.offered?.size}); the collector\u2019s log is suspect, the outbox is not`,
      );
    } catch {
      this.#warnings.push('witness alarm active (its state is not readable JSON)');
    }
  }
}

function firstDifference(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}
