#!/usr/bin/env -S node --max-semi-space-size=8
/**
 * sakshya-collector: the state data centre's collector.
 *
 *   serve | migrate | agents enroll --agent ID [--replace] [--ttl 24h] | agents list [--json]
 *   agents revoke --agent ID | tokens issue --role admin|auditor --name WHO [--ttl 90d]
 *   tokens revoke --id ID | --name WHO | tokens list [--json]
 *   checkpoint [--json] | ledger stats [--json] | ledger verify [--json]
 *   report export --from DATE --to DATE [--agent GLOB] [--kind K] [--type T] [--checkpoint-size N] --out DIR [--json]
 *   db copy --from URL --to URL [--json] [--quiet] | db verify-copy --from URL --to URL [--json] (db-commands.ts)
 *
 * CLI commands act as the local operator: the COLLECTOR chain records them as `cli:<os user>`.
 *
 * The only place configuration is read (environment, then flags over it). Logs are pino JSON on
 * stderr; stdout carries only command output (a token, JSON). Errors are one line on stderr and
 * a non-zero exit, never a stack trace.
 */
import { packageVersion } from '../../shared/package-version.ts';
import { statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { userInfo } from 'node:os';
import { resolve as resolvePath } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { Command } from 'commander';
import { ConfigError } from '../../shared/config.ts';
import { toBase64Url } from '../../shared/crypto.ts';
import { createLogger, type Logger } from '../../shared/logger.ts';
import { ensurePrivateDirectory } from '../../shared/private-files.ts';
import { databaseConnection, describeConfig, loadCollectorConfig, type CollectorConfig, type CollectorConfigOverrides } from '../config.ts';
import { CollectorSetupError, createContainer, type Container } from '../container.ts';
import { createApp, createMetricsApp } from '../app.ts';
import { formatFinding } from '../services/ledger-audit.ts';
import { ProblemError } from '../../shared/problem.ts';
import { assertEnrollableAgentId, parseDurationSeconds } from '../services/enrollment.ts';
import { cliActor } from '../services/access.ts';
import { DEFAULT_API_TOKEN_TTL_SECONDS } from '../services/api-tokens.ts';
import { openStore } from '../store/open-store.ts';
import { parseReportRequest } from '../services/report/filter-input.ts';
import { progressReporter } from '../services/report/progress.ts';
import { registerDbCommands } from './db-commands.ts';

const NAME = 'sakshya-collector';
/** How long in-flight requests get to finish after SIGTERM before connections are cut. */
const SHUTDOWN_GRACE_MS = 10_000;

interface ConfigFlags {
  dir?: string;
  database?: string;
  port?: string;
  host?: string;
  origin?: string;
}

class NoCheckpointError extends Error {
  override name = 'NoCheckpointError';
}

class CliInputError extends Error {
  override name = 'CliInputError';
}

function fail(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  // Our own errors and system errors (EADDRINUSE, EACCES …) explain themselves; others are bugs.
  const known =
    err instanceof Error &&
    ((err.name !== 'Error' && err.name !== 'TypeError' && err.name !== 'RangeError') || typeof (err as NodeJS.ErrnoException).code === 'string');
  process.stderr.write(`${NAME}: ${known ? message : `unexpected error: ${message}`}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
}

function configFrom(flags: ConfigFlags): CollectorConfig {
  const overrides: CollectorConfigOverrides = { dir: flags.dir, database: flags.database, port: flags.port, host: flags.host, origin: flags.origin };
  return loadCollectorConfig(process.env, overrides);
}

function loggerFor(config: CollectorConfig, command: string): Logger {
  const logger = createLogger('collector', config.logLevel);
  const line = { command, config: describeConfig(config) };
  if (command === 'serve') logger.info(line, 'configuration');
  else logger.debug(line, 'configuration');
  return logger;
}

async function withContainer(flags: ConfigFlags, command: string, mode: 'bootstrap' | 'existing', fn: (c: Container) => Promise<void>): Promise<void> {
  const config = configFrom(flags);
  const container = await createContainer(config, { logger: loggerFor(config, command), mode });
  try {
    await fn(container);
  } finally {
    await container.close();
  }
}

/** Who runs this CLI command, as the COLLECTOR chain records it. */
function operator(): string {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    user = `uid-${process.getuid?.() ?? 'unknown'}`;
  }
  return cliActor(user);
}

class TlsConfigError extends Error {
  override name = 'TlsConfigError';
}

/**
 * Checks the TLS settings at start: the key file (if given as a path) must not be readable by
 * others, and the certificate and key must load and match.
 */
function checkTls(config: CollectorConfig): void {
  if (config.tlsCert === undefined || config.tlsKey === undefined) return;
  const keyFile = process.env.SAKSHYA_COLLECTOR_TLS_KEY_FILE;
  if (keyFile !== undefined) {
    const mode = statSync(keyFile).mode & 0o777;
    if ((mode & 0o007) !== 0) {
      throw new TlsConfigError(`TLS key ${keyFile} has mode ${mode.toString(8).padStart(4, '0')}; it must not be readable by others (chmod 600 ${keyFile})`);
    }
  }
  try {
    createSecureContext({ cert: config.tlsCert, key: config.tlsKey });
  } catch (err) {
    throw new TlsConfigError(`the TLS certificate and key do not load together: ${(err as Error).message}`);
  }
}

function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

function urlOf(address: AddressInfo, tls: boolean): string {
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `${tls ? 'https' : 'http'}://${host}:${address.port}`;
}

async function serve(flags: ConfigFlags): Promise<void> {
  const config = configFrom(flags);
  checkTls(config);
  const logger = loggerFor(config, 'serve');
  const container = await createContainer(config, { logger, mode: 'bootstrap', processMetrics: true });
  // Only the server owns export jobs: a CLI command next to it must not fail its running job.
  await container.reports.recoverInterrupted();
  // Nor delete bundles: the retention sweep runs here, at start and then on its schedule.
  await container.reports.sweep().catch((err: unknown) => logger.error({ err }, 'the report retention sweep failed; the next one tries again'));
  container.reports.scheduleSweeps();
  const tls = config.tlsCert !== undefined && config.tlsKey !== undefined;
  const app = createApp(container);
  const server: Server = tls ? createTlsServer({ cert: config.tlsCert, key: config.tlsKey, minVersion: 'TLSv1.2' }, app) : createServer(app);
  const metricsServer = createServer(createMetricsApp(container));
  try {
    await listen(server, config.port, config.host);
    await listen(metricsServer, config.metricsPort, config.metricsHost).catch((err: unknown) => {
      server.close();
      throw new CollectorSetupError(
        `the metrics listener cannot bind ${config.metricsHost}:${config.metricsPort} (${(err as Error).message}); set SAKSHYA_COLLECTOR_METRICS_PORT to a free port (0 picks one)`,
      );
    });
  } catch (err) {
    await container.close();
    throw err;
  }
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: refusing new connections, finishing requests in flight');
    const idle = setInterval(() => server.closeIdleConnections(), 50);
    const force = setTimeout(() => {
      logger.warn({ graceMs: SHUTDOWN_GRACE_MS }, 'requests still in flight after the grace period; closing their connections');
      server.closeAllConnections();
    }, SHUTDOWN_GRACE_MS);
    metricsServer.close();
    metricsServer.closeAllConnections();
    server.close(() => {
      clearInterval(idle);
      clearTimeout(force);
      container
        .close()
        .then(() => {
          logger.info('stopped');
          process.exit(0);
        })
        .catch((err: unknown) => {
          logger.error({ err }, 'error while closing');
          process.exit(1);
        });
    });
    server.closeIdleConnections();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  // Announce only once the signal handlers are in place: whoever reads this line may stop us.
  const metricsAddress = metricsServer.address() as AddressInfo;
  logger.info({ port: metricsAddress.port, url: `${urlOf(metricsAddress, false)}/metrics` }, 'metrics listening');
  const address = server.address() as AddressInfo;
  logger.info({ port: address.port, url: urlOf(address, tls), tls, version: container.version }, 'listening');
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

async function migrate(flags: ConfigFlags): Promise<void> {
  const config = configFrom(flags);
  const logger = loggerFor(config, 'migrate');
  ensurePrivateDirectory(config.dir);
  const store = openStore(databaseConnection(config));
  try {
    const report = await store.migrate();
    logger.info(report, 'migrations applied');
    process.stdout.write(
      report.applied.length > 0
        ? `schema version ${report.from} -> ${report.to} (applied ${report.applied.join(', ')})\n`
        : `schema version ${report.to} is current\n`,
    );
  } finally {
    await store.close();
  }
}

function withConfigFlags(command: Command): Command {
  return command
    .option('--dir <path>', 'data directory (overrides SAKSHYA_COLLECTOR_DIR)')
    .option('--database <url>', 'sqlite:<path> or postgres://user@host:5432/db; default sqlite:<dir>/collector.db (overrides SAKSHYA_COLLECTOR_DATABASE)')
    .option('--origin <origin>', 'log origin and JWT audience (overrides SAKSHYA_COLLECTOR_ORIGIN)');
}

function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      fail(err);
    }
  };
}

