/**
 * sakshya-verify against bundles built from first principles (test/helpers/synthetic-bundle.ts):
 * the cases a healthy collector cannot be made to produce (a `not-in-ledger` gap, a key rotation
 * in the range, a dishonest operator re-signing a reordered bundle or a forged checkpoint with
 * the real key), unsafe archives, and the CLI's exit codes. The tampering list of the bundle format runs
 * against real exported bundles in exported-bundle.test.ts, hostile input (terminal escapes,
 * FIFOs, symlinks, size caps) in hostile-input.test.ts. Every CLI case runs the real bin.
 */
import assert from 'node:assert/strict';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { pack as tarPack } from 'tar-stream';
import { ALL_BUNDLE_FILES, BUNDLE_FILES } from '../../../shared/report/bundle-format.ts';
import { buildSyntheticBundle, publishedKeys, resignBundle, type SyntheticBundle } from '../../helpers/synthetic-bundle.ts';
import { copyBundle, runVerifyCli } from '../../helpers/verifier-process.ts';
import { parsePinnedCollectorKey } from '../../../verifier/collector-key.ts';
import { verifyBundle, type BundleVerification } from '../../../verifier/verify-bundle.ts';

const A = 'AS-KMR-001';
const B = 'AS-KMR-002';

describe('sakshya-verify on synthetic bundles', function () {
  this.timeout(120_000);
  let base: SyntheticBundle;
  let keyFile: string;
  let work: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'sakshya-verify-test-'));
    base = await buildSyntheticBundle(join(work, 'bundle'), [
      { agent: A, count: 60, rotateAt: 20, droppedAt: 30 },
      { agent: B, count: 40, omit: [{ from: 11, to: 13, reason: 'not-in-ledger' }, { from: 20, to: 20, reason: 'outside-date-range' }], revokedAt: '2026-11-22T06:00:00.000Z' },
    ]);
    keyFile = join(work, 'collector-keys.json');
    writeFileSync(keyFile, JSON.stringify(publishedKeys(base.identity)));
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  async function verifyJson(dir: string, pin = true): Promise<{ code: number | null; result: BundleVerification }> {
    const run = await runVerifyCli([dir, ...(pin ? ['--collector-key', keyFile] : []), '--json']);
    return { code: run.code, result: JSON.parse(run.stdout) as BundleVerification };
  }

  function checks(result: BundleVerification): string[] {
    return result.problems.map((problem) => `${problem.file}:${problem.check}`);
  }

  function lines(dir: string, file: string): string[] {
    return readFileSync(join(dir, file), 'utf8').split('\n').slice(0, -1);
  }

  function writeLines(dir: string, file: string, content: string[]): void {
    writeFileSync(join(dir, file), content.map((line) => line + '\n').join(''));
  }

  it('verifies an intact bundle with the pinned key and prints the verdict per chain', async () => {
    const run = await runVerifyCli([base.dir, '--collector-key', keyFile]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const out = run.stdout.split('\n');
    const logKeyId = publishedKeys(base.identity).logKey.split('+').slice(0, 2).join('+');
    assert.equal(out[0], `Manifest checked with the PINNED collector report key ${base.identity.report.kid} (from ${keyFile}); checkpoint with the pinned log key ${logKeyId}.`);
    assert.ok(out.includes(`${A} epoch 1: seq 1–60 complete, 60 records verified`), run.stdout);
    // A declared gap verifies and the verdict shows it with its reason.
    assert.ok(out.includes(`${B} epoch 1: seq 1–40, 2 gaps (seq 11–13 not in ledger; seq 20 outside the date range), 36 records verified`), run.stdout);
    assert.ok(out.some((line) => line.startsWith(`  ${A} epoch 1: 1,204 telemetry records dropped by the agent between `) && line.includes('(telemetry.dropped record seq 30)')), run.stdout);
    assert.ok(out.includes(`  ${B} epoch 1: revoked at 2026-11-22T06:00:00.000Z, ledger index 99; no record of this epoch is after it`), run.stdout);
    assert.match(run.stdout, /^VERIFIED: 96 records in 2 chains; .* against checkpoint size 100\.$/m);
    assert.doesNotMatch(run.stdout, /WARNING/);
  });

  it('a bundle verified without a collector key exits 3, not VERIFIED', async () => {
    const run = await runVerifyCli([base.dir]);
    assert.equal(run.code, 3, run.stdout + run.stderr);
    assert.match(run.stdout.split('\n')[0]!, /^Manifest checked with the report key INSIDE THE BUNDLE \(keys\.json, .*\): no collector key was pinned\.$/);
    assert.match(run.stdout, /!! WARNING: NO COLLECTOR KEY WAS PINNED/);
    assert.match(run.stdout, /^CONSISTENT, NOT AUTHENTICATED: 96 records in 2 chains; .* but only against the keys inside the bundle, which anyone can make\. This is NOT a verification: /m);
    assert.doesNotMatch(run.stdout, /^VERIFIED/m);
    assert.match(run.stdout, /REMEMBER: no collector key was pinned/);
    const json = await verifyJson(base.dir, false);
    assert.equal(json.code, 3);
    assert.deepEqual([json.result.verdict, json.result.ok, json.result.problemCount, json.result.key.pinned], ['CONSISTENT_NOT_AUTHENTICATED', false, 0, false]);
  });

  it('--json gives the structured result', async () => {
    const { code, result } = await verifyJson(base.dir);
    assert.equal(code, 0);
    assert.equal(result.verdict, 'VERIFIED');
    assert.equal(result.ok, true);
    assert.deepEqual(result.key, { pinned: true, source: keyFile, kid: base.identity.report.kid, logKeyPinned: true, logKeyId: publishedKeys(base.identity).logKey.split('+').slice(0, 2).join('+') });
    assert.deepEqual(result.records, { total: 96, verified: 96, failed: 0, byKind: { audit: 94, agent: 2 } });
    assert.equal(result.problemCount, 0);
    assert.deepEqual(result.problems, []);
    assert.equal(result.manifest?.checkpoint.size, 100);
    assert.deepEqual(
      result.chains.map((chain) => [chain.agent, chain.firstSeq, chain.lastSeq, chain.records, chain.verified, chain.complete, chain.gaps.length, chain.dropped.length, chain.revokedAt]),
      [
        [A, 1, 60, 60, 60, true, 0, 1, null],
        [B, 1, 40, 36, 36, false, 2, 0, '2026-11-22T06:00:00.000Z'],
      ],
    );
    assert.deepEqual(result.chains[0]!.dropped[0]!.dropped, 1204);
  });

  it('two records reordered (with their proofs) fail on ledger order, even re-signed', async () => {
    const dir = copyBundle(base.dir);
    for (const file of [BUNDLE_FILES.records, BUNDLE_FILES.proofs]) {
      const content = lines(dir, file);
      [content[10], content[12]] = [content[12]!, content[10]!];
      writeLines(dir, file, content);
    }
    await resignBundle(dir, base.identity.report);
    const { code, result } = await verifyJson(dir);
    assert.equal(code, 1);
    assert.ok(checks(result).includes('proofs.jsonl:records.ledger_order'), JSON.stringify(result.problems, null, 1));
    const order = result.problems.find((problem) => problem.check === 'records.ledger_order')!;
    assert.equal(order.line, 12);
    assert.ok(checks(result).includes('records.jsonl:chain.seq_order'));
  });

  it("a record of another agent of the same bundle under the first agent's name fails its signature", async () => {
    const dir = copyBundle(base.dir);
    const content = lines(dir, BUNDLE_FILES.records);
    const index = content.findIndex((line) => line.includes(`"agent":"${B}"`) && line.includes('"seq":5,'));
    content[index] = content[index]!.replace(`"agent":"${B}"`, `"agent":"${A}"`);
    writeLines(dir, BUNDLE_FILES.records, content);
    await resignBundle(dir, base.identity.report);
    const { code, result } = await verifyJson(dir);
    assert.equal(code, 1);
    const problems = checks(result);
    assert.ok(problems.includes('records.jsonl:record.kid_mismatch'), problems.join('\n'));
    assert.ok(problems.includes('records.jsonl:record.bad_signature'));
  });

  it('an edited checkpoint fails its signature, even re-signed into the manifest', async () => {
    const dir = copyBundle(base.dir);
    const note = readFileSync(join(dir, BUNDLE_FILES.checkpoint), 'utf8');
    writeFileSync(join(dir, BUNDLE_FILES.checkpoint), note.replace(/^(.*\n)100\n/, '$199\n'));
    const plain = await verifyJson(dir);
    assert.equal(plain.code, 1);
    assert.ok(checks(plain.result).includes('checkpoint:file.sha256_mismatch'));
    assert.ok(checks(plain.result).includes('checkpoint:checkpoint.invalid'));
    await resignBundle(dir, base.identity.report);
    const resigned = await verifyJson(dir);
    assert.deepEqual(checks(resigned.result), ['checkpoint:checkpoint.invalid']);
  });

  it("keys.json moving a rotation to another seq fails: the records' kids and the key.rotated record disagree", async () => {
    const dir = copyBundle(base.dir);
    const keys = JSON.parse(readFileSync(join(dir, BUNDLE_FILES.keys), 'utf8')) as { agents: { agent: string; keys: { fromSeq: number }[] }[] };
    keys.agents.find((entry) => entry.agent === A)!.keys[1]!.fromSeq = 25;
    writeFileSync(join(dir, BUNDLE_FILES.keys), JSON.stringify(keys));
    await resignBundle(dir, base.identity.report);
    const { code, result } = await verifyJson(dir);
    assert.equal(code, 1);
    const problems = result.problems.map((problem) => [problem.check, problem.seq]);
    assert.deepEqual(problems.filter(([check]) => check === 'chain.rotation_mismatch'), [['chain.rotation_mismatch', 24]]);
    assert.deepEqual(problems.filter(([check]) => check === 'record.kid_mismatch').map(([, seq]) => seq), [21, 22, 23, 24]);
  });

  it('an unlisted extra file is reported', async () => {
    const dir = copyBundle(base.dir);
    writeFileSync(join(dir, 'records-corrected.csv'), 'x\r\n');
    const { code, result } = await verifyJson(dir);
    assert.equal(code, 1);
    assert.deepEqual(checks(result), ['records-corrected.csv:file.unlisted']);
  });

  it('a missing file fails and names it', async () => {
    const dir = copyBundle(base.dir);
    rmSync(join(dir, BUNDLE_FILES.proofs));
    const { code, result } = await verifyJson(dir);
    assert.equal(code, 1);
    assert.ok(checks(result).includes('proofs.jsonl:file.missing'));
    assert.equal(result.recordsChecked, false);
  });

  it('verifies the same bundle as a .tar.gz (files under one directory), and refuses unsafe archives', async () => {
    const writeArchive = async (path: string, members: { name: string; body?: Buffer; type?: 'file' | 'symlink'; linkname?: string }[]): Promise<void> => {
      const pack = tarPack();
      const done = pipeline(pack, createGzip(), createWriteStream(path));
      for (const member of members) {
        if (member.type === 'symlink') pack.entry({ name: member.name, type: 'symlink', linkname: member.linkname! });
        else pack.entry({ name: member.name, mode: 0o644, mtime: new Date(0) }, member.body!);
      }
      pack.finalize();
      await done;
    };
    const files = ALL_BUNDLE_FILES.map((name) => ({ name: `sakshya-report/${name}`, body: readFileSync(join(base.dir, name)) }));
    const good = join(work, 'bundle.tar.gz');
    await writeArchive(good, files);
    const run = await runVerifyCli([good, '--collector-key', keyFile]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /^VERIFIED: 96 records in 2 chains/m);

    // Refused archives are unusable input: exit 2, nothing verified, the named problem on stderr.
    const traversal = join(work, 'traversal.tar.gz');
    await writeArchive(traversal, [...files, { name: '../escaped', body: Buffer.from('x') }]);
    const refused = await runVerifyCli([traversal, '--collector-key', keyFile, '--json']);
    assert.equal(refused.code, 2);
    assert.equal(refused.stdout, '');
    assert.match(refused.stderr, /^sakshya-verify: nothing was verified: .*traversal\.tar\.gz: archive\.refused: .*leaves or walks its directory\n$/);

    const link = join(work, 'link.tar.gz');
    await writeArchive(link, [{ name: 'sakshya-report/records.jsonl', type: 'symlink', linkname: '/etc/passwd' }, ...files.slice(1)]);
    const linked = await runVerifyCli([link, '--collector-key', keyFile]);
    assert.equal(linked.code, 2);
    assert.match(linked.stderr, /archive\.refused: .*is a symlink, not a regular file/);
  });

  it('in-process verifyBundle gives the same verdict inline (threads 0) as with workers', async () => {
    const collectorKey = parsePinnedCollectorKey(publishedKeys(base.identity), 'published keys');
    const inline = await verifyBundle(base.dir, { threads: 0, collectorKey });
    const pooled = await verifyBundle(base.dir, { threads: 2, collectorKey });
    assert.equal(inline.verdict, 'VERIFIED');
    assert.deepEqual(inline, pooled);
  });

  describe('exit code 2 for input errors, with one line on stderr', () => {
    it('no such bundle', async () => {
      const run = await runVerifyCli([join(work, 'nope')]);
      assert.equal(run.code, 2);
      assert.match(run.stderr, /^sakshya-verify: nothing was verified: .*nope: input\.unreadable: cannot read .*nope: ENOENT\n$/);
      assert.equal(run.stdout, '');
    });
    it('a key file that is not a key', async () => {
      const bad = join(work, 'bad-key.json');
      writeFileSync(bad, '{"hello":1}');
      const run = await runVerifyCli([base.dir, '--collector-key', bad]);
      assert.equal(run.code, 2);
      assert.match(run.stderr, /is not a collector key file/);
    });
    it('a bundle file that cannot be read', async () => {
      // A directory where keys.json should be: unreadable as a file even for root (tests may run as root).
      const dir = copyBundle(base.dir);
      rmSync(join(dir, BUNDLE_FILES.keys));
      mkdirSync(join(dir, BUNDLE_FILES.keys));
      const run = await runVerifyCli([dir]);
      assert.equal(run.code, 2);
      assert.match(run.stderr, /^sakshya-verify: nothing was verified: keys\.json: file\.not_regular: .*keys\.json is a directory, not a regular file: a bundle holds only regular files\n$/);
    });
    it('bad usage', async () => {
      const run = await runVerifyCli([]);
      assert.equal(run.code, 2);
      assert.match(run.stderr, /missing required argument/);
    });
  });
});
