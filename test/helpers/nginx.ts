/**
 * A real nginx in front of collector replicas, for end-to-end tests: its own temp directory,
 * 127.0.0.1 and a free port, one process (`master_process off`, so it runs as whoever runs the
 * tests), and the proxy directives of deploy/nginx/sakshya-collectors.conf (a test holds the two
 * together).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeTempDir, REPO_ROOT } from './collector-process.ts';

export const NGINX_CANDIDATES = ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx'];

export function nginxBinary(): string | undefined {
  const onPath = spawnSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).stdout.trim();
  return onPath !== '' ? onPath : NGINX_CANDIDATES.find((path) => existsSync(path));
}

/** The `location /` proxy directives of the deployment example, as the test config uses them. */
export function exampleProxyDirectives(): string[] {
  const text = readFileSync(join(REPO_ROOT, 'deploy/nginx/sakshya-collectors.conf'), 'utf8');
  const location = /location \/ \{([\s\S]*?)\n\s*\}/.exec(text);
  if (!location) throw new Error('deploy/nginx/sakshya-collectors.conf has no location / block');
  return location[1]!
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('proxy_'));
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface NginxProxy {
  url: string;
  port: number;
  dir: string;
  /** Lines of nginx's access log: `status upstream_addr upstream_status request`. */
  accessLog(): string[];
  stop(): Promise<void>;
}

export async function startNginx(options: { upstreams: readonly number[]; binary: string }): Promise<NginxProxy> {
  const dir = makeTempDir('sakshya-nginx-');
  for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, sub));
  const port = await freePort();
  const servers = options.upstreams.map((p) => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=2s;`).join('\n');
  const conf = `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  log_format upstreams '$status $upstream_addr $upstream_status "$request"';
  access_log ${dir}/access.log upstreams;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  client_max_body_size 9m;
  upstream sakshya_collectors {
${servers}
    keepalive 16;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://sakshya_collectors;
      ${exampleProxyDirectives().filter((d) => !d.startsWith('proxy_pass')).join('\n      ')}
    }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child: ChildProcess = spawn(options.binary, ['-p', dir, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}): ${stderr}${readIfExists(join(dir, 'error.log'))}`);
    try {
      await fetch(`${url}/healthz`);
      break;
    } catch {
      if (i > 100) throw new Error(`nginx did not listen on ${port}: ${stderr}`);
      await sleep(50);
    }
  }
  return {
    url,
    port,
    dir,
    accessLog: () => readIfExists(join(dir, 'access.log')).split('\n').filter(Boolean),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      await done;
    },
  };
}

function readIfExists(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