const program = new Command()
  .name(NAME)
  .description('Sakshya collector: accepts signed batches from agents into a tamper-evident ledger')
  .version(packageVersion(), '--version', 'print the version and exit')
  .showHelpAfterError();

withConfigFlags(program.command('serve').description('run the HTTP API (creates the data directory and keys on first run)'))
  .option('--port <port>', 'port, 0 for any free one (overrides SAKSHYA_COLLECTOR_PORT)')
  .option('--host <address>', 'address to listen on (overrides SAKSHYA_COLLECTOR_HOST)')
  .action(action(async (flags: ConfigFlags) => serve(flags)));

withConfigFlags(program.command('migrate').description('apply pending database migrations')).action(
  action(async (flags: ConfigFlags) => migrate(flags)),
);

const agents = program.command('agents').description('enroll and list agents');
withConfigFlags(agents.command('enroll').description('issue a one-time enrollment token for an agent id (printed on stdout)'))
  .requiredOption('--agent <id>', 'agent id, 3-64 of A-Z, 0-9 and -')
  .option('--ttl <duration>', 'how long the token is valid: 90s, 30m, 24h, 7d', '24h')
  .option('--replace', "the agent's disk or key is lost: the token may enroll a new key over its active epoch, which is then revoked (docs/operations-collector.md)")
  .action(
    action(async (flags: ConfigFlags & { agent: string; ttl: string; replace?: boolean }) => {
      assertEnrollableAgentId(flags.agent);
      const ttlSeconds = parseDurationSeconds(flags.ttl);
      await withContainer(flags, 'agents enroll', 'bootstrap', async (container) => {
        const by = operator();
        const { token, expiresAt, replace } = await container.enrollment
          .issueToken(flags.agent, ttlSeconds, by, { replace: flags.replace === true })
          .catch((err: unknown) => {
            if (err instanceof ProblemError) throw new CliInputError(err.message);
            throw err;
          });
        container.logger.info({ agent: flags.agent, expiresAt, by, replace }, replace ? 'replacement enrollment token issued' : 'enrollment token issued');
        process.stdout.write(token + '\n');
      });
    }),
  );
