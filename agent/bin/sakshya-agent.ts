#!/usr/bin/env -S node --max-semi-space-size=8
/**
 * sakshya-agent: the entry point. The only place configuration is read (agent/config.ts) and
 * the parts are wired together. stdout carries command output only; logs go to stderr as pino
 * JSON; a failing command prints one clear line on stderr and exits non-zero, never a stack.
 */
import { packageVersion } from '../../shared/package-version.ts';
import { parseDurationMs } from '../../shared/duration.ts';
import { existsSync } from 'node:fs';
import { Command, Option } from 'commander';
import { ConfigError } from '../../shared/config.ts';
import { createLogger, type Logger } from '../../shared/logger.ts';
import { assertPrivateDirectory } from '../../shared/private-files.ts';
import { describeConfig, loadAgentConfig, type AgentConfig, type AgentConfigOverrides } from '../config.ts';
import { BufferCapError, OutboxCorruptError, OutboxNotInitialisedError, outboxPath, SqliteOutbox, type IntegrityCheck } from '../outbox/sqlite-outbox.ts';
import type { AgentStatus } from '../status.ts';
import type { Syncer } from '../sync/syncer.ts';
import { readWitnessAlarm } from '../witness/witness-state.ts';

// Modules only some commands need (HTTP client and server, cron, JOSE) are imported by those
// commands, so that `emit` and `status` start quickly.

const LOGGER_NAME = 'sakshya-agent';
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;
/** The outbox failed its integrity check: restarting will not help (e.g. systemd RestartPreventExitStatus=3). */
const EXIT_CORRUPT_OUTBOX = 3;
/** `sync --once` delivered, but the collector's log failed a witness check: it rewrote history. */
const EXIT_WITNESS_ALARM = 4;

class UsageError extends Error {
  override name = 'UsageError';
}

interface DirOption {
  dir?: string;
}

/**
 * Opens the outbox with the configured buffer cap, after SQLite's integrity check: `run` (long
 * lived, started rarely) pays for the full `integrity_check`, the short commands for
 * `quick_check` (costs: agent/outbox/outbox-file.ts, checkOutboxIntegrity). A corrupt outbox
 * is refused, never repaired or recreated; so is an agent directory that group or others can
 * write to (shared/private-files.ts).
 */
function openOutbox(config: AgentConfig, integrity: IntegrityCheck = 'quick'): SqliteOutbox {
  assertPrivateDirectory(config.dir);
  return SqliteOutbox.open(outboxPath(config.dir), { cap: config.bufferCap, integrity });
}

function setUp(flags: AgentConfigOverrides, configLogLevel: 'info' | 'debug'): { config: AgentConfig; logger: Logger } {
  const config = loadAgentConfig(process.env, flags);
  const logger = createLogger(LOGGER_NAME, config.logLevel);
  logger[configLogLevel]({ config: describeConfig(config) }, 'effective config');
  return { config, logger };
}

async function openSyncer(config: AgentConfig, outbox: SqliteOutbox, logger: Logger, onAttempt?: (outcome: string) => void): Promise<Syncer> {
  const [{ AgentKeyring }, { BatchClient }, { Syncer }, { LogClient }, { Witness }, { retireAcknowledgedKeys }] = await Promise.all([
    import('../keys.ts'),
    import('../sync/client.ts'),
    import('../sync/syncer.ts'),
    import('../witness/log-client.ts'),
    import('../witness/witness.ts'),
    import('../key-rotation.ts'),
  ]);
  const pins = outbox.pins();
  const key = new AgentKeyring(config.dir);
  // JWTs: the key the collector knows first, then newer keys whose rotation is not acknowledged yet (ADR 0006).
  const tokenKeys = () => outbox.authKeyRefs().map((ref) => key.signingKey(ref));
  const client = new BatchClient({ collectorUrl: pins.collector, origin: pins.origin, agent: pins.agent, tokenKeys, timeouts: config.timeouts });
  const witness = new Witness({
    outbox,
    log: new LogClient({ collectorUrl: pins.collector, timeouts: config.timeouts }),
    key,
    logger,
    backoff: config.backoff,
  });
  return new Syncer({
    outbox,
    client,
    witness,
    onAttempt,
    key,
    logger,
    batch: config.batch,
    backoff: config.backoff,
    circuit: config.circuit,
    refusedRetryMs: config.refusedRetryMs,
    idleIntervalMs: config.syncIntervalMs,
    onAcknowledged: () => {
      const retired = retireAcknowledgedKeys(config.dir, outbox);
      if (retired.length > 0) logger.info({ files: retired }, 'rotation acknowledged: retired the old private keys (public halves kept for verify)');
      writeDropSummary(outbox, key, logger);
    },
  });
}

