/**
 * docker/ was written without a Docker engine to build or run it. These checks read the
 * Dockerfile, compose.yaml, .env.example and .dockerignore and hold them against the code they
 * package, so that a renamed bin, a new V8 flag in a shebang, a renamed environment variable or a
 * changed default port breaks a test instead of an operator's deployment. The health-check script
 * the images run is executed for real against HTTP servers on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { AGENT_ENV_NAMES } from '../../agent/config.ts';
import { COLLECTOR_ENV } from '../../collector/config.ts';
import { KEYS_DIR_NAME } from '../../collector/keys.ts';
import { DEFAULT_AGENT_PORT, DEFAULT_COLLECTOR_PORT } from '../../shared/protocol.ts';
import { nginxBinary } from '../helpers/nginx.ts';
import { skipBecause } from '../helpers/skip.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

// ---- a small Dockerfile reader: instructions with continuations joined, grouped by stage ----
interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  name: string;
  from: string;
  instructions: Instruction[];
}

function parseDockerfile(text: string): { args: Map<string, string>; stages: Stage[] } {
  const lines: string[] = [];
  let pending = '';
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw)) continue;
    if (/\\\s*$/.test(raw)) {
      pending += raw.replace(/\\\s*$/, ' ');
      continue;
    }
    const line = (pending + raw).trim();
    pending = '';
    if (line !== '') lines.push(line);
  }
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, op, rest] = /^(\S+)\s+(.*)$/.exec(line)!;
    const upper = op!.toUpperCase();
    if (upper === 'FROM') {
      const [, from, name] = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest!)!;
      stages.push({ name: name ?? `#${stages.length}`, from: from!, instructions: [] });
    } else if (stages.length === 0) {
      if (upper === 'ARG') {
        const [name, value] = rest!.split('=');
        args.set(name!, value ?? '');
      }
    } else {
      stages.at(-1)!.instructions.push({ op: upper, args: rest! });
    }
  }
  return { args, stages };
}

const dockerfile = parseDockerfile(read('docker/Dockerfile'));
const stage = (name: string): Stage => {
  const found = dockerfile.stages.find((s) => s.name === name);
  assert.ok(found, `docker/Dockerfile has no stage ${name}`);
  return found;
};
/** A target's instructions including those of the stages it is built FROM. */
function lineage(name: string): Instruction[] {
  const own = stage(name);
  const parent = dockerfile.stages.find((s) => s.name === own.from);
  return [...(parent ? lineage(parent.name) : []), ...own.instructions];
}
const last = (name: string, op: string) => lineage(name).filter((i) => i.op === op).at(-1);
const jsonArgs = (instruction: Instruction | undefined): string[] => {
  assert.ok(instruction, 'instruction missing');
  return JSON.parse(instruction.args) as string[];
};
function envOf(name: string): Map<string, string> {
  const env = new Map<string, string>();
  for (const i of lineage(name).filter((i) => i.op === 'ENV')) {
    for (const m of i.args.matchAll(/(\w+)=(\S+)/g)) env.set(m[1]!, m[2]!);
  }
  return env;
}

const pkg = JSON.parse(read('package.json')) as { bin: { [name: string]: string } };
/** Image target → the package bin it runs. */
const TARGETS = { collector: 'sakshya-collector', agent: 'sakshya-agent', verify: 'sakshya-verify' } as const;

/** `#!/usr/bin/env -S node --a --b` → ['--a', '--b']. */
function shebangFlags(sourceFile: string): string[] {
  const first = read(sourceFile).split('\n', 1)[0]!;
  const match = /^#!\/usr\/bin\/env (?:-S )?node((?: \S+)*)\s*$/.exec(first);
  assert.ok(match, `${sourceFile}: unexpected shebang ${first}`);
  return match[1]!.trim() === '' ? [] : match[1]!.trim().split(/\s+/);
}

/** What `node <flags> <script>` an ENTRYPOINT runs (after tini). */
function entrypointOf(target: string): { flags: string[]; script: string; args: string[] } {
  const argv = jsonArgs(last(target, 'ENTRYPOINT'));
  assert.deepEqual(argv.slice(0, 2), ['/usr/bin/tini', '--'], `${target}: tini is PID 1`);
  assert.equal(argv[2], 'node');
  const scriptAt = argv.findIndex((a, i) => i > 2 && !a.startsWith('-'));
  return { flags: argv.slice(3, scriptAt), script: argv[scriptAt]!, args: argv.slice(scriptAt + 1) };
}

