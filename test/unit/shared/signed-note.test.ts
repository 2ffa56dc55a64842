import assert from 'node:assert/strict';
import { skipUnlessCi } from '../../helpers/skip.ts';
import { createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { generateSigningKey, signingKeyFromPrivateJwk, type Ed25519PrivateJwk, type SigningKey } from '../../../shared/crypto.ts';
import {
  MAX_NOTE_BYTES,
  MAX_NOTE_SIGNATURES,
  NoteError,
  decodeStdBase64,
  noteKeyId,
  noteSignerFromSigningKey,
  noteVerifierFromPublicKey,
  parseVerifierKey,
  signNote,
  verifierKeyString,
  verifyNote,
  type NoteSigner,
} from '../../../shared/signed-note.ts';

const VECTORS = new URL('../../../../shared/vectors/signed_note.json', import.meta.url);

interface NoteKey { name: string; key_id_hex: string; public_key_hex: string; verifier_key: string; signer_key?: string }
interface NoteVector {
  id: string;
  description?: string;
  verifier_keys: string[];
  note: string;
  valid: boolean;
  expected_text?: string;
  expected_verified?: string[];
  expected_unverified?: string[];
  expected_error?: string;
}
interface NoteVectors {
  signer_key: string;
  note_text: string;
  signed_note: string;
  keys: NoteKey[];
  bad_verifier_keys: { key: string; reason: string }[];
  vectors: NoteVector[];
  checkpoints: { id: string; note: string; signer_key?: string }[];
}

const vectors: NoteVectors | undefined = existsSync(VECTORS) ? JSON.parse(readFileSync(VECTORS, 'utf8')) : undefined;

// PKCS#8 DER prefix of an Ed25519 private key; the 32-byte seed follows it (RFC 8410).
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** Parses Go's "PRIVATE+KEY+<name>+<key ID>+<base64(0x01 || seed)>" signer key format. */
function parseSignerKey(skey: string): { name: string; keyIdHex: string; key: SigningKey } {
  const [private_, key_, name, keyIdHex, encoded, ...rest] = skey.split('+');
  // The base64 part can itself contain '+'.
  const seedText = [encoded, ...rest].join('+');
  assert.equal(`${private_}+${key_}`, 'PRIVATE+KEY');
  const bytes = decodeStdBase64(seedText);
  assert.ok(bytes && bytes.length === 33 && bytes[0] === 1, 'signer key is 0x01 || 32-byte seed');
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, bytes.subarray(1)]), format: 'der', type: 'pkcs8' });
  const jwk = privateKey.export({ format: 'jwk' }) as Ed25519PrivateJwk;
  return { name: name!, keyIdHex: keyIdHex!, key: signingKeyFromPrivateJwk({ kty: 'OKP', crv: 'Ed25519', x: jwk.x, d: jwk.d }) };
}

function newSigner(name = 'example.org/sakshya-test'): { signer: NoteSigner; key: SigningKey } {
  const { key } = generateSigningKey();
  return { signer: noteSignerFromSigningKey(name, key), key };
}

function verifierFor(name: string, key: SigningKey) {
  return parseVerifierKey(verifierKeyString(name, Buffer.from(key.publicJwk.x, 'base64url')));
}

describe('shared/signed-note: C2SP vectors', function () {
  before(function () {
    if (!vectors) {
      skipUnlessCi(this, `vectors not found at ${VECTORS.pathname} (they live in the CI checkout's ../shared)`);
    }
  });
  const v = vectors;

  it('derives the key ID and verifier key string of every published key', () => {
    for (const k of v!.keys) {
      const raw = Buffer.from(k.public_key_hex, 'hex');
      assert.equal(noteKeyId(k.name, raw).toString('hex'), k.key_id_hex, k.name);
      assert.equal(verifierKeyString(k.name, raw), k.verifier_key, k.name);
      const parsed = parseVerifierKey(k.verifier_key);
      assert.equal(parsed.name, k.name);
      assert.equal(parsed.keyId.toString('hex'), k.key_id_hex);
      assert.deepEqual(parsed.publicKeyRaw, raw);
      assert.equal(parsed.publicKey.export({ format: 'jwk' }).x, raw.toString('base64url'));
    }
  });

  it('rejects every malformed verifier key', () => {
    for (const bad of v!.bad_verifier_keys) {
      assert.throws(() => parseVerifierKey(bad.key), (err: unknown) => err instanceof NoteError && err.reason === 'invalid_key', bad.reason);
    }
  });

  it('reproduces the published signed note byte for byte from the private test key', () => {
    const { name, keyIdHex, key } = parseSignerKey(v!.signer_key);
    const signer = noteSignerFromSigningKey(name, key);
    assert.equal(signer.keyId.toString('hex'), keyIdHex);
    assert.equal(signNote(v!.note_text, signer), v!.signed_note);
  });

  it('reproduces every published note whose signer key is public', () => {
    for (const k of v!.keys.filter((key) => key.signer_key)) {
      const { name, key } = parseSignerKey(k.signer_key!);
      assert.equal(verifierKeyString(name, Buffer.from(key.publicJwk.x, 'base64url')), k.verifier_key);
    }
    for (const cp of v!.checkpoints.filter((c) => c.signer_key)) {
      const { name, key } = parseSignerKey(cp.signer_key!);
      const text = cp.note.slice(0, cp.note.lastIndexOf('\n\n') + 1);
      assert.equal(signNote(text, noteSignerFromSigningKey(name, key)), cp.note, cp.id);
    }
  });

  for (const c of vectors?.vectors ?? []) {
    it(`${c.valid ? 'opens' : 'rejects'} vector ${c.id}${c.expected_error ? ` (${c.expected_error})` : ''}`, () => {
      const verifiers = c.verifier_keys.map(parseVerifierKey);
      if (c.valid) {
        const opened = verifyNote(c.note, verifiers);
        if (c.expected_text !== undefined) assert.equal(opened.text, c.expected_text);
        assert.deepEqual(opened.verifiedBy, c.expected_verified);
        assert.deepEqual(opened.unverified, c.expected_unverified ?? []);
      } else {
        assert.throws(
          () => verifyNote(c.note, verifiers),
          (err: unknown) => err instanceof NoteError && err.message.startsWith(c.expected_error!),
        );
      }
    });
  }
});