/** Acknowledgements make room: summarise the refusals counted meanwhile, once under the soft cap. */
function writeDropSummary(outbox: SqliteOutbox, key: Parameters<SqliteOutbox['writeDropSummary']>[0], logger: Logger): void {
  const summary = outbox.writeDropSummary(key);
  if (summary) logger.warn({ seq: summary.seq, body: summary.record.body }, 'buffer back under the soft cap: refused records summarised in a signed telemetry.dropped record');
}

function printStatus(status: AgentStatus): void {
  const lines = [
    `agent      ${status.agent} (epoch ${status.epoch})`,
    `collector  ${status.collector}`,
    `pending    ${status.pending}${status.oldestPendingAt ? ` (oldest ${status.oldestPendingAt})` : ''}`,
    `acked      ${status.acked}`,
    `circuit    ${status.circuit.state}`,
    `buffer     ${status.buffer.pendingBytes} bytes unacknowledged (soft cap ${status.buffer.softCapBytes}, hard cap ${status.buffer.hardCapBytes}): ${status.buffer.state}${status.buffer.dropped ? `; ${status.buffer.dropped.dropped} refused since ${status.buffer.dropped.firstAt}, not yet summarised` : ''}`,
    `key        ${status.keys.current} (from seq ${status.keys.history.at(-1)!.fromSeq})${status.keys.collectorKnows === status.keys.current ? '' : '; rotation not acknowledged yet'}`,
  ];
  if (status.lastError) lines.push(`last error ${status.lastError.at} ${status.lastError.reason}: ${status.lastError.detail}`);
  if (status.nextAttemptAt) lines.push(`next try   ${status.nextAttemptAt}`);
  const verified = status.witness.verified;
  lines.push(`witness    ${verified ? `log verified up to size ${verified.size} (${verified.verifiedAt})` : 'no checkpoint verified yet'}`);
  if (status.witness.lastError) lines.push(`witness error ${status.witness.lastError.at} ${status.witness.lastError.reason}: ${status.witness.lastError.detail}`);
  const alarm = status.witnessAlarm;
  if (alarm) {
    lines.push(
      `WITNESS ALARM since ${alarm.raisedAt}: ${alarm.reason}: ${alarm.detail}`,
      `           verified ${alarm.previous ? `size ${alarm.previous.size} root ${alarm.previous.root}` : 'nothing yet'}; offered size ${alarm.offered.size} root ${alarm.offered.root}`,
      '           the collector\u2019s log does not extend what this agent verified; investigate, then `sakshya-agent witness clear`',
    );
  }
  process.stdout.write(lines.join('\n') + '\n');
}

/** Runs a command body; any error becomes one line on stderr and a non-zero exit. */
function action<A extends unknown[]>(body: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await body(...args);
    } catch (err) {
      const usage = err instanceof ConfigError || err instanceof UsageError;
      process.stderr.write(`sakshya-agent: ${(err as Error).message}\n`);
      process.exitCode = usage ? EXIT_USAGE : err instanceof OutboxCorruptError ? EXIT_CORRUPT_OUTBOX : EXIT_FAILURE;
    }
  };
}

const program = new Command()
  .name('sakshya-agent')
  .description('Signs, chains and buffers audit records and telemetry, and syncs them to a Sakshya collector.')
  .version(packageVersion(), '--version', 'print the version and exit')
  .showSuggestionAfterError()
  .configureOutput({ outputError: (text, write) => write(text) });

const dirOption = () => new Option('--dir <path>', 'agent directory (default: $SAKSHYA_AGENT_DIR)');

