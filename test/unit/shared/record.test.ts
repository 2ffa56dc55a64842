import assert from 'node:assert/strict';
import { skipUnlessCi } from '../../helpers/skip.ts';
import { readFileSync, existsSync } from 'node:fs';
import { canonicalJson, canonicalJsonOfParsed } from '../../../shared/canonical-json.ts';
import { generateSigningKey, jwkThumbprint, signingKeyFromPrivateJwk, signEd25519, toBase64Url } from '../../../shared/crypto.ts';
import fc from 'fast-check';
import { canonicalRecordText, canonicalRecordTexts, GENESIS_PREV, MAX_BODY_CANONICAL_BYTES, recordHash, signingBytes, signRecord, verifyRecordSignature, type UnsignedRecord } from '../../../shared/record.ts';
import { recordBodySchema, recordSchema } from '../../../shared/protocol.ts';
import { newId } from '../../../shared/ids.ts';

const VECTORS = new URL('../../../../shared/vectors/jose_jcs.json', import.meta.url);

describe('shared/record', () => {
  const { key } = generateSigningKey();
  const unsigned: UnsignedRecord = {
    v: 1, id: newId(), agent: 'AS-KMR-001', epoch: 1, seq: 1, prev: GENESIS_PREV,
    kind: 'audit', type: 'certificate.issued', at: '2026-11-22T04:33:05.123Z', body: { b: 2, a: [1, 'x'] }, kid: key.kid,
  };

  it('signs a record so that it verifies and passes the wire schema', () => {
    const record = signRecord(unsigned, key.privateKey);
    assert.equal(verifyRecordSignature(record, key.publicKey), true);
    assert.equal(recordSchema.safeParse(record).success, true);
  });

  it('rejects a signature once any signed field changes', () => {
    const record = signRecord(unsigned, key.privateKey);
    assert.equal(verifyRecordSignature({ ...record, body: { b: 3, a: [1, 'x'] } }, key.publicKey), false);
    assert.equal(verifyRecordSignature({ ...record, seq: 2 }, key.publicKey), false);
  });

  it('hashes the canonical form, so key order does not change the hash', () => {
    const record = signRecord(unsigned, key.privateKey);
    const reordered = Object.fromEntries(Object.entries(record).reverse()) as typeof record;
    assert.equal(recordHash(reordered), recordHash(record));
    assert.equal(recordHash(record).length, 43);
  });

  // Bodies as they arrive off the wire: anything JSON.parse can produce, unicode and numbers included.
  const wireBody = fc.dictionary(fc.string({ unit: 'grapheme' }), fc.jsonValue()).map((body) => JSON.parse(JSON.stringify(body)) as { [key: string]: unknown });

  it('assembles both canonical texts of a record (and the canonical one alone) exactly as canonicalising the whole record does', () => {
    fc.assert(
      fc.property(wireBody, fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), (body, epoch, seq) => {
        const record = signRecord({ ...unsigned, body, epoch, seq, prev: seq === 1 ? GENESIS_PREV : 'B'.repeat(43) }, key.privateKey);
        // Key order of the input must not matter either.
        const reordered = Object.fromEntries(Object.entries(record).reverse()) as typeof record;
        const texts = canonicalRecordTexts(reordered);
        assert.equal(texts.canonical, canonicalJson(record));
        assert.equal(texts.signing, signingBytes(record).toString('utf8'));
        assert.equal(canonicalRecordText(reordered), texts.canonical);
      }),
      { numRuns: 300 },
    );
  });

  it('writes the canonical text of any parsed JSON value exactly as the RFC 8785 library does, and refuses what has none', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const parsed = JSON.parse(JSON.stringify(value)) as unknown;
        assert.equal(canonicalJsonOfParsed(parsed), canonicalJson(parsed));
      }),
      { numRuns: 500 },
    );
    // Members already in canonical order (as agents send records): the one-stringify path.
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), fc.string({ unit: 'binary' }), (value, text) => {
        const ordered = JSON.parse(canonicalJson({ value, text: text.isWellFormed() ? text : 'x' })) as unknown;
        assert.equal(canonicalJsonOfParsed(ordered), canonicalJson(ordered));
      }),
      { numRuns: 500 },
    );
    assert.equal(canonicalJsonOfParsed(JSON.parse('{"10":1,"9":2,"a":"\\\\ud800"}')), canonicalJson(JSON.parse('{"10":1,"9":2,"a":"\\\\ud800"}')));
    assert.throws(() => canonicalJsonOfParsed(JSON.parse('{"a":"\\ud800"}')), /no canonical JSON form/);
    // Not what JSON.parse makes: handed to the library, same answer.
    const odd = { d: new Date(0), n: Object.assign(Object.create(null) as object, { b: 1, a: 2 }), s: new String('x') };
    assert.equal(canonicalJsonOfParsed(odd), canonicalJson(odd));
    assert.throws(() => canonicalJsonOfParsed({ x: JSON.parse('1e400') as number }), /no canonical JSON form/);
    assert.throws(() => canonicalJsonOfParsed({ x: '\ud800' }), /no canonical JSON form/);
    assert.throws(() => canonicalJsonOfParsed({ '\udc00': 1 }), /no canonical JSON form/);
  });

  it('refuses a body that is not a JSON object, and keeps the body it checked as it was sent', () => {
    for (const body of [null, [], 'x', 1]) assert.equal(recordBodySchema.safeParse(body).success, false);
    const body = { a: { b: [1, 2] } };
    assert.equal(recordBodySchema.parse(body), body);
  });

  it('measures a body against the canonical size limit exactly (JSON.stringify length = RFC 8785 length)', () => {
    fc.assert(
      fc.property(wireBody, (body) => {
        assert.equal(Buffer.byteLength(JSON.stringify(body)), Buffer.byteLength(canonicalJson(body)));
      }),
      { numRuns: 300 },
    );
    const atLimit = { x: 'y'.repeat(MAX_BODY_CANONICAL_BYTES - '{"x":""}'.length) };
    assert.equal(recordBodySchema.safeParse(atLimit).success, true);
    assert.equal(recordBodySchema.safeParse({ x: `${atLimit.x}y` }).success, false);
  });

  it('refuses unknown fields and a seq 1 with a non-genesis prev', () => {
    const record = signRecord(unsigned, key.privateKey);
    assert.equal(recordSchema.safeParse({ ...record, extra: 1 }).success, false);
    assert.equal(recordSchema.safeParse({ ...record, prev: 'B'.repeat(43) }).success, false);
  });
});

