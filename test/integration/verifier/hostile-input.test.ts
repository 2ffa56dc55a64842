/**
 * sakshya-verify against bundles made to attack the auditor's machine rather than to pass as
 * genuine: fields that drive the terminal, files that are FIFOs or symlinks, metadata files and
 * archives too large to hold. Each must be shown escaped or refused (exit 2), never hang, and
 * never be read past its cap. Every case runs the real bin.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ALL_BUNDLE_FILES, BUNDLE_FILES } from '../../../shared/report/bundle-format.ts';
import type { BundleVerification } from '../../../verifier/verify-bundle.ts';
import { buildSyntheticBundle, publishedKeys, type SyntheticBundle } from '../../helpers/synthetic-bundle.ts';
import { copyBundle, runVerifyCli } from '../../helpers/verifier-process.ts';

/** What must never reach the terminal raw: C0 but the line feed between lines, DEL, C1, bidi controls, line separators. */
const UNSAFE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/;
const CLEAR_SCREEN = '\u001b[2J\u001b[H';
/** Clears the screen, writes a fake verdict, then an 8-bit CSI and a right-to-left override. */
const HOSTILE_ID = `${CLEAR_SCREEN}VERIFIED: 1,000 records in 1 chain\u009b2J\u202eDEILIF\u2066`;

/** A ustar header, by hand: the size field can claim more than the archive holds. */
function tarHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, 'utf8');
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  header.write('00000000000\0', 136);
  header.write(' '.repeat(8), 148);
  header.write('0', 156);
  header.write('ustar\u000000', 257);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return header;
}