program
  .command('init')
  .description('enroll with the collector and initialise the agent directory')
  .addOption(dirOption())
  .option('--collector <url>', 'collector URL (default: $SAKSHYA_COLLECTOR_URL); https://, or http:// to loopback')
  .requiredOption('--agent <id>', 'agent id the enrollment token was issued for')
  .option('--token-file <path>', 'file holding the one-time enrollment token (default: $SAKSHYA_ENROLL_TOKEN_FILE); /dev/stdin to pipe it')
  .option('--token <token>', 'the token itself (visible in `ps` and shell history: prefer --token-file)')
  .option('--insecure-http', 'allow a plain http:// collector URL that is not loopback (a private network you trust)')
  .action(
    action(async (opts: DirOption & { collector?: string; agent: string; token?: string; tokenFile?: string; insecureHttp?: boolean }) => {
      const { config, logger } = setUp({ dir: opts.dir, collectorUrl: opts.collector }, 'info');
      const [{ initAgentDir }, { readEnrollToken }] = await Promise.all([import('../enroll.ts'), import('../enroll-token.ts')]);
      if (config.collectorUrl === undefined) throw new UsageError('no collector: pass --collector URL or set SAKSHYA_COLLECTOR_URL');
      const token = readEnrollToken({ token: opts.token, tokenFile: opts.tokenFile, envTokenFile: config.enrollTokenFile }, logger);
      const result = await initAgentDir({
        dir: config.dir,
        collectorUrl: config.collectorUrl,
        insecureHttp: opts.insecureHttp === true,
        agent: opts.agent,
        token,
        timeouts: config.timeouts,
        logger,
      });
      process.stdout.write(JSON.stringify(result) + '\n');
    }),
  );

program
  .command('run')
  .description('serve the local API, sync to the collector and record system telemetry until stopped')
  .addOption(dirOption())
  .option('--port <port>', 'local API port on 127.0.0.1 (default: $SAKSHYA_AGENT_PORT or 7410; 0 = any free port)')
  .action(
    action(async (opts: DirOption & { port?: string }) => {
      const { config, logger } = setUp({ dir: opts.dir, port: opts.port }, 'info');
      const [{ AgentKeyring }, { createLocalApi, listenLocalApi }, { readLocalToken }, { scheduleSystemTelemetry }, { AgentMetrics }] = await Promise.all([
        import('../keys.ts'),
        import('../local-api/app.ts'),
        import('../local-api/local-token.ts'),
        import('../telemetry/system-telemetry.ts'),
        import('../metrics/agent-metrics.ts'),
      ]);
      const outbox = openOutbox(config, 'full');
      const pins = outbox.pins();
      // Every append signs with the key the outbox names at that moment: a `rotate-key` run
      // next to this process takes effect for the next record.
      const key = new AgentKeyring(config.dir);
      key.signingKey(outbox.signingKeyRef());
      const localToken = readLocalToken(config.dir);
      const metrics = new AgentMetrics({ outbox, processMetrics: true });
      const syncer = await openSyncer(config, outbox, logger, (outcome) => metrics.syncAttempt(outcome));
      writeDropSummary(outbox, key, logger); // refusals counted before a restart, if there is room now
      const { server, port } = await listenLocalApi(createLocalApi({ outbox, key, localToken, logger, metrics }), config.port);
      const telemetry = config.telemetryCron
        ? scheduleSystemTelemetry({ expression: config.telemetryCron, dir: config.dir, outbox, key, logger })
        : undefined;
      const stopping = new AbortController();
      const syncing = syncer.run(stopping.signal);

      let stopped = false;
      const stop = async (signal: string) => {
        if (stopped) return;
        stopped = true;
        logger.info({ signal }, 'stopping');
        stopping.abort();
        await telemetry?.stop();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await closed;
        await syncing;
        outbox.close();
        logger.info('stopped');
        // Anything still holding the event loop open (a half-closed socket) must not keep a
        // stopped agent alive.
        setTimeout(() => process.exit(0), 2000).unref();
      };
      process.once('SIGTERM', () => void stop('SIGTERM'));
      process.once('SIGINT', () => void stop('SIGINT'));
      // Announced only now: a supervisor (or test) that stops the agent as soon as it reads this
      // line must find the handlers in place, not the default action of SIGTERM.
      logger.info({ port, agent: pins.agent, epoch: pins.epoch, version: packageVersion() }, 'local api listening');
    }),
  );

