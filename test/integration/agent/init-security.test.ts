/**
 * `sakshya-agent init` and the two secrets of enrollment: the one-time token (kept off the
 * command line, in a file only its owner reads) and the collector's keys the agent pins (never
 * fetched over plain http across a network unless the operator says the path is trusted).
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAgentCli } from '../../helpers/agent-process.ts';
import { FakeCollector } from '../../unit/agent/support/fake-collector.ts';

const AGENT = 'AS-INIT-001';

/** This host's first non-loopback IPv4 address, if it has one. */
function externalIpv4(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((address) => address !== undefined && address.family === 'IPv4' && !address.internal)?.address;
}

/** Stands in for whoever listens on the network path: records every request body it is sent. */
async function listener(host: string): Promise<{ server: Server; url: string; seen: string[] }> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      seen.push(body);
      res.writeHead(404).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return { server, url: `http://${host}:${(server.address() as AddressInfo).port}`, seen };
}

describe('sakshya-agent init: collector transport and enrollment token', function () {
  this.timeout(60_000);
  let collector: FakeCollector;
  let root: string;

  beforeEach(async () => {
    collector = await FakeCollector.start();
    root = mkdtempSync(join(tmpdir(), 'sakshya-agent-init-'));
  });
  afterEach(async () => {
    await collector.stop();
    rmSync(root, { recursive: true, force: true });
  });

  function tokenFile(content: string, mode = 0o600): string {
    const path = join(root, `token-${Math.random().toString(36).slice(2)}`);
    writeFileSync(path, content, { mode });
    chmodSync(path, mode);
    return path;
  }

  it('init refuses a plain http collector URL that is not loopback', async () => {
    const address = externalIpv4();
    const onPath = address ? await listener(address) : undefined;
    try {
      const url = onPath?.url ?? 'http://192.0.2.1:7400';
      const dir = join(root, 'agent');
      const token = collector.issueToken(AGENT);
      const refused = await runAgentCli(['init', '--collector', url, '--agent', AGENT, '--token-file', tokenFile(token), '--dir', dir], {
        SAKSHYA_AGENT_CONNECT_TIMEOUT_MS: '500',
      });
      assert.equal(refused.code, 1, refused.stderr);
      assert.match(refused.stderr, /refusing plain http to .*, which is not loopback.*pass --insecure-http/);
      assert.equal(existsSync(dir), false, 'nothing written');
      assert.deepEqual(onPath?.seen ?? [], [], 'nothing sent: the token never crossed the network');

      if (onPath) {
        // The operator's explicit --insecure-http lets it through (here to a listener that is no collector).
        const allowed = await runAgentCli(['init', '--collector', url, '--agent', AGENT, '--token-file', tokenFile(token), '--dir', dir, '--insecure-http']);
        assert.equal(allowed.code, 1);
        assert.match(allowed.stderr, /enrollment refused by the collector \(404\)/);
        assert.match(allowed.stderr, /--insecure-http: enrolling over plain http/);
        assert.equal(onPath.seen.length, 1);
      }
    } finally {
      onPath?.server.close();
    }
  });

  it('init accepts plain http to loopback (127.0.0.0/8, ::1, localhost) without --insecure-http', async () => {
    for (const url of ['http://127.0.0.9:9', 'http://[::1]:9', 'http://localhost:9']) {
      const tried = await runAgentCli(['init', '--collector', url, '--agent', AGENT, '--token-file', tokenFile(collector.issueToken(AGENT)), '--dir', root]);
      assert.equal(tried.code, 1, url);
      assert.match(tried.stderr, /cannot reach the collector at/, url);
    }
    const https = await runAgentCli(['init', '--collector', 'https://127.0.0.1:9', '--agent', AGENT, '--token-file', tokenFile(collector.issueToken(AGENT)), '--dir', root]);
    assert.match(https.stderr, /cannot reach the collector at https:\/\/127\.0\.0\.1:9/);
  });

  it('init reads the enrollment token from --token-file or SAKSHYA_ENROLL_TOKEN_FILE, trimmed', async () => {
    const fromFlag = await runAgentCli(['init', '--collector', collector.url, '--agent', AGENT, '--token-file', tokenFile(`  ${collector.issueToken(AGENT)}\n\n`), '--dir', join(root, 'a')]);
    assert.equal(fromFlag.code, 0, fromFlag.stderr);
    const other = 'AS-INIT-002';
    const fromEnv = await runAgentCli(['init', '--collector', collector.url, '--agent', other, '--dir', join(root, 'b')], {
      SAKSHYA_ENROLL_TOKEN_FILE: tokenFile(`${collector.issueToken(other)}\n`),
    });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    assert.deepEqual([JSON.parse(fromFlag.stdout).agent, JSON.parse(fromEnv.stdout).agent], [AGENT, other]);
    assert.doesNotMatch(fromFlag.stderr + fromEnv.stderr, /--token:|process list/, 'no warning for a token file');
  });

  it('init reads the enrollment token piped to --token-file /dev/stdin', async () => {
    const piped = await runAgentCli(['init', '--collector', collector.url, '--agent', AGENT, '--token-file', '/dev/stdin', '--dir', join(root, 'agent')], {}, {
      stdin: `${collector.issueToken(AGENT)}\n`,
    });
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(JSON.parse(piped.stdout).agent, AGENT);
  });

  it('an enrollment token file readable by other users is refused, and the token is not spent', async () => {
    const token = collector.issueToken(AGENT);
    const dir = join(root, 'agent');
    const readable = tokenFile(token, 0o644);
    const refused = await runAgentCli(['init', '--collector', collector.url, '--agent', AGENT, '--token-file', readable, '--dir', dir]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, new RegExp(`--token-file: ${readable} has mode 0644; an enrollment token must not be readable by group or others \\(chmod 600 ${readable}\\)`));
    assert.equal(existsSync(dir), false);
    assert.ok(collector.tokens.has(token), 'the token was not sent, so it is still good');
    chmodSync(readable, 0o600);
    const enrolled = await runAgentCli(['init', '--collector', collector.url, '--agent', AGENT, '--token-file', readable, '--dir', dir]);
    assert.equal(enrolled.code, 0, enrolled.stderr);
  });

  it('init refuses an empty token file, no token source, and two token sources at once', async () => {
    const dir = join(root, 'agent');
    const token = collector.issueToken(AGENT);
    const base = ['init', '--collector', collector.url, '--agent', AGENT, '--dir', dir];
    const empty = await runAgentCli([...base, '--token-file', tokenFile(' \n')]);
    assert.match(empty.stderr, /--token-file: .* is empty/);
    const none = await runAgentCli(base);
    assert.match(none.stderr, /no enrollment token: pass --token-file FILE \(or set SAKSHYA_ENROLL_TOKEN_FILE\)/);
    const both = await runAgentCli([...base, '--token', token, '--token-file', tokenFile(token)]);
    assert.match(both.stderr, /the enrollment token is given twice \(--token and --token-file\)/);
    const envToo = await runAgentCli([...base, '--token', token], { SAKSHYA_ENROLL_TOKEN_FILE: tokenFile(token) });
    assert.match(envToo.stderr, /given twice \(--token and SAKSHYA_ENROLL_TOKEN_FILE\)/);
    for (const result of [empty, none, both, envToo]) assert.equal(result.code, 1, result.stderr);
    assert.equal(existsSync(dir), false);
    assert.ok(collector.tokens.has(token));
  });

  it('init still takes --token for compatibility, with a warning that the token shows in ps and shell history', async () => {
    const result = await runAgentCli(['init', '--collector', collector.url, '--agent', AGENT, '--token', collector.issueToken(AGENT), '--dir', join(root, 'agent')]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /given with --token: other users can see it in the process list and the shell history keeps it; prefer --token-file/);
  });
});
