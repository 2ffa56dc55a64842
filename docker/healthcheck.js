// Container HEALTHCHECK for the Sakshya images (docker/Dockerfile): `node healthcheck.js collector|agent`.
// Exit 0 healthy, 1 not. Plain JavaScript, not TypeScript: the image carries no source and no
// compiler, and this file is not part of the npm package's build.
//
// collector: GET /healthz on this container's loopback (liveness: 200 while the process serves;
//            /readyz is for load balancers, a full disk must not get the collector restarted).
// agent:     GET /v1/status on 127.0.0.1 (the local API binds nowhere else) with the local token
//            from the agent directory; healthy if it answers 200 (the process serves, its outbox
//            answers) AND its `delivery.delivering` is true (`sakshya-agent status --check`: no
//            record pending over an hour, circuit closed, last batch not refused, no witness alarm).
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';

// Must equal DEFAULT_COLLECTOR_PORT / DEFAULT_AGENT_PORT in shared/protocol.ts (test/unit/docker-files.test.ts).
const DEFAULT_COLLECTOR_PORT = 7400;
const DEFAULT_AGENT_PORT = 7410;
const TIMEOUT_MS = 4000;

function fail(message) {
  process.stderr.write(`healthcheck: ${message}\n`);
  process.exit(1);
}

function portFrom(name, fallback) {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`${name}=${text} is not a fixed port; the healthcheck cannot find the process`);
  return port;
}

/** The address to reach a collector listening on `host` from inside its own container. */
function loopbackFor(host) {
  if (host === undefined || host === '' || host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host;
}

function get({ tls, host, port, path, headers, judge }) {
  const request = tls ? httpsRequest : httpRequest;
  // The collector's own certificate is for its public name, not for 127.0.0.1; this probe only
  // asks whether the process answers, it sends nothing secret.
  const req = request({ host, port, path, headers, method: 'GET', timeout: TIMEOUT_MS, rejectUnauthorized: false }, (res) => {
    if (res.statusCode !== 200) {
      res.resume();
      fail(`GET ${path} answered ${res.statusCode}`);
    }
    if (judge === undefined) {
      res.resume();
      process.exit(0);
    }
    const chunks = [];
    res.on('data', (chunk) => chunks.push(chunk));
    res.on('end', () => {
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        fail(`GET ${path} answered 200 without JSON`);
      }
      const problem = judge(body);
      if (problem !== undefined) fail(problem);
      process.exit(0);
    });
  });
  req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
  req.on('error', (err) => fail(`GET ${path} on ${host}:${port}: ${err.message}`));
  req.end();
}

const role = process.argv[2];
if (role === 'collector') {
  const env = process.env;
  const tls = Boolean(env.SAKSHYA_COLLECTOR_TLS_CERT || env.SAKSHYA_COLLECTOR_TLS_CERT_FILE);
  get({ tls, host: loopbackFor(env.SAKSHYA_COLLECTOR_HOST), port: portFrom('SAKSHYA_COLLECTOR_PORT', DEFAULT_COLLECTOR_PORT), path: '/healthz', headers: {} });
} else if (role === 'agent') {
  const dir = process.env.SAKSHYA_AGENT_DIR;
  if (!dir) fail('SAKSHYA_AGENT_DIR is not set');
  let token;
  try {
    token = readFileSync(join(dir, 'local-token'), 'utf8').trim();
  } catch (err) {
    fail(`cannot read ${join(dir, 'local-token')} (${err.code ?? err.message}); has \`sakshya-agent init\` run?`);
  }
  get({
    tls: false,
    host: '127.0.0.1',
    port: portFrom('SAKSHYA_AGENT_PORT', DEFAULT_AGENT_PORT),
    path: '/v1/status',
    headers: { authorization: `Bearer ${token}` },
    judge: (status) => (status?.delivery?.delivering === true ? undefined : `not delivering: ${(status?.delivery?.problems ?? ['no delivery verdict']).join('; ')}`),
  });
} else {
  fail('usage: node healthcheck.js collector|agent');
}
