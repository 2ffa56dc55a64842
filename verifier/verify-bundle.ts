/**
 * `verifyBundle(path, options)`: checks a report bundle (format `sakshya-report/2`, see
 * docs/report-bundle.md) offline and returns a structured verdict. It is what `sakshya-verify`
 * prints, and what the demo and the benchmark call.
 *
 *   const result = await verifyBundle('/media/usb/report', { collectorKey: loadPinnedCollectorKey('collector-keys.json') });
 *   result.verdict     // 'VERIFIED' | 'CONSISTENT_NOT_AUTHENTICATED' | 'FAILED'
 *   result.ok          // true only if VERIFIED: every check passed against a pinned collector key
 *   result.key         // which key the manifest was checked with (pinned, or the bundle's own)
 *   result.chains      // per (agent, epoch): seq range, gaps, dropped telemetry, revocation, counts
 *   result.problems    // the first `maxListedProblems` problems, each naming file, line / record, expected vs found
 *
 * `path` is a bundle directory or a `.tar.gz` of one (extracted to a temporary directory, which
 * is removed afterwards; see tarball.ts). Options:
 * - `collectorKey`: the collector key pinned out of band (collector-key.ts). Without it the
 *   manifest is checked with the key the bundle itself carries, and `warnings` says that this
 *   proves nothing about who made the bundle: the best verdict is then
 *   `CONSISTENT_NOT_AUTHENTICATED`, never `VERIFIED`.
 * - `limits`: size caps on what is read (bundle-file.ts `DEFAULT_INPUT_LIMITS`).
 * - `threads`: worker threads for the per-record checks (default: one per core; 0 = inline).
 * - `maxListedProblems`: how many problems to list (all are counted; default 1000).
 *
 * Checks, in order (each stage reports and the next still runs where it can):
 * 1. manifest.jws over manifest.json's bytes; manifest.json is canonical `sakshya-report/2`;
 * 2. every listed file's sha256 and length, missing and unlisted files;
 * 3. the checkpoint's signed note (log key), origin, and size/root against the manifest;
 * 4. every record and proof line (record-check.ts, on every core);
 * 5. chains and completeness (chain-tracker.ts), and the manifest's counts.
 *
 * Throws BundleInputError (exit code 2 in the CLI, one named problem: problems.ts) when the input
 * cannot be used at all: no such path, not a directory or archive, a file that exists but cannot
 * be read, a bundle file that is not a regular file (symlink, FIFO, device), a metadata file or
 * an archive over its cap, an unsafe or unreadable archive. Anything wrong with the content of
 * a usable bundle is a problem in the result, never an exception.
 */
import { createHash, type KeyObject } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { compactVerify, decodeProtectedHeader } from 'jose';
import { canonicalBytes } from '../shared/canonical-json.ts';
import { verifyCheckpoint, type Checkpoint } from '../shared/checkpoint.ts';
import { toBase64Url } from '../shared/crypto.ts';
import { describeZodError } from '../shared/protocol.ts';
import { parseVerifierKey, type NoteVerifier } from '../shared/signed-note.ts';
import {
  ALL_BUNDLE_FILES,
  BUNDLE_FILES,
  BUNDLE_FORMAT,
  keysFileSchema,
  MANIFEST_JWS_TYP,
  MANIFEST_LISTED_FILES,
  manifestSchema,
  type KeysFile,
  type Manifest,
  type ReportFilter,
} from '../shared/report/bundle-format.ts';
import { DEFAULT_INPUT_LIMITS, metadataCap, openRegularFile, readCappedFile, type InputLimits } from './bundle-file.ts';
import { ChainTracker, type ChainVerdict } from './chain-tracker.ts';
import { reportKeyFromJwk, type PinnedCollectorKey, type ReportKey } from './collector-key.ts';
import { BundleInputError, ProblemList, DEFAULT_MAX_LISTED_PROBLEMS, type BundleProblem } from './problems.ts';
import type { KeyPeriodData, RecordCheckContext } from './record-check.ts';
import { defaultThreads, RecordPool } from './record-pool.ts';
import { checkRecordFiles } from './records-check.ts';
import { extractBundleArchive, isArchivePath } from './tarball.ts';

export { BundleInputError };