withConfigFlags(agents.command('list').description('list agents per epoch, with chain heads, reported backlog and agent version'))
  .option('--json', 'print JSON')
  .action(
    action(async (flags: ConfigFlags & { json?: boolean }) => {
      await withContainer(flags, 'agents list', 'existing', async (container) => {
        const list = await container.enrollment.listAgents();
        if (flags.json) {
          printJson(list);
          return;
        }
        for (const a of list) {
          const gaps = a.gaps.length === 0 ? 'none' : a.gaps.map((g) => (g.from === g.to ? `${g.from}` : `${g.from}-${g.to}`)).join(',');
          process.stdout.write(
            `${a.agent}\tepoch ${a.epoch}\tseq ${a.highestSeq}\tentries ${a.ledgerEntries}\tgaps ${gaps}\tquarantined ${a.quarantined}\t` +
              `witnessed ${a.witnessedSize ?? '-'}\tkeys ${a.keys.length}\tbacklog ${a.backlog.pending ?? '-'}\tlast seen ${a.lastSeenAt ?? 'never'}` +
              `\tversion ${a.version ?? '-'}` +
              `\tclock skew ${a.clockSkew.implausible}` +
              `\t${a.status}${a.revokedAt ? ` ${a.revokedAt} at ledger index ${a.revokedIndex ?? '?'}` : ''}` +
              `${a.supersededBy !== null ? ` by epoch ${a.supersededBy}` : ''}\n`,
          );
        }
      });
    }),
  );

