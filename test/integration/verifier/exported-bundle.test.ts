/**
 * sakshya-verify against REAL bundles: a real collector (in process, real SQLite, real HTTP),
 * agents with real keys and chains sending batches over HTTP, and the real exporter
 * (`sakshya-collector report export`, and the auditor's HTTP tar.gz). The pinned key file is the
 * collector's own `GET /api/v1/keys` answer, as an auditor would be handed it. Then, one at a
 * time on a fresh copy, every tampering the issue names; each must exit 1 and name its cause.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readPrivateKeyFile } from '../../../shared/crypto.ts';
import { ALL_BUNDLE_FILES, BUNDLE_FILES, type Manifest } from '../../../shared/report/bundle-format.ts';
import { keysDirectory, KEY_FILES } from '../../../collector/keys.ts';
import type { BundleVerification } from '../../../verifier/verify-bundle.ts';
import { makeTempDir, runCollectorCli, startCollectorInProcess, type InProcessCollector } from '../../helpers/collector-process.ts';
import { newCollectorIdentity, publishedKeys, resignBundle, writeManifest } from '../../helpers/synthetic-bundle.ts';
import { copyBundle, runVerifyCli } from '../../helpers/verifier-process.ts';
import { enrolledAgent, humanToken } from '../collector/security-support.ts';
import { request, type TestAgent } from '../collector/test-agent.ts';

const DAY = '2026-11-22';
const NEXT_DAY = '2026-11-23';
const at = (hour: number, day = DAY): string => `${day}T${String(hour).padStart(2, '0')}:00:00.000Z`;
const DROPPED_BODY = { dropped: 1204, firstAt: at(5), lastAt: at(6), reason: 'buffer.full', byType: { 'system.load': 1204 } };

describe('sakshya-verify on bundles from the real exporter', function () {
  this.timeout(180_000);
  let collector: InProcessCollector;
  let kmr1: TestAgent;
  let kmr2: TestAgent;
  let other: TestAgent;
  let bundle: string;
  let otherBundle: string;
  let keyFile: string;
  let size: number;

  async function cliExport(args: string[]): Promise<string> {
    const out = join(makeTempDir('sakshya-export-'), 'bundle');
    const run = await runCollectorCli(['report', 'export', '--dir', collector.dir, '--out', out, '--checkpoint-size', String(size), ...args], { SAKSHYA_LOG_LEVEL: 'warn' });
    assert.equal(run.code, 0, run.stderr);
    return out;
  }

  before(async () => {
    collector = await startCollectorInProcess();
    kmr1 = await enrolledAgent(collector, 'AS-KMR');
    kmr2 = await enrolledAgent(collector, 'AS-KMR');
    other = await enrolledAgent(collector, 'AS-XYZ');
    // kmr1: 12 records; seq 5 carries a skewed clock (another day) and seq 8 is a telemetry.dropped summary.
    const records = [];
    for (let seq = 1; seq <= 12; seq++) {
      if (seq === 5) records.push(kmr1.next({ user: 'skewed' }, 'audit', 'certificate.issued', at(4, '2026-11-25')));
      else if (seq === 8) records.push(kmr1.next(DROPPED_BODY, 'agent', 'telemetry.dropped', at(7)));
      else records.push(kmr1.next({ user: `clerk-${seq}`, cert: { no: `C-${seq}` } }, 'audit', 'certificate.issued', at(Math.min(seq, 23))));
    }
    await kmr1.sendOk(kmr1.batch(records));
    await kmr2.sendOk(kmr2.batch([1, 2, 3, 4].map((h) => kmr2.next({ n: h }, 'audit', 'user.login', at(h + 10)))));
    await other.sendOk(other.batch([1, 2, 3].map((h) => other.next({ n: h }, 'audit', 'certificate.issued', at(h + 12)))));
    await collector.container.enrollment.revokeAgent(kmr2.id, 'cli:test');
    size = (await collector.container.ledger.latestCheckpoint())!.size;

    const keys = await request(`${collector.url}/api/v1/keys`, { method: 'GET' });
    assert.equal(keys.status, 200);
    keyFile = join(makeTempDir('sakshya-keys-'), 'collector-keys.json');
    writeFileSync(keyFile, keys.text);
    bundle = await cliExport(['--from', DAY, '--to', NEXT_DAY, '--agent', 'AS-KMR-*']);
    otherBundle = await cliExport(['--from', DAY, '--to', NEXT_DAY, '--agent', 'AS-XYZ-*']);
  });

  after(async () => {
    await collector?.stop();
  });

  async function verifyJson(dir: string, pin = true): Promise<{ code: number | null; result: BundleVerification }> {
    const run = await runVerifyCli([dir, ...(pin ? ['--collector-key', keyFile] : []), '--json']);
    assert.equal(run.stderr, '');
    return { code: run.code, result: JSON.parse(run.stdout) as BundleVerification };
  }

  const checks = (result: BundleVerification): string[] => result.problems.map((problem) => `${problem.file}:${problem.check}`);
  const lines = (dir: string, file: string): string[] => readFileSync(join(dir, file), 'utf8').split('\n').slice(0, -1);
  const writeLines = (dir: string, file: string, content: string[]): void => writeFileSync(join(dir, file), content.map((line) => line + '\n').join(''));
  const lineOf = (dir: string, agent: string, seq: number): number =>
    lines(dir, BUNDLE_FILES.records).findIndex((line) => {
      const record = JSON.parse(line) as { agent: string; seq: number };
      return record.agent === agent && record.seq === seq;
    });
  /** The collector's real report key: what a dishonest operator would re-sign a tampered bundle with. */
  const operatorKey = () => readPrivateKeyFile(join(keysDirectory(collector.dir), KEY_FILES.receipt));

  it('verifies, naming the pinned key, each chain with its declared gap, the dropped telemetry and the revocation', async () => {
    const run = await runVerifyCli([bundle, '--collector-key', keyFile]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const out = run.stdout.split('\n');
    const kid = collector.container.publicKeys.jwks.keys[0]!.kid;
    assert.equal(out[0], `Manifest checked with the PINNED collector report key ${kid} (from ${keyFile}); checkpoint with the pinned log key ${collector.container.publicKeys.logKey.split('+').slice(0, 2).join('+')}.`);
    assert.ok(out.includes(`${kmr1.id} epoch 1: seq 1–12, 1 gap (seq 5 outside the date range), 11 records verified`), run.stdout);
    assert.ok(out.includes(`  ${kmr1.id} epoch 1: 1,204 telemetry records dropped by the agent between ${at(5)} and ${at(6)} (telemetry.dropped record seq 8)`), run.stdout);
    assert.ok(out.includes(`${kmr2.id} epoch 1: seq 1–4 complete, 4 records verified`), run.stdout);
    assert.ok(out.some((line) => new RegExp(`^  ${kmr2.id} epoch 1: revoked at \\d{4}-\\d\\d-\\d\\dT`).test(line)), run.stdout);
    assert.match(run.stdout, new RegExp(`^VERIFIED: 15 records in 2 chains; .* against checkpoint size ${size}\\.$`, 'm'));
  });

  it('--json gives the structured result', async () => {
    const { code, result } = await verifyJson(bundle);
    assert.equal(code, 0);
    assert.equal(result.ok, true);
    assert.equal(result.key.pinned, true);
    assert.equal(result.key.logKeyPinned, true);
    assert.deepEqual(result.records, { total: 15, verified: 15, failed: 0, byKind: { audit: 14, agent: 1 } });
    assert.deepEqual(result.manifest?.filter, { from: at(0), to: at(0, NEXT_DAY), agent: 'AS-KMR-*', kind: null, type: null });
    const [c1, c2] = result.chains;
    assert.deepEqual([c1!.agent, c1!.firstSeq, c1!.lastSeq, c1!.records, c1!.verified, c1!.complete, c1!.gaps], [kmr1.id, 1, 12, 11, 11, false, [{ from: 5, to: 5, reason: 'outside-date-range' }]]);
    assert.deepEqual(c1!.dropped.map((d) => [d.seq, d.dropped, d.firstAt, d.lastAt]), [[8, 1204, at(5), at(6)]]);
    assert.equal(c1!.revokedAt, null);
    assert.deepEqual([c2!.agent, c2!.complete, c2!.records], [kmr2.id, true, 4]);
    assert.match(c2!.revokedAt ?? '', /^\d{4}-\d\d-\d\dT/);
    assert.deepEqual(result.problems, []);
  });

  it('verifies the tar.gz the auditor downloads over HTTP', async () => {
    const auditor = await humanToken(collector, 'auditor', 'verifier-test');
    const started = await request(`${collector.url}/api/v1/reports`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${auditor.token}` },
      body: JSON.stringify({ from: DAY, to: NEXT_DAY, agent: 'AS-KMR-*', checkpointSize: size }),
    });
    assert.equal(started.status, 202, started.text);
    await collector.container.reports.idle();
    const response = await fetch(`${collector.url}/api/v1/reports/${(started.body as { id: string }).id}/bundle.tar.gz`, { headers: { authorization: `Bearer ${auditor.token}` } });
    assert.equal(response.status, 200);
    const archive = join(makeTempDir('sakshya-tgz-'), 'bundle.tar.gz');
    writeFileSync(archive, Buffer.from(await response.arrayBuffer()));
    const run = await runVerifyCli([archive, '--collector-key', keyFile]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.match(run.stdout, /^VERIFIED: 15 records in 2 chains/m);
  });

  describe('a changed byte in any file fails and names the file', () => {
    const expected: { [file: string]: string } = {
      [BUNDLE_FILES.records]: 'file.sha256_mismatch',
      [BUNDLE_FILES.proofs]: 'file.sha256_mismatch',
      [BUNDLE_FILES.checkpoint]: 'file.sha256_mismatch',
      [BUNDLE_FILES.keys]: 'file.sha256_mismatch',
      [BUNDLE_FILES.csv]: 'file.sha256_mismatch',
      [BUNDLE_FILES.summary]: 'file.sha256_mismatch',
      [BUNDLE_FILES.manifest]: 'manifest.payload_mismatch',
      [BUNDLE_FILES.manifestJws]: 'manifest.bad_signature',
    };
    for (const file of ALL_BUNDLE_FILES) {
      it(file, async () => {
        const dir = copyBundle(bundle);
        const bytes = readFileSync(join(dir, file));
        const middle = Math.floor(bytes.length / 2);
        bytes[middle] = bytes[middle] === 0x41 ? 0x42 : 0x41;
        writeFileSync(join(dir, file), bytes);
        const { code, result } = await verifyJson(dir);
        assert.equal(code, 1);
        assert.ok(checks(result).includes(`${file}:${expected[file]}`), JSON.stringify(result.problems, null, 1));
      });
    }
  });

  it('a removed record (with its proof line) fails; re-signed with the real key by the operator, the undeclared gap is named', async () => {
    const dir = copyBundle(bundle);
    const index = lineOf(dir, kmr1.id, 3);
    for (const file of [BUNDLE_FILES.records, BUNDLE_FILES.proofs]) writeLines(dir, file, lines(dir, file).filter((_, i) => i !== index));
    const plain = await verifyJson(dir);
    assert.equal(plain.code, 1);
    assert.ok(checks(plain.result).includes('records.jsonl:file.sha256_mismatch'));
    assert.ok(checks(plain.result).includes('records.jsonl:chain.undeclared_gap'));

    await resignBundle(dir, operatorKey(), (manifest: Manifest) => {
      manifest.counts.records--;
      manifest.counts.byKind.audit--;
      manifest.chains.find((chain) => chain.agent === kmr1.id)!.records--;
    });
    const resigned = await verifyJson(dir);
    assert.equal(resigned.code, 1);
    assert.deepEqual(checks(resigned.result), ['records.jsonl:chain.undeclared_gap']);
    assert.deepEqual([resigned.result.problems[0]!.agent, resigned.result.problems[0]!.found], [kmr1.id, 'seq 3']);
  });

  it('an undeclared gap fails even when every count agrees; the same gap declared verifies', async () => {
    const dir = copyBundle(bundle);
    const index = lineOf(dir, kmr2.id, 2);
    for (const file of [BUNDLE_FILES.records, BUNDLE_FILES.proofs]) writeLines(dir, file, lines(dir, file).filter((_, i) => i !== index));
    const shrink = (manifest: Manifest): Manifest['chains'][number] => {
      manifest.counts.records--;
      manifest.counts.byKind.audit--;
      const chain = manifest.chains.find((c) => c.agent === kmr2.id)!;
      chain.records--;
      return chain;
    };
    await resignBundle(dir, operatorKey(), shrink);
    const undeclared = await runVerifyCli([dir, '--collector-key', keyFile]);
    assert.equal(undeclared.code, 1);
    assert.match(undeclared.stdout, new RegExp(`^${kmr2.id} epoch 1: seq 1–4, 1 UNDECLARED gap \\(seq 2\\), 3 records verified$`, 'm'));
    assert.match(undeclared.stdout, /^FAILED: 1 problem$/m);

    const declared = copyBundle(bundle);
    for (const file of [BUNDLE_FILES.records, BUNDLE_FILES.proofs]) writeLines(declared, file, lines(declared, file).filter((_, i) => i !== index));
    await resignBundle(declared, operatorKey(), (manifest) => {
      shrink(manifest).gaps.push({ from: 2, to: 2, reason: 'excluded-by-filter' });
    });
    const ok = await runVerifyCli([declared, '--collector-key', keyFile]);
    assert.equal(ok.code, 0, ok.stdout);
    assert.match(ok.stdout, new RegExp(`^${kmr2.id} epoch 1: seq 1–4, 1 gap \\(seq 2 excluded by the kind/type filter\\), 3 records verified$`, 'm'));
  });

  it('two records reordered (with their proof lines) fail on ledger order and seq order', async () => {
    const dir = copyBundle(bundle);
    const a = lineOf(dir, kmr1.id, 2);
    const b = lineOf(dir, kmr1.id, 3);
    for (const file of [BUNDLE_FILES.records, BUNDLE_FILES.proofs]) {
      const content = lines(dir, file);
      [content[a], content[b]] = [content[b]!, content[a]!];
      writeLines(dir, file, content);
    }
    const { code, result } = await verifyJson(dir);
    assert.equal(code, 1);
    const problems = checks(result);
    assert.ok(problems.includes('records.jsonl:file.sha256_mismatch'), problems.join('\n'));
    assert.ok(problems.includes('proofs.jsonl:records.ledger_order'));
    assert.ok(problems.includes('records.jsonl:chain.seq_order'));
    const order = result.problems.find((problem) => problem.check === 'chain.seq_order')!;
    assert.deepEqual([order.line, order.agent, order.seq], [b + 1, kmr1.id, 2]);
  });

  it('a record (and its valid proof) swapped in from another agent fails: no key for that agent in this bundle', async () => {
    const dir = copyBundle(bundle);
    const index = lineOf(dir, kmr1.id, 4);
    const records = lines(dir, BUNDLE_FILES.records);
    const proofs = lines(dir, BUNDLE_FILES.proofs);
    records[index] = lines(otherBundle, BUNDLE_FILES.records)[0]!;
    proofs[index] = lines(otherBundle, BUNDLE_FILES.proofs)[0]!;
    writeLines(dir, BUNDLE_FILES.records, records);
    writeLines(dir, BUNDLE_FILES.proofs, proofs);
    const { code, result } = await verifyJson(dir);
    assert.equal(code, 1);
    const problems = checks(result);
    assert.ok(problems.includes('records.jsonl:record.no_key'), problems.join('\n'));
    const noKey = result.problems.find((problem) => problem.check === 'record.no_key')!;
    assert.deepEqual([noKey.line, noKey.agent], [index + 1, other.id]);
    assert.ok(problems.includes('manifest.json:manifest.chain_missing'));
    assert.ok(problems.includes('records.jsonl:chain.undeclared_gap'));
  });

  it('an edited checkpoint fails its signature', async () => {
    const dir = copyBundle(bundle);
    const note = readFileSync(join(dir, BUNDLE_FILES.checkpoint), 'utf8');
    writeFileSync(join(dir, BUNDLE_FILES.checkpoint), note.replace(new RegExp(`^(.*\\n)${size}\\n`), `$1${size + 1}\n`));
    const { code, result } = await verifyJson(dir);
    assert.equal(code, 1);
    assert.ok(checks(result).includes('checkpoint:file.sha256_mismatch'));
    assert.ok(checks(result).includes('checkpoint:checkpoint.invalid'));
    assert.match(result.problems.find((problem) => problem.check === 'checkpoint.invalid')!.message, /signature/);
  });

  it('a manifest signed with another key fails, unpinned and pinned', async () => {
    const dir = copyBundle(bundle);
    const intruder = newCollectorIdentity().report;
    const manifest = JSON.parse(readFileSync(join(dir, BUNDLE_FILES.manifest), 'utf8')) as Manifest;
    await writeManifest(dir, manifest, intruder);
    for (const pin of [false, true]) {
      const { code, result } = await verifyJson(dir, pin);
      assert.equal(code, 1);
      assert.ok(checks(result).includes('manifest.jws:manifest.bad_signature'), checks(result).join('\n'));
      const wrong = result.problems.find((problem) => problem.check === 'manifest.wrong_key')!;
      assert.equal(wrong.found, intruder.kid);
    }
  });

  it('a tampered bundle re-signed with another key (and that key in keys.json) fails against the pinned real key', async () => {
    const dir = copyBundle(bundle);
    const intruder = newCollectorIdentity(collector.origin);
    const keys = JSON.parse(readFileSync(join(dir, BUNDLE_FILES.keys), 'utf8')) as { collector: { reportKey: unknown } };
    keys.collector.reportKey = publishedKeys(intruder).jwks.keys[0];
    writeFileSync(join(dir, BUNDLE_FILES.keys), JSON.stringify(keys));
    const index = lineOf(dir, kmr1.id, 3);
    for (const file of [BUNDLE_FILES.records, BUNDLE_FILES.proofs]) writeLines(dir, file, lines(dir, file).filter((_, i) => i !== index));
    await resignBundle(dir, intruder.report, (manifest) => {
      manifest.counts.records--;
      manifest.counts.byKind.audit--;
      const chain = manifest.chains.find((c) => c.agent === kmr1.id)!;
      chain.records--;
      chain.gaps.unshift({ from: 3, to: 3, reason: 'excluded-by-filter' });
    });
    const pinned = await verifyJson(dir);
    assert.equal(pinned.code, 1);
    const problems = checks(pinned.result);
    assert.ok(problems.includes('manifest.jws:manifest.wrong_key'), problems.join('\n'));
    assert.ok(problems.includes('manifest.jws:manifest.bad_signature'));
    assert.ok(problems.includes('keys.json:keys.report_key_mismatch'));
    const text = await runVerifyCli([dir, '--collector-key', keyFile]);
    assert.match(text.stdout, /manifest\.jws: manifest\.bad_signature: the manifest signature does not verify/);
  });
});
