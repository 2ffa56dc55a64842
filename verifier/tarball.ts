/**
 * Reads a bundle `.tar.gz` (what the HTTP API serves) into a temporary directory, refusing
 * anything a bundle never holds, because the archive comes from the party being audited:
 * - a member path that is absolute, has `..`, a backslash or more than one directory level
 *   (the bundle's files, optionally under one top directory such as `sakshya-report/`);
 * - any member that is not a regular file or a directory: symlinks, hard links, devices, FIFOs;
 * - the same path twice (a later member would silently replace the first);
 * - more than `maxEntries` members, a member over `maxMemberBytes` (a metadata file over its
 *   own, smaller cap: bundle-file.ts), more than `maxTotalBytes` in all, or a gzip stream that
 *   unpacks to more than that plus 1 MiB of tar headers (a gzip bomb fills the disk, or spins
 *   on padding and headers, before anything is checked).
 * A refused or unreadable archive is a BundleInputError (exit 2: nothing was verified), with the
 * code `archive.refused`, `archive.too_large` or `archive.unreadable`. The temporary directory
 * is removed before the error is thrown; on success the caller removes it with `cleanup()`.
 */
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract as tarExtract } from 'tar-stream';
import { BUNDLE_FILES } from '../shared/report/bundle-format.ts';
import { DEFAULT_INPUT_LIMITS, metadataCap, type InputLimits } from './bundle-file.ts';
import { BundleInputError } from './problems.ts';

/** What the unpacked gzip stream may hold beyond the members' bytes: tar headers, padding, the end blocks. */
export const TAR_OVERHEAD_BYTES = 1024 * 1024;

export function isArchivePath(path: string): boolean {
  return /\.(tar\.gz|tgz)$/i.test(path);
}

class UnsafeArchiveError extends Error {
  override name = 'UnsafeArchiveError';
}

class ArchiveTooLargeError extends Error {
  override name = 'ArchiveTooLargeError';
}

/** The member's path inside the extraction directory, or an error saying why it is refused. */
function safeMemberPath(name: string): string {
  const trimmed = name.replace(/\/+$/, '');
  if (trimmed.length === 0 || name.includes('\\') || name.includes('\0')) throw new UnsafeArchiveError(`member ${JSON.stringify(name)} has an unsafe name`);
  if (name.startsWith('/')) throw new UnsafeArchiveError(`member ${JSON.stringify(name)} has an absolute path`);
  const parts = trimmed.split('/');
  if (parts.some((part) => part === '..' || part === '.' || part === '')) throw new UnsafeArchiveError(`member ${JSON.stringify(name)} leaves or walks its directory`);
  if (parts.length > 2) throw new UnsafeArchiveError(`member ${JSON.stringify(name)} is nested deeper than a bundle is`);
  return posix.join(...parts);
}

/** Counts the bytes gunzip produces and fails past `max`; `refused` says why, whichever side of the pipeline fails first. */
function unpackedCap(max: number, refused: (err: Error) => Error): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen > max) return callback(refused(new ArchiveTooLargeError(`the gzip stream unpacks to more than ${max.toLocaleString('en-US')} bytes`)));
      callback(null, chunk);
    },
  });
}

const FLAGS_HINT = 'raise --max-member-bytes / --max-total-bytes / --max-metadata-bytes only for an archive you expect to be that large';

export interface ExtractedBundle {
  /** The directory holding the bundle's files. */
  dir: string;
  cleanup(): void;
}

export async function extractBundleArchive(path: string, limits: InputLimits = DEFAULT_INPUT_LIMITS): Promise<ExtractedBundle> {
  const root = mkdtempSync(join(tmpdir(), 'sakshya-verify-'));
  const cleanup = (): void => rmSync(root, { recursive: true, force: true });
  const seen = new Set<string>();
  let total = 0;
  // The first refusal, whichever side of the pipeline fails first: the other fails with a generic stream error.
  let refusal: Error | undefined;
  const refused = (err: Error): Error => (refusal ??= err);
  const extract = tarExtract();
  try {
    await Promise.all([
      pipeline(createReadStream(path), createGunzip(), unpackedCap(limits.maxTotalBytes + TAR_OVERHEAD_BYTES, refused), extract),
      (async () => {
        try {
          await extractMembers();
        } catch (err) {
          throw refused(err as Error);
        }
      })(),
    ]);
  } catch (err) {
    extract.destroy();
    cleanup();
    const cause = refusal ?? (err as Error);
    if (cause instanceof ArchiveTooLargeError) throw new BundleInputError('archive.too_large', path, `the archive was refused: ${cause.message}; ${FLAGS_HINT}`);
    if (cause instanceof UnsafeArchiveError) throw new BundleInputError('archive.refused', path, `the archive was refused: ${cause.message}`);
    throw new BundleInputError('archive.unreadable', path, `the archive cannot be read as a .tar.gz: ${cause.message}`);
  }
  return { dir: bundleDirectory(root), cleanup };

  async function extractMembers(): Promise<void> {
    for await (const entry of extract) {
      const { header } = entry;
      const member = safeMemberPath(header.name);
      if (seen.has(member)) throw new UnsafeArchiveError(`member ${JSON.stringify(header.name)} appears twice`);
      seen.add(member);
      if (seen.size > limits.maxEntries) throw new UnsafeArchiveError(`more than ${limits.maxEntries} members`);
      if (header.type === 'directory') {
        if (member.includes('/')) throw new UnsafeArchiveError(`directory ${JSON.stringify(header.name)} is nested deeper than a bundle is`);
        mkdirSync(join(root, member), { recursive: true, mode: 0o700 });
        entry.resume();
        continue;
      }
      if (header.type !== 'file') throw new UnsafeArchiveError(`member ${JSON.stringify(header.name)} is a ${header.type ?? 'special file'}, not a regular file`);
      const parts = member.split('/');
      const cap = Math.min(metadataCap(parts.at(-1)!, limits.maxMetadataBytes) ?? Infinity, limits.maxMemberBytes);
      const overCap = (): ArchiveTooLargeError => new ArchiveTooLargeError(`member ${JSON.stringify(header.name)} is larger than ${cap.toLocaleString('en-US')} bytes`);
      if ((header.size ?? 0) > cap) throw overCap();
      if (parts.length === 2) mkdirSync(join(root, parts[0]!), { recursive: true, mode: 0o700 });
      const out = createWriteStream(join(root, member), { flags: 'wx', mode: 0o600 });
      let written = 0;
      const counter = new Writable({
        write(chunk: Buffer, _encoding, callback) {
          written += chunk.length;
          total += chunk.length;
          if (written > cap) return callback(overCap());
          if (total > limits.maxTotalBytes) return callback(new ArchiveTooLargeError(`the members unpack to more than ${limits.maxTotalBytes.toLocaleString('en-US')} bytes in all`));
          if (!out.write(chunk)) out.once('drain', () => callback());
          else callback();
        },
        final(callback) {
          out.end(callback);
        },
      });
      out.once('error', (err) => counter.destroy(err));
      await pipeline(entry, counter);
    }
  }
}

/** The bundle's files are at the root of the archive or under its one top directory. */
function bundleDirectory(root: string): string {
  const entries = readdirSync(root, { withFileTypes: true });
  if (entries.some((entry) => entry.name === BUNDLE_FILES.manifest)) return root;
  if (entries.length === 1 && entries[0]!.isDirectory()) return join(root, entries[0]!.name);
  return root;
}
