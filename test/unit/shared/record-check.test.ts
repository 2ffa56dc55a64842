import assert from 'node:assert/strict';
import { canonicalJson } from '../../../shared/canonical-json.ts';
import { generateSigningKey } from '../../../shared/crypto.ts';
import { newId } from '../../../shared/ids.ts';
import { GENESIS_PREV, recordHash, signRecord, type SignedRecord } from '../../../shared/record.ts';
import { checkStoredRecord, type RecordExpectations, type RecordFindingCode, type StoredRecordInput } from '../../../shared/record-check.ts';

describe('shared/record-check', () => {
  const { key } = generateSigningKey();
  const other = generateSigningKey().key;
  const expectedKey = { kid: key.kid, publicKey: key.publicKey };

  function record(seq: number, prev: string, body: { [key: string]: unknown } = { office: 'KMR', n: seq }): SignedRecord {
    return signRecord(
      { v: 1, id: newId(), agent: 'AS-KMR-001', epoch: 1, seq, prev, kind: 'audit', type: 'certificate.issued', at: '2026-11-22T04:33:05.123Z', body, kid: key.kid },
      key.privateKey,
    );
  }
  const first = record(1, GENESIS_PREV);
  const second = record(2, recordHash(first));
  const text = canonicalJson(second);
  const hash = recordHash(second);
  const expect = (overrides: RecordExpectations = {}) => (): RecordExpectations => ({ key: expectedKey, prev: recordHash(first), ...overrides });

  const codes = (input: StoredRecordInput): RecordFindingCode[] => checkStoredRecord(input).findings.map((finding) => finding.code);

  it('finds nothing wrong with an untouched record, as text or as bytes, and gives back the record, its hash and that it is signed', () => {
    for (const stored of [text, Buffer.from(text, 'utf8')]) {
      const checked = checkStoredRecord({ text: stored, storedHash: hash, columns: { id: second.id, seq: 2, kind: 'audit' }, expect: expect() });
      assert.deepEqual(checked.findings, []);
      assert.equal(checked.hash, hash);
      assert.deepEqual(checked.record, second);
      assert.equal(checked.signed, true);
      assert.ok(checked.bytes.equals(Buffer.from(text, 'utf8')));
    }
  });

  it('names text that is not JSON, and checks nothing else of it', () => {
    let asked = false;
    const checked = checkStoredRecord({ text: text.slice(0, -1), storedHash: hash, expect: () => ((asked = true), {}) });
    assert.deepEqual(checked.findings.map((finding) => finding.code), ['record_hash', 'not_json']);
    assert.equal(checked.record, undefined);
    assert.equal(asked, false);
  });

  it('names JSON that is not a record v1, after its canonical form', () => {
    const extra = canonicalJson({ ...second, extra: true });
    assert.deepEqual(codes({ text: extra, expect: expect() }), ['not_record']);
    const reordered = JSON.stringify({ ...second, v: 2 });
    assert.deepEqual(codes({ text: reordered, expect: expect() }), ['not_canonical', 'not_record']);
  });

  it('names a record whose members were re-ordered: not canonical, and its hash is no longer the stored one, though the signature still verifies', () => {
    const reordered = JSON.stringify(Object.fromEntries(Object.entries(second).reverse()));
    const checked = checkStoredRecord({ text: reordered, storedHash: hash, expect: expect() });
    assert.deepEqual(checked.findings.map((finding) => finding.code), ['record_hash', 'not_canonical']);
    const notCanonical = checked.findings[1]!;
    assert.equal(notCanonical.code === 'not_canonical' && notCanonical.canonical, text);
    assert.equal(checked.signed, true);
  });

  it('names one changed byte of the signed content: the hash and the signature', () => {
    const changed = text.replace('"office":"KMR"', '"office":"KMS"');
    assert.notEqual(changed, text);
    assert.deepEqual(codes({ text: changed, storedHash: hash, expect: expect() }), ['record_hash', 'signature']);
    const bytes = Buffer.from(text, 'utf8');
    bytes[bytes.indexOf('"office":"KMR"') + '"office":"KM'.length] = 0xff; // not UTF-8 any more
    assert.deepEqual(codes({ text: bytes, storedHash: hash, expect: expect() }), ['record_hash', 'not_canonical', 'signature']);
  });

  it('names a bad signature, and says the record is not signed', () => {
    const sig = second.sig.startsWith('A') ? `B${second.sig.slice(1)}` : `A${second.sig.slice(1)}`;
    const checked = checkStoredRecord({ text: canonicalJson({ ...second, sig }), expect: expect() });
    assert.deepEqual(checked.findings, [{ code: 'signature', kid: key.kid }]);
    assert.equal(checked.signed, false);
  });

  it('names a kid that is not the key valid at the seq, and checks the signature with that key all the same', () => {
    const checked = checkStoredRecord({ text, expect: expect({ key: { kid: other.kid, publicKey: other.publicKey } }) });
    assert.deepEqual(checked.findings, [
      { code: 'kid', expected: other.kid, found: key.kid },
      { code: 'signature', kid: other.kid },
    ]);
    assert.equal(checked.signed, false);
  });

  it('names a record for which no key is known, and checks neither kid nor signature without one', () => {
    assert.deepEqual(codes({ text, expect: expect({ key: null }) }), ['no_key']);
    const checked = checkStoredRecord({ text, expect: () => ({}) });
    assert.deepEqual(checked.findings, []);
    assert.equal(checked.signed, false);
  });

  it('names a prev that is not the hash of the record before, and the columns that differ from the record', () => {
    const wrongPrev = recordHash(record(1, GENESIS_PREV));
    assert.deepEqual(checkStoredRecord({ text, expect: expect({ prev: wrongPrev }) }).findings, [{ code: 'prev', expected: wrongPrev, found: recordHash(first) }]);
    const checked = checkStoredRecord({ text, columns: { seq: 3, agent: 'AS-KMR-001', at: 'then' }, expect: expect() });
    assert.deepEqual(checked.findings, [
      { code: 'column', column: 'seq', stored: 3, record: 2 },
      { code: 'column', column: 'at', stored: 'then', record: second.at },
    ]);
  });

  it('asks for the expectations with the record it read', () => {
    let seen: SignedRecord | undefined;
    checkStoredRecord({ text, expect: (read) => ((seen = read), {}) });
    assert.deepEqual(seen, second);
  });
});
