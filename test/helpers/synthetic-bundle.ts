/**
 * Builds a report bundle (sakshya-report/2, docs/report-bundle.md) from first principles: real
 * Ed25519 keys, real hash chains, a real RFC 9162 tree over every record of a small "ledger", a
 * real signed checkpoint and a real JWS manifest. It exists for the verifier's edge cases that a
 * healthy collector cannot produce on demand (a `not-in-ledger` gap, a rotation with a wrong
 * record, a chain the manifest forgets) and for re-signing a tampered bundle as a dishonest
 * operator who holds the collector's keys would. Bundles from the real exporter are tested in
 * test/integration/verifier/ too.
 */
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { CompactSign } from 'jose';
import { canonicalJson } from '../../shared/canonical-json.ts';
import { signCheckpoint } from '../../shared/checkpoint.ts';
import { fromBase64Url, generateSigningKey, sha256, toBase64Url, type SigningKey } from '../../shared/crypto.ts';
import { newId } from '../../shared/ids.ts';
import { appendLeaves, inclusionProofFromSubtrees, leafHash, rootFromSubtrees } from '../../shared/merkle.ts';
import { GENESIS_PREV, recordHash, signRecord, type RecordKind, type SignedRecord } from '../../shared/record.ts';
import { noteSignerFromSigningKey, verifierKeyString } from '../../shared/signed-note.ts';
import {
  BUNDLE_FILES,
  BUNDLE_FORMAT,
  MANIFEST_JWS_TYP,
  MANIFEST_LISTED_FILES,
  type GapReason,
  type KeysFile,
  type Manifest,
  type ReportFilter,
} from '../../shared/report/bundle-format.ts';

export const SYNTHETIC_ORIGIN = 'synthetic.sakshya.test/collector';

export interface CollectorIdentity {
  origin: string;
  log: SigningKey;
  report: SigningKey;
}

export function newCollectorIdentity(origin = SYNTHETIC_ORIGIN): CollectorIdentity {
  return { origin, log: generateSigningKey().key, report: generateSigningKey().key };
}

/** What GET /api/v1/keys answers for this identity: the file an auditor pins. */
export function publishedKeys(identity: CollectorIdentity): { origin: string; logKey: string; jwks: { keys: object[] } } {
  return {
    origin: identity.origin,
    logKey: verifierKeyString(identity.origin, fromBase64Url(identity.log.publicJwk.x)),
    jwks: { keys: [{ ...identity.report.publicJwk, kid: identity.report.kid, alg: 'EdDSA', use: 'sig' }] },
  };
}

export interface ChainSpec {
  agent: string;
  epoch?: number;
  /** Records 1..count in the ledger. */
  count: number;
  /** Seqs in the ledger but left out of the bundle, with the reason the manifest gives. */
  omit?: { from: number; to: number; reason: GapReason }[];
  /** The agent rotates its key: a key.rotated record at this seq, the new key from seq + 1. */
  rotateAt?: number;
  /** A telemetry.dropped record at this seq. */
  droppedAt?: number;
  revokedAt?: string;
  /** Ledger index of the revocation record (default: the last leaf of the tree, when revokedAt is set). */
  revokedIndex?: number;
  supersededBy?: number;
}

export interface SyntheticBundle {
  dir: string;
  identity: CollectorIdentity;
  /** The records of the bundle, in file order. */
  records: SignedRecord[];
  manifest: Manifest;
}

const DAY = '2026-11-22';
const at = (i: number): string => new Date(Date.parse(`${DAY}T04:00:00.000Z`) + i * 10).toISOString();
export const SYNTHETIC_FILTER: ReportFilter = { from: `${DAY}T00:00:00.000Z`, to: '2026-11-23T00:00:00.000Z', agent: null, kind: null, type: null };

interface BuiltChain {
  spec: ChainSpec;
  records: SignedRecord[];
  keys: KeysFile['agents'][number]['keys'];
}

