/**
 * The same records over the same capped link with rsyslog and RELP, for comparison.
 *
 *   this process ──imtcp──► rsyslogd (sender: action queue, disk-assisted, omrelp)
 *     ──► fault proxy (same bandwidth cap) ──► rsyslogd (receiver: imrelp → omfile)
 *
 * Two unprivileged rsyslogd processes in the foreground (`-n -f conf -i pidfile`) with generated
 * configs in a temp directory: no system sockets (no imuxsock, no imklog), no /var/log, loopback
 * ports only. The sender's omrelp action has a disk-assisted LinkedList queue (`queue.filename`),
 * so a backlog larger than its memory part spills to disk as a real forwarder's would. The queue's
 * watermarks, disk space and enqueue timeout are set explicitly: with only `queue.filename` (the
 * other settings at rsyslog 8.2302's defaults) the queue never went to disk in our runs at this
 * link speed and 7 of 2,000 messages were dropped without a word — not a fair rsyslog. Each JSON
 * line (one record) is one syslog message; the templates forward and store `%rawmsg%`, the line
 * exactly as fed. The clock runs from the first line fed until the receiver's file holds every
 * line; then the file is compared with what was fed.
 *
 * RELP has no compression of its own (only TLS compression, off by default and removed from
 * current TLS libraries), so these are plain RELP frames: the fair setting to compare with.
 * Needs Debian's `rsyslog` and `rsyslog-relp`; the bench does not install them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startFaultProxy } from '../test/helpers/fault-proxy.ts';
import type { Cleanup } from './lib/cleanup.ts';
import { nowMs } from './lib/stats.ts';

export interface RsyslogOptions {
  bytesPerSecond: number;
  timeoutMs: number;
}

export type RsyslogResult =
  | { skipped: string }
  | {
      version: string;
      records: number;
      rawJsonBytes: number;
      seconds: number;
      recordsPerSecond: number;
      bytesToReceiver: number;
      bytesToSender: number;
      wireBytesPerRecord: number;
      /** bytesToReceiver ÷ cap. */
      limitSeconds: number;
      queue: string;
      compression: string;
    };

export const RSYSLOG_INSTALL_HINT = 'apt-get install rsyslog rsyslog-relp';

const MODULE_DIRS = ['/usr/lib/x86_64-linux-gnu/rsyslog', '/usr/lib/aarch64-linux-gnu/rsyslog', '/usr/lib/rsyslog', '/usr/lib64/rsyslog'];

function findRsyslogd(): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin'].filter((dir) => dir.startsWith('/'));
  return dirs.map((dir) => join(dir, 'rsyslogd')).find((path) => existsSync(path));
}

