#!/usr/bin/env node
/**
 * sakshya-verify: checks a Sakshya report bundle offline (docs/auditors.md).
 *
 *   sakshya-verify DIR|BUNDLE.tar.gz [--collector-key FILE] [--json] [--threads N]
 *
 * Exit codes:
 *   0  VERIFIED: every check passed
 *   1  FAILED: the bundle failed at least one check (each problem is printed)
 *   2  usage or input error: bad arguments, no such bundle path, a file that cannot be read,
 *      an unreadable or invalid --collector-key file. Nothing was verified.
 *
 * Standalone by design: it imports only shared/ and verifier/, needs no database and opens no
 * network connection. The verdict goes to stdout; an input error is one line on stderr. Every
 * byte written goes through terminal-text.ts: the bundle's fields cannot drive the terminal.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { CollectorKeyError, loadPinnedCollectorKey, type PinnedCollectorKey } from '../collector-key.ts';
import { escapeForTerminal, jsonForTerminal, linesForTerminal } from '../terminal-text.ts';
import { formatVerdict } from '../verdict.ts';
import { BundleInputError, verifyBundle } from '../verify-bundle.ts';

export const EXIT_VERIFIED = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

function threadCount(value: string): number {
  if (!/^(0|[1-9][0-9]{0,2})$/.test(value)) throw new InvalidArgumentError('a whole number from 0 to 999');
  return Number(value);
}

const program = new Command()
  .name('sakshya-verify')
  .description('Checks a Sakshya report bundle offline: manifest signature, file hashes, checkpoint, every record signature and inclusion proof, chain links and gaps.')
  .argument('<bundle>', 'the bundle directory, or its .tar.gz')
  .addOption(new Option('--collector-key <file>', "the collector's public keys, obtained out of band: GET /api/v1/keys output, a JWKS or a JWK"))
  .option('--json', 'print the result as one JSON object instead of the verdict text')
  .addOption(new Option('--threads <n>', 'worker threads for the record checks (default: one per core; 0: none)').argParser(threadCount))
  .showSuggestionAfterError()
  .exitOverride()
  // Commander echoes arguments in its errors: they go through the same escaping as everything else.
  .configureOutput({ outputError: (text, write) => write(linesForTerminal(text.trimEnd().split('\n'))) })
  .action(async (bundle: string, opts: { collectorKey?: string; json?: boolean; threads?: number }) => {
    let collectorKey: PinnedCollectorKey | undefined;
    if (opts.collectorKey !== undefined) collectorKey = loadPinnedCollectorKey(opts.collectorKey);
    const result = await verifyBundle(bundle, { ...(collectorKey ? { collectorKey } : {}), ...(opts.threads !== undefined ? { threads: opts.threads } : {}) });
    process.stdout.write(opts.json ? jsonForTerminal(result) : formatVerdict(result));
    process.exitCode = result.ok ? EXIT_VERIFIED : EXIT_FAILED;
  });

function fail(line: string): void {
  process.stderr.write(`${escapeForTerminal(line)}\n`);
  process.exitCode = EXIT_USAGE;
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version exit 0; every other commander error is a usage error.
    process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE;
  } else if (err instanceof BundleInputError || err instanceof CollectorKeyError) {
    fail(`sakshya-verify: ${err.message}`);
  } else {
    // A bug, not a verdict: say so plainly, and never exit 0.
    fail(`sakshya-verify: internal error: ${(err as Error).message}`);
  }
}
