/**
 * Secrets and transport (OWASP API8): native TLS from *_FILE settings (a
 * self-signed certificate made here with openssl), TLS settings checked at start, and no
 * credential of any kind in the collector's log output.
 */
import { skipUnlessCi } from '../../helpers/skip.ts';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { API_PREFIX } from '../../../shared/protocol.ts';
import { makeTempDir, runCollectorCli, startCollectorInProcess, startCollectorProcess } from '../../helpers/collector-process.ts';
import { enrolledAgent, humanToken } from './security-support.ts';
import { request, TestAgent } from './test-agent.ts';

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A self-signed certificate for 127.0.0.1; the key file has mode 0600. */
function selfSigned(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
    { stdio: 'ignore' },
  );
  chmodSync(key, 0o600);
  return { cert, key };
}

function httpsGet(url: string, ca: string): Promise<{ status: number; headers: { [name: string]: unknown }; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('collector security: secrets and transport', function () {
  this.timeout(60_000);

  describe('native TLS', () => {
    before(function () {
      if (!hasOpenssl()) {
        skipUnlessCi(this, '`openssl` is not installed (apt-get install openssl), so no test certificate can be made (node:crypto cannot make X.509)');
      }
    });

    it('serves HTTPS with the certificate and key given as *_FILE paths, and sends HSTS', async () => {
      const dir = makeTempDir();
      const { cert, key } = selfSigned(dir);
      const collector = await startCollectorProcess({ env: { SAKSHYA_COLLECTOR_TLS_CERT_FILE: cert, SAKSHYA_COLLECTOR_TLS_KEY_FILE: key } });
      try {
        assert.match(collector.url, /^https:\/\//);
        const answer = await httpsGet(`${collector.url}${API_PREFIX}/keys`, readFileSync(cert, 'utf8'));
        assert.equal(answer.status, 200);
        assert.equal(answer.headers['strict-transport-security'], 'max-age=31536000');
        await assert.rejects(fetch(`${collector.url.replace('https:', 'http:')}/healthz`));
        assert.ok(!collector.logs.join('\n').includes(readFileSync(key, 'utf8').split('\n')[1]!), 'the key is never logged');
      } finally {
        await collector.stop();
      }
    });

    it('refuses to start with only one of the two TLS files, or with a TLS key others can read, naming the problem', async () => {
      const dir = makeTempDir();
      const { cert, key } = selfSigned(dir);
      const onlyCert = await runCollectorCli(['serve'], { SAKSHYA_COLLECTOR_DIR: join(dir, 'c1'), SAKSHYA_COLLECTOR_PORT: '0', SAKSHYA_COLLECTOR_TLS_CERT_FILE: cert });
      assert.equal(onlyCert.code, 2);
      assert.match(onlyCert.stderr, /SAKSHYA_COLLECTOR_TLS_CERT_FILE and SAKSHYA_COLLECTOR_TLS_KEY_FILE/);
      chmodSync(key, 0o644);
      const readable = await runCollectorCli(['serve'], { SAKSHYA_COLLECTOR_DIR: join(dir, 'c2'), SAKSHYA_COLLECTOR_PORT: '0', SAKSHYA_COLLECTOR_TLS_CERT_FILE: cert, SAKSHYA_COLLECTOR_TLS_KEY_FILE: key });
      assert.equal(readable.code, 1);
      assert.match(readable.stderr, /mode 0644/);
      const mismatched = await runCollectorCli(['serve'], { SAKSHYA_COLLECTOR_DIR: join(dir, 'c3'), SAKSHYA_COLLECTOR_PORT: '0', SAKSHYA_COLLECTOR_TLS_CERT_FILE: cert, SAKSHYA_COLLECTOR_TLS_KEY_FILE: join(dir, 'missing.pem') });
      assert.equal(mismatched.code, 2);
      assert.match(mismatched.stderr, /SAKSHYA_COLLECTOR_TLS_KEY_FILE: cannot read/);
    });
  });

  it('never writes an admin, auditor, enrollment or agent token to the log, through requests that succeed and fail', async () => {
    const collector = await startCollectorInProcess(); // log level debug: everything
    try {
      const admin = await humanToken(collector, 'admin');
      const auditor = await humanToken(collector, 'auditor');
      const secrets: string[] = [admin.token, auditor.token];

      const issued = await request(`${collector.url}${API_PREFIX}/agents/AS-LOG-001/enrollment-tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin.token}`, 'content-type': 'application/json' },
        body: '{}',
      });
      assert.equal(issued.status, 201, issued.text);
      const enrollmentToken = (issued.body as { token: string }).token;
      secrets.push(enrollmentToken);
      const fresh = new TestAgent('AS-LOG-001', collector.url, collector.origin);
      assert.equal((await fresh.enroll(enrollmentToken)).status, 200);
      assert.equal((await fresh.enroll(enrollmentToken)).status, 401, 'a reused token is refused (and logged as a refusal)');

      const agent = await enrolledAgent(collector, 'AS-LOG');
      const record = agent.next();
      const good = await agent.token();
      await agent.sendOk(agent.batch([record]), { token: good });
      const replayed = await agent.send(agent.batch(agent.records(1)), { token: good });
      assert.equal(replayed.status, 401);
      const forAnother = await agent.token({ audience: 'elsewhere/collector' });
      await agent.send(agent.batch(agent.records(1)), { token: forAnother });
      secrets.push(good, forAnother);

      const read = await request(`${collector.url}${API_PREFIX}/records/${record.id}`, { headers: { authorization: `Bearer ${auditor.token}` } });
      assert.equal(read.status, 200);
      await request(`${collector.url}${API_PREFIX}/agents/AS-LOG-001/revoke`, { method: 'POST', headers: { authorization: `Bearer ${auditor.token}` } });
      await request(`${collector.url}${API_PREFIX}/agents/AS-LOG-001/revoke`, { method: 'POST', headers: { authorization: `Bearer ${admin.token}` } });

      const cli = await runCollectorCli(['tokens', 'issue', '--role', 'admin', '--name', 'cli-admin'], { SAKSHYA_COLLECTOR_DIR: collector.dir, SAKSHYA_LOG_LEVEL: 'debug' });
      assert.equal(cli.code, 0, cli.stderr);
      const cliToken = cli.stdout.trim();

      const log = collector.logs.join('\n');
      assert.ok(log.length > 1000, 'the log has content');
      assert.ok(collector.logs.some((line) => line.includes('"status":401')), 'refusals were logged');
      const leaks = secrets.flatMap((secret) => {
        // The whole token, and for JWTs each signature and payload part on its own.
        const parts = secret.includes('.') ? [secret, ...secret.split('.').slice(1).filter((p) => p.length > 20)] : [secret];
        return parts.filter((part) => log.includes(part));
      });
      assert.deepEqual(leaks, [], 'no secret in the collector log');
      assert.ok(!cli.stderr.includes(cliToken), 'the CLI logs never hold the token it prints');
      assert.equal(secrets.length, 5);
    } finally {
      await collector.stop();
    }
  });
});