// ---- .dockerignore, as Docker reads it: last matching pattern wins, a match on a parent counts ----
function dockerignored(path: string): boolean {
  const patterns = read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const toRegExp = (glob: string) =>
    new RegExp(
      '^' +
        glob
          .replace(/\/+$/, '')
          .split(/(\*\*\/|\*\*|\*|\?)/)
          .map((part) =>
            part === '**/' ? '(?:.*/)?' : part === '**' ? '.*' : part === '*' ? '[^/]*' : part === '?' ? '[^/]' : part.replace(/[.+^${}()|[\]\\]/g, '\\$&'),
          )
          .join('') +
        '$',
    );
  const parts = path.replace(/\/+$/, '').split('/');
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let excluded = false;
  for (const pattern of patterns) {
    const negated = pattern.startsWith('!');
    const re = toRegExp(negated ? pattern.slice(1) : pattern);
    if (prefixes.some((p) => re.test(p))) excluded = !negated;
  }
  return excluded;
}

describe('docker/ files', () => {
  describe('Dockerfile', () => {
    it('builds every stage on the official Debian (glibc) Node 24 image', () => {
      assert.equal(dockerfile.args.get('NODE_IMAGE'), 'node:24-bookworm-slim');
      const names = dockerfile.stages.map((s) => s.name);
      for (const s of dockerfile.stages) assert.ok(s.from === '${NODE_IMAGE}' || names.includes(s.from), `${s.name} is FROM ${s.from}`);
      for (const image of dockerfile.args.values()) assert.doesNotMatch(image, /alpine|musl/i);
      // A `# syntax=` line makes BuildKit pull a frontend image first, which an offline build host cannot.
      assert.doesNotMatch(read('docker/Dockerfile'), /^# *syntax=/m);
    });

    it('runs each target\u2019s package bin, with exactly the V8 flags of that bin\u2019s shebang', () => {
      for (const [target, bin] of Object.entries(TARGETS)) {
        const { flags, script } = entrypointOf(target);
        assert.equal(script, `/app/${pkg.bin[bin]}`, `${target} runs ${script}`);
        const source = pkg.bin[bin]!.replace(/^dist\//, '').replace(/\.js$/, '.ts');
        assert.deepEqual(flags, shebangFlags(source), `${target}: node flags vs the shebang of ${source}`);
      }
      // The agent's flag is the reason for this check (docs/operations.md); it must not vanish unnoticed.
      assert.ok(entrypointOf('agent').flags.includes('--max-semi-space-size=8'));
    });

    it('starts the long-running command by default and stops it with SIGTERM, which both handle', () => {
      assert.deepEqual(jsonArgs(last('collector', 'CMD')), ['serve']);
      assert.deepEqual(jsonArgs(last('agent', 'CMD')), ['run']);
      for (const target of ['collector', 'agent']) assert.equal(last(target, 'STOPSIGNAL')?.args, 'SIGTERM');
      assert.match(read('collector/bin/sakshya-collector.ts'), /process\.once\('SIGTERM'/);
      assert.match(read('agent/bin/sakshya-agent.ts'), /process\.once\('SIGTERM'/);
    });

    it('compiles the bins it runs: their sources are copied into the build stage and tsc emits them to dist/', () => {
      const tsconfig = JSON.parse(read('tsconfig.json')) as { compilerOptions: { outDir: string; rootDir: string }; include: string[] };
      assert.equal(tsconfig.compilerOptions.outDir, 'dist');
      assert.equal(tsconfig.compilerOptions.rootDir, '.');
      const copied = stage('build')
        .instructions.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))
        .flatMap((i) => i.args.split(/\s+/).slice(0, -1))
        .map((p) => p.replace(/\/$/, ''));
      for (const include of tsconfig.include) {
        const dir = include.split('/')[0]!;
        assert.ok(copied.includes(dir), `tsconfig includes ${include} but the build stage does not copy ${dir}/`);
      }
      for (const binPath of Object.values(pkg.bin)) {
        const source = binPath.replace(/^dist\//, '').replace(/\.js$/, '.ts');
        assert.ok(existsSync(join(ROOT, source)), `${source} missing`);
        assert.ok(copied.includes(source.split('/')[0]!), `${source} is not copied into the build stage`);
        // dist/ exists after `npm ci` (prepare) or `npm run build`; when it does, hold the real output to it.
        if (existsSync(join(ROOT, 'dist'))) assert.ok(existsSync(join(ROOT, binPath)), `${binPath} missing after the build`);
      }
    });

    it('names only paths that exist: every COPY source, every dist/ path in RUN, ENTRYPOINT and the symlinks', () => {
      for (const s of dockerfile.stages) {
        for (const i of s.instructions.filter((i) => i.op === 'COPY' && !i.args.startsWith('--'))) {
          for (const source of i.args.split(/\s+/).slice(0, -1)) {
            assert.ok(existsSync(join(ROOT, source)), `${s.name}: COPY ${source} does not exist`);
            assert.equal(dockerignored(source), false, `${s.name}: COPY ${source} is excluded by .dockerignore`);
          }
        }
      }
      const distPaths = new Set([...read('docker/Dockerfile').matchAll(/(?:\/app\/)?(dist\/[\w/.-]+\.js)/g)].map((m) => m[1]!));
      assert.ok(distPaths.size >= 3);
      for (const path of distPaths) assert.ok(Object.values(pkg.bin).includes(path), `${path} is not a package bin`);
      for (const [bin, path] of Object.entries(pkg.bin)) {
        assert.match(read('docker/Dockerfile'), new RegExp(`ln -s /app/${path.replace(/\./g, '\\.')} /usr/local/bin/${bin}\\b`), `${bin} on the PATH`);
      }
    });

    it('ships no source or tests: the runtime stage copies only dist/, production node_modules, package.json and the health check', () => {
      const copies = stage('runtime')
        .instructions.filter((i) => i.op === 'COPY')
        .map((i) => i.args.split(/\s+/).filter((a) => !a.startsWith('--')).join(' '));
      assert.deepEqual(copies.sort(), [
        '/src/dist/ dist/',
        '/src/node_modules/ node_modules/',
        'docker/healthcheck.js docker/healthcheck.js',
        'package.json ./',
      ]);
      assert.match(stage('runtime').instructions.find((i) => i.args.includes('node_modules/'))!.args, /--from=prod-deps/);
      assert.match(stage('prod-deps').instructions.find((i) => i.op === 'RUN')!.args, /npm ci --omit=dev/);
      for (const target of ['verify', 'agent', 'collector']) {
        assert.equal(stage(target).instructions.filter((i) => i.op === 'COPY' || i.op === 'ADD').length, 0, `${target} adds files`);
      }
    });

    it('installs with --ignore-scripts, which works because better-sqlite3 ships its glibc binaries', () => {
      for (const name of ['build', 'prod-deps']) assert.match(stage(name).instructions.find((i) => i.args.startsWith('npm ci'))!.args, /--ignore-scripts/);
      for (const platform of ['linux-x64', 'linux-arm64']) {
        assert.ok(existsSync(join(ROOT, `node_modules/better-sqlite3/prebuilds/${platform}.node`)), `better-sqlite3 has no ${platform} prebuild`);
      }
    });

    it('runs as the unprivileged uid 10001, which owns the data directories', () => {
      for (const target of Object.keys(TARGETS)) assert.equal(last(target, 'USER')?.args, '10001:10001', `${target} user`);
      const setup = stage('runtime').instructions.find((i) => i.args.includes('useradd'))!.args;
      assert.match(setup, /useradd [^&]*--uid 10001/);
      assert.match(setup, /install -d -o 10001 -g 10001 -m 0700 \/var\/lib\/sakshya-collector \/var\/lib\/sakshya-collector\/keys \/var\/lib\/sakshya-agent/);
    });

    it('declares a volume for each data directory, set through the variable the config reads', () => {
      assert.equal(envOf('collector').get(COLLECTOR_ENV.dir), '/var/lib/sakshya-collector');
      assert.equal(envOf('agent').get('SAKSHYA_AGENT_DIR'), '/var/lib/sakshya-agent');
      assert.deepEqual(jsonArgs(last('collector', 'VOLUME')), ['/var/lib/sakshya-collector']);
      assert.deepEqual(jsonArgs(last('agent', 'VOLUME')), ['/var/lib/sakshya-agent']);
      for (const target of ['collector', 'agent']) {
        for (const name of envOf(target).keys()) {
          if (name.startsWith('SAKSHYA_')) assert.ok([...Object.values(COLLECTOR_ENV), ...AGENT_ENV_NAMES].includes(name as never), `${target}: ENV ${name} is read by nothing`);
        }
      }
    });

    it('exposes the collector\u2019s default port and not the agent\u2019s loopback-only API', () => {
      assert.equal(last('collector', 'EXPOSE')?.args, String(DEFAULT_COLLECTOR_PORT));
      assert.equal(envOf('collector').get(COLLECTOR_ENV.host), '0.0.0.0');
      assert.equal(stage('agent').instructions.some((i) => i.op === 'EXPOSE'), false);
      assert.match(read('agent/local-api/app.ts'), /export const LOCAL_API_HOST = '127\.0\.0\.1'/);
    });

    it('health-checks the collector and the agent with docker/healthcheck.js, whose default ports are the protocol\u2019s', () => {
      for (const target of ['collector', 'agent']) {
        const check = last(target, 'HEALTHCHECK')!.args;
        assert.match(check, new RegExp(`CMD \\["node", "/app/docker/healthcheck\\.js", "${target}"\\]$`));
      }
      const script = read('docker/healthcheck.js');
      assert.match(script, new RegExp(`DEFAULT_COLLECTOR_PORT = ${DEFAULT_COLLECTOR_PORT};`));
      assert.match(script, new RegExp(`DEFAULT_AGENT_PORT = ${DEFAULT_AGENT_PORT};`));
    });
  });

  describe('compose.yaml and .env.example', () => {
    interface Service {
      build?: { context: string; dockerfile: string; target: string };
      image?: string;
      profiles?: string[];
      environment?: { [name: string]: string };
      volumes?: string[];
      ports?: string[];
      networks?: string[] | { [name: string]: { aliases?: string[] } | null };
      depends_on?: { [name: string]: { condition: string; required?: boolean } };
      secrets?: string[];
      healthcheck?: { test: string[] };
      stop_grace_period?: string;
      command?: string[];
    }
    const compose = parseYaml(read('docker/compose.yaml'), { merge: true }) as {
      services: { [name: string]: Service };
      volumes: object;
      networks: object;
      secrets: { [name: string]: { file: string } };
    };
    const services = Object.entries(compose.services);
    /** The services built from docker/Dockerfile (the others run official images). */
    const built = services.filter((entry): entry is [string, Service & { build: NonNullable<Service['build']> }] => entry[1].build !== undefined);
    const service = (name: string): Service => {
      const found = compose.services[name];
      assert.ok(found, `compose.yaml has no service ${name}`);
      return found;
    };
    const networksOf = (s: Service): string[] => (Array.isArray(s.networks) ? s.networks : Object.keys(s.networks ?? {}));
    const example = new Map(
      read('docker/.env.example')
        .split('\n')
        .filter((l) => /^\w+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
    );
    const REPLICAS = ['collector-1', 'collector-2'];
    const replicaEnv = (name: string) => service(name).environment ?? {};

    it('builds the collector, two replicas and two agents from this Dockerfile\u2019s targets, runs PostgreSQL and nginx from official images, all on one private network', () => {
      assert.deepEqual(built.map(([, s]) => s.build.target).sort(), ['agent', 'agent', 'collector', 'collector', 'collector']);
      for (const [name, s] of built) {
        assert.equal(s.build.context, '..', name);
        assert.equal(s.build.dockerfile, 'docker/Dockerfile', name);
        if (s.build.target === 'agent') assert.equal(s.depends_on?.collector?.condition, 'service_healthy', name);
      }
      assert.deepEqual(
        services.filter(([, s]) => s.build === undefined).map(([name, s]) => [name, s.image!.split(':')[0]]),
        [
          ['postgres', 'postgres'],
          ['collector-proxy', 'nginx'],
        ],
      );
      for (const [name, s] of services) assert.deepEqual(networksOf(s), ['sakshya'], name);
      assert.deepEqual(Object.keys(compose.networks), ['sakshya']);
    });

    it('runs one collector setup per profile: sqlite (the single collector) or postgres (database, replicas, nginx); the agents in both, .env.example choosing sqlite', () => {
      const profiles = Object.fromEntries(services.map(([name, s]) => [name, s.profiles ?? []]));
      assert.deepEqual(profiles, {
        collector: ['sqlite'],
        postgres: ['postgres'],
        'collector-1': ['postgres'],
        'collector-2': ['postgres'],
        'collector-proxy': ['postgres'],
        'agent-1': [],
        'agent-2': [],
      });
      assert.equal(example.get('COMPOSE_PROFILES'), 'sqlite');
      // The agents know the collector by one name: the sqlite collector's, or nginx's alias for it.
      const proxyNetworks = service('collector-proxy').networks as { [name: string]: { aliases?: string[] } };
      assert.deepEqual(proxyNetworks.sakshya?.aliases, ['collector']);
      for (const [name, s] of built.filter(([, s]) => s.build.target === 'agent')) {
        for (const dependency of ['collector', 'collector-proxy']) {
          assert.deepEqual(s.depends_on?.[dependency], { condition: 'service_healthy', required: false }, `${name} on ${dependency}`);
        }
      }
      assert.deepEqual(service('collector-proxy').ports, service('collector').ports, 'both setups publish the collector where the host proxy expects it');
    });

    it('passes each service only variables its config reads (a secret also as NAME_FILE)', () => {
      for (const [name, s] of built) {
        const known: readonly string[] = s.build.target === 'collector' ? Object.values(COLLECTOR_ENV) : AGENT_ENV_NAMES;
        for (const variable of Object.keys(s.environment ?? {})) {
          const read = known.includes(variable) || (variable.endsWith('_FILE') && known.includes(variable.slice(0, -'_FILE'.length)));
          assert.ok(read, `${name}: ${variable} is not read by the ${s.build.target}`);
        }
      }
    });

    it('mounts a named volume of its own on each data directory; the replicas share one keys volume, read-only on the second', () => {
      const dataMounts = built.map(([name, s]) => {
        const [volume, target] = s.volumes![0]!.split(':');
        assert.equal(target, jsonArgs(last(s.build.target, 'VOLUME'))[0], name);
        assert.ok(Object.hasOwn(compose.volumes, volume!), `${name}: ${volume} is not a named volume`);
        return volume;
      });
      assert.equal(new Set(dataMounts).size, built.length, 'two services share a data volume');
      const keysPath = `/var/lib/sakshya-collector/${KEYS_DIR_NAME}`;
      assert.deepEqual(service('collector-1').volumes, ['collector-1-data:/var/lib/sakshya-collector', `collector-keys:${keysPath}`]);
      assert.deepEqual(service('collector-2').volumes, ['collector-2-data:/var/lib/sakshya-collector', `collector-keys:${keysPath}:ro`]);
      assert.ok(Object.hasOwn(compose.volumes, 'collector-keys'));
      for (const [name, s] of built.filter(([n]) => !REPLICAS.includes(n))) assert.equal(s.volumes?.length, 1, name);
      // A fresh named volume takes the owner and mode of the image's directory it is mounted on.
      assert.match(stage('runtime').instructions.find((i) => i.args.includes('useradd'))!.args, new RegExp(`install -d -o 10001 -g 10001 -m 0700 [^&]*${keysPath.replace(/\//g, '\\/')}\\b`));
      assert.deepEqual(service('postgres').volumes, ['postgres-data:/var/lib/postgresql/data']);
    });

    it('gives the replicas one PostgreSQL database, the password only as a secret file that git and the build context never see', () => {
      const urls = REPLICAS.map((name) => replicaEnv(name).SAKSHYA_COLLECTOR_DATABASE!);
      assert.equal(urls[0], urls[1]);
      const url = new URL(urls[0]!);
      const pgEnv = service('postgres').environment!;
      assert.equal(url.protocol, 'postgres:');
      assert.equal(url.hostname, 'postgres', 'the database service by name');
      assert.equal(url.username, pgEnv.POSTGRES_USER);
      assert.equal(url.pathname, `/${pgEnv.POSTGRES_DB}`);
      assert.equal(url.password, '', 'no password in the URL');
      assert.equal(Object.hasOwn(pgEnv, 'POSTGRES_PASSWORD'), false);
      const secretPath = '/run/secrets/postgres-password';
      assert.equal(pgEnv.POSTGRES_PASSWORD_FILE, secretPath);
      for (const name of [...REPLICAS, 'postgres']) assert.deepEqual(service(name).secrets, ['postgres-password'], name);
      for (const name of REPLICAS) assert.equal(replicaEnv(name).SAKSHYA_COLLECTOR_DATABASE_PASSWORD_FILE, secretPath, name);
      const file = join('docker', compose.secrets['postgres-password']!.file);
      assert.equal(execFileSync('git', ['check-ignore', file], { cwd: ROOT, encoding: 'utf8' }).trim(), file);
      assert.equal(dockerignored(file), true);
      // A receipt promises a durable commit: the server must not be told otherwise.
      assert.doesNotMatch(service('postgres').command!.join(' '), /synchronous_commit=(off|local)|fsync=off/);
    });

    it('starts in order: PostgreSQL healthy, then the first replica (it makes the keys), then the second, then nginx', () => {
      assert.deepEqual(service('collector-1').depends_on, { postgres: { condition: 'service_healthy' } });
      assert.deepEqual(service('collector-2').depends_on, { postgres: { condition: 'service_healthy' }, 'collector-1': { condition: 'service_healthy' } });
      assert.deepEqual(service('collector-proxy').depends_on, { 'collector-1': { condition: 'service_healthy' }, 'collector-2': { condition: 'service_healthy' } });
      // The collector image has its own HEALTHCHECK (above); the official images get one here.
      assert.deepEqual(service('postgres').healthcheck?.test.slice(0, 2), ['CMD', 'pg_isready']);
      assert.match(service('collector-proxy').healthcheck!.test.join(' '), /^CMD curl -fsS -o \/dev\/null http:\/\/127\.0\.0\.1:(\d+)\/proxy-health$/);
    });

    it('puts nginx in front of exactly the two replicas with the deployment example\u2019s proxy settings, the client address set rather than appended', () => {
      assert.deepEqual(service('collector-proxy').volumes, ['./nginx.conf:/etc/nginx/conf.d/default.conf:ro']);
      const conf = read('docker/nginx.conf');
      const servers = [...conf.matchAll(/^\s*server (\S+?):(\d+)\b/gm)].map((m) => [m[1], Number(m[2])]);
      assert.deepEqual(servers, REPLICAS.map((name) => [name, DEFAULT_COLLECTOR_PORT]));
      const listen = Number(/^\s*listen (\d+);/m.exec(conf)![1]);
      assert.match(service('collector-proxy').ports![0]!, new RegExp(`:${listen}$`));
      assert.equal(listen, DEFAULT_COLLECTOR_PORT);
      const healthPort = /127\.0\.0\.1:(\d+)\/proxy-health/.exec(service('collector-proxy').healthcheck!.test.join(' '))![1];
      assert.equal(Number(healthPort), listen);
      assert.match(conf, /location = \/proxy-health \{[^}]*return 200/);
      const directives = (text: string) => {
        const location = /location \/ \{([\s\S]*?)\n\s*\}/.exec(text)!;
        return location[1]!
          .split('\n')
          .map((line) => line.trim())
          .filter((line) => line.startsWith('proxy_'));
      };
      const deployed = directives(read('deploy/nginx/sakshya-collectors.conf'));
      const forwardedFor = (d: string) => d.startsWith('proxy_set_header X-Forwarded-For');
      assert.deepEqual(directives(conf).filter((d) => !forwardedFor(d)), deployed.filter((d) => !forwardedFor(d)));
      assert.deepEqual(directives(conf).filter(forwardedFor), ['proxy_set_header X-Forwarded-For $remote_addr;']);
      assert.match(conf, /client_max_body_size 9m;/);
      for (const name of REPLICAS) assert.equal(replicaEnv(name).SAKSHYA_TRUST_PROXY, 'uniquelocal', name);
    });

    it('docker/nginx.conf is a configuration nginx accepts (nginx -t, the replicas\u2019 names pointed at 127.0.0.1)', function () {
      const binary = nginxBinary();
      if (binary === undefined) skipBecause(this, 'nginx is not installed here; the static checks above still ran');
      const dir = mkdtempSync(join(tmpdir(), 'sakshya-nginx-conf-'));
      try {
        const site = read('docker/nginx.conf')
          .replace(/server collector-\d:/g, 'server 127.0.0.1:')
          .replace(/listen (\d+);/, 'listen 127.0.0.1:$1;');
        writeFileSync(join(dir, 'site.conf'), site);
        writeFileSync(
          join(dir, 'nginx.conf'),
          `pid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nevents {}\nhttp {\n  access_log off;\n  client_body_temp_path ${dir};\n  proxy_temp_path ${dir};\n  fastcgi_temp_path ${dir};\n  uwsgi_temp_path ${dir};\n  scgi_temp_path ${dir};\n  include ${dir}/site.conf;\n}\n`,
        );
        const result = spawnSync(binary, ['-t', '-p', dir, '-c', join(dir, 'nginx.conf')], { encoding: 'utf8' });
        assert.equal(result.status, 0, result.stderr);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('points the agents at the collector\u2019s service name and port, and publishes that port', () => {
      const collector = compose.services.collector!;
      assert.match(collector.ports![0]!, new RegExp(`:${DEFAULT_COLLECTOR_PORT}$`));
      for (const [name, s] of built.filter(([, s]) => s.build.target === 'agent')) {
        assert.equal(s.environment?.SAKSHYA_COLLECTOR_URL, `http://collector:${DEFAULT_COLLECTOR_PORT}`, name);
      }
    });

    it('gives every collector longer to stop than its own grace period for requests in flight', () => {
      const graceMs = Number(/const SHUTDOWN_GRACE_MS = ([\d_]+);/.exec(read('collector/bin/sakshya-collector.ts'))![1]!.replace(/_/g, ''));
      for (const [name, s] of built.filter(([, s]) => s.build.target === 'collector')) {
        const [, seconds] = /^(\d+)s$/.exec(s.stop_grace_period!)!;
        assert.ok(Number(seconds) * 1000 > graceMs, `${name}: stop_grace_period ${seconds}s vs ${graceMs} ms`);
      }
    });

    it('takes every ${VARIABLE} from docker/.env, and .env.example sets each one, COMPOSE_PROFILES and nothing else', () => {
      const used = new Set([...read('docker/compose.yaml').matchAll(/\$\{(\w+)/g)].map((m) => m[1]!));
      assert.deepEqual([...example.keys()].sort(), [...used, 'COMPOSE_PROFILES'].sort());
    });

    it('commits no secrets: docker/.env and docker/secrets/ are ignored by git and kept out of the build context; the example holds none', () => {
      for (const path of ['docker/.env', 'docker/secrets/postgres-password']) {
        assert.equal(execFileSync('git', ['check-ignore', path], { cwd: ROOT, encoding: 'utf8' }).trim(), path);
      }
      for (const [name, value] of example) {
        assert.doesNotMatch(name, /TOKEN|SECRET|PASSWORD|PRIVATE|_KEY$|TLS/, `${name} in .env.example`);
        assert.doesNotMatch(value, /-----BEGIN|eyJ/, `${name} holds key or token material`);
      }
      for (const path of ['docker/.env', 'docker/secrets/postgres-password', 'node_modules/x', 'dist/x.js', '.git/config', 'x.db', 'agent/outbox.db-wal', 'bench/results/x.json', 'test/x.ts', 'docs/x.md', 'collector/keys/log.jwk']) {
        assert.equal(dockerignored(path), true, `${path} reaches the build context`);
      }
    });
  });

  describe('docker/README.md', () => {
    it('uses only commands the bins have', () => {
      const doc = read('docker/README.md');
      const sources = { collector: read('collector/bin/sakshya-collector.ts'), agent: read('agent/bin/sakshya-agent.ts') };
      const uses = [
        ...[...doc.matchAll(/(?:dc|docker) (?:run --rm(?: -T)?|exec) (collector(?:-\d)?|agent-\d)(?: sakshya-(?:collector|agent))? ([a-z-]+)/g)].map((m) => [m[1]!.startsWith('agent') ? 'agent' : 'collector', m[2]!] as const),
        ...[...doc.matchAll(/(?<=^|[\s`(])sakshya-(collector|agent) ([a-z][a-z-]+)/gm)].map((m) => [m[1] as 'collector' | 'agent', m[2]!] as const),
      ];
      assert.ok(uses.length >= 8, `found ${uses.length} command uses`);
      for (const [bin, command] of uses) {
        assert.match(sources[bin], new RegExp(`\\.command\\('${command}'\\)`), `docker/README.md: sakshya-${bin} has no command ${command}`);
      }
    });
  });

  describe('docker/healthcheck.js', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'sakshya-healthcheck-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    async function withServer<T>(handler: (req: IncomingMessage, res: ServerResponse) => void, fn: (port: number) => Promise<T>): Promise<T> {
      const server = createServer(handler);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        return await fn((server.address() as AddressInfo).port);
      } finally {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    }

    function runCheck(role: string, env: { [name: string]: string }): Promise<number | null> {
      const child = spawn(process.execPath, [join(ROOT, 'docker/healthcheck.js'), role], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: 'ignore' });
      return new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    }

    it('collector: healthy while /healthz answers 200 on the configured port, unhealthy on 503 or nothing listening', async () => {
      let status = 200;
      const paths: string[] = [];
      await withServer(
        (req, res) => {
          paths.push(req.url!);
          res.writeHead(status).end();
        },
        async (port) => {
          const env = { SAKSHYA_COLLECTOR_HOST: '0.0.0.0', SAKSHYA_COLLECTOR_PORT: String(port) };
          assert.equal(await runCheck('collector', env), 0);
          status = 503;
          assert.equal(await runCheck('collector', env), 1);
        },
      );
      assert.deepEqual(paths, ['/healthz', '/healthz']);
      const closed = await withServer((_req, res) => res.end(), async (port) => port);
      assert.equal(await runCheck('collector', { SAKSHYA_COLLECTOR_PORT: String(closed) }), 1);
    });

    it('agent: healthy only when /v1/status accepts the local token from the agent directory and says the agent is delivering', async () => {
      const token = 'a'.repeat(43);
      writeFileSync(join(dir, 'local-token'), `${token}\n`, { mode: 0o600 });
      let delivery: unknown = { delivering: true, problems: [] };
      await withServer(
        (req, res) => {
          if (req.url === '/v1/status' && req.headers.authorization === `Bearer ${token}`) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ pending: 0, delivery }));
          else res.writeHead(401).end();
        },
        async (port) => {
          assert.equal(await runCheck('agent', { SAKSHYA_AGENT_DIR: dir, SAKSHYA_AGENT_PORT: String(port) }), 0);
          // An agent that serves but has not delivered for hours is unhealthy.
          delivery = { delivering: false, problems: ['3 record(s) pending; the oldest has waited 600 min (limit 60 min)'] };
          assert.equal(await runCheck('agent', { SAKSHYA_AGENT_DIR: dir, SAKSHYA_AGENT_PORT: String(port) }), 1);
          delivery = undefined;
          assert.equal(await runCheck('agent', { SAKSHYA_AGENT_DIR: dir, SAKSHYA_AGENT_PORT: String(port) }), 1);
          delivery = { delivering: true, problems: [] };
          writeFileSync(join(dir, 'local-token'), `${'b'.repeat(43)}\n`, { mode: 0o600 });
          assert.equal(await runCheck('agent', { SAKSHYA_AGENT_DIR: dir, SAKSHYA_AGENT_PORT: String(port) }), 1);
          assert.equal(await runCheck('agent', { SAKSHYA_AGENT_DIR: join(dir, 'not-initialised'), SAKSHYA_AGENT_PORT: String(port) }), 1);
        },
      );
    });
  });
});
