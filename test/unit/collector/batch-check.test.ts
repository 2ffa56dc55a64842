/**
 * The batch check a worker runs (collector/services/batch-check-worker.ts), called directly:
 * what it hands the ledger must be exactly what the record rules define, whatever the bodies
 * hold and however the agent ordered their members.
 */
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import checkBatch, { type BatchCheckTask } from '../../../collector/services/batch-check-worker.ts';
import { PackedTextsBuilder, unpackTexts } from '../../../collector/services/packed-texts.ts';
import { canonicalJson } from '../../../shared/canonical-json.ts';
import { generateSigningKey, sha256 } from '../../../shared/crypto.ts';
import { newId } from '../../../shared/ids.ts';
import { MAX_BATCH_DECODED_BYTES } from '../../../shared/protocol.ts';
import { GENESIS_PREV, recordHash, signRecord, type SignedRecord } from '../../../shared/record.ts';

const AGENT = 'AS-KMR-001';
const { key } = generateSigningKey();
const history = [{ fromSeq: 1, kid: key.kid, publicJwk: key.publicJwk }];

function chain(bodies: { [key: string]: unknown }[]): SignedRecord[] {
  let prev = GENESIS_PREV;
  return bodies.map((body, i) => {
    const record = signRecord(
      { v: 1, id: newId(), agent: AGENT, epoch: 1, seq: i + 1, prev, kind: 'audit', type: 'certificate.issued', at: '2026-11-30T04:33:05.123Z', body, kid: key.kid },
      key.privateKey,
    );
    prev = recordHash(record);
    return record;
  });
}

/** The batch as JSON text: each record's members in canonical order (as agents send) or reversed. */
function batchText(records: SignedRecord[], batchId: string, canonicalOrder: boolean): string {
  const texts = records.map((record) => (canonicalOrder ? canonicalJson(record) : JSON.stringify(Object.fromEntries(Object.entries(record).reverse()))));
  return `{"batchId":"${batchId}","agent":"${AGENT}","epoch":1,"records":[${texts.join(',')}],"backlog":{"pending":0,"oldestAt":null}}`;
}

function task(text: string, batchId: string): BatchCheckTask {
  return { body: Buffer.from(text), encoding: 'identity', maxDecodedBytes: MAX_BATCH_DECODED_BYTES, agent: AGENT, idempotencyKey: batchId, epoch: 1, history, maxDepth: 32 };
}

function gzipTask(body: Uint8Array, batchId: string, maxDecodedBytes = MAX_BATCH_DECODED_BYTES): BatchCheckTask {
  return { ...task('', batchId), body, encoding: 'gzip', maxDecodedBytes };
}