withConfigFlags(agents.command('revoke').description("revoke an agent's current epoch: its batches and reads are refused (403) from now on"))
  .requiredOption('--agent <id>', 'agent id')
  .option('--json', 'print JSON')
  .action(
    action(async (flags: ConfigFlags & { agent: string; json?: boolean }) => {
      assertEnrollableAgentId(flags.agent);
      await withContainer(flags, 'agents revoke', 'bootstrap', async (container) => {
        const by = operator();
        const result = await container.enrollment.revokeAgent(flags.agent, by).catch((err: unknown) => {
          if (err instanceof ProblemError) throw new CliInputError(err.message);
          throw err;
        });
        container.logger.warn({ ...result, by }, result.alreadyRevoked ? 'agent was already revoked' : 'agent revoked');
        if (flags.json) printJson(result);
        else {
          const voided = result.voidedTokens === 0 ? '' : `; voided ${result.voidedTokens} unused enrollment token(s)`;
          const what =
            result.epoch === null
              ? `${result.agent} was never enrolled`
              : `${result.alreadyRevoked ? 'already revoked' : 'revoked'} ${result.agent} epoch ${result.epoch} at ${result.revokedAt} (ledger index ${result.revokedIndex ?? '?'})`;
          process.stdout.write(`${what}${voided}\n`);
        }
      });
    }),
  );

const tokens = program.command('tokens').description('bearer tokens for people: admins and auditors');
withConfigFlags(tokens.command('issue').description('issue a token (printed once on stdout; only its hash is kept)'))
  .requiredOption('--role <role>', 'admin or auditor')
  .requiredOption('--name <who>', 'whom the token is for (shown in lists and in the COLLECTOR chain)')
  .option('--ttl <duration>', 'how long the token is valid: 90s, 30m, 24h, 30d', `${DEFAULT_API_TOKEN_TTL_SECONDS / 86400}d`)
  .action(
    action(async (flags: ConfigFlags & { role: string; name: string; ttl: string }) => {
      const ttlSeconds = parseDurationSeconds(flags.ttl);
      await withContainer(flags, 'tokens issue', 'bootstrap', async (container) => {
        const by = operator();
        const issued = await container.apiTokens.issue(flags.role, flags.name, ttlSeconds, by);
        container.logger.info({ id: issued.id, role: flags.role, name: flags.name, expiresAt: issued.expiresAt, by }, 'api token issued');
        process.stdout.write(issued.token + '\n');
      });
    }),
  );
