/**
 * A real agent process tells the collector its version: every request it makes carries
 * `User-Agent: sakshya-agent/<version>` (seen by a pass-through server in front of the
 * collector), and its batches carry `agentVersion`, which the collector's fleet view and
 * `agents list` then show.
 */
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fleetAgentDetailSchema } from '../../../shared/api-schemas.ts';
import { packageVersion } from '../../../shared/package-version.ts';
import { API_PREFIX } from '../../../shared/protocol.ts';
import { initAgent, runAgentCli } from '../../helpers/agent-process.ts';
import { makeTempDir, runCollectorCli, startCollectorInProcess, type InProcessCollector } from '../../helpers/collector-process.ts';

/** Forwards every request to `target` unchanged and remembers its method, path and User-Agent. */
async function startRecordingProxy(target: string): Promise<{ url: string; seen: { method: string; path: string; userAgent: string | undefined }[]; stop(): Promise<void> }> {
  const upstream = new URL(target);
  const seen: { method: string; path: string; userAgent: string | undefined }[] = [];
  const server: Server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', path: (req.url ?? '').split('?')[0]!, userAgent: req.headers['user-agent'] });
    const forward = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host } }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    forward.on('error', () => {
      res.writeHead(502);
      res.end();
    });
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('agent version reporting', function () {
  this.timeout(60_000);
  let collector: InProcessCollector;
  let proxy: Awaited<ReturnType<typeof startRecordingProxy>>;

  before(async () => {
    collector = await startCollectorInProcess();
    proxy = await startRecordingProxy(collector.url);
  });
  after(async () => {
    await proxy?.stop();
    await collector?.stop();
  });

  it('sends sakshya-agent/<version> as the User-Agent of every request, and the collector shows the version its batches report', async () => {
    const id = 'AS-VER-001';
    const { token } = await collector.container.enrollment.issueToken(id);
    const { dir } = await initAgent({ collectorUrl: proxy.url, agentId: id, token, dir: join(makeTempDir('sakshya-agent-version-'), id) });
    const env = { SAKSHYA_AGENT_DIR: dir };
    const emitted = await runAgentCli(['emit', '--kind', 'audit', '--type', 'certificate.issued', '--body', '{"n":1}'], env);
    assert.equal(emitted.code, 0, emitted.stderr);
    const synced = await runAgentCli(['sync', '--once'], env);
    assert.equal(synced.code, 0, synced.stderr);

    const version = packageVersion();
    const paths = proxy.seen.map((r) => `${r.method} ${r.path}`);
    assert.ok(paths.includes(`POST ${API_PREFIX}/enroll`) && paths.includes(`POST ${API_PREFIX}/batches`), paths.join(', '));
    assert.deepEqual([...new Set(proxy.seen.map((r) => r.userAgent))], [`sakshya-agent/${version}`], 'every request, enrollment and witness reads included');

    const admin = await collector.container.apiTokens.issue('admin', 'Asha Admin', 3600, 'cli:test');
    const answer = await fetch(`${collector.url}${API_PREFIX}/agents/${id}`, { headers: { authorization: `Bearer ${admin.token}` } });
    assert.equal(answer.status, 200);
    const detail = fleetAgentDetailSchema.parse(await answer.json());
    assert.equal(detail.version, version);
    assert.ok(detail.highestSeq >= 1 && detail.lastSeenAt !== null);

    const listed = await runCollectorCli(['agents', 'list'], { SAKSHYA_COLLECTOR_DIR: collector.dir });
    assert.equal(listed.code, 0, listed.stderr);
    const line = listed.stdout.split('\n').find((l) => l.startsWith(`${id}\t`));
    assert.match(line ?? '', new RegExp(`\\tversion ${version.replace(/[.+]/g, '\\$&')}\\t`));
    const json = JSON.parse((await runCollectorCli(['agents', 'list', '--json'], { SAKSHYA_COLLECTOR_DIR: collector.dir })).stdout) as { agent: string; version: string | null }[];
    assert.equal(json.find((a) => a.agent === id)?.version, version);
  });
});