program
  .command('emit')
  .description('store one record in the outbox; prints {"id","seq"} once it is committed')
  .addOption(dirOption())
  .requiredOption('--kind <kind>', 'audit | telemetry | agent')
  .requiredOption('--type <type>', 'dotted lower-case name, e.g. certificate.issued')
  .requiredOption('--body <json>', 'JSON object')
  .option('--at <iso>', 'when it happened (ISO 8601 UTC, default: now)')
  .action(
    action(async (opts: DirOption & { kind: string; type: string; body: string; at?: string }) => {
      const { config } = setUp({ dir: opts.dir }, 'debug');
      let body: unknown;
      try {
        body = JSON.parse(opts.body);
      } catch (err) {
        throw new UsageError(`--body is not valid JSON: ${(err as Error).message}`);
      }
      const [{ AgentKeyring }, { isWitnessRecordType }, { isKeyRotationRecord }, { isDropSummaryRecord }] = await Promise.all([
        import('../keys.ts'),
        import('../witness/witness-state.ts'),
        import('../../shared/key-rotation.ts'),
        import('../outbox/buffer-refusal.ts'),
      ]);
      if (isWitnessRecordType(opts.kind, opts.type)) throw new UsageError(`--kind agent --type ${opts.type}: witness records are written by the agent itself`);
      if (isKeyRotationRecord(opts)) throw new UsageError('--kind agent --type key.rotated: use `sakshya-agent rotate-key`');
      if (isDropSummaryRecord(opts)) throw new UsageError(`--kind agent --type ${opts.type}: drop summaries are written by the agent itself`);
      const outbox = openOutbox(config);
      try {
        const key = new AgentKeyring(config.dir);
        const { id, seq } = outbox.append({ kind: opts.kind, type: opts.type, at: opts.at, body }, key);
        process.stdout.write(JSON.stringify({ id, seq }) + '\n');
      } catch (err) {
        if (err instanceof BufferCapError) {
          throw new Error(`${err.level === 'soft' ? 'telemetry refused' : 'buffer full'} (507 ${err.level === 'soft' ? 'buffer.telemetry_refused' : 'buffer.full'}): ${err.message}; see docs/operations.md, "The buffer cap"`);
        }
        throw err;
      } finally {
        outbox.close();
      }
    }),
  );

program
  .command('sync')
  .description('send pending records to the collector')
  .addOption(dirOption())
  .option('--once', 'drain what is pending now, then exit (1 on failure, 4 while a witness alarm is active)')
  .action(
    action(async (opts: DirOption & { once?: boolean }) => {
      if (!opts.once) throw new UsageError('sync needs --once (the continuous sync loop is part of `sakshya-agent run`)');
      const { config, logger } = setUp({ dir: opts.dir }, 'info');
      const outbox = openOutbox(config);
      try {
        const result = await (await openSyncer(config, outbox, logger)).drain();
        process.stdout.write(JSON.stringify({ ...result, pending: outbox.backlog().pending }) + '\n');
        // Delivery worked, but a script that runs this must not read success while the
        // collector is caught serving a rewritten history.
        const alarm = readWitnessAlarm(outbox);
        if (alarm) {
          process.stderr.write(`sakshya-agent: WITNESS ALARM (${alarm.reason}) since ${alarm.raisedAt}: the collector's log failed a consistency check; see \`sakshya-agent status\`\n`);
          process.exitCode = EXIT_WITNESS_ALARM;
        }
      } finally {
        outbox.close();
      }
    }),
  );

program
  .command('status')
  .description('show pending and acknowledged records, the last receipt and the last error')
  .addOption(dirOption())
  .option('--json', 'print JSON')
  .option('--check', 'exit 1 unless the agent is delivering: no record pending longer than --max-pending-age, circuit closed, last batch not refused, no witness alarm')
  .option('--max-pending-age <duration>', 'with --check: how long a record may wait for its acknowledgement (e.g. 30m, 6h)', '1h')
  .action(
    action(async (opts: DirOption & { json?: boolean; check?: boolean; maxPendingAge: string }) => {
      const maxPendingAgeMs = parseDurationMs(opts.maxPendingAge);
      if (maxPendingAgeMs === undefined || maxPendingAgeMs <= 0) throw new UsageError(`--max-pending-age must be a duration such as 30m or 6h, not ${opts.maxPendingAge}`);
      const { config } = setUp({ dir: opts.dir }, 'debug');
      const { readAgentStatus, deliveryProblems } = await import('../status.ts');
      const outbox = openOutbox(config);
      try {
        const status = readAgentStatus(outbox);
        const problems = opts.check ? deliveryProblems(status, { maxPendingAgeMs, nowMs: Date.now() }) : [];
        if (opts.json) process.stdout.write(JSON.stringify(opts.check ? { delivering: problems.length === 0, problems, ...status } : status) + '\n');
        else {
          printStatus(status);
          if (opts.check) process.stdout.write(problems.length === 0 ? 'check      OK: delivering\n' : problems.map((p) => `check      NOT DELIVERING: ${p}\n`).join(''));
        }
        if (problems.length > 0) process.exitCode = EXIT_FAILURE;
      } finally {
        outbox.close();
      }
    }),
  );

