#!/usr/bin/env node
/**
 * sakshya-verify: checks a Sakshya report bundle offline (docs/auditors.md).
 *
 *   sakshya-verify DIR|BUNDLE.tar.gz [--collector-key FILE] [--json] [--threads N]
 *                  [--max-metadata-bytes N] [--max-member-bytes N] [--max-total-bytes N]
 *
 * Exit codes (EXIT_CODES_HELP):
 *   0  VERIFIED: every check passed, against the pinned collector key
 *   1  FAILED: the bundle failed at least one check (each problem is printed)
 *   2  unusable input: bad arguments, no such bundle path, a file that cannot be read, a bundle
 *      file that is not a regular file or is over its cap, an unsafe archive, an unreadable or
 *      invalid --collector-key file. Nothing was verified.
 *   3  CONSISTENT, NOT AUTHENTICATED: every check passed, but no --collector-key was given, so
 *      only against the bundle's own keys: that proves nothing about who made the bundle.
 *
 * Standalone by design: it imports only shared/ and verifier/, needs no database and opens no
 * network connection. The verdict goes to stdout; an input error is one line on stderr. Every
 * byte written goes through terminal-text.ts: the bundle's fields cannot drive the terminal.
 */
import { packageVersion } from '../../shared/package-version.ts';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { CollectorKeyError, loadPinnedCollectorKey, type PinnedCollectorKey } from '../collector-key.ts';
import { DEFAULT_INPUT_LIMITS, type InputLimits } from '../bundle-file.ts';
import { formatProblem } from '../problems.ts';
import { escapeForTerminal, jsonForTerminal, linesForTerminal } from '../terminal-text.ts';
import { formatVerdict } from '../verdict.ts';
import { BundleInputError, verifyBundle, type Verdict } from '../verify-bundle.ts';

export const EXIT_VERIFIED = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_NOT_AUTHENTICATED = 3;

const EXIT_CODES: { [verdict in Verdict]: number } = {
  VERIFIED: EXIT_VERIFIED,
  FAILED: EXIT_FAILED,
  CONSISTENT_NOT_AUTHENTICATED: EXIT_NOT_AUTHENTICATED,
};

const EXIT_CODES_HELP = `
Exit codes:
  0  VERIFIED: every check passed, against the pinned --collector-key
  1  FAILED: the bundle failed at least one check (each problem is printed)
  2  unusable input, nothing was verified: bad arguments, no such bundle, a file that cannot be
     read, a bundle file that is not a regular file or is over its cap, an unsafe archive, or a
     --collector-key file that is not a key file (one line on stderr names the problem)
  3  CONSISTENT, NOT AUTHENTICATED: every check passed, but without --collector-key only against
     the keys inside the bundle, which anyone can make: this proves nothing about who made it
`;

function threadCount(value: string): number {
  if (!/^(0|[1-9][0-9]{0,2})$/.test(value)) throw new InvalidArgumentError('a whole number from 0 to 999');
  return Number(value);
}

const UNITS: { [unit: string]: number } = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

/** A byte count: a whole number, optionally with K, M or G (binary: 1K = 1024). */
export function byteCount(value: string): number {
  const match = /^([1-9][0-9]{0,15})([KMG]?)$/i.exec(value);
  const bytes = match ? Number(match[1]) * UNITS[match[2]!.toUpperCase()]! : NaN;
  if (!Number.isSafeInteger(bytes)) throw new InvalidArgumentError('a whole number of bytes, optionally with K, M or G (e.g. 512M, 8G)');
  return bytes;
}

function sizeText(bytes: number): string {
  return bytes % 1024 ** 3 === 0 ? `${bytes / 1024 ** 3}G` : `${bytes / 1024 ** 2}M`;
}

interface CliOptions {
  collectorKey?: string;
  json?: boolean;
  threads?: number;
  maxMetadataBytes?: number;
  maxMemberBytes?: number;
  maxTotalBytes?: number;
}

function limitsOf(opts: CliOptions): Partial<InputLimits> {
  const limits: Partial<InputLimits> = {};
  if (opts.maxMetadataBytes !== undefined) limits.maxMetadataBytes = opts.maxMetadataBytes;
  if (opts.maxMemberBytes !== undefined) limits.maxMemberBytes = opts.maxMemberBytes;
  if (opts.maxTotalBytes !== undefined) limits.maxTotalBytes = opts.maxTotalBytes;
  return limits;
}

const program = new Command()
  .name('sakshya-verify')
  .description('Checks a Sakshya report bundle offline: manifest signature, file hashes, checkpoint, every record signature and inclusion proof, chain links and gaps.')
  .version(packageVersion(), '--version', 'print the version and exit')
  .argument('<bundle>', 'the bundle directory, or its .tar.gz')
  .addOption(new Option('--collector-key <file>', "the collector's public keys, obtained out of band: GET /api/v1/keys output, a JWKS or a JWK"))
  .option('--json', 'print the result as one JSON object instead of the verdict text')
  .addOption(new Option('--threads <n>', 'worker threads for the record checks (default: one per core; 0: none)').argParser(threadCount))
  .addOption(
    new Option('--max-metadata-bytes <n>', `refuse a manifest.json, keys.json or checkpoint larger than this (manifest.jws: 4/3 of it) (default: ${sizeText(DEFAULT_INPUT_LIMITS.maxMetadataBytes)})`).argParser(byteCount),
  )
  .addOption(new Option('--max-member-bytes <n>', `refuse a .tar.gz with a member larger than this, unpacked (default: ${sizeText(DEFAULT_INPUT_LIMITS.maxMemberBytes)})`).argParser(byteCount))
  .addOption(new Option('--max-total-bytes <n>', `refuse a .tar.gz that unpacks to more than this (default: ${sizeText(DEFAULT_INPUT_LIMITS.maxTotalBytes)})`).argParser(byteCount))
  .addHelpText('after', EXIT_CODES_HELP)
  .showSuggestionAfterError()
  .exitOverride()
  // Commander echoes arguments in its errors: they go through the same escaping as everything else.
  .configureOutput({ outputError: (text, write) => write(linesForTerminal(text.trimEnd().split('\n'))) })
  .action(async (bundle: string, opts: CliOptions) => {
    let collectorKey: PinnedCollectorKey | undefined;
    if (opts.collectorKey !== undefined) collectorKey = loadPinnedCollectorKey(opts.collectorKey);
    const result = await verifyBundle(bundle, {
      ...(collectorKey ? { collectorKey } : {}),
      ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
      limits: limitsOf(opts),
    });
    process.stdout.write(opts.json ? jsonForTerminal(result) : formatVerdict(result));
    process.exitCode = EXIT_CODES[result.verdict];
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
  } else if (err instanceof BundleInputError) {
    fail(`sakshya-verify: nothing was verified: ${formatProblem(err.problem)}`);
  } else if (err instanceof CollectorKeyError) {
    fail(`sakshya-verify: ${err.message}`);
  } else {
    // A bug, not a verdict: say so plainly, and never exit 0.
    fail(`sakshya-verify: internal error: ${(err as Error).message}`);
  }
}