describe('shared vectors: RFC 8037 and RFC 8785', function () {
  before(function () {
    if (!existsSync(VECTORS)) {
      skipUnlessCi(this, `conformance vectors not found at ${VECTORS.pathname} (they live in the CI checkout's ../shared)`);
    }
  });

  it('computes the RFC 8037 A.3 thumbprint and A.4 signature', () => {
    const v = JSON.parse(readFileSync(VECTORS, 'utf8')).rfc8037_appendix_a;
    assert.equal(jwkThumbprint(v.public_jwk), v.jwk_thumbprint_rfc7638.sha256_b64url);
    const key = signingKeyFromPrivateJwk(v.private_jwk);
    const sig = signEd25519(key.privateKey, Buffer.from(v.jws.signing_input));
    assert.equal(toBase64Url(sig), v.jws.signature_b64url);
  });

  it('canonicalises every RFC 8785 input to its expected bytes', () => {
    const v = JSON.parse(readFileSync(VECTORS, 'utf8')).rfc8785_jcs;
    assert.ok(v.cases.length > 0, 'no JCS cases in the vector file');
    for (const c of v.cases) {
      assert.equal(Buffer.from(canonicalJson(JSON.parse(c.input)), 'utf8').toString('hex'), c.expected_output_hex, c.name);
      assert.equal(Buffer.from(canonicalJsonOfParsed(JSON.parse(c.input)), 'utf8').toString('hex'), c.expected_output_hex, `${c.name} (fast path)`);
    }
  });

  it('serialises every RFC 8785 Appendix B number as ECMAScript does, and refuses NaN and Infinity', () => {
    const v = JSON.parse(readFileSync(VECTORS, 'utf8')).rfc8785_jcs.number_serialization;
    let checked = 0;
    for (const c of v.cases) {
      const value = Buffer.from(c.ieee_hex, 'hex').readDoubleBE(0);
      if (Number.isFinite(value)) {
        assert.equal(canonicalJson(value), c.expected, c.comment);
        assert.equal(canonicalJsonOfParsed(value), c.expected, `${c.comment} (fast path)`);
        checked++;
      } else {
        assert.throws(() => canonicalJson(value), /canonical/);
        assert.throws(() => canonicalJsonOfParsed(value), /canonical/);
      }
    }
    assert.ok(checked > 10);
  });
});