describe('batch check (worker)', () => {
  const body = fc.dictionary(fc.string({ unit: 'grapheme' }), fc.jsonValue({ maxDepth: 3 })).map((value) => JSON.parse(JSON.stringify(value)) as { [key: string]: unknown });

  it('packs texts as UTF-8 bytes into one buffer and gives each back unchanged (empty ones and any Unicode included)', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'grapheme' }), { maxLength: 20 }), fc.nat({ max: 64 }), (texts, expectedBytes) => {
        const builder = new PackedTextsBuilder(texts.length, expectedBytes); // small guesses make it grow
        for (const text of texts) builder.append(Buffer.from(text, 'utf8'));
        const packed = builder.finish();
        assert.equal(packed.ends.length, texts.length);
        assert.deepEqual(unpackTexts(packed), texts);
      }),
    );
  });

  it('accepts a signed chain and returns each record canonical text, record hash and leaf hash exactly as the record rules define them', () => {
    fc.assert(
      fc.property(fc.array(body, { minLength: 1, maxLength: 6 }), fc.boolean(), (bodies, canonicalOrder) => {
        const records = chain(bodies);
        const batchId = newId();
        const result = checkBatch(task(batchText(records, batchId, canonicalOrder), batchId));
        assert.ok(result.ok && !result.deferredRefusal, JSON.stringify(result));
        assert.deepEqual(unpackTexts(result.canonical), records.map((record) => canonicalJson(record)));
        assert.equal(result.canonical.ends.length, records.length);
        assert.deepEqual(result.recordHashes, records.map((record) => recordHash(record)));
        records.forEach((record, i) => {
          const leaf = sha256(Buffer.concat([Buffer.from([0]), Buffer.from(canonicalJson(record))]));
          assert.deepEqual(Buffer.from(result.leafHashes.subarray(32 * i, 32 * i + 32)), leaf);
        });
      }),
      { numRuns: 150 },
    );
  });

  it('verifies the signature over the record without its own sig, even when the body holds a "sig" member with the same value', () => {
    const [first] = chain([{ note: 'placeholder' }]);
    // Re-sign with a body that carries the record's own signature text: only the top-level sig may be cut.
    const record = signRecord({ ...first!, body: { sig: first!.sig, x: ',"sig":"' } }, key.privateKey);
    const batchId = newId();
    const result = checkBatch(task(batchText([record], batchId, true), batchId));
    assert.ok(result.ok && !result.deferredRefusal, JSON.stringify(result));
  });

  it('refuses a record whose body changed after signing, naming it, and one whose number has no canonical form', () => {
    const records = chain([{ a: 1 }, { a: 2 }, { a: 3 }]);
    const batchId = newId();
    // Two records changed: the first in batch order is named.
    const tampered = batchText(records, batchId, true).replace('"body":{"a":2}', '"body":{"a":20}').replace('"body":{"a":3}', '"body":{"a":30}');
    const result = checkBatch(task(tampered, batchId));
    assert.ok(result.ok);
    assert.equal(result.deferredRefusal?.code, 'batch.invalid');
    assert.equal(result.deferredRefusal?.extras.seq, 2);
    assert.match(result.deferredRefusal!.detail, /signature does not verify/);

    const huge = batchText(records, batchId, true).replace('"body":{"a":3}', '"body":{"a":1e400}');
    const noCanonical = checkBatch(task(huge, batchId));
    assert.ok(noCanonical.ok);
    assert.equal(noCanonical.deferredRefusal?.extras.seq, 3);
    assert.match(noCanonical.deferredRefusal!.detail, /no canonical form/);
  });

  it('refuses before anything else: deep nesting, text that is not JSON, another agent\'s record, a schema error, a batchId that is not the Idempotency-Key', () => {
    const records = chain([{ a: 1 }]);
    const batchId = newId();
    const good = batchText(records, batchId, true);
    const cases: [string, string, string][] = [
      [`{"x":${'['.repeat(40)}${']'.repeat(40)}}`, batchId, 'request.malformed'],
      [good.slice(0, -1), batchId, 'request.malformed'],
      [good.replace(`"agent":"${AGENT}","at"`, '"agent":"AS-OTHER-009","at"'), batchId, 'auth.forbidden'],
      [good.replace('"kind":"audit"', '"kind":"secret"'), batchId, 'batch.invalid'],
      [good, newId(), 'request.invalid'],
    ];
    for (const [text, key, code] of cases) {
      const result = checkBatch(task(text, key));
      assert.equal(result.ok, false, code);
      assert.equal(!result.ok && result.refusal.code, code);
    }
  });

  it('inflates a gzip body itself: the same records, hashes and canonical bytes as the identity body', () => {
    const records = chain([{ a: 1 }, { b: 'ক' }, { c: [1, 2] }]);
    const batchId = newId();
    const text = batchText(records, batchId, true);
    const plain = checkBatch(task(text, batchId));
    const gzipped = checkBatch(gzipTask(gzipSync(text), batchId));
    assert.ok(plain.ok && gzipped.ok && !gzipped.deferredRefusal);
    assert.deepEqual(gzipped.recordHashes, plain.recordHashes);
    assert.deepEqual(gzipped.recordHashes, records.map((record) => recordHash(record)));
    assert.deepEqual(unpackTexts(gzipped.canonical), records.map((record) => canonicalJson(record)));
  });

  it('refuses a gzip body that inflates past the limit (413 batch.too_large) and one that does not inflate (400 request.malformed)', () => {
    const batchId = newId();
    const text = batchText(chain([{ a: 1 }]), batchId, true);
    const tooLarge = checkBatch(gzipTask(gzipSync(text), batchId, text.length - 1));
    assert.ok(!tooLarge.ok);
    assert.equal(tooLarge.refusal.code, 'batch.too_large');
    assert.equal(tooLarge.refusal.extras.limit, text.length - 1);
    const exact = checkBatch(gzipTask(gzipSync(text), batchId, Buffer.byteLength(text)));
    assert.ok(exact.ok && !exact.deferredRefusal, 'a body of exactly the limit is accepted');

    // 64 MiB of spaces in about 64 KB: refused after the first MiB of output, not inflated to the end.
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20));
    const started = performance.now();
    const refused = checkBatch(gzipTask(bomb, batchId, 1024 * 1024));
    assert.ok(!refused.ok && refused.refusal.code === 'batch.too_large');
    assert.ok(performance.now() - started < 1000, 'the bomb is cut off early');

    for (const broken of [gzipSync(text).subarray(0, 40), Buffer.from(text), Buffer.alloc(0)]) {
      const result = checkBatch(gzipTask(broken, batchId));
      assert.ok(!result.ok);
      assert.equal(result.refusal.code, 'request.malformed');
      assert.match(result.refusal.detail, /could not be read/);
    }
  });
});