function buildChain(spec: ChainSpec, clock: { i: number }): BuiltChain {
  const epoch = spec.epoch ?? 1;
  let key = generateSigningKey().key;
  const keys: BuiltChain['keys'] = [{ fromSeq: 1, kid: key.kid, publicJwk: key.publicJwk, addedAt: at(0), reason: 'enrolled' }];
  const records: SignedRecord[] = [];
  let prev = GENESIS_PREV;
  for (let seq = 1; seq <= spec.count; seq++) {
    let kind: RecordKind = 'audit';
    let type = 'certificate.issued';
    let body: { [key: string]: unknown } = { n: seq, user: `clerk-${seq % 3}` };
    let next: SigningKey | undefined;
    if (seq === spec.rotateAt) {
      next = generateSigningKey().key;
      kind = 'agent';
      type = 'key.rotated';
      body = { newKey: next.publicJwk, newKid: next.kid };
    } else if (seq === spec.droppedAt) {
      kind = 'agent';
      type = 'telemetry.dropped';
      body = { dropped: 1204, firstAt: at(clock.i - 5), lastAt: at(clock.i), reason: 'buffer cap', byType: { 'system.load': 1204 } };
    }
    const record = signRecord(
      { v: 1, id: newId(), agent: spec.agent, epoch, seq, prev, kind, type, at: at(clock.i++), body, kid: key.kid },
      key.privateKey,
    );
    records.push(record);
    prev = recordHash(record);
    if (next) {
      key = next;
      keys.push({ fromSeq: seq + 1, kid: key.kid, publicJwk: key.publicJwk, addedAt: at(clock.i), reason: 'rotated' });
    }
  }
  return { spec, records, keys };
}

function writeLines(path: string, lines: (() => string)[]): void {
  const fd = openSync(path, 'w');
  try {
    for (let i = 0; i < lines.length; i += 1000) writeSync(fd, lines.slice(i, i + 1000).map((line) => line() + '\n').join(''));
  } finally {
    closeSync(fd);
  }
}

function digest(path: string): { sha256: string; bytes: number } {
  const bytes = readFileSync(path);
  return { sha256: sha256(bytes).toString('hex'), bytes: bytes.length };
}

