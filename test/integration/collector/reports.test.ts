/**
 * Report exports end to end: real SQLite, real HTTP on 127.0.0.1, the real CLI as a child
 * process. The bundle is checked here without sakshya-verify (manifest signature, file hashes,
 * inclusion proofs against the checkpoint), so the exporter stands on its own.
 */
import { sqliteOnly } from '../../helpers/postgres.ts';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { parse as parseCsv } from 'csv-parse/sync';
import { compactVerify } from 'jose';
import tar from 'tar-stream';
import { canonicalJson } from '../../../shared/canonical-json.ts';
import { fromBase64Url, generateSigningKey } from '../../../shared/crypto.ts';
import { verifyInclusion } from '../../../shared/merkle.ts';
import { leafHashOfCanonical } from '../../../shared/record.ts';
import {
  ALL_BUNDLE_FILES,
  BUNDLE_FILES,
  keysFileSchema,
  MANIFEST_JWS_TYP,
  MANIFEST_LISTED_FILES,
  manifestSchema,
  proofLineSchema,
  type Manifest,
} from '../../../shared/report/bundle-format.ts';
import { UTF8_BOM } from '../../../collector/services/report/records-csv.ts';
import { exportReport } from '../../../collector/services/report/export-report.ts';
import { makeTempDir, REPO_ROOT, runCollectorCli, startCollectorInProcess, type InProcessCollector } from '../../helpers/collector-process.ts';
import { assertProblem } from './http-assertions.ts';
import { collectorChain, enrolledAgent, humanToken } from './security-support.ts';
import { request, type TestAgent } from './test-agent.ts';

const DAY = '2026-11-22';
const VERIFY_BIN = join(REPO_ROOT, 'verifier/bin/sakshya-verify.ts');

function runNode(script: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [script, ...args], { cwd: REPO_ROOT }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') reject(err);
      else resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
    });
  });
}
const at = (hour: number, day = DAY) => `${day}T${String(hour).padStart(2, '0')}:00:00.000Z`;
const TRICKY_BODY = { user: 'Ram, "the" clerk', cert: { no: 'C-1', office: 'Kamrup' }, formula: '=SUM(A1)', list: [1, 2], neg: -5, note: 'line1\nline2', none: null };
const DROPPED_BODY = { dropped: 42, firstAt: at(5), lastAt: at(6), reason: 'buffer.full', byType: { 'system.load': 40, 'system.disk': 2 } };

function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function readBundle(dir: string): Map<string, Buffer> {
  return new Map(readdirSync(dir).map((name) => [name, readFileSync(join(dir, name))]));
}

async function untar(gz: Buffer): Promise<Map<string, { data: Buffer; header: tar.Headers }>> {
  const members = new Map<string, { data: Buffer; header: tar.Headers }>();
  const extract = tar.extract();
  Readable.from([gunzipSync(gz)]).pipe(extract);
  for await (const entry of extract) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    members.set(entry.header.name, { data: Buffer.concat(chunks), header: entry.header });
  }
  return members;
}

