/**
 * C2SP signed-note (c2sp.org/signed-note) with Ed25519 signatures (signature type 0x01).
 *
 * A note is UTF-8 text ending in a newline, a blank line, then one or more lines
 * "— <key name> <base64(4-byte key ID || signature)>\n". Opening follows the spec and
 * golang.org/x/mod/sumdb/note `Open`:
 * - The whole note MUST be well-formed Unicode with no control characters but newline; the
 *   text is everything before the last blank line, including its final newline.
 * - A signature is from a known key only if both the key name and the key ID match one of the
 *   given verifiers; signatures from unknown keys are ignored (this is what allows key rotation
 *   and witness cosignatures), but they still count towards the size limits.
 * - Every signature from a known key MUST verify, or the whole note is rejected. Identical
 *   repeated lines are checked once; a second, different signature by the same key is checked
 *   too (stricter than Go, which skips it: a bad signature line from a trusted key is a sign
 *   of tampering, not noise).
 * - At least one known key's signature must verify.
 * - Limits (the spec requires accepting at least 16 signatures): at most
 *   MAX_NOTE_SIGNATURES signature lines (Go's limit) and MAX_NOTE_BYTES in all.
 * - Base64 is RFC 4648 §4 and decoded strictly (canonical padding bits, no whitespace), so one
 *   signature has exactly one encoding.
 *
 * Key names MUST be non-empty and contain no Unicode white space, no '+' and no control
 * characters. Verifier keys use Go's text form "<name>+<8 hex key ID>+<base64(0x01 || key)>".
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { fromBase64Url, sha256, signEd25519, verifyEd25519, type SigningKey } from './crypto.ts';

/** c2sp.org/signed-note signature type byte for Ed25519. */
export const ED25519_SIGNATURE_TYPE = 0x01;
export const MAX_NOTE_SIGNATURES = 100;
export const MAX_NOTE_BYTES = 1024 * 1024;

const SIGNATURE_PREFIX = '\u2014 ';
const KEY_ID_SIZE = 4;
const ED25519_PUBLIC_KEY_SIZE = 32;
const ED25519_SIGNATURE_SIZE = 64;

export type NoteErrorReason = 'malformed' | 'too_large' | 'invalid_key' | 'invalid_signature' | 'unverified';

export class NoteError extends Error {
  override name = 'NoteError';
  /** Stable machine-readable cause, for callers that map errors to responses. */
  readonly reason: NoteErrorReason;

  constructor(reason: NoteErrorReason, message: string) {
    super(message);
    this.reason = reason;
  }
}

export interface NoteVerifier {
  name: string;
  keyId: Buffer;
  publicKey: KeyObject;
  publicKeyRaw: Buffer;
}

export interface NoteSigner {
  name: string;
  keyId: Buffer;
  privateKey: KeyObject;
}