export interface VerifyBundleOptions {
  collectorKey?: PinnedCollectorKey;
  threads?: number;
  maxListedProblems?: number;
  limits?: Partial<InputLimits>;
}

/**
 * VERIFIED: every check passed against a pinned collector key (exit 0). FAILED: a check failed
 * (exit 1). CONSISTENT_NOT_AUTHENTICATED: every check passed, but against the keys the bundle
 * carries itself, which anyone can make (exit 3).
 */
export type Verdict = 'VERIFIED' | 'FAILED' | 'CONSISTENT_NOT_AUTHENTICATED';

export interface BundleVerification {
  verdict: Verdict;
  /** True only if the verdict is VERIFIED. */
  ok: boolean;
  /** The path given (directory or archive). */
  bundle: string;
  /** The key the manifest signature was checked with. */
  key: {
    pinned: boolean;
    /** The pinned key file, or `keys.json` for the bundle's own key. */
    source: string;
    /** kid (RFC 7638 thumbprint) of the report key used; null if there was none to use. */
    kid: string | null;
    /** Whether the checkpoint was checked with a pinned log key (else keys.json's). */
    logKeyPinned: boolean;
    /** `<name>+<key ID hex>` of the log key the checkpoint was checked with, to compare with a published fingerprint. */
    logKeyId: string | null;
  };
  /** Facts the auditor must read that are not failures (an unpinned key). */
  warnings: string[];
  manifest: {
    format: string;
    origin: string;
    generator: { name: string; version: string };
    filter: ReportFilter;
    checkpoint: { size: number; root: string };
  } | null;
  /** False when the bundle was too broken to check its records at all (the problems say why). */
  recordsChecked: boolean;
  records: { total: number; verified: number; failed: number; byKind: { [kind: string]: number } };
  chains: ChainVerdict[];
  problemCount: number;
  problems: BundleProblem[];
  problemsTruncated: boolean;
}

function ioError(path: string, err: unknown): BundleInputError {
  return new BundleInputError('input.unreadable', path, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
}

/** A metadata file, up to its cap; undefined if it does not exist (a problem), throws if it cannot be used. */
function readBundleFile(dir: string, name: string, limits: InputLimits): Buffer | undefined {
  return readCappedFile(join(dir, name), metadataCap(name, limits.maxMetadataBytes)!);
}

/** sha256 and length of a regular file; undefined if it does not exist. */
async function digestFile(path: string): Promise<{ sha256: string; bytes: number } | undefined> {
  const handle = await openRegularFile(path);
  if (!handle) return undefined;
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    for await (const chunk of handle.createReadStream() as AsyncIterable<Buffer>) {
      hash.update(chunk);
      bytes += chunk.length;
    }
  } catch (err) {
    throw ioError(path, err);
  } finally {
    await handle.close();
  }
  return { sha256: hash.digest('hex'), bytes };
}

function parseJsonFile(bytes: Buffer, file: string, problems: ProblemList): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    problems.add({ check: 'file.unreadable_json', file, message: `not JSON: ${(err as Error).message}` });
    return undefined;
  }
}

function checkCanonical(value: unknown, bytes: Buffer, file: string, problems: ProblemList): void {
  let canonical: Buffer | undefined;
  try {
    canonical = canonicalBytes(value);
  } catch {
    canonical = undefined;
  }
  if (!canonical?.equals(bytes)) problems.add({ check: 'file.not_canonical', file, message: 'the file is not RFC 8785 (JCS) canonical JSON' });
}

function missing(file: string, problems: ProblemList, why = 'the bundle has no such file'): void {
  problems.add({ check: 'file.missing', file, message: why });
}

export async function verifyBundle(path: string, options: VerifyBundleOptions = {}): Promise<BundleVerification> {
  let stat;
  try {
    stat = statSync(path);
  } catch (err) {
    throw ioError(path, err);
  }
  const limits: InputLimits = { ...DEFAULT_INPUT_LIMITS, ...options.limits };
  const problems = new ProblemList(options.maxListedProblems ?? DEFAULT_MAX_LISTED_PROBLEMS);
  if (stat.isFile() && isArchivePath(path)) {
    const extracted = await extractBundleArchive(path, limits);
    try {
      const result = await verifyDirectory(extracted.dir, options, limits, problems);
      return { ...result, bundle: path };
    } finally {
      extracted.cleanup();
    }
  }
  if (!stat.isDirectory()) throw new BundleInputError('input.not_a_bundle', path, `${path} is neither a bundle directory nor a .tar.gz bundle`);
  return verifyDirectory(path, options, limits, problems);
}