/** Why the comparison cannot run here, or undefined if rsyslogd and the RELP modules are present. */
export function rsyslogMissing(): string | undefined {
  if (process.platform !== 'linux') return 'rsyslog comparison runs on Linux only';
  if (!findRsyslogd()) return `rsyslogd not found (${RSYSLOG_INSTALL_HINT})`;
  const relp = MODULE_DIRS.some((dir) => existsSync(join(dir, 'imrelp.so')) && existsSync(join(dir, 'omrelp.so')));
  if (!relp) return `the RELP modules imrelp/omrelp are not installed (${RSYSLOG_INSTALL_HINT})`;
  return undefined;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface Rsyslogd {
  child: ChildProcess;
  stderr: () => string;
  stop(): Promise<void>;
}

function startRsyslogd(binary: string, dir: string, name: string, config: string, cleanup: Cleanup): Rsyslogd {
  const conf = join(dir, `${name}.conf`);
  mkdirSync(join(dir, `${name}-work`), { recursive: true });
  writeFileSync(conf, config);
  const child = spawn(binary, ['-n', '-f', conf, '-i', join(dir, `${name}.pid`)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    if (stderr.length < 20_000) stderr += chunk;
    if (process.env.SAKSHYA_BENCH_DEBUG) process.stderr.write(`[${name}] ${chunk}`);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    }
  };
  cleanup.defer(`stop rsyslogd (${name})`, stop);
  return { child, stderr: () => stderr, stop };
}

/** Connects to 127.0.0.1:port, retrying while nothing listens yet. */
async function connectWhenListening(port: number, daemon: Rsyslogd, timeoutMs: number) {
  const deadline = nowMs() + timeoutMs;
  for (;;) {
    if (daemon.child.exitCode !== null) throw new Error(`rsyslogd exited (${daemon.child.exitCode}) before listening:\n${daemon.stderr()}`);
    try {
      return await new Promise<ReturnType<typeof createConnection>>((resolve, reject) => {
        const socket = createConnection({ host: '127.0.0.1', port }, () => resolve(socket));
        socket.once('error', reject);
      });
    } catch {
      if (nowMs() > deadline) throw new Error(`rsyslogd did not listen on ${port} within ${timeoutMs} ms:\n${daemon.stderr()}`);
      await sleep(50);
    }
  }
}

/** Lines in `file` so far (0 if it does not exist yet); cheap enough to poll at this rate. */
function lineCount(file: string): number {
  if (!existsSync(file) || statSync(file).size === 0) return 0;
  const text = readFileSync(file);
  let lines = 0;
  for (let i = text.indexOf(10); i !== -1; i = text.indexOf(10, i + 1)) lines++;
  return lines;
}

export async function benchRsyslogRelp(lines: readonly string[], options: RsyslogOptions, cleanup: Cleanup): Promise<RsyslogResult> {
  const missing = rsyslogMissing();
  if (missing) return { skipped: missing };
  const binary = findRsyslogd()!;
  const version = await new Promise<string>((resolve) => {
    const child = spawn(binary, ['-v'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.once('close', () => resolve((out.split('\n')[0] ?? 'rsyslogd').replace(/\s+compiled with:.*$/, '').replace(/\s+/g, ' ').trim()));
  });

  const dir = cleanup.tempDir('sakshya-bench-rsyslog-');
  const received = join(dir, 'received.jsonl');
  const [relpPort, tcpPort] = [await freePort(), await freePort()];
  const receiver = startRsyslogd(
    binary,
    dir,
    'receiver',
    `global(workDirectory="${join(dir, 'receiver-work')}" maxMessageSize="64k")
module(load="imrelp")
template(name="line" type="string" string="%rawmsg%\\n")
ruleset(name="store") {
  action(type="omfile" file="${received}" template="line")
}
input(type="imrelp" port="${relpPort}" address="127.0.0.1" ruleset="store")
`,
    cleanup,
  );
  // Wait for imrelp to listen (a probe connection, closed at once), then put the proxy in front.
  (await connectWhenListening(relpPort, receiver, 15_000)).destroy();
  const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: relpPort }, faults: { bandwidth: { bytesPerSecond: options.bytesPerSecond } } });
  cleanup.defer('close the rsyslog fault proxy', () => proxy.close());

  const queue = 'LinkedList action queue of 1,000 in memory, disk-assisted above 800 (queue.filename, maxDiskSpace 1g), saveOnShutdown, enqueue waits up to 10 min rather than discard';
  const sender = startRsyslogd(
    binary,
    dir,
    'sender',
    `global(workDirectory="${join(dir, 'sender-work')}" maxMessageSize="64k")
module(load="imtcp")
module(load="omrelp")
template(name="raw" type="string" string="%rawmsg%")
ruleset(name="forward") {
  action(type="omrelp" target="127.0.0.1" port="${proxy.port}" template="raw"
         queue.type="LinkedList" queue.filename="relp-queue" queue.saveOnShutdown="on"
         queue.size="1000" queue.highWatermark="800" queue.lowWatermark="200" queue.maxDiskSpace="1g"
         queue.timeoutEnqueue="600000"
         action.resumeRetryCount="-1" action.resumeInterval="1")
}
input(type="imtcp" port="${tcpPort}" address="127.0.0.1" ruleset="forward")
`,
    cleanup,
  );
  const feed = await connectWhenListening(tcpPort, sender, 15_000);

  const before = proxy.stats();
  const started = nowMs();
  await new Promise<void>((resolve, reject) => {
    feed.once('error', reject);
    feed.end(lines.join('\n') + '\n', () => resolve());
  });
  for (;;) {
    const count = lineCount(received);
    if (count >= lines.length) break;
    if (nowMs() - started > options.timeoutMs) throw new Error(`rsyslog: ${count} of ${lines.length} lines received after ${options.timeoutMs / 1000} s`);
    if (sender.child.exitCode !== null || receiver.child.exitCode !== null) throw new Error(`rsyslogd exited during the run:\n${sender.stderr()}\n${receiver.stderr()}`);
    await sleep(100);
  }
  const seconds = (nowMs() - started) / 1000;
  const after = proxy.stats();
  await sender.stop();
  await receiver.stop();
  await proxy.close();

  const got = readFileSync(received, 'utf8').split('\n').filter(Boolean);
  const fed = new Set(lines);
  const missingLines = got.length === lines.length ? 0 : Math.abs(lines.length - got.length);
  const strangers = got.filter((line) => !fed.has(line)).length;
  if (missingLines > 0 || strangers > 0 || new Set(got).size !== lines.length) {
    throw new Error(`rsyslog delivered ${got.length} lines for ${lines.length} fed (${strangers} not as fed, ${new Set(got).size} distinct)`);
  }
  const bytesToReceiver = after.bytesToServer - before.bytesToServer;
  const bytesToSender = after.bytesToClient - before.bytesToClient;
  return {
    version,
    records: lines.length,
    rawJsonBytes: lines.reduce((sum, line) => sum + Buffer.byteLength(line, 'utf8'), 0),
    seconds,
    recordsPerSecond: lines.length / seconds,
    bytesToReceiver,
    bytesToSender,
    wireBytesPerRecord: (bytesToReceiver + bytesToSender) / lines.length,
    limitSeconds: bytesToReceiver / options.bytesPerSecond,
    queue,
    compression: 'none (RELP has no compression; TLS compression is off and unsupported by current TLS libraries)',
  };
}
