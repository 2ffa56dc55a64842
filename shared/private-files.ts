/**
 * Private data directories and databases: the agent's and the collector's data are for the user
 * that runs them alone, whatever the umask of the shell or service manager that started them.
 *
 * Rules
 * - A data directory (and a subdirectory the code makes in it, such as `keys/`) is created 0700.
 *   An existing one that group or others can WRITE is refused at start (UnsafeDirectoryError):
 *   whoever can write there can swap the database, a key or the local token for their own.
 *   One they can only read is accepted; the files in it are 0600.
 * - A SQLite database is created 0600 and so are its `-wal` and `-shm` files. SQLite makes those
 *   itself, with the main file's mode masked by the umask; so the main file is made first, here,
 *   empty, with O_CREAT|O_EXCL and mode 0600 (which a umask can only narrow), then fchmod'ed to
 *   exactly 0600 through the same descriptor. SQLite then opens an existing (empty = new) file,
 *   and every `-wal`/`-shm` it creates copies 0600. At no moment does a file exist with more
 *   than 0600. Changing `process.umask()` around the open was rejected: it is process-wide,
 *   races with worker threads and other opens, and is deprecated for workers.
 * - Files left wider by an earlier version (e.g. 0644 under umask 022) are narrowed to 0600 when
 *   the database is opened again.
 */
import { chmodSync, closeSync, constants, fchmodSync, mkdirSync, openSync, statSync } from 'node:fs';

/** Mode of a private directory and of a private file. */
export const PRIVATE_DIRECTORY_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** A data directory that group or others can write to. The message says how to fix it. */
export class UnsafeDirectoryError extends Error {
  override name = 'UnsafeDirectoryError';
  readonly path: string;
  readonly mode: number;
  constructor(path: string, mode: number) {
    super(
      `the data directory ${path} has mode ${octal(mode)}: group or others can write to it, and so replace its database or keys. ` +
        `Refusing to start; fix it with: chmod 700 ${path}`,
    );
    this.path = path;
    this.mode = mode;
  }
}

function octal(mode: number): string {
  return mode.toString(8).padStart(4, '0');
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

/**
 * Refuses a directory that group or others can write to (UnsafeDirectoryError). A missing
 * directory passes: the caller reports that in its own terms ("run init first").
 */
export function assertPrivateDirectory(dir: string): void {
  let mode: number;
  try {
    const stat = statSync(dir);
    if (!stat.isDirectory()) return; // the caller's own open reports "not a directory"
    mode = stat.mode & 0o7777;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw err;
  }
  if ((mode & 0o022) !== 0) throw new UnsafeDirectoryError(dir, mode);
}

/**
 * Makes `dir` (and missing parents) with mode 0700 if it is absent, then refuses it if group or
 * others can write to it. Returns whether it created `dir`.
 */
export function ensurePrivateDirectory(dir: string): boolean {
  // mkdir's mode is narrowed by the umask, never widened: a new directory is at most 0700 from
  // the start; the chmod only restores owner bits a strange umask (e.g. 0277) took away.
  const created = mkdirSync(dir, { recursive: true, mode: PRIVATE_DIRECTORY_MODE }) !== undefined;
  if (created) chmodSync(dir, PRIVATE_DIRECTORY_MODE);
  assertPrivateDirectory(dir);
  return created;
}

/**
 * Before SQLite opens `path`: with `create`, makes the database file if it is absent (empty,
 * exclusively, 0600: see the header); then narrows the file and its `-wal`/`-shm`/`-journal`
 * files to 0600 if an earlier version left them readable by group or others.
 */
export function preparePrivateDatabase(path: string, options: { create: boolean }): void {
  if (options.create) {
    let fd: number | undefined;
    try {
      fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, PRIVATE_FILE_MODE);
      fchmodSync(fd, PRIVATE_FILE_MODE);
    } catch (err) {
      // Another process (or an earlier run) made it first: it is narrowed below like any other.
      if (errnoCode(err) !== 'EEXIST') throw err;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
  for (const file of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) {
    try {
      if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, PRIVATE_FILE_MODE);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
    }
  }
}