export const NO_PIN_WARNING =
  'NO COLLECTOR KEY WAS PINNED: the manifest was checked with the key inside the bundle itself. ' +
  'Anyone can make a bundle that passes that way, so this proves the bundle is consistent, NOT that the collector made it. ' +
  'Get the collector\'s keys out of band and run again with --collector-key.';

async function verifyDirectory(dir: string, options: VerifyBundleOptions, limits: InputLimits, problems: ProblemList): Promise<BundleVerification> {
  const pin = options.collectorKey;
  const warnings: string[] = pin ? [] : [NO_PIN_WARNING];

  // keys.json first: without a pin, the manifest is checked with its reportKey.
  const keysBytes = readBundleFile(dir, BUNDLE_FILES.keys, limits);
  let keys: KeysFile | undefined;
  if (!keysBytes) missing(BUNDLE_FILES.keys, problems);
  else {
    const value = parseJsonFile(keysBytes, BUNDLE_FILES.keys, problems);
    if (value !== undefined) {
      const parsed = keysFileSchema.safeParse(value);
      if (parsed.success) keys = parsed.data;
      else problems.add({ check: 'keys.invalid', file: BUNDLE_FILES.keys, message: `not a valid keys.json: ${describeZodError(parsed.error)}` });
      checkCanonical(value, keysBytes, BUNDLE_FILES.keys, problems);
    }
  }

  // 1. The manifest and its signature.
  let reportKeys: ReportKey[] = [];
  if (pin) reportKeys = pin.reportKeys;
  else if (keys) {
    try {
      reportKeys = [reportKeyFromJwk(keys.collector.reportKey)];
    } catch (err) {
      problems.add({ check: 'keys.bad_report_key', file: BUNDLE_FILES.keys, message: `collector.reportKey is not usable: ${(err as Error).message}` });
    }
  }
  const manifestBytes = readBundleFile(dir, BUNDLE_FILES.manifest, limits);
  const jwsBytes = readBundleFile(dir, BUNDLE_FILES.manifestJws, limits);
  const usedKid = await checkManifestSignature(manifestBytes, jwsBytes, reportKeys, problems);
  let logVerifier: NoteVerifier | null = pin?.logVerifier ?? null;
  if (!logVerifier && keys) {
    try {
      logVerifier = parseVerifierKey(keys.collector.logKey);
    } catch (err) {
      problems.add({ check: 'keys.bad_log_key', file: BUNDLE_FILES.keys, message: `collector.logKey is not a note verifier key: ${(err as Error).message}` });
    }
  }
  const key = {
    pinned: pin !== undefined,
    source: pin?.source ?? BUNDLE_FILES.keys,
    kid: usedKid ?? (reportKeys.length === 1 ? reportKeys[0]!.kid : null),
    logKeyPinned: pin?.logVerifier != null,
    logKeyId: logVerifier ? `${logVerifier.name}+${logVerifier.keyId.toString('hex')}` : null,
  };
  if (pin && keys) crossCheckPinnedKeys(pin, keys, problems);

  let manifest: Manifest | undefined;
  if (manifestBytes) {
    const value = parseJsonFile(manifestBytes, BUNDLE_FILES.manifest, problems);
    if (value !== undefined) {
      const format = (value as { format?: unknown } | null)?.format;
      const parsed = manifestSchema.safeParse(value);
      if (format !== BUNDLE_FORMAT) {
        problems.add({ check: 'manifest.format', file: BUNDLE_FILES.manifest, expected: BUNDLE_FORMAT, found: typeof format === 'string' ? format : null, message: 'not a bundle of a format this verifier knows' });
      } else if (!parsed.success) {
        problems.add({ check: 'manifest.invalid', file: BUNDLE_FILES.manifest, message: `not a valid manifest: ${describeZodError(parsed.error)}` });
      } else manifest = parsed.data;
      checkCanonical(value, manifestBytes, BUNDLE_FILES.manifest, problems);
    }
  }
  if (manifest && pin?.origin != null && pin.origin !== manifest.origin) {
    problems.add({ check: 'manifest.origin_mismatch', file: BUNDLE_FILES.manifest, expected: pin.origin, found: manifest.origin, message: 'the bundle is from another collector than the pinned key file names' });
  }
  if (manifest && keys && keys.collector.origin !== manifest.origin) {
    problems.add({ check: 'keys.origin_mismatch', file: BUNDLE_FILES.keys, expected: manifest.origin, found: keys.collector.origin, message: "keys.json's collector origin is not the manifest's" });
  }

  const summary = manifest
    ? { format: manifest.format, origin: manifest.origin, generator: manifest.generator, filter: manifest.filter, checkpoint: manifest.checkpoint }
    : null;
  const base = { bundle: dir, key, warnings, manifest: summary };
  if (!manifest) {
    // Nothing says what the files should be: report what was found and stop.
    return finish({ ...base, recordsChecked: false, records: { total: 0, verified: 0, failed: 0, byKind: {} }, chains: [] }, problems);
  }

  // 2. File hashes, missing and unlisted files.
  const present = new Set<string>();
  for (const name of MANIFEST_LISTED_FILES) {
    const expected = manifest.files[name];
    const found = await digestFile(join(dir, name));
    if (!found) {
      missing(name, problems, 'the manifest lists this file, but the bundle has no such file');
      continue;
    }
    present.add(name);
    if (found.sha256 !== expected.sha256) {
      problems.add({ check: 'file.sha256_mismatch', file: name, expected: expected.sha256, found: found.sha256, message: 'the file is not the one the manifest was signed over: its content was changed' });
    }
    if (found.bytes !== expected.bytes) {
      problems.add({ check: 'file.size_mismatch', file: name, expected: expected.bytes, found: found.bytes, message: 'the file has another length than the manifest states' });
    }
  }
  if (!jwsBytes) missing(BUNDLE_FILES.manifestJws, problems);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!(ALL_BUNDLE_FILES as readonly string[]).includes(entry.name) || !entry.isFile()) {
      problems.add({ check: 'file.unlisted', file: entry.name, message: 'the bundle holds a file the manifest does not list: it is not covered by the signature, do not rely on it' });
    }
  }

  // 3. The checkpoint.
  const checkpointBytes = readBundleFile(dir, BUNDLE_FILES.checkpoint, limits);
  if (checkpointBytes) checkCheckpoint(checkpointBytes.toString('utf8'), manifest, logVerifier, problems);

  // 4 and 5. Records, proofs, chains.
  if (!keys || !present.has(BUNDLE_FILES.records) || !present.has(BUNDLE_FILES.proofs)) {
    problems.add({
      check: 'records.not_checked',
      file: BUNDLE_FILES.records,
      message: `the records could not be checked: ${!keys ? 'keys.json is missing or invalid' : 'records.jsonl or proofs.jsonl is missing'}`,
    });
    return finish({ ...base, recordsChecked: false, records: { total: 0, verified: 0, failed: 0, byKind: {} }, chains: [] }, problems);
  }
  const context: RecordCheckContext = {
    keys: keyPeriods(keys, problems),
    // Against the signed manifest's checkpoint: check 3 says whether the checkpoint file agrees.
    checkpointSize: manifest.checkpoint.size,
    checkpointRoot: manifest.checkpoint.root,
    filter: manifest.filter,
  };
  const tracker = new ChainTracker(manifest.chains, keys.agents, problems);
  const pool = new RecordPool(context, options.threads ?? defaultThreads());
  let outcome;
  try {
    outcome = await checkRecordFiles(dir, pool, tracker, problems);
  } finally {
    await pool.close();
  }
  const chains = tracker.finish();
  checkCounts(manifest, outcome.lines, outcome.byKind, chains.length, keys, problems);

  return finish(
    {
      ...base,
      recordsChecked: true,
      records: { total: outcome.lines, verified: outcome.verified, failed: outcome.lines - outcome.verified, byKind: outcome.byKind },
      chains,
    },
    problems,
  );
}