withConfigFlags(tokens.command('revoke').description('revoke a token by id, or every active token of a name'))
  .option('--id <id>', 'token id (tokens list shows it)')
  .option('--name <who>', 'revoke every active token issued to this name')
  .option('--json', 'print JSON')
  .action(
    action(async (flags: ConfigFlags & { id?: string; name?: string; json?: boolean }) => {
      if ((flags.id === undefined) === (flags.name === undefined)) throw new CliInputError('give exactly one of --id and --name');
      await withContainer(flags, 'tokens revoke', 'bootstrap', async (container) => {
        const by = operator();
        const revoked = await container.apiTokens.revoke(flags.id !== undefined ? { id: flags.id } : { name: flags.name! }, by);
        container.logger.info({ ids: revoked.map((t) => t.id), by }, 'api tokens revoked');
        if (flags.json) printJson(revoked);
        else process.stdout.write(revoked.length === 0 ? 'no active token matched\n' : revoked.map((t) => `revoked ${t.id} (${t.role}, ${t.name})\n`).join(''));
        if (revoked.length === 0) process.exitCode = 1;
      });
    }),
  );
withConfigFlags(tokens.command('list').description('list tokens (never the tokens themselves)'))
  .option('--json', 'print JSON')
  .action(
    action(async (flags: ConfigFlags & { json?: boolean }) => {
      await withContainer(flags, 'tokens list', 'existing', async (container) => {
        const list = await container.apiTokens.list();
        if (flags.json) {
          printJson(list);
          return;
        }
        for (const t of list) process.stdout.write(`${t.id}\t${t.role}\t${t.name}\t${t.state}\texpires ${t.expiresAt ?? 'never'}\tby ${t.createdBy}\n`);
      });
    }),
  );

const ledger = program.command('ledger').description('ledger information');
withConfigFlags(ledger.command('stats').description('ledger size, counts by kind and the latest checkpoint'))
  .option('--json', 'print JSON')
  .action(
    action(async (flags: ConfigFlags & { json?: boolean }) => {
      await withContainer(flags, 'ledger stats', 'existing', async (container) => {
        const stats = await container.ledger.stats();
        if (flags.json) {
          printJson(stats);
          return;
        }
        process.stdout.write(
          `size ${stats.size} (audit ${stats.byKind.audit}, telemetry ${stats.byKind.telemetry}, agent ${stats.byKind.agent})\n` +
            `checkpoint size ${stats.checkpoint.size} root ${stats.checkpoint.root}\nagents ${stats.agents}\nquarantined ${stats.quarantined}\n`,
        );
      });
    }),
  );

withConfigFlags(
  ledger
    .command('verify')
    .description('audit the whole store offline: signatures, chains, hashes, Merkle subtrees, checkpoints, receipts; exit 0 only if intact'),
)
  .option('--json', 'print the report as JSON')
  .action(
    action(async (flags: ConfigFlags & { json?: boolean }) => {
      let intact = false;
      await withContainer(flags, 'ledger verify', 'existing', async (container) => {
        const report = await container.ledgerAudit().run();
        intact = report.intact;
        if (flags.json) {
          printJson(report);
          return;
        }
        const { checked } = report;
        const scope =
          `${checked.records} records in ${checked.chains} chains, ${checked.subtrees} Merkle subtrees, ` +
          `${checked.checkpoints} checkpoints, ${checked.receipts} receipts`;
        if (report.intact) {
          process.stdout.write(`ledger intact: ${scope}; size ${report.ledger.size} root ${report.ledger.root}\n`);
          return;
        }
        const total = report.findings.length + report.omitted;
        process.stdout.write(`LEDGER NOT INTACT: ${total} problem${total === 1 ? '' : 's'} (checked ${scope})\n`);
        for (const finding of report.findings) process.stdout.write(formatFinding(finding) + '\n');
        if (report.omitted > 0) process.stdout.write(`… and ${report.omitted} more problems of the same kinds, not listed\n`);
      });
      if (!intact) process.exitCode = 1;
    }),
  );

