/**
 * `sakshya-collector db copy | db verify-copy --from URL --to URL`: moving the collector's
 * database (services/database-copy.ts) and proving the copy. Registered by sakshya-collector.ts,
 * whose conventions these follow: configuration from the environment and flags, logs on stderr,
 * the result on stdout, exit 1 when the copy is refused or not proved, 2 for bad configuration.
 */
import type { Command } from 'commander';
import type { Logger } from '../../shared/logger.ts';
import type { CollectorConfig, CollectorConfigOverrides } from '../config.ts';
import { createContainer } from '../container.ts';
import { loadCollectorKeys } from '../keys.ts';
import { DatabaseCopy, type CopyProof, type CopyResult } from '../services/database-copy.ts';
import { copyProgressReporter, silentCopyProgress } from '../services/database-copy/progress.ts';
import { formatCopy, formatProof } from '../services/database-copy/report.ts';
import { databaseTakesPassword, databaseUrlHasPassword, DatabaseUrlError, parseDatabaseUrl, type DatabaseConnection } from '../store/open-store.ts';

/** What the main program lends these commands. */
export interface CliSupport {
  action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void>;
  configFrom(flags: CollectorConfigOverrides): CollectorConfig;
  loggerFor(config: CollectorConfig, command: string): Logger;
  inputError(message: string): Error;
}

interface DbFlags {
  from: string;
  to: string;
  dir?: string;
  origin?: string;
  json?: boolean;
  quiet?: boolean;
}

/** The copy of `flags`, configured as the collector is: its keys directory and origin, a database password file for a postgres:// URL that carries none. */
function databaseCopy(flags: DbFlags, command: string, cli: CliSupport): { copy: DatabaseCopy; logger: Logger } {
  for (const [flag, url] of [['--from', flags.from], ['--to', flags.to]] as const) {
    try {
      parseDatabaseUrl(url);
    } catch (err) {
      if (err instanceof DatabaseUrlError) throw cli.inputError(`${flag} ${err.message}`);
      throw err;
    }
  }
  // SAKSHYA_COLLECTOR_DATABASE_PASSWORD_FILE is validated against the server database of the two.
  const server = [flags.to, flags.from].find(databaseTakesPassword) ?? flags.to;
  const config = cli.configFrom({ dir: flags.dir, origin: flags.origin, database: server });
  const logger = cli.loggerFor(config, command);
  const connection = (url: string): DatabaseConnection => ({
    url,
    password: databaseTakesPassword(url) && !databaseUrlHasPassword(url) ? config.databasePassword : undefined,
    poolSize: 2,
  });
  const to = connection(flags.to);
  const copy = new DatabaseCopy({
    from: connection(flags.from),
    to,
    origin: config.origin,
    keys: loadCollectorKeys(config.dir),
    progress: flags.quiet ? silentCopyProgress : copyProgressReporter({ logger }),
    openTarget: () => createContainer({ ...config, database: to.url, databasePassword: to.password }, { logger, mode: 'existing' }),
  });
  return { copy, logger };
}

function report(flags: DbFlags, proof: CopyProof, copied?: CopyResult): void {
  if (flags.json) process.stdout.write(JSON.stringify(copied ? { copy: copied, proof } : { proof }, null, 2) + '\n');
  else process.stdout.write((copied ? formatCopy(copied) : '') + formatProof(proof, copied));
  if (!proof.proved) process.exitCode = 1;
}

function withCopyFlags(command: Command): Command {
  return command
    .requiredOption('--from <url>', 'the database to copy: sqlite:<path> or postgres://user@host:5432/db')
    .requiredOption('--to <url>', 'the database to copy into: postgres://user@host:5432/db or sqlite:<path>')
    .option('--dir <path>', "the collector's data directory, whose keys the source was written with (overrides SAKSHYA_COLLECTOR_DIR)")
    .option('--origin <origin>', "the collector's log origin (overrides SAKSHYA_COLLECTOR_ORIGIN)")
    .option('--json', 'print the result as JSON')
    .option('--quiet', 'no progress bar or progress log lines');
}

export function registerDbCommands(program: Command, cli: CliSupport): void {
  const db = program.command('db').description("move the collector's database");
  withCopyFlags(
    db
      .command('copy')
      .description(
        'copy every table into an empty database (migrated first) in one transaction, then prove the copy: same rows, same root, ledger verify intact; exit 0 only if proved',
      ),
  ).action(
    cli.action(async (flags: DbFlags) => {
      const { copy, logger } = databaseCopy(flags, 'db copy', cli);
      const copied = await copy.copy();
      logger.info({ from: copied.from, to: copied.to, size: copied.ledger.size, rows: copied.rows, bytes: copied.bytes, durationMs: copied.durationMs }, 'database copied');
      const proof = await copy.prove();
      logger[proof.proved ? 'info' : 'error']({ proved: proof.proved, failed: proof.checks.filter((c) => !c.ok).map((c) => c.name) }, proof.proved ? 'copy proved' : 'copy NOT proved');
      report(flags, proof, copied);
    }),
  );
  withCopyFlags(
    db
      .command('verify-copy')
      .description('prove again, changing nothing, that the --to database is a faithful copy of the --from database as both are now; exit 0 only if proved'),
  ).action(
    cli.action(async (flags: DbFlags) => {
      const { copy } = databaseCopy(flags, 'db verify-copy', cli);
      report(flags, await copy.prove());
    }),
  );
}