program
  .command('verify')
  .description('re-check every record, chain link, acknowledgement and receipt in the outbox; exit 0 only if intact')
  .addOption(dirOption())
  .option('--json', 'print the report as JSON')
  .action(
    action(async (opts: DirOption & { json?: boolean }) => {
      const { config } = setUp({ dir: opts.dir }, 'debug');
      const [{ readEnrolledPublicKey }, { verifyOutbox }, { formatReport }] = await Promise.all([
        import('../keys.ts'),
        import('../verify/outbox-verifier.ts'),
        import('../verify/verify-report.ts'),
      ]);
      assertPrivateDirectory(config.dir);
      const path = outboxPath(config.dir);
      if (!existsSync(path)) throw new OutboxNotInitialisedError(`no outbox at ${path}: run \`sakshya-agent init\` first`);
      const report = await verifyOutbox({ path, agentKey: readEnrolledPublicKey(config.dir) });
      process.stdout.write(opts.json ? JSON.stringify(report) + '\n' : formatReport(report));
      if (!report.ok) process.exitCode = EXIT_FAILURE;
    }),
  );

program
  .command('rotate-key')
  .description('make a new signing key: writes a key.rotated record signed with the old key; later records are signed with the new one')
  .addOption(dirOption())
  .option('--json', 'print JSON')
  .action(
    action(async (opts: DirOption & { json?: boolean }) => {
      const { config, logger } = setUp({ dir: opts.dir }, 'debug');
      const { rotateAgentKey } = await import('../key-rotation.ts');
      const outbox = openOutbox(config);
      try {
        const result = rotateAgentKey(config.dir, outbox);
        logger.info({ seq: result.seq, oldKid: result.oldKid, newKid: result.newKid, keyFile: result.keyFile }, 'agent key rotated');
        if (result.unusedKeyFiles.length > 0) {
          logger.warn({ files: result.unusedKeyFiles }, 'key files no rotation names (left by an interrupted rotate-key); they never signed anything and may be deleted');
        }
        if (opts.json) process.stdout.write(JSON.stringify(result) + '\n');
        else process.stdout.write(`rotated the agent key: ${result.oldKid} -> ${result.newKid}; recorded as seq ${result.seq}, the new key signs from seq ${result.fromSeq}\n`);
      } finally {
        outbox.close();
      }
    }),
  );

const witness = program.command('witness').description('the agent as a witness of the collector\u2019s log');

witness
  .command('clear')
  .description('clear the witness alarm after investigating it (writes a signed witness.cleared record)')
  .addOption(dirOption())
  .option(
    '--reset-trust',
    'also forget the last verified checkpoint: the next one is trusted on first use (only for a collector knowingly rebuilt)',
  )
  .option('--json', 'print JSON')
  .action(
    action(async (opts: DirOption & { resetTrust?: boolean; json?: boolean }) => {
      const { config, logger } = setUp({ dir: opts.dir }, 'debug');
      const [{ AgentKeyring }, { clearWitnessAlarm }] = await Promise.all([import('../keys.ts'), import('../witness/witness-alarm.ts')]);
      const outbox = openOutbox(config);
      try {
        const result = clearWitnessAlarm(outbox, new AgentKeyring(config.dir), { resetTrust: opts.resetTrust === true });
        if (result.record !== null) {
          logger.warn(
            { alert: 'witness', cleared: result.cleared && { reason: result.cleared.reason, raisedAt: result.cleared.raisedAt }, resetTrust: result.resetTrust, forgotten: result.forgotten, record: result.record },
            'witness alarm cleared by the operator',
          );
        }
        if (opts.json) process.stdout.write(JSON.stringify(result) + '\n');
        else if (result.record === null) process.stdout.write('no witness alarm to clear\n');
        else {
          const what = result.cleared ? `cleared the witness alarm (${result.cleared.reason}, raised ${result.cleared.raisedAt})` : 'no alarm was active';
          const trust = result.forgotten ? `; forgot the verified checkpoint of size ${result.forgotten.size}` : '';
          process.stdout.write(`${what}${trust}; recorded as seq ${result.record.seq}\n`);
        }
      } finally {
        outbox.close();
      }
    }),
  );

await program.parseAsync(process.argv);
