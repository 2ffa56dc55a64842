/**
 * Reads a bundle `.tar.gz` (what the HTTP API serves) into a temporary directory, refusing
 * anything a bundle never holds, because the archive comes from the party being audited:
 * - a member path that is absolute, has `..`, a backslash or more than one directory level
 *   (the bundle's files, optionally under one top directory such as `sakshya-report/`);
 * - any member that is not a regular file or a directory: symlinks, hard links, devices, FIFOs;
 * - the same path twice (a later member would silently replace the first);
 * - more than `maxEntries` members, a member over `maxMemberBytes`, or more than
 *   `maxTotalBytes` in all (a gzip bomb fills the disk before anything is checked).
 * A refused or unreadable archive is a problem in the verdict (the bundle fails), not a crash.
 * The caller removes the directory with `cleanup()`.
 */
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract as tarExtract } from 'tar-stream';
import { BUNDLE_FILES } from '../shared/report/bundle-format.ts';
import type { ProblemList } from './problems.ts';

export interface ArchiveLimits {
  maxEntries: number;
  maxMemberBytes: number;
  maxTotalBytes: number;
}

/** Far above a 10^6-record bundle (≈ 1.5 GB of records and proofs), far below a full disk. */
export const DEFAULT_ARCHIVE_LIMITS: ArchiveLimits = {
  maxEntries: 64,
  maxMemberBytes: 8 * 1024 ** 3,
  maxTotalBytes: 16 * 1024 ** 3,
};

export function isArchivePath(path: string): boolean {
  return /\.(tar\.gz|tgz)$/i.test(path);
}

class UnsafeArchiveError extends Error {
  override name = 'UnsafeArchiveError';
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

export interface ExtractedBundle {
  /** The directory holding the bundle's files, or undefined if the archive was refused. */
  dir: string | undefined;
  cleanup(): void;
}

export async function extractBundleArchive(path: string, problems: ProblemList, limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS): Promise<ExtractedBundle> {
  const root = mkdtempSync(join(tmpdir(), 'sakshya-verify-'));
  const cleanup = (): void => rmSync(root, { recursive: true, force: true });
  const seen = new Set<string>();
  let total = 0;
  const extract = tarExtract();
  try {
    await Promise.all([
      pipeline(createReadStream(path), createGunzip(), extract),
      (async () => {
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
          if ((header.size ?? 0) > limits.maxMemberBytes) throw new UnsafeArchiveError(`member ${JSON.stringify(header.name)} is larger than ${limits.maxMemberBytes} bytes`);
          const parts = member.split('/');
          if (parts.length === 2) mkdirSync(join(root, parts[0]!), { recursive: true, mode: 0o700 });
          const out = createWriteStream(join(root, member), { flags: 'wx', mode: 0o600 });
          let written = 0;
          const counter = new Writable({
            write(chunk: Buffer, _encoding, callback) {
              written += chunk.length;
              total += chunk.length;
              if (written > limits.maxMemberBytes) return callback(new UnsafeArchiveError(`member ${JSON.stringify(header.name)} is larger than ${limits.maxMemberBytes} bytes`));
              if (total > limits.maxTotalBytes) return callback(new UnsafeArchiveError(`the archive unpacks to more than ${limits.maxTotalBytes} bytes`));
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
      })(),
    ]);
  } catch (err) {
    extract.destroy();
    const unsafe = err instanceof UnsafeArchiveError;
    problems.add({
      check: unsafe ? 'archive.refused' : 'archive.unreadable',
      file: path,
      message: unsafe ? `the archive was refused: ${err.message}` : `the archive cannot be read as a .tar.gz: ${(err as Error).message}`,
    });
    return { dir: undefined, cleanup };
  }
  return { dir: bundleDirectory(root), cleanup };
}

/** The bundle's files are at the root of the archive or under its one top directory. */
function bundleDirectory(root: string): string {
  const entries = readdirSync(root, { withFileTypes: true });
  if (entries.some((entry) => entry.name === BUNDLE_FILES.manifest)) return root;
  if (entries.length === 1 && entries[0]!.isDirectory()) return join(root, entries[0]!.name);
  return root;
}