function finish(result: Omit<BundleVerification, 'verdict' | 'ok' | 'problemCount' | 'problems' | 'problemsTruncated'>, problems: ProblemList): BundleVerification {
  // Checked only against the bundle's own keys, a bundle proves nothing about who made it.
  const verdict: Verdict = problems.count > 0 ? 'FAILED' : result.key.pinned ? 'VERIFIED' : 'CONSISTENT_NOT_AUTHENTICATED';
  return { verdict, ok: verdict === 'VERIFIED', ...result, problemCount: problems.count, problems: problems.listed, problemsTruncated: problems.truncated };
}

/** Returns the kid of the key that verified the JWS, or the header's kid when none did. */
async function checkManifestSignature(
  manifestBytes: Buffer | undefined,
  jwsBytes: Buffer | undefined,
  reportKeys: readonly ReportKey[],
  problems: ProblemList,
): Promise<string | null> {
  const JWS = BUNDLE_FILES.manifestJws;
  if (!manifestBytes) {
    missing(BUNDLE_FILES.manifest, problems);
    return null;
  }
  if (!jwsBytes) return null; // reported with the other missing files
  const jws = jwsBytes.toString('utf8').trim();
  let header: { alg?: unknown; kid?: unknown; typ?: unknown };
  try {
    header = decodeProtectedHeader(jws);
  } catch (err) {
    problems.add({ check: 'manifest.jws_unreadable', file: JWS, message: `not a compact JWS: ${(err as Error).message}` });
    return null;
  }
  const headerKid = typeof header.kid === 'string' ? header.kid : null;
  if (header.typ !== MANIFEST_JWS_TYP) {
    problems.add({ check: 'manifest.jws_typ', file: JWS, expected: MANIFEST_JWS_TYP, found: typeof header.typ === 'string' ? header.typ : null, message: 'the JWS is not a Sakshya manifest signature' });
  }
  if (reportKeys.length === 0) {
    problems.add({ check: 'manifest.no_key', file: JWS, message: 'there is no collector report key to check the manifest signature with' });
    return null;
  }
  const candidates = reportKeys.filter((key) => key.kid === headerKid);
  if (candidates.length === 0) {
    problems.add({
      check: 'manifest.wrong_key',
      file: JWS,
      expected: reportKeys.map((key) => key.kid).join(' or '),
      found: headerKid,
      message: 'the manifest was signed with a key other than the collector report key it was checked against',
    });
  }
  for (const key of candidates.length > 0 ? candidates : reportKeys) {
    let payload: Uint8Array;
    try {
      payload = (await compactVerify(jws, key.publicKey as KeyObject, { algorithms: ['EdDSA'] })).payload;
    } catch {
      continue;
    }
    if (!Buffer.from(payload).equals(manifestBytes)) {
      problems.add({ check: 'manifest.payload_mismatch', file: BUNDLE_FILES.manifest, message: 'manifest.jws is a valid signature, but over different bytes than manifest.json: the manifest was changed or swapped' });
    }
    return key.kid;
  }
  problems.add({
    check: 'manifest.bad_signature',
    file: JWS,
    expected: `a valid EdDSA signature by ${candidates.length > 0 ? candidates[0]!.kid : reportKeys.map((key) => key.kid).join(' or ')}`,
    found: headerKid === null ? 'no kid' : `signature claiming kid ${headerKid}`,
    message: 'the manifest signature does not verify: manifest.json or manifest.jws was changed, or another key signed it',
  });
  return null;
}