/** Writes a bundle of `chains` into `dir` (created). Records are interleaved across chains in the ledger. */
export async function buildSyntheticBundle(dir: string, chains: ChainSpec[], identity = newCollectorIdentity()): Promise<SyntheticBundle> {
  mkdirSync(dir, { recursive: true });
  const clock = { i: 0 };
  const built = chains.map((spec) => buildChain(spec, clock));
  // Ledger order: round robin over the chains (each chain stays in seq order).
  const ledger: SignedRecord[] = [];
  for (let i = 0; built.some((chain) => i < chain.records.length); i++) for (const chain of built) if (i < chain.records.length) ledger.push(chain.records[i]!);
  const leaves = ledger.map((record) => leafHash(Buffer.from(canonicalJson(record))));
  const size = ledger.length;
  // Complete subtrees, as the collector stores them: O(log n) per proof, so large bundles build fast.
  const nodes = new Map<string, Buffer>();
  for (const node of appendLeaves(0, leaves, (level, index) => nodes.get(`${level}/${index}`)!)) nodes.set(`${node.level}/${node.index}`, node.hash);
  const read = (level: number, index: number): Buffer => nodes.get(`${level}/${index}`)!;
  const root = rootFromSubtrees(size, read);

  const omitted = (record: SignedRecord): boolean => {
    const spec = chains.find((chain) => chain.agent === record.agent && (chain.epoch ?? 1) === record.epoch)!;
    return (spec.omit ?? []).some((range) => record.seq >= range.from && record.seq <= range.to);
  };
  const included: { record: SignedRecord; index: number }[] = [];
  ledger.forEach((record, index) => {
    if (!omitted(record)) included.push({ record, index });
  });

  // Line by line: a million records would not fit in one string.
  writeLines(join(dir, BUNDLE_FILES.records), included.map(({ record }) => () => canonicalJson(record)));
  writeLines(
    join(dir, BUNDLE_FILES.proofs),
    included.map(({ record, index }) => () => canonicalJson({ id: record.id, ledgerIndex: index, leafHash: toBase64Url(leaves[index]!), path: inclusionProofFromSubtrees(index, size, read).map(toBase64Url) })),
  );
  writeFileSync(join(dir, BUNDLE_FILES.checkpoint), signCheckpoint({ origin: identity.origin, size, rootHash: root, extensions: [] }, noteSignerFromSigningKey(identity.origin, identity.log)));
  const revocation = (spec: ChainSpec) => ({
    revokedAt: spec.revokedAt ?? null,
    revokedIndex: spec.revokedAt === undefined ? null : (spec.revokedIndex ?? size - 1),
    supersededBy: spec.supersededBy ?? null,
  });
  const published = publishedKeys(identity);
  const sorted = [...built].sort((a, b) => (a.spec.agent < b.spec.agent ? -1 : a.spec.agent > b.spec.agent ? 1 : (a.spec.epoch ?? 1) - (b.spec.epoch ?? 1)));
  const keys: KeysFile = {
    collector: { origin: identity.origin, logKey: published.logKey, reportKey: published.jwks.keys[0] as KeysFile['collector']['reportKey'] },
    agents: sorted.map((chain) => ({ agent: chain.spec.agent, epoch: chain.spec.epoch ?? 1, enrolledAt: at(0), ...revocation(chain.spec), keys: chain.keys })),
  };
  writeFileSync(join(dir, BUNDLE_FILES.keys), canonicalJson(keys));
  writeLines(join(dir, BUNDLE_FILES.csv), [() => '\uFEFFledger_index,id\r', ...included.map(({ record, index }) => () => `${index},${record.id}\r`)]);
  writeFileSync(join(dir, BUNDLE_FILES.summary), '<!doctype html><title>summary</title><p>synthetic</p>\n');

  const byKind = { audit: 0, telemetry: 0, agent: 0 };
  for (const { record } of included) byKind[record.kind]++;
  const manifestChains = sorted.map((chain) => {
    const mine = included.filter(({ record }) => record.agent === chain.spec.agent && record.epoch === (chain.spec.epoch ?? 1)).map(({ record }) => record);
    const firstSeq = mine[0]!.seq;
    const lastSeq = mine.at(-1)!.seq;
    return {
      agent: chain.spec.agent,
      epoch: chain.spec.epoch ?? 1,
      firstSeq,
      lastSeq,
      records: mine.length,
      gaps: (chain.spec.omit ?? []).filter((gap) => gap.from > firstSeq && gap.to < lastSeq),
      dropped: mine
        .filter((record) => record.type === 'telemetry.dropped')
        .map((record) => ({ seq: record.seq, id: record.id, dropped: record.body.dropped as number, firstAt: record.body.firstAt as string, lastAt: record.body.lastAt as string })),
      ...revocation(chain.spec),
    };
  });
  const files = Object.fromEntries(MANIFEST_LISTED_FILES.map((name) => [name, digest(join(dir, name))])) as Manifest['files'];
  const manifest: Manifest = {
    format: BUNDLE_FORMAT,
    generator: { name: 'sakshya', version: '0.0.0-test' },
    origin: identity.origin,
    filter: SYNTHETIC_FILTER,
    checkpoint: { size, root: toBase64Url(root) },
    counts: { records: included.length, byKind, chains: manifestChains.length },
    files,
    chains: manifestChains,
  };
  await writeManifest(dir, manifest, identity.report);
  return { dir, identity, records: included.map(({ record }) => record), manifest };
}

/** Writes manifest.json (JCS) and manifest.jws signed with `key`, as the exporter does. */
export async function writeManifest(dir: string, manifest: Manifest, key: SigningKey): Promise<void> {
  const bytes = Buffer.from(canonicalJson(manifest));
  writeFileSync(join(dir, BUNDLE_FILES.manifest), bytes);
  const jws = await new CompactSign(bytes).setProtectedHeader({ alg: 'EdDSA', kid: key.kid, typ: MANIFEST_JWS_TYP }).sign(key.privateKey);
  writeFileSync(join(dir, BUNDLE_FILES.manifestJws), jws);
}

/**
 * Re-hashes every listed file into the manifest and re-signs it with `key`: what a dishonest
 * operator holding the collector's report key does after editing a bundle. `edit` may change the
 * manifest first.
 */
export async function resignBundle(dir: string, key: SigningKey, edit: (manifest: Manifest) => void = () => {}): Promise<Manifest> {
  const manifest = JSON.parse(readFileSync(join(dir, BUNDLE_FILES.manifest), 'utf8')) as Manifest;
  for (const name of MANIFEST_LISTED_FILES) manifest.files[name] = digest(join(dir, name));
  edit(manifest);
  await writeManifest(dir, manifest, key);
  return manifest;
}