withConfigFlags(program.command('checkpoint').description('print the latest signed checkpoint (C2SP signed note)'))
  .option('--json', 'print JSON { size, root, note } (root in base64url)')
  .action(
    action(async (flags: ConfigFlags & { json?: boolean }) => {
      await withContainer(flags, 'checkpoint', 'existing', async (container) => {
        const latest = await container.ledger.latestCheckpoint();
        if (!latest) throw new NoCheckpointError('the ledger has no checkpoint yet; start the collector once (`sakshya-collector serve`)');
        if (flags.json) printJson({ size: latest.size, root: toBase64Url(latest.root), note: latest.note });
        else process.stdout.write(latest.note);
      });
    }),
  );

const report = program.command('report').description('report bundles for auditors');
withConfigFlags(
  report
    .command('export')
    .description('export a signed, offline-verifiable report bundle (docs/report-bundle.md) into a new directory'),
)
  .requiredOption('--from <date>', 'first instant, inclusive: ISO date (UTC midnight) or date-time with Z or offset')
  .requiredOption('--to <date>', 'end instant, exclusive: ISO date (UTC midnight) or date-time with Z or offset')
  .option('--agent <glob>', 'agent ids matching this glob (* any run, ? one character), e.g. AS-KMR-*')
  .option('--kind <kind>', 'only records of this kind: audit, telemetry or agent')
  .option('--type <type>', 'only records of this type, e.g. certificate.issued')
  .option('--checkpoint-size <n>', 'export against the stored checkpoint of this size (default: the latest)')
  .requiredOption('--out <dir>', 'directory to create (absent or empty); written via a temporary directory next to it')
  .option('--json', 'print a JSON summary')
  .action(
    action(
      async (
        flags: ConfigFlags & { from: string; to: string; agent?: string; kind?: string; type?: string; checkpointSize?: string; out: string; json?: boolean },
      ) => {
        let checkpointSize: number | undefined;
        if (flags.checkpointSize !== undefined) {
          if (!/^(0|[1-9][0-9]{0,15})$/.test(flags.checkpointSize)) throw new CliInputError(`--checkpoint-size ${JSON.stringify(flags.checkpointSize)} is not a whole number`);
          checkpointSize = Number(flags.checkpointSize);
        }
        const request = asCliInput(() =>
          parseReportRequest({ from: flags.from, to: flags.to, agent: flags.agent, kind: flags.kind, type: flags.type, checkpointSize }),
        );
        const out = resolvePath(flags.out);
        await withContainer(flags, 'report export', 'existing', async (container) => {
          const by = operator();
          const progress = progressReporter({ logger: container.logger });
          const result = await container.reports.exportToDirectory(request, out, by, progress).catch((err: unknown) => {
            if (err instanceof Error && err.name === 'ProblemError') throw new CliInputError(err.message);
            throw err;
          });
          const { counts, chains } = result.manifest;
          container.logger.info({ out, records: counts.records, checkpointSize: result.checkpointSize, manifestSha256: result.manifestSha256, by }, 'report exported');
          if (flags.json) {
            printJson({ out, checkpointSize: result.checkpointSize, manifestSha256: result.manifestSha256, counts, filter: result.manifest.filter });
            return;
          }
          const gaps = chains.reduce((n, c) => n + c.gaps.length, 0);
          process.stdout.write(
            `exported ${counts.records} records of ${counts.chains} chains (${gaps} gap${gaps === 1 ? '' : 's'}) at checkpoint size ${result.checkpointSize} to ${out}\n` +
              `manifest sha256 ${result.manifestSha256}\n`,
          );
        });
      },
    ),
  );

registerDbCommands(program, {
  action,
  configFrom: (overrides) => loadCollectorConfig(process.env, overrides),
  loggerFor,
  inputError: (message) => new CliInputError(message),
});

/** Runs `fn`, turning a ProblemError (bad input) into a one-line CLI error. */
function asCliInput<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof Error && err.name === 'ProblemError') throw new CliInputError(err.message);
    throw err;
  }
}

program.parseAsync(process.argv).catch(fail);