export interface OpenedNote {
  /** The signed text, final newline included. */
  text: string;
  /** "<name>+<key ID hex>" of every known key whose signature verified, in note order. */
  verifiedBy: string[];
  /** "<name>+<key ID hex>" of signatures from keys not given, which were ignored. */
  unverified: string[];
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const CONTROL_BUT_NEWLINE = /[\u0000-\u0009\u000B-\u001F]/;
const CONTROL = /[\u0000-\u001F]/;
const WHITE_SPACE = /\p{White_Space}/u;
const STD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Strict RFC 4648 §4 base64: padded, no whitespace, zero padding bits. Returns undefined for
 * anything else (Buffer.from(…, 'base64') alone would silently skip invalid characters).
 */
export function decodeStdBase64(text: string): Buffer | undefined {
  if (!STD_BASE64.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

/** True for a valid key name: non-empty, no white space, no '+', no control characters. */
export function isValidNoteName(name: string): boolean {
  return (
    typeof name === 'string' &&
    name.length > 0 &&
    !name.includes('+') &&
    !WHITE_SPACE.test(name) &&
    !CONTROL.test(name) &&
    !LONE_SURROGATE.test(name)
  );
}

function assertName(name: string): void {
  if (!isValidNoteName(name)) {
    throw new NoteError('invalid_key', `invalid key name ${JSON.stringify(name)}: it must be non-empty, without spaces, '+' or control characters`);
  }
}

function assertPublicKey(publicKeyRaw: Uint8Array): void {
  if (publicKeyRaw.length !== ED25519_PUBLIC_KEY_SIZE) {
    throw new NoteError('invalid_key', `an Ed25519 public key is ${ED25519_PUBLIC_KEY_SIZE} bytes, not ${publicKeyRaw.length}`);
  }
}

/** Key ID: the first 4 bytes of SHA-256(name || "\n" || 0x01 || 32-byte public key). */
export function noteKeyId(name: string, publicKeyRaw: Uint8Array): Buffer {
  assertName(name);
  assertPublicKey(publicKeyRaw);
  const digest = sha256(Buffer.concat([Buffer.from(`${name}\n`, 'utf8'), Buffer.from([ED25519_SIGNATURE_TYPE]), publicKeyRaw]));
  return digest.subarray(0, KEY_ID_SIZE);
}

/** "<name>+<8 hex key ID>+<base64(0x01 || public key)>", the form clients are configured with. */
export function verifierKeyString(name: string, publicKeyRaw: Uint8Array): string {
  const keyId = noteKeyId(name, publicKeyRaw);
  const key = Buffer.concat([Buffer.from([ED25519_SIGNATURE_TYPE]), publicKeyRaw]).toString('base64');
  return `${name}+${keyId.toString('hex')}+${key}`;
}

/** A verifier for an Ed25519 key given as its raw 32 bytes. */
export function noteVerifierFromPublicKey(name: string, publicKeyRaw: Uint8Array): NoteVerifier {
  const keyId = noteKeyId(name, publicKeyRaw);
  const raw = Buffer.from(publicKeyRaw);
  const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
  return { name, keyId, publicKey, publicKeyRaw: raw };
}

/** Parses a verifier key string. Throws NoteError (reason invalid_key) if it is malformed. */
export function parseVerifierKey(vkey: string): NoteVerifier {
  const bad = (why: string): NoteError => new NoteError('invalid_key', `invalid verifier key: ${why}`);
  if (typeof vkey !== 'string') throw bad('not a string');
  // The name cannot contain '+', so the first two '+' delimit it and the key ID; base64 may hold more.
  const first = vkey.indexOf('+');
  const second = first < 0 ? -1 : vkey.indexOf('+', first + 1);
  if (second < 0) throw bad('expected <name>+<key ID>+<key>');
  const name = vkey.slice(0, first);
  const idHex = vkey.slice(first + 1, second);
  const keyText = vkey.slice(second + 1);
  if (!isValidNoteName(name)) throw bad(`invalid key name ${JSON.stringify(name)}`);
  if (!/^[0-9a-fA-F]{8}$/.test(idHex)) throw bad('the key ID must be 8 hex digits');
  const key = decodeStdBase64(keyText);
  if (!key || key.length === 0) throw bad('the key is not base64');
  if (key[0] !== ED25519_SIGNATURE_TYPE) throw bad(`unsupported signature type 0x${key[0]!.toString(16).padStart(2, '0')}`);
  if (key.length !== 1 + ED25519_PUBLIC_KEY_SIZE) throw bad(`an Ed25519 key is ${ED25519_PUBLIC_KEY_SIZE} bytes, not ${key.length - 1}`);
  const verifier = noteVerifierFromPublicKey(name, key.subarray(1));
  if (!verifier.keyId.equals(Buffer.from(idHex, 'hex'))) throw bad(`key ID ${idHex} does not match the name and key`);
  return verifier;
}

/** A note signer for `name` from one of our Ed25519 signing keys. */
export function noteSignerFromSigningKey(name: string, key: SigningKey): NoteSigner {
  return { name, keyId: noteKeyId(name, fromBase64Url(key.publicJwk.x)), privateKey: key.privateKey };
}

function keyLabel(name: string, keyId: Uint8Array): string {
  return `${name}+${Buffer.from(keyId).toString('hex')}`;
}

function malformed(why: string): NoteError {
  return new NoteError('malformed', `malformed note: ${why}`);
}

function checkCharacters(text: string): void {
  if (LONE_SURROGATE.test(text)) throw malformed('not valid Unicode');
  if (CONTROL_BUT_NEWLINE.test(text)) throw malformed('control character other than newline');
}

/**
 * Signs `text` (which MUST end with a newline) and returns the note:
 * text, a blank line, and "— <name> <base64(key ID || signature)>\n".
 */
export function signNote(text: string, signer: NoteSigner): string {
  if (typeof text !== 'string' || !text.endsWith('\n')) throw malformed('the text must end with a newline');
  checkCharacters(text);
  assertName(signer.name);
  if (signer.keyId.length !== KEY_ID_SIZE) throw new NoteError('invalid_key', `a key ID is ${KEY_ID_SIZE} bytes`);
  const signature = signEd25519(signer.privateKey, Buffer.from(text, 'utf8'));
  const note = `${text}\n${SIGNATURE_PREFIX}${signer.name} ${Buffer.concat([signer.keyId, signature]).toString('base64')}\n`;
  if (Buffer.byteLength(note, 'utf8') > MAX_NOTE_BYTES) throw new NoteError('too_large', `a note must not exceed ${MAX_NOTE_BYTES} bytes`);
  return note;
}

/**
 * Opens a signed note. Returns its text and who signed it; throws NoteError unless at least one
 * of `verifiers` signed it and every signature from a known key verifies (see the header for
 * the rules on unknown keys, duplicates and limits).
 */
export function verifyNote(note: string, verifiers: readonly NoteVerifier[]): OpenedNote {
  if (typeof note !== 'string') throw malformed('not a string');
  if (Buffer.byteLength(note, 'utf8') > MAX_NOTE_BYTES) throw new NoteError('too_large', `a note must not exceed ${MAX_NOTE_BYTES} bytes`);
  checkCharacters(note);

  const known = new Map<string, NoteVerifier>();
  for (const verifier of verifiers) {
    const label = keyLabel(verifier.name, verifier.keyId);
    const other = known.get(label);
    if (other && !other.publicKeyRaw.equals(verifier.publicKeyRaw)) {
      throw new NoteError('invalid_key', `two different verifier keys share the name and key ID ${label}`);
    }
    known.set(label, verifier);
  }

  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw malformed('no blank line before the signatures');
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (block.length === 0 || !block.endsWith('\n')) throw malformed('the signature block must be non-empty and end with a newline');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_NOTE_SIGNATURES) throw new NoteError('too_large', `more than ${MAX_NOTE_SIGNATURES} signatures`);

  const message = Buffer.from(text, 'utf8');
  const verifiedBy: string[] = [];
  const unverified: string[] = [];
  const seenLines = new Set<string>();
  for (const line of lines) {
    if (!line.startsWith(SIGNATURE_PREFIX)) throw malformed('a signature line must start with an em dash and a space');
    const rest = line.slice(SIGNATURE_PREFIX.length);
    const space = rest.indexOf(' ');
    const name = space < 0 ? rest : rest.slice(0, space);
    const encoded = space < 0 ? '' : rest.slice(space + 1);
    const bytes = decodeStdBase64(encoded);
    if (!isValidNoteName(name) || !bytes || bytes.length <= KEY_ID_SIZE) throw malformed('bad signature line');
    if (seenLines.has(line)) continue;
    seenLines.add(line);

    const label = keyLabel(name, bytes.subarray(0, KEY_ID_SIZE));
    const verifier = known.get(label);
    if (!verifier) {
      if (!unverified.includes(label)) unverified.push(label);
      continue;
    }
    const signature = bytes.subarray(KEY_ID_SIZE);
    if (signature.length !== ED25519_SIGNATURE_SIZE || !verifyEd25519(verifier.publicKey, message, signature)) {
      throw new NoteError('invalid_signature', `invalid signature for key ${label}`);
    }
    if (!verifiedBy.includes(label)) verifiedBy.push(label);
  }
  if (verifiedBy.length === 0) throw new NoteError('unverified', 'note has no verifiable signatures');
  return { text, verifiedBy, unverified };
}