describe('shared/signed-note', () => {
  const text = 'sakshya test note\nsecond line\n';

  it('signs a note that its verifier opens, returning the text and the signer', () => {
    const { signer, key } = newSigner();
    const note = signNote(text, signer);
    assert.ok(note.startsWith(`${text}\n\u2014 ${signer.name} `));
    const opened = verifyNote(note, [verifierFor(signer.name, key)]);
    assert.equal(opened.text, text);
    assert.deepEqual(opened.verifiedBy, [`${signer.name}+${signer.keyId.toString('hex')}`]);
  });

  it('keeps blank lines inside the text, splitting at the last blank line', () => {
    const { signer, key } = newSigner();
    for (const t of ['a\n\nb\n', 'a\n\n', '\n', 'a\n\n\n']) {
      assert.equal(verifyNote(signNote(t, signer), [verifierFor(signer.name, key)]).text, t);
    }
  });

  it('rejects the note once any character of the text changes', () => {
    const { signer, key } = newSigner();
    const note = signNote(text, signer);
    const verifier = verifierFor(signer.name, key);
    for (let i = 0; i < text.length - 1; i++) {
      const tampered = note.slice(0, i) + (note[i] === 'x' ? 'y' : 'x') + note.slice(i + 1);
      assert.throws(() => verifyNote(tampered, [verifier]), NoteError, `change at ${i}`);
    }
  });

  it('refuses to sign text without a final newline, with control characters, or under an invalid name', () => {
    const { signer, key } = newSigner();
    assert.throws(() => signNote('no newline', signer), NoteError);
    assert.throws(() => signNote('', signer), NoteError);
    assert.throws(() => signNote('tab\there\n', signer), NoteError);
    assert.throws(() => signNote('cr\r\n', signer), NoteError);
    assert.throws(() => signNote('lone \uD800 surrogate\n', signer), NoteError);
    for (const name of ['', 'has space', 'has+plus', 'nbsp\u00A0name', 'ideographic\u3000space', 'ctl\u0001']) {
      assert.throws(() => noteSignerFromSigningKey(name, key), NoteError, JSON.stringify(name));
      assert.throws(() => verifierKeyString(name, Buffer.alloc(32)), NoteError, JSON.stringify(name));
    }
    assert.throws(() => verifierKeyString('ok', Buffer.alloc(31)), NoteError);
  });

  it('ignores signatures from unknown keys, including one sharing the name or the key ID of a known key', () => {
    const { signer, key } = newSigner('log.example');
    const other = newSigner('log.example');
    const note = signNote(text, signer);
    const ownLine = note.split('\n\n').at(-1)!;
    const sameNameOtherKey = signNote(text, other.signer).split('\n\n').at(-1)!;
    const sameKeyIdOtherName = ownLine.replace('\u2014 log.example ', '\u2014 witness.example ');
    const opened = verifyNote(note + sameNameOtherKey + sameKeyIdOtherName, [verifierFor('log.example', key)]);
    assert.deepEqual(opened.verifiedBy, [`log.example+${signer.keyId.toString('hex')}`]);
    assert.deepEqual(opened.unverified, [`log.example+${other.signer.keyId.toString('hex')}`, `witness.example+${signer.keyId.toString('hex')}`]);
    assert.throws(() => verifyNote(`${text}\n${sameNameOtherKey}${sameKeyIdOtherName}`, [verifierFor('log.example', key)]), /no verifiable signatures/);
    assert.throws(() => verifyNote(note, []), /no verifiable signatures/);
  });

  it('rejects the whole note when any signature from a known key fails, even next to a good one', () => {
    const { signer, key } = newSigner();
    const note = signNote(text, signer);
    const line = note.split('\n\n').at(-1)!;
    const sig = decodeStdBase64(line.trim().split(' ').at(-1)!)!;
    sig[10]! ^= 1;
    const badLine = `\u2014 ${signer.name} ${sig.toString('base64')}\n`;
    assert.throws(() => verifyNote(note + badLine, [verifierFor(signer.name, key)]), /invalid signature for key/);
    assert.throws(() => verifyNote(`${text}\n${badLine}${line}`, [verifierFor(signer.name, key)]), /invalid signature for key/);
  });

  it('checks a repeated identical signature line once', () => {
    const { signer, key } = newSigner();
    const note = signNote(text, signer);
    const line = note.split('\n\n').at(-1)!;
    assert.deepEqual(verifyNote(note + line + line, [verifierFor(signer.name, key)]).verifiedBy.length, 1);
  });

  it(`accepts ${MAX_NOTE_SIGNATURES} signatures, the spec's minimum of 16 included, and rejects more`, () => {
    const { signer, key } = newSigner();
    const note = signNote(text, signer);
    const others = Array.from({ length: MAX_NOTE_SIGNATURES - 1 }, (_, i) => signNote(text, newSigner(`witness-${i}`).signer).split('\n\n').at(-1)!);
    const full = note + others.join('');
    const opened = verifyNote(full, [verifierFor(signer.name, key)]);
    assert.equal(opened.unverified.length, MAX_NOTE_SIGNATURES - 1);
    const extra = signNote(text, newSigner('one-too-many').signer).split('\n\n').at(-1)!;
    assert.throws(() => verifyNote(full + extra, [verifierFor(signer.name, key)]), (err: unknown) => err instanceof NoteError && err.reason === 'too_large');
  });

  it('rejects a note larger than the size limit before parsing it', () => {
    const { signer, key } = newSigner();
    const big = 'x'.repeat(MAX_NOTE_BYTES) + '\n';
    assert.throws(() => signNote(big, signer), (err: unknown) => err instanceof NoteError && err.reason === 'too_large');
    assert.throws(() => verifyNote(`${big}\n\u2014 a AAAAAAAA\n`, [verifierFor(signer.name, key)]), (err: unknown) => err instanceof NoteError && err.reason === 'too_large');
  });

  it('rejects malformed signature blocks', () => {
    const { signer, key } = newSigner();
    const verifier = verifierFor(signer.name, key);
    const note = signNote(text, signer);
    const line = note.split('\n\n').at(-1)!;
    const encoded = line.trim().split(' ').at(-1)!;
    const cases = {
      'no signature block': text,
      'empty signature block': `${text}\n`,
      'hyphen instead of em dash': `${text}\n- ${signer.name} ${encoded}\n`,
      'no signature': `${text}\n\u2014 ${signer.name}\n`,
      'empty signature': `${text}\n\u2014 ${signer.name} \n`,
      'signature too short': `${text}\n\u2014 ${signer.name} AAAAAA==\n`,
      'whitespace inside the base64': `${text}\n\u2014 ${signer.name} ${encoded.slice(0, 8)} ${encoded.slice(8)}\n`,
      'unpadded base64': `${text}\n\u2014 ${signer.name} ${encoded.replace(/=+$/, '')}\n`,
      'blank line after the signatures': `${note}\n`,
      'CRLF line ending': note.replace(/\n$/, '\r\n'),
      'trailing text after a signature': `${note}trailing\n`,
    };
    for (const [what, bad] of Object.entries(cases)) {
      assert.throws(() => verifyNote(bad, [verifier]), NoteError, what);
    }
  });

  it('refuses two different verifiers that share a name and key ID', () => {
    const { signer, key } = newSigner();
    const real = verifierFor(signer.name, key);
    const impostor = { ...noteVerifierFromPublicKey(signer.name, Buffer.alloc(32, 7)), keyId: real.keyId };
    assert.throws(() => verifyNote(signNote(text, signer), [real, impostor]), NoteError);
    assert.equal(verifyNote(signNote(text, signer), [real, real]).verifiedBy.length, 1);
  });

  it('decodes only canonical standard base64', () => {
    assert.deepEqual(decodeStdBase64('AQID'), Buffer.from([1, 2, 3]));
    assert.deepEqual(decodeStdBase64(''), Buffer.alloc(0));
    for (const bad of ['AQI', 'AQJ=', 'A Q I D', 'AQ-_', 'AQID\n', '====']) assert.equal(decodeStdBase64(bad), undefined, bad);
  });
});