/** A pinned key file that disagrees with the bundle's keys.json means the collector published two identities. */
function crossCheckPinnedKeys(pin: PinnedCollectorKey, keys: KeysFile, problems: ProblemList): void {
  let bundleKid: string | null = null;
  try {
    bundleKid = reportKeyFromJwk(keys.collector.reportKey).kid;
  } catch {
    bundleKid = null;
  }
  if (!pin.reportKeys.some((key) => key.kid === bundleKid)) {
    problems.add({
      check: 'keys.report_key_mismatch',
      file: BUNDLE_FILES.keys,
      expected: pin.reportKeys.map((key) => key.kid).join(' or '),
      found: bundleKid,
      message: "keys.json's collector report key is not the pinned one",
    });
  }
  if (pin.logKey !== null && pin.logKey !== keys.collector.logKey) {
    problems.add({ check: 'keys.log_key_mismatch', file: BUNDLE_FILES.keys, expected: pin.logKey, found: keys.collector.logKey, message: "keys.json's collector log key is not the pinned one" });
  }
}

function checkCheckpoint(note: string, manifest: Manifest, verifier: NoteVerifier | null, problems: ProblemList): void {
  const FILE = BUNDLE_FILES.checkpoint;
  if (!verifier) {
    problems.add({ check: 'checkpoint.no_key', file: FILE, message: 'there is no log key to check the checkpoint signature with' });
    return;
  }
  let checkpoint: Checkpoint;
  try {
    checkpoint = verifyCheckpoint(note, verifier, manifest.origin);
  } catch (err) {
    problems.add({ check: 'checkpoint.invalid', file: FILE, message: `the checkpoint does not verify as the collector's signed checkpoint: ${(err as Error).message}` });
    return;
  }
  if (checkpoint.size !== manifest.checkpoint.size) {
    problems.add({ check: 'checkpoint.size_mismatch', file: FILE, expected: manifest.checkpoint.size, found: checkpoint.size, message: "the checkpoint's tree size is not the manifest's" });
  }
  const root = toBase64Url(checkpoint.rootHash);
  if (root !== manifest.checkpoint.root) {
    problems.add({ check: 'checkpoint.root_mismatch', file: FILE, expected: manifest.checkpoint.root, found: root, message: "the checkpoint's root hash is not the manifest's" });
  }
}