describe('report export (CLI and HTTP)', function () {
  this.timeout(120_000);
  let collector: InProcessCollector;
  let kmr1: TestAgent;
  let kmr2: TestAgent;
  let other: TestAgent;
  let rotatedKids: string[];
  let auditor: { token: string; id: string };
  let checkpointSize: number;

  const api = (path: string, init: RequestInit & { token?: string } = {}) => {
    const headers: { [name: string]: string } = { 'content-type': 'application/json' };
    if (init.token) headers.authorization = `Bearer ${init.token}`;
    return request(`${collector.url}/api/v1${path}`, { ...init, headers });
  };

  async function httpExport(body: unknown, token = auditor.token): Promise<{ id: string; gz: Buffer; status: { [k: string]: unknown } }> {
    const started = await api('/reports', { method: 'POST', token, body: JSON.stringify(body) });
    assert.equal(started.status, 202, started.text);
    const job = started.body as { id: string; status: string; links: { self: string } };
    assert.equal(job.status, 'running');
    assert.equal(started.headers.get('location'), `/api/v1/reports/${job.id}`);
    await collector.container.reports.idle();
    const status = await api(`/reports/${job.id}`, { token });
    assert.equal(status.status, 200, status.text);
    assert.equal((status.body as { status: string }).status, 'done', status.text);
    const response = await fetch(`${collector.url}/api/v1/reports/${job.id}/bundle.tar.gz`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'application/gzip');
    assert.match(response.headers.get('content-disposition') ?? '', /^attachment; filename="sakshya-report-\d+-[0-9a-f-]+\.tar\.gz"$/);
    const gz = Buffer.from(await response.arrayBuffer());
    assert.equal(Number(response.headers.get('content-length')), gz.length);
    return { id: job.id, gz, status: status.body as { [k: string]: unknown } };
  }

  async function cliExport(out: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return runCollectorCli(['report', 'export', '--dir', collector.dir, '--out', out, ...args], { SAKSHYA_LOG_LEVEL: 'warn' });
  }

  before(async () => {
    collector = await startCollectorInProcess();
    kmr1 = await enrolledAgent(collector, 'AS-KMR');
    kmr2 = await enrolledAgent(collector, 'AS-KMR');
    other = await enrolledAgent(collector, 'AS-XYZ');
    // kmr1: seq 1-3 audit, 4 telemetry, 5 audit on another day (clock skew), 6 telemetry.dropped, 7-8 audit.
    await kmr1.sendOk(
      kmr1.batch([
        kmr1.next(TRICKY_BODY, 'audit', 'certificate.issued', at(1)),
        kmr1.next({ user: 'sita' }, 'audit', 'certificate.issued', at(2)),
        kmr1.next({ user: 'ram' }, 'audit', 'user.login', at(3)),
        kmr1.next({ load: 0.5 }, 'telemetry', 'system.load', at(4)),
        kmr1.next({ user: 'skewed' }, 'audit', 'certificate.issued', at(4, '2026-11-25')),
        kmr1.next(DROPPED_BODY, 'agent', 'telemetry.dropped', at(7)),
        kmr1.next({ user: 'a' }, 'audit', 'certificate.issued', at(8)),
        kmr1.next({ user: 'b' }, 'audit', 'certificate.issued', at(9)),
      ]),
    );
    await kmr2.sendOk(kmr2.batch([1, 2, 3].map((h) => kmr2.next({ n: h }, 'audit', 'certificate.issued', at(h + 10)))));
    // other: seq 1 with the enrolled key, seq 2 rotates the key (signed with the old one), seq 3 with the new key.
    const enrolledKey = other.key;
    const enrolledKid = enrolledKey.kid;
    const newKey = generateSigningKey().key;
    const rotation = [other.next({ n: 1 }, 'audit', 'certificate.issued', at(12)), other.next({ newKey: newKey.publicJwk, newKid: newKey.kid }, 'agent', 'key.rotated', at(13))];
    other.key = newKey;
    // The batch carrying the rotation is authenticated by the key the collector knows: the old one.
    await other.sendOk(other.batch([...rotation, other.next({ n: 3 }, 'audit', 'certificate.issued', at(14))]), { token: await other.token({ key: enrolledKey }) });
    rotatedKids = [enrolledKid, newKey.kid];
    await collector.container.enrollment.revokeAgent(kmr2.id, 'cli:test');
    auditor = await humanToken(collector, 'auditor', 'cag-audit-cell');
    checkpointSize = (await collector.container.ledger.latestCheckpoint())!.size;
  });
  after(async () => {
    await collector?.stop();
  });

  const filterBody = () => ({ from: DAY, to: '2026-11-23', agent: 'AS-KMR-*', checkpointSize });

  it('gives byte-identical bundles from the CLI and the HTTP API for the same filter and checkpoint, and the same tar.gz twice', async () => {
    const first = await httpExport(filterBody());
    const out = join(makeTempDir(), 'bundle');
    const cli = await cliExport(out, ['--from', DAY, '--to', '2026-11-23', '--agent', 'AS-KMR-*', '--checkpoint-size', String(checkpointSize)]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /exported 10 records of 2 chains \(1 gap\) at checkpoint size \d+ to /);

    const files = readBundle(out);
    assert.deepEqual([...files.keys()].sort(), ALL_BUNDLE_FILES);
    const members = await untar(first.gz);
    assert.deepEqual([...members.keys()], ALL_BUNDLE_FILES.map((name) => `sakshya-report/${name}`), 'sorted members under one directory');
    for (const [name, { data, header }] of members) {
      const file = name.slice('sakshya-report/'.length);
      assert.ok(data.equals(files.get(file)!), `${file} differs between HTTP and CLI`);
      assert.equal(header.mode, 0o644);
      assert.equal(header.uid, 0);
      assert.equal(header.gid, 0);
      assert.equal(header.mtime?.getTime(), 0);
      assert.equal(header.uname ?? '', '');
    }
    const second = await httpExport(filterBody());
    assert.ok(second.gz.equals(first.gz), 'the same export twice gives the same tar.gz bytes');
    assert.equal(second.status.manifestSha256, sha256Hex(files.get(BUNDLE_FILES.manifest)!));
  });

  it('writes a signed manifest whose files, proofs, checkpoint and chains check out', async () => {
    const out = join(makeTempDir(), 'b');
    const cli = await cliExport(out, ['--from', DAY, '--to', '2026-11-23', '--agent', 'AS-KMR-*', '--checkpoint-size', String(checkpointSize)]);
    assert.equal(cli.code, 0, cli.stderr);
    const files = readBundle(out);
    const manifestBytes = files.get(BUNDLE_FILES.manifest)!;
    const manifest = manifestSchema.parse(JSON.parse(manifestBytes.toString('utf8'))) as Manifest;

    const { payload, protectedHeader } = await compactVerify(files.get(BUNDLE_FILES.manifestJws)!.toString('utf8'), collector.container.keys.receipt.publicKey);
    assert.ok(Buffer.from(payload).equals(manifestBytes));
    assert.deepEqual(protectedHeader, { alg: 'EdDSA', kid: collector.container.keys.receipt.kid, typ: MANIFEST_JWS_TYP });
    for (const name of MANIFEST_LISTED_FILES) {
      assert.deepEqual(manifest.files[name], { sha256: sha256Hex(files.get(name)!), bytes: files.get(name)!.length }, name);
    }

    const stored = await collector.container.ledger.checkpointOfSize(checkpointSize);
    assert.equal(files.get(BUNDLE_FILES.checkpoint)!.toString('utf8'), stored!.note);
    assert.deepEqual(manifest.checkpoint, { size: checkpointSize, root: stored!.root.toString('base64url') });
    assert.deepEqual(manifest.filter, { from: `${DAY}T00:00:00.000Z`, to: '2026-11-23T00:00:00.000Z', agent: 'AS-KMR-*', kind: null, type: null });

    const lines = files.get(BUNDLE_FILES.records)!.toString('utf8').split('\n');
    assert.equal(lines.pop(), '', 'every line ends with a newline');
    const proofs = files.get(BUNDLE_FILES.proofs)!.toString('utf8').trimEnd().split('\n').map((l) => proofLineSchema.parse(JSON.parse(l)));
    assert.equal(lines.length, 10);
    assert.equal(proofs.length, lines.length);
    let lastIndex = -1;
    lines.forEach((line, i) => {
      const record = JSON.parse(line) as { id: string; agent: string };
      const proof = proofs[i]!;
      assert.equal(proof.id, record.id);
      assert.ok(proof.ledgerIndex > lastIndex);
      lastIndex = proof.ledgerIndex;
      const leaf = leafHashOfCanonical(Buffer.from(line, 'utf8'));
      assert.equal(proof.leafHash, leaf.toString('base64url'));
      verifyInclusion(leaf, proof.ledgerIndex, checkpointSize, proof.path.map(fromBase64Url), stored!.root); // throws on a bad proof
      assert.match(record.agent, /^AS-KMR-/);
    });

    assert.deepEqual(manifest.counts, { records: 10, byKind: { audit: 8, telemetry: 1, agent: 1 }, chains: 2 });
    const [c1, c2] = manifest.chains;
    assert.deepEqual(
      { ...c1!, revokedAt: null },
      {
        agent: kmr1.id,
        epoch: 1,
        firstSeq: 1,
        lastSeq: 8,
        records: 7,
        gaps: [{ from: 5, to: 5, reason: 'outside-date-range' }],
        dropped: [{ seq: 6, id: lines.map((l) => JSON.parse(l) as { id: string; agent: string; seq: number }).find((r) => r.agent === kmr1.id && r.seq === 6)!.id, dropped: 42, firstAt: at(5), lastAt: at(6) }],
        revokedAt: null,
        revokedIndex: null,
        supersededBy: null,
      },
    );
    assert.equal(c1!.revokedAt, null);
    assert.equal(c2!.agent, kmr2.id);
    assert.match(c2!.revokedAt ?? '', /^\d{4}-\d\d-\d\dT/, 'the revoked agent carries its revocation time');
    assert.equal(c2!.revokedIndex, checkpointSize - 2, 'and the ledger index of its revocation record (the auditor token issued after it is the last entry)');
    assert.equal(c2!.supersededBy, null);

    const keys = keysFileSchema.parse(JSON.parse(files.get(BUNDLE_FILES.keys)!.toString('utf8')));
    assert.deepEqual(keys.agents.map((a) => [a.agent, a.epoch]), [[kmr1.id, 1], [kmr2.id, 1]]);
    assert.equal(keys.agents[1]!.revokedAt, c2!.revokedAt);
    assert.equal(keys.agents[1]!.revokedIndex, c2!.revokedIndex);
    assert.equal(keys.agents[0]!.revokedAt, null);
    assert.deepEqual(keys.agents[0]!.keys.map((k) => [k.fromSeq, k.kid, k.reason]), [[1, kmr1.key.kid, 'enrolled']]);
    assert.deepEqual(keys.collector, { origin: collector.origin, logKey: collector.container.publicKeys.logKey, reportKey: collector.container.publicKeys.jwks.keys[0] });
  });

  it('exports bundles, as a directory and as the HTTP tar.gz, that sakshya-verify accepts with the pinned collector keys', async () => {
    const keysFile = join(makeTempDir(), 'collector-keys.json');
    const keys = await api('/keys');
    writeFileSync(keysFile, keys.text);
    const out = join(makeTempDir(), 'b');
    assert.equal((await cliExport(out, ['--from', DAY, '--to', '2026-11-23', '--checkpoint-size', String(checkpointSize)])).code, 0);
    const { gz } = await httpExport({ from: DAY, to: '2026-11-23', checkpointSize });
    const tarPath = join(makeTempDir(), 'bundle.tar.gz');
    writeFileSync(tarPath, gz);
    for (const bundle of [out, tarPath]) {
      const verify = await runNode(VERIFY_BIN, [bundle, '--collector-key', keysFile, '--threads', '0']);
      assert.equal(verify.code, 0, verify.stdout + verify.stderr);
      assert.match(verify.stdout, new RegExp(`${kmr1.id} epoch 1: seq 1`));
    }
  });

  it('gives kind/type-filtered seqs the reason excluded-by-filter, and leaves agents outside the glob out entirely', async () => {
    const out = join(makeTempDir(), 'b');
    const cli = await cliExport(out, ['--from', DAY, '--to', '2026-11-23', '--kind', 'audit', '--type', 'certificate.issued', '--checkpoint-size', String(checkpointSize), '--json']);
    assert.equal(cli.code, 0, cli.stderr);
    const manifest = manifestSchema.parse(JSON.parse(readFileSync(join(out, BUNDLE_FILES.manifest), 'utf8')));
    assert.deepEqual(
      manifest.chains.map((c) => [c.agent, c.firstSeq, c.lastSeq, c.records, c.gaps]),
      [
        [kmr1.id, 1, 8, 4, [
          { from: 3, to: 4, reason: 'excluded-by-filter' },
          { from: 5, to: 5, reason: 'outside-date-range' },
          { from: 6, to: 6, reason: 'excluded-by-filter' },
        ]],
        [kmr2.id, 1, 3, 3, []],
        [other.id, 1, 3, 2, [{ from: 2, to: 2, reason: 'excluded-by-filter' }]],
      ],
    );
    assert.deepEqual(JSON.parse(cli.stdout).counts.byKind, { audit: 9, telemetry: 0, agent: 0 });
    const keys = keysFileSchema.parse(JSON.parse(readFileSync(join(out, BUNDLE_FILES.keys), 'utf8')));
    const otherKeys = keys.agents.find((a) => a.agent === other.id)!.keys;
    assert.deepEqual(otherKeys.map((k) => [k.fromSeq, k.kid, k.reason]), [[1, rotatedKids[0], 'enrolled'], [3, rotatedKids[1], 'rotated']], 'the key history carries the rotation');
  });

  it('writes RFC 4180 CSV with a BOM, CRLF, JSON Pointer field columns, the body as canonical JSON and the injection guard, which a CSV parser reads back', async () => {
    const out = join(makeTempDir(), 'b');
    assert.equal((await cliExport(out, ['--from', DAY, '--to', '2026-11-23', '--agent', kmr1.id, '--checkpoint-size', String(checkpointSize)])).code, 0);
    const raw = readFileSync(join(out, BUNDLE_FILES.csv), 'utf8');
    assert.ok(raw.startsWith(UTF8_BOM));
    assert.ok(raw.endsWith('\r\n'));
    const rows = parseCsv(raw, { bom: true, relax_column_count: false, record_delimiter: '\r\n' }) as string[][];
    const [header, ...data] = rows;
    assert.deepEqual(header, [
      'ledger_index', 'id', 'agent', 'epoch', 'seq', 'kind', 'type', 'at', 'received_at',
      '/body/byType/system.disk', '/body/byType/system.load', '/body/cert/no', '/body/cert/office', '/body/dropped', '/body/firstAt', '/body/formula',
      '/body/lastAt', '/body/list', '/body/load', '/body/neg', '/body/none', '/body/note', '/body/reason', '/body/user', 'body',
    ]);
    assert.equal(data.length, 7);
    const first = Object.fromEntries(header!.map((h, i) => [h, data[0]![i]]));
    assert.equal(first.agent, kmr1.id);
    assert.equal(first.seq, '1');
    assert.equal(first['/body/user'], 'Ram, "the" clerk');
    assert.equal(first['/body/cert/no'], 'C-1');
    assert.equal(first['/body/formula'], "'=SUM(A1)");
    assert.equal(first['/body/neg'], "'-5");
    assert.equal(first['/body/list'], '[1,2]');
    assert.equal(first['/body/note'], 'line1\nline2');
    assert.equal(first['/body/none'], '');
    assert.equal(first['/body/load'], '');
    const records = readFileSync(join(out, BUNDLE_FILES.records), 'utf8').trimEnd().split('\n');
    data.forEach((row, i) => assert.equal(row.at(-1), canonicalJson((JSON.parse(records[i]!) as { body: unknown }).body), 'the body column is the body\'s RFC 8785 text'));
    // Outside quoted fields, every line break is CRLF.
    assert.doesNotMatch(raw.replace(/"(?:[^"]|"")*"/g, ''), /[^\r]\n/);
  });

  it('writes a summary.html with the totals and an inline SVG chart, and no script or network reference', async () => {
    const out = join(makeTempDir(), 'b');
    assert.equal((await cliExport(out, ['--from', DAY, '--to', '2026-11-23', '--checkpoint-size', String(checkpointSize)])).code, 0);
    const html = readFileSync(join(out, BUNDLE_FILES.summary), 'utf8');
    assert.doesNotMatch(html, /<script/i);
    assert.doesNotMatch(html, /https?:\/\//i);
    assert.doesNotMatch(html, /<link|@import|url\(/i);
    assert.match(html, /id="total-records">13</);
    assert.match(html, /id="total-chains">3</);
    assert.match(html, /<svg[^>]*role="img"/);
    assert.match(html, new RegExp(`<td>${kmr1.id}</td>`));
  });

  it('records every export in the COLLECTOR chain with the actor, filter, checkpoint size and manifest hash', async () => {
    const before = collectorChain(collector.dir).filter((r) => r.type === 'report.exported').length;
    const { status } = await httpExport(filterBody());
    const out = join(makeTempDir(), 'b');
    assert.equal((await cliExport(out, ['--from', DAY, '--to', '2026-11-23', '--agent', 'AS-KMR-*', '--checkpoint-size', String(checkpointSize)])).code, 0);
    const exports = collectorChain(collector.dir).filter((r) => r.type === 'report.exported');
    assert.equal(exports.length, before + 2);
    const [viaHttp, viaCli] = exports.slice(-2);
    const filter = { from: `${DAY}T00:00:00.000Z`, to: '2026-11-23T00:00:00.000Z', agent: 'AS-KMR-*', kind: null, type: null };
    const manifestSha256 = sha256Hex(readFileSync(join(out, BUNDLE_FILES.manifest)));
    assert.deepEqual(viaHttp!.body, { by: `auditor:cag-audit-cell#${auditor.id}`, filter, checkpointSize, manifestSha256 });
    assert.equal(status.manifestSha256, manifestSha256);
    assert.match(String(viaCli!.body.by), /^cli:/);
    assert.deepEqual({ ...viaCli!.body, by: null }, { by: null, filter, checkpointSize, manifestSha256 });
  });

  it('shows a job only to the auditor token that started it, and refuses agents, admins and missing credentials', async () => {
    const { id } = await httpExport(filterBody());
    const otherAuditor = await humanToken(collector, 'auditor');
    const admin = await humanToken(collector, 'admin');
    assertProblem(await api(`/reports/${id}`, { token: otherAuditor.token }), 404, 'resource.not_found');
    assertProblem(await api(`/reports/${id}/bundle.tar.gz`, { token: otherAuditor.token }), 404, 'resource.not_found');
    assertProblem(await api(`/reports/${id}`, { token: admin.token }), 403, 'auth.forbidden');
    assertProblem(await api('/reports', { method: 'POST', token: admin.token, body: JSON.stringify(filterBody()) }), 403, 'auth.forbidden');
    assertProblem(await api('/reports', { method: 'POST', token: await kmr1.token(), body: JSON.stringify(filterBody()) }), 403, 'auth.forbidden');
    assertProblem(await api('/reports', { method: 'POST', body: JSON.stringify(filterBody()) }), 401, 'auth.invalid_token');
    assertProblem(await api(`/reports/${id}/bundle.tar.gz`), 401, 'auth.invalid_token');
  });

  it('answers bad filters with 400 problem+json and exports and records nothing', async () => {
    const chainBefore = collectorChain(collector.dir).length;
    const jobsBefore = existsSync(collector.container.reports.reportsDir) ? readdirSync(collector.container.reports.reportsDir).length : 0;
    const bad: unknown[] = [
      { from: '2026-11-23', to: DAY },
      { from: '2026-02-31', to: DAY },
      { from: '22/11/2026', to: '2026-11-23' },
      { from: `${DAY}T10:00:00`, to: '2026-11-23' },
      { from: DAY, to: '2026-11-23', kind: 'gossip' },
      { from: DAY, to: '2026-11-23', agent: 'as-*' },
      { from: DAY, to: '2026-11-23', extra: 1 },
      { from: DAY, to: '2026-11-23', checkpointSize: 10 ** 9 },
      { to: '2026-11-23' },
    ];
    for (const body of bad) assertProblem(await api('/reports', { method: 'POST', token: auditor.token, body: JSON.stringify(body) }), 400, 'request.invalid');
    assertProblem(await api('/reports', { method: 'POST', token: auditor.token, body: '{"from":' }), 400, 'request.malformed');
    assert.equal(collectorChain(collector.dir).length, chainBefore);
    assert.equal(existsSync(collector.container.reports.reportsDir) ? readdirSync(collector.container.reports.reportsDir).length : 0, jobsBefore);
  });

  it('refuses bad CLI input and a non-empty --out with one clear line, leaving nothing behind', async () => {
    const parent = makeTempDir();
    const out = join(parent, 'b');
    const badDate = await cliExport(out, ['--from', '2026-13-01', '--to', '2026-11-23']);
    assert.notEqual(badDate.code, 0);
    assert.match(badDate.stderr, /from: "2026-13-01" is not a calendar date/);
    assert.deepEqual(readdirSync(parent), []);
    mkdirSync(out);
    writeFileSync(join(out, 'x'), 'x');
    const nonEmpty = await cliExport(out, ['--from', DAY, '--to', '2026-11-23']);
    assert.notEqual(nonEmpty.code, 0);
    assert.match(nonEmpty.stderr, /exists and is not an empty directory/);
    assert.deepEqual(readdirSync(parent), ['b']);
    assert.deepEqual(readdirSync(out), ['x']);
    const badSize = await cliExport(join(parent, 'c'), ['--from', DAY, '--to', '2026-11-23', '--checkpoint-size', '99999999']);
    assert.notEqual(badSize.code, 0);
    assert.match(badSize.stderr, /beyond the latest checkpoint/);
    assert.doesNotMatch(badSize.stderr + badDate.stderr + nonEmpty.stderr, /\n\s+at /);
  });

  it('runs one export at a time: a second start meanwhile is 429 report.busy', async () => {
    const reports = collector.container.reports;
    const principal = { role: 'auditor' as const, tokenId: auditor.id, name: 'cag-audit-cell' };
    const request = { filter: { from: `${DAY}T00:00:00.000Z`, to: '2026-11-23T00:00:00.000Z', agent: null, kind: null, type: null }, checkpointSize };
    await reports.idle(); // an export an earlier test started must not count as the first one here
    const results = await Promise.allSettled([reports.start(request, principal), reports.start(request, principal)]);
    await reports.idle();
    assert.equal(results[0].status, 'fulfilled', results[0].status === 'rejected' ? String((results[0].reason as Error).message) : '');
    assert.equal(results[1].status, 'rejected');
    const err = (results[1] as PromiseRejectedResult).reason as { code: string; status: number; retryAfterSeconds: number };
    assert.equal(err.code, 'report.busy');
    assert.equal(err.status, 429);
    assert.ok(err.retryAfterSeconds > 0);
  });

  it('keeps finished jobs across a restart and marks a job interrupted by one as failed', async () => {
    const { id, gz } = await httpExport(filterBody());
    const interrupted = '0192f7b4-0000-7000-8000-00000000beef';
    await collector.container.store.write((tx) =>
      tx.putReportJob({
        id: interrupted, status: 'running', owner: auditor.id, actor: 'auditor:x', filterJson: canonicalJson({ from: at(0), to: at(23), agent: null, kind: null, type: null }), checkpointSize, createdAt: at(1),
        finishedAt: null, countsJson: null, manifestSha256: null, bundleBytes: null, problemJson: null, expiredAt: null, replica: null,
      }),
    );
    mkdirSync(join(collector.container.reports.reportsDir, `${interrupted}.partial`), { recursive: true });
    await collector.stop();
    collector = await startCollectorInProcess({ dir: collector.dir });
    assert.deepEqual(await collector.container.reports.recoverInterrupted(), [interrupted]);
    assert.equal(existsSync(join(collector.container.reports.reportsDir, `${interrupted}.partial`)), false);
    const failed = await api(`/reports/${interrupted}`, { token: auditor.token });
    assert.equal((failed.body as { status: string }).status, 'failed');
    assert.match((failed.body as { problem: { detail: string } }).problem.detail, /restarted/);
    assertProblem(await api(`/reports/${interrupted}/bundle.tar.gz`, { token: auditor.token }), 409, 'report.not_ready');
    const done = await fetch(`${collector.url}/api/v1/reports/${id}/bundle.tar.gz`, { headers: { authorization: `Bearer ${auditor.token}` } });
    assert.equal(done.status, 200);
    assert.ok(Buffer.from(await done.arrayBuffer()).equals(gz));
  });
});

describe('report export gap reasons from a damaged ledger', function () {
  this.timeout(60_000);

  it('names a seq the ledger lacks not-in-ledger', async function () {
    sqliteOnly(this, 'it deletes records from the SQLite file');
    const collector = await startCollectorInProcess();
    try {
      const agent = await enrolledAgent(collector, 'AS-GAP');
      await agent.sendOk(agent.batch([1, 2, 3, 4].map((h) => agent.next({ n: h }, 'audit', 'certificate.issued', at(h)))));
      const size = (await collector.container.ledger.latestCheckpoint())!.size;
      // Simulate records lost from the collector's database (what ledger verify exists to find).
      const db = new Database(join(collector.dir, 'collector.db'));
      db.exec(`DROP TRIGGER records_no_delete; DELETE FROM records WHERE agent = '${agent.id}' AND seq IN (2, 3)`);
      db.close();
      const dir = makeTempDir();
      const { keys, publicKeys, store } = collector.container;
      const { manifest } = await exportReport(
        { store, origin: collector.origin, reportKey: keys.receipt, publicKeys },
        { filter: { from: `${DAY}T00:00:00.000Z`, to: '2026-11-23T00:00:00.000Z', agent: agent.id, kind: null, type: null }, checkpointSize: size, dir },
      );
      assert.deepEqual(manifest.chains.map((c) => [c.firstSeq, c.lastSeq, c.records, c.gaps]), [[1, 4, 2, [{ from: 2, to: 3, reason: 'not-in-ledger' }]]]);
    } finally {
      await collector.stop();
    }
  });
});
