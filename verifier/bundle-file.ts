/**
 * Opens the files of a bundle directory, which the party being audited made: only regular files,
 * and the small metadata files only up to a cap.
 *
 * - Every file is opened with O_NOFOLLOW (a symlink could point at /dev/zero, a FIFO or any file
 *   of the auditor's machine) and O_NONBLOCK (opening a FIFO for reading otherwise waits for a
 *   writer forever), then checked with fstat on the open handle, so nothing can be swapped in
 *   between the check and the read. Anything but a regular file is refused (exit 2).
 * - manifest.json, manifest.jws, keys.json and checkpoint are read whole into memory and parsed,
 *   so each is refused when larger than `maxMetadataBytes` (manifest.jws, which carries the
 *   manifest base64url-encoded, gets 4/3 of it), before a byte of it is parsed. The other files
 *   are streamed and need no cap here.
 *
 * O_NOFOLLOW and O_NONBLOCK are POSIX; where Node does not define them (Windows) they are 0,
 * and the fstat check still refuses what is not a regular file once opened.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { BUNDLE_FILES } from '../shared/report/bundle-format.ts';
import { BundleInputError } from './problems.ts';

/** What the verifier reads at most; the CLI's --max-* flags set them. */
export interface InputLimits {
  /** manifest.json, keys.json, checkpoint (manifest.jws: 4/3 of it), in a directory or an archive. */
  maxMetadataBytes: number;
  /** Members of a `.tar.gz`. */
  maxEntries: number;
  /** One member of a `.tar.gz`, unpacked. */
  maxMemberBytes: number;
  /** All members of a `.tar.gz`, unpacked (the gzip stream may unpack to 1 MiB more: tar headers). */
  maxTotalBytes: number;
}

/**
 * A 10^6-record bundle is ≈ 2.1 GiB unpacked (records.jsonl ≈ 1 GiB), a state-wide fleet's
 * keys.json ≈ 0.5 KB per agent epoch and key. The archive caps bound what a `.tar.gz` from an
 * untrusted party can write to the temporary directory (often a RAM-backed tmpfs).
 */
export const DEFAULT_INPUT_LIMITS: InputLimits = {
  maxMetadataBytes: 8 * 1024 ** 2,
  maxEntries: 64,
  maxMemberBytes: 2 * 1024 ** 3,
  maxTotalBytes: 4 * 1024 ** 3,
};

const METADATA_FILES: ReadonlySet<string> = new Set([BUNDLE_FILES.manifest, BUNDLE_FILES.manifestJws, BUNDLE_FILES.keys, BUNDLE_FILES.checkpoint]);

/** The cap of a metadata file of that name, or undefined for a streamed file. */
export function metadataCap(name: string, maxMetadataBytes: number): number | undefined {
  if (!METADATA_FILES.has(name)) return undefined;
  // A compact JWS holds its payload base64url-encoded, plus a short header and signature.
  return name === BUNDLE_FILES.manifestJws ? Math.ceil((maxMetadataBytes * 4) / 3) + 4096 : maxMetadataBytes;
}

const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

function kindOf(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO (named pipe)';
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return 'a device';
  if (stats.isSocket()) return 'a socket';
  if (stats.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

function notRegular(path: string, what: string): BundleInputError {
  return new BundleInputError('file.not_regular', basename(path), `${path} is ${what}, not a regular file: a bundle holds only regular files`);
}

/** An open error as the refusal it means; undefined for ENOENT (the caller reports a missing file). */
function openFailure(path: string, err: unknown): BundleInputError | undefined {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return undefined;
  // O_NOFOLLOW on a symlink: ELOOP on Linux and macOS, EMLINK on FreeBSD.
  if (code === 'ELOOP' || code === 'EMLINK') return notRegular(path, 'a symbolic link');
  return new BundleInputError('input.unreadable', basename(path), `cannot read ${path}: ${code ?? (err as Error).message}`);
}

function tooLarge(path: string, cap: number): BundleInputError {
  return new BundleInputError(
    'file.too_large',
    basename(path),
    `${path} is larger than ${cap.toLocaleString('en-US')} bytes, far more than a bundle's ${basename(path)} holds; it was not read (raise the cap with --max-metadata-bytes if this bundle is genuinely that large)`,
  );
}

/** The whole of a small regular file, at most `cap` bytes; undefined if it does not exist. */
export function readCappedFile(path: string, cap: number): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (err) {
    const refused = openFailure(path, err);
    if (refused) throw refused;
    return undefined;
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw notRegular(path, kindOf(stats));
    if (stats.size > cap) throw tooLarge(path, cap);
    // Up to the cap whatever fstat said: the file may grow while it is read.
    const chunks: Buffer[] = [];
    let length = 0;
    const chunkBytes = Math.max(64 * 1024, Math.min(stats.size + 1, cap + 1));
    for (;;) {
      const chunk = Buffer.allocUnsafe(chunkBytes);
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      length += n;
      if (length > cap) throw tooLarge(path, cap);
      chunks.push(chunk.subarray(0, n));
    }
    return Buffer.concat(chunks, length);
  } catch (err) {
    if (err instanceof BundleInputError) throw err;
    throw new BundleInputError('input.unreadable', basename(path), `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  } finally {
    closeSync(fd);
  }
}

/** An open handle on a regular file, for streaming; undefined if it does not exist. The caller closes it. */
export async function openRegularFile(path: string): Promise<FileHandle | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, OPEN_FLAGS);
  } catch (err) {
    const refused = openFailure(path, err);
    if (refused) throw refused;
    return undefined;
  }
  let stats: Stats;
  try {
    stats = await handle.stat();
  } catch (err) {
    await handle.close();
    throw new BundleInputError('input.unreadable', basename(path), `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!stats.isFile()) {
    await handle.close();
    throw notRegular(path, kindOf(stats));
  }
  return handle;
}
