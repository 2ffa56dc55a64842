/**
 * Where `init` gets the one-time enrollment token: exactly one of
 * - a file: `--token-file F`, or `SAKSHYA_ENROLL_TOKEN_FILE` (the flag wins over the variable, as
 *   flags do); read whole, surrounding whitespace trimmed, and it MUST NOT be empty. Standard
 *   input (`--token-file /dev/stdin` or `-`, a pipe) works too, so the token can go straight from
 *   `sakshya-collector agents enroll` to `init` without touching a disk or a command line;
 * - `--token T`, kept for compatibility: the token is then in the process list (`ps`) of every
 *   user and in the shell's history, so it is accepted with a warning.
 *
 * Whoever reads the token before the agent uses it can enroll their own key under this agent's
 * id, so a token file that group or others can read is refused (chmod 600 F), like the agent's
 * other secrets.
 */
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import type { Logger } from '../shared/logger.ts';

/** Far more than a token (at most 256 characters): a bigger file is not a token file. */
const MAX_TOKEN_FILE_BYTES = 4096;

export class EnrollTokenError extends Error {
  override name = 'EnrollTokenError';
}

export interface EnrollTokenSources {
  /** `--token T`. */
  token?: string | undefined;
  /** `--token-file F`. */
  tokenFile?: string | undefined;
  /** `SAKSHYA_ENROLL_TOKEN_FILE`. */
  envTokenFile?: string | undefined;
}

/** Returns the enrollment token from its one source; throws EnrollTokenError naming the problem. */
export function readEnrollToken(sources: EnrollTokenSources, logger: Logger): string {
  const file = sources.tokenFile ?? sources.envTokenFile;
  const fileSource = sources.tokenFile !== undefined ? '--token-file' : 'SAKSHYA_ENROLL_TOKEN_FILE';
  if (sources.token !== undefined && file !== undefined) {
    throw new EnrollTokenError(`the enrollment token is given twice (--token and ${fileSource}); give exactly one source, preferably --token-file`);
  }
  if (sources.token !== undefined) {
    logger.warn('the enrollment token was given with --token: other users can see it in the process list and the shell history keeps it; prefer --token-file FILE');
    return sources.token;
  }
  if (file === undefined) {
    throw new EnrollTokenError('no enrollment token: pass --token-file FILE (or set SAKSHYA_ENROLL_TOKEN_FILE) with the token `sakshya-collector agents enroll` printed');
  }
  return readTokenFile(file, fileSource);
}

/** Names that mean this process's standard input, read through fd 0 (Node's spawn gives children a socket there, which cannot be reopened). */
const STDIN_NAMES = new Set(['-', '/dev/stdin']);

function readTokenFile(path: string, source: string): string {
  const stdin = STDIN_NAMES.has(path);
  let fd: number;
  try {
    fd = stdin ? 0 : openSync(path, 'r');
  } catch (err) {
    throw new EnrollTokenError(`${source}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile() && !(stdin && (stat.isFIFO() || stat.isSocket()))) {
      throw new EnrollTokenError(`${source}: ${path} is not a file${stdin ? ' or a pipe' : ''}`);
    }
    const mode = stat.mode & 0o777;
    // Only a file's mode says who could read it: a pipe's bytes are read once, here.
    if (stat.isFile() && (mode & 0o044) !== 0) {
      throw new EnrollTokenError(
        `${source}: ${path} has mode ${mode.toString(8).padStart(4, '0')}; an enrollment token must not be readable by group or others (chmod 600 ${path})`,
      );
    }
    if (stat.isFile() && stat.size > MAX_TOKEN_FILE_BYTES) throw new EnrollTokenError(`${source}: ${path} is larger than ${MAX_TOKEN_FILE_BYTES} bytes: not a token file`);
    const token = readFileSync(fd, 'utf8').trim();
    if (token === '') throw new EnrollTokenError(`${source}: ${path} is empty`);
    return token;
  } finally {
    if (!stdin) closeSync(fd);
  }
}