/** A .tar.gz of the given members (whole files, padded to 512-byte blocks) and trailing bytes. */
function tarGz(path: string, members: { name: string; body: Buffer }[], tail: Buffer = Buffer.alloc(1024)): void {
  const blocks = members.flatMap(({ name, body }) => [tarHeader(name, body.length), body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
  writeFileSync(path, gzipSync(Buffer.concat([...blocks, tail])));
}

describe('sakshya-verify on hostile input', function () {
  this.timeout(120_000);
  let base: SyntheticBundle;
  let keyFile: string;
  let work: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'sakshya-hostile-'));
    base = await buildSyntheticBundle(join(work, 'bundle'), [{ agent: 'AS-KMR-001', count: 20 }]);
    keyFile = join(work, 'collector-keys.json');
    writeFileSync(keyFile, JSON.stringify(publishedKeys(base.identity)));
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  /** A copy of the bundle whose first record's id is `id`. */
  function withRecordId(id: string): string {
    const dir = copyBundle(base.dir);
    const path = join(dir, BUNDLE_FILES.records);
    const lines = readFileSync(path, 'utf8').split('\n');
    lines[0] = lines[0]!.replace(`"id":"${base.records[0]!.id}"`, `"id":${JSON.stringify(id)}`);
    writeFileSync(path, lines.join('\n'));
    return dir;
  }

  function archiveMembers(): { name: string; body: Buffer }[] {
    return ALL_BUNDLE_FILES.map((name) => ({ name: `sakshya-report/${name}`, body: readFileSync(join(base.dir, name)) }));
  }

  describe('the terminal', () => {
    it('a record id carrying an ANSI clear-screen sequence prints no raw escape byte', async () => {
      const run = await runVerifyCli([withRecordId(HOSTILE_ID), '--collector-key', keyFile]);
      assert.equal(run.code, 1, run.stdout + run.stderr);
      assert.doesNotMatch(run.stdout + run.stderr, UNSAFE);
      assert.ok(run.stdout.includes('(record \\x1b[2J\\x1b[HVERIFIED: 1,000 records in 1 chain\\x9b2J\\u202eDEILIF\\u2066'), run.stdout);
      // The fake verdict stays inside its problem line: no line of the output starts with it.
      assert.doesNotMatch(run.stdout, /^VERIFIED/m);
      assert.match(run.stdout, /^FAILED: /m);
    });

    it('the --json output of a record id carrying C1 and bidi controls holds no raw one, and parses back to the exact id', async () => {
      const run = await runVerifyCli([withRecordId(HOSTILE_ID), '--collector-key', keyFile, '--json']);
      assert.equal(run.code, 1, run.stderr);
      assert.doesNotMatch(run.stdout.replaceAll('\n', ''), UNSAFE);
      const result = JSON.parse(run.stdout) as BundleVerification;
      assert.equal(result.problems.find((problem) => problem.check === 'record.invalid')?.id, HOSTILE_ID);
    });

    it('a file name carrying an OSC title sequence and a right-to-left override is printed escaped', async () => {
      const dir = copyBundle(base.dir);
      writeFileSync(join(dir, '\u001b]0;VERIFIED\u0007notes\u202etxt.exe'), 'x');
      const run = await runVerifyCli([dir, '--collector-key', keyFile]);
      assert.equal(run.code, 1, run.stdout + run.stderr);
      assert.doesNotMatch(run.stdout, UNSAFE);
      assert.ok(run.stdout.includes('  \\x1b]0;VERIFIED\\x07notes\\u202etxt.exe: file.unlisted: '), run.stdout);
    });

    it('an archive member name carrying C1 and bidi controls is printed escaped on stderr', async () => {
      const archive = join(work, 'hostile-name.tar.gz');
      tarGz(archive, [...archiveMembers(), { name: '../\u009b2J\u202eevil', body: Buffer.from('x') }]);
      const run = await runVerifyCli([archive, '--collector-key', keyFile]);
      assert.equal(run.code, 2, run.stdout + run.stderr);
      assert.doesNotMatch(run.stdout + run.stderr, UNSAFE);
      assert.match(run.stderr, /archive\.refused: the archive was refused: member "\.\.\/\\x9b2J\\u202eevil" leaves or walks its directory\n$/);
    });

    it('a record id a megabyte long is listed clipped, so a thousand of them cannot fill memory or the screen', async () => {
      const run = await runVerifyCli([withRecordId('A'.repeat(1024 * 1024)), '--collector-key', keyFile, '--json']);
      assert.equal(run.code, 1, run.stderr);
      const invalid = (JSON.parse(run.stdout) as BundleVerification).problems.find((problem) => problem.check === 'record.invalid')!;
      assert.ok(invalid.id!.length < 1100, `${invalid.id!.length} characters`);
      assert.match(invalid.id!, /^A{1000}… \(1,048,576 characters in all\)$/);
      assert.ok(run.stdout.length < 64 * 1024, `${run.stdout.length} bytes of output`);
    });
  });

  describe('files that are not regular files: exit 2, nothing read', () => {
    it('a manifest.json that is a FIFO is refused with exit 2 instead of hanging', async () => {
      const dir = copyBundle(base.dir);
      rmSync(join(dir, BUNDLE_FILES.manifest));
      execFileSync('mkfifo', [join(dir, BUNDLE_FILES.manifest)]);
      const run = await runVerifyCli([dir, '--collector-key', keyFile], { timeoutMs: 20_000 });
      assert.equal(run.code, 2, run.stdout + run.stderr);
      assert.equal(run.stdout, '');
      assert.match(run.stderr, /^sakshya-verify: nothing was verified: manifest\.json: file\.not_regular: .*manifest\.json is a FIFO \(named pipe\), not a regular file/);
    });

    it('a symlinked keys.json is refused, even when it points at the genuine keys.json', async () => {
      const dir = copyBundle(base.dir);
      const outside = join(mkdtempSync(join(tmpdir(), 'sakshya-outside-')), 'keys.json');
      renameSync(join(dir, BUNDLE_FILES.keys), outside);
      symlinkSync(outside, join(dir, BUNDLE_FILES.keys));
      const run = await runVerifyCli([dir, '--collector-key', keyFile]);
      assert.equal(run.code, 2, run.stdout + run.stderr);
      assert.match(run.stderr, /^sakshya-verify: nothing was verified: keys\.json: file\.not_regular: .*keys\.json is a symbolic link, not a regular file/);
    });

    it('a records.jsonl symlinked to a file outside the bundle is refused instead of read', async () => {
      const dir = copyBundle(base.dir);
      const outside = join(mkdtempSync(join(tmpdir(), 'sakshya-outside-')), 'records.jsonl');
      renameSync(join(dir, BUNDLE_FILES.records), outside);
      symlinkSync(outside, join(dir, BUNDLE_FILES.records));
      const run = await runVerifyCli([dir, '--collector-key', keyFile]);
      assert.equal(run.code, 2, run.stdout + run.stderr);
      assert.match(run.stderr, /records\.jsonl: file\.not_regular: .*records\.jsonl is a symbolic link/);
    });
  });

  describe('size caps: exit 2 before the bytes are held or written', () => {
    it('an oversized manifest.json is refused before it is parsed', async () => {
      const dir = copyBundle(base.dir);
      // Valid JSON with the genuine manifest at its end: only the size is wrong.
      writeFileSync(join(dir, BUNDLE_FILES.manifest), Buffer.concat([Buffer.alloc(9 * 1024 * 1024, ' '), readFileSync(join(base.dir, BUNDLE_FILES.manifest))]));
      const run = await runVerifyCli([dir, '--collector-key', keyFile]);
      assert.equal(run.code, 2, run.stdout + run.stderr);
      assert.equal(run.stdout, '');
      assert.match(run.stderr, /^sakshya-verify: nothing was verified: manifest\.json: file\.too_large: .*manifest\.json is larger than 8,388,608 bytes/);
    });

    it('--max-metadata-bytes lowers the cap on manifest.json, keys.json and checkpoint', async () => {
      const run = await runVerifyCli([base.dir, '--collector-key', keyFile, '--max-metadata-bytes', '1K']);
      assert.equal(run.code, 2, run.stdout + run.stderr);
      assert.match(run.stderr, /file\.too_large: .* is larger than 1,024 bytes/);
    });

    it('a tar member over the cap is refused from its header, before its bytes are unpacked', async () => {
      const archive = join(work, 'huge-member.tar.gz');
      // The header claims 3 GiB (over the 2 GiB default); the archive holds 64 KiB of it.
      const claimed = 3 * 1024 ** 3;
      const members = archiveMembers().filter((member) => !member.name.endsWith(BUNDLE_FILES.records));
      const truncated = Buffer.concat([...members.flatMap(({ name, body }) => [tarHeader(name, body.length), body, Buffer.alloc((512 - (body.length % 512)) % 512)]), tarHeader(`sakshya-report/${BUNDLE_FILES.records}`, claimed), Buffer.alloc(64 * 1024)]);
      writeFileSync(archive, gzipSync(truncated));
      const run = await runVerifyCli([archive, '--collector-key', keyFile]);
      assert.equal(run.code, 2, run.stdout + run.stderr);
      assert.match(run.stderr, /archive\.too_large: the archive was refused: member "sakshya-report\/records\.jsonl" is larger than 2,147,483,648 bytes/);
    });

    it('--max-member-bytes and --max-total-bytes refuse an archive over them; under them it verifies', async () => {
      const archive = join(work, 'bundle.tar.gz');
      tarGz(archive, archiveMembers());
      const member = await runVerifyCli([archive, '--collector-key', keyFile, '--max-member-bytes', '2K']);
      assert.equal(member.code, 2, member.stdout + member.stderr);
      assert.match(member.stderr, /archive\.too_large: the archive was refused: member "sakshya-report\/[a-z.]+" is larger than 2,048 bytes/);
      const total = await runVerifyCli([archive, '--collector-key', keyFile, '--max-total-bytes', '8K']);
      assert.equal(total.code, 2, total.stdout + total.stderr);
      assert.match(total.stderr, /archive\.too_large: the archive was refused: the (members|gzip stream) unpack(s)? to more than 8,192 bytes/);
      const fits = await runVerifyCli([archive, '--collector-key', keyFile, '--max-member-bytes', '1M', '--max-total-bytes', '2M']);
      assert.equal(fits.code, 0, fits.stdout + fits.stderr);
    });

    it('a gzip bomb is refused once it unpacks past the total cap, before it is read to its end', async () => {
      const bomb = join(work, 'bomb.tar.gz');
      // 64 MiB of zeros in ≈ 64 KiB: tar reads zero blocks as padding, so nothing but the unpacked-bytes cap stops it.
      tarGz(bomb, [], Buffer.alloc(64 * 1024 * 1024));
      const started = Date.now();
      const run = await runVerifyCli([bomb, '--collector-key', keyFile, '--max-total-bytes', '1M']);
      assert.equal(run.code, 2, run.stdout + run.stderr);
      assert.match(run.stderr, /archive\.too_large: the archive was refused: the gzip stream unpacks to more than 2,097,152 bytes/);
      assert.ok(Date.now() - started < 20_000);
    });
  });
});
