/**
 * C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint): the signed tree head of the ledger.
 *
 * Body: "<origin>\n<tree size>\n<base64 root hash>\n" followed by optional extension lines,
 * signed as a C2SP signed note (see signed-note.ts). Parsing is strict, because a checkpoint
 * is evidence and has exactly one valid encoding:
 * - the text ends with a newline and has at least three lines; no control characters;
 * - the origin is non-empty (any other text: clients MUST NOT assume a format);
 * - the size is ASCII decimal without leading zeros ("0" for the empty tree) and at most
 *   Number.MAX_SAFE_INTEGER;
 * - the root hash is canonical standard base64 of exactly 32 bytes (SHA-256, RFC 6962). Go's
 *   transparency-dev/formats accepts other lengths; we do not, since no other hash can be ours;
 * - extension lines, if any, are non-empty.
 *
 * The log's key name SHOULD equal the origin, but the spec allows otherwise (sum.golang.org
 * signs "go.sum database tree"), so verification checks the origin only against the
 * `expectedOrigin` the caller passes — callers SHOULD pass it.
 */
import { HASH_SIZE } from './merkle.ts';
import { decodeStdBase64, signNote, verifyNote, type NoteSigner, type NoteVerifier } from './signed-note.ts';

export interface Checkpoint {
  origin: string;
  size: number;
  rootHash: Buffer;
  extensions: string[];
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

const CONTROL_BUT_NEWLINE = /[\u0000-\u0009\u000B-\u001F]/;
const CONTROL = /[\u0000-\u001F]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const DECIMAL = /^(?:0|[1-9][0-9]*)$/;

function checkLine(line: string, what: string): void {
  if (typeof line !== 'string' || line.length === 0) throw new CheckpointError(`the ${what} must be a non-empty line`);
  if (CONTROL.test(line) || LONE_SURROGATE.test(line)) throw new CheckpointError(`the ${what} must be one line of valid text without control characters`);
}

/** The checkpoint's note text. Throws CheckpointError for a checkpoint that has no valid encoding. */
export function formatCheckpoint(cp: Checkpoint): string {
  checkLine(cp.origin, 'origin');
  if (!Number.isSafeInteger(cp.size) || cp.size < 0) throw new CheckpointError(`tree size ${cp.size} must be a non-negative safe integer`);
  if (cp.rootHash.length !== HASH_SIZE) throw new CheckpointError(`the root hash is ${cp.rootHash.length} bytes, not ${HASH_SIZE}`);
  cp.extensions.forEach((line, i) => checkLine(line, `extension line ${i}`));
  const lines = [cp.origin, String(cp.size), Buffer.from(cp.rootHash).toString('base64'), ...cp.extensions];
  return lines.map((line) => `${line}\n`).join('');
}

/** Parses a checkpoint body (a note's text). Throws CheckpointError on anything the spec forbids. */
export function parseCheckpoint(text: string): Checkpoint {
  if (typeof text !== 'string' || !text.endsWith('\n')) throw new CheckpointError('a checkpoint must end with a newline');
  if (CONTROL_BUT_NEWLINE.test(text) || LONE_SURROGATE.test(text)) {
    throw new CheckpointError('a checkpoint must be valid text without control characters other than newline');
  }
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) throw new CheckpointError(`a checkpoint has at least 3 lines, not ${lines.length}`);
  const [origin, sizeText, rootText, ...extensions] = lines as [string, string, string, ...string[]];
  if (origin.length === 0) throw new CheckpointError('the origin line is empty');
  if (!DECIMAL.test(sizeText)) throw new CheckpointError(`tree size ${JSON.stringify(sizeText)} is not a decimal number without leading zeros`);
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) throw new CheckpointError(`tree size ${sizeText} is too large`);
  const rootHash = decodeStdBase64(rootText);
  if (!rootHash) throw new CheckpointError('the root hash is not standard base64');
  if (rootHash.length !== HASH_SIZE) throw new CheckpointError(`the root hash is ${rootHash.length} bytes, not ${HASH_SIZE}`);
  extensions.forEach((line, i) => {
    if (line.length === 0) throw new CheckpointError(`extension line ${i} is empty`);
  });
  return { origin, size, rootHash, extensions };
}

/** Signs a checkpoint as a signed note. The signer's name SHOULD equal the origin. */
export function signCheckpoint(cp: Checkpoint, signer: NoteSigner): string {
  return signNote(formatCheckpoint(cp), signer);
}

/**
 * Verifies a signed checkpoint with the log's key and returns it. Throws NoteError if the
 * log's signature is missing or invalid, CheckpointError if the body is not a valid checkpoint
 * or its origin is not `expectedOrigin`. Other signatures (witnesses, rotated keys) are ignored.
 */
export function verifyCheckpoint(note: string, verifier: NoteVerifier, expectedOrigin?: string): Checkpoint {
  const { text } = verifyNote(note, [verifier]);
  const cp = parseCheckpoint(text);
  if (expectedOrigin !== undefined && cp.origin !== expectedOrigin) {
    throw new CheckpointError(`checkpoint origin ${JSON.stringify(cp.origin)} is not the expected ${JSON.stringify(expectedOrigin)}`);
  }
  return cp;
}