/** keys.json as plain key periods per agent; a kid that is not its key's thumbprint is a problem. */
function keyPeriods(keys: KeysFile, problems: ProblemList): { [agent: string]: KeyPeriodData[] } {
  const periods: { [agent: string]: KeyPeriodData[] } = {};
  for (const entry of keys.agents) {
    for (const key of entry.keys) {
      let thumbprint: string;
      try {
        thumbprint = reportKeyFromJwk(key.publicJwk).kid;
      } catch (err) {
        problems.add({ check: 'keys.bad_agent_key', file: BUNDLE_FILES.keys, agent: entry.agent, epoch: entry.epoch, message: `the key from seq ${key.fromSeq} is not usable: ${(err as Error).message}` });
        continue;
      }
      if (thumbprint !== key.kid) {
        problems.add({ check: 'keys.kid_mismatch', file: BUNDLE_FILES.keys, agent: entry.agent, epoch: entry.epoch, expected: thumbprint, found: key.kid, message: `the kid of the key from seq ${key.fromSeq} is not its RFC 7638 thumbprint` });
      }
      (periods[entry.agent] ??= []).push({ epoch: entry.epoch, fromSeq: key.fromSeq, kid: thumbprint, x: key.publicJwk.x });
    }
  }
  return periods;
}

function checkCounts(manifest: Manifest, lines: number, byKind: { [kind: string]: number }, chains: number, keys: KeysFile, problems: ProblemList): void {
  const FILE = BUNDLE_FILES.manifest;
  if (manifest.counts.records !== lines) {
    problems.add({ check: 'manifest.count_records', file: FILE, expected: lines, found: manifest.counts.records, message: 'counts.records is not the number of lines of records.jsonl' });
  }
  for (const kind of ['audit', 'telemetry', 'agent'] as const) {
    const found = byKind[kind] ?? 0;
    if (manifest.counts.byKind[kind] !== found) {
      problems.add({ check: 'manifest.count_by_kind', file: FILE, expected: found, found: manifest.counts.byKind[kind], message: `counts.byKind.${kind} is not the number of ${kind} records in records.jsonl` });
    }
  }
  if (manifest.counts.chains !== manifest.chains.length || manifest.counts.chains !== chains) {
    problems.add({ check: 'manifest.count_chains', file: FILE, expected: chains, found: manifest.counts.chains, message: 'counts.chains is not the number of chains' });
  }
  // Which chains are missing on either side is reported per chain; here only the order.
  const names = (list: readonly { agent: string; epoch: number }[]): string[] => list.map((c) => `${c.agent}\u0000${c.epoch}`);
  const inKeys = names(keys.agents);
  const inManifest = names(manifest.chains);
  if (inKeys.join('\n') !== inManifest.join('\n') && [...inKeys].sort().join('\n') === [...inManifest].sort().join('\n')) {
    problems.add({ check: 'keys.chain_order', file: BUNDLE_FILES.keys, message: "keys.json's agents are not in the order of the manifest's chains" });
  }
}
