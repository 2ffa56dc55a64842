/**
 * The bundle as one deterministic `.tar.gz` (served by GET /api/v1/reports/<id>/bundle.tar.gz):
 * the same files give the same bytes, always. `tar-stream` writes POSIX ustar entries, zlib
 * gzips them:
 * - entries under `sakshya-report/`, sorted by name, no directory entry;
 * - every entry mode 0644, uid/gid 0, empty user and group names, mtime 0;
 * - gzip level 9 (Node's zlib writes no file name and mtime 0 in the gzip header).
 * Files are streamed from disk, one at a time: memory stays flat.
 */
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { constants, createGzip } from 'node:zlib';
import tar from 'tar-stream';

export const TAR_ROOT = 'sakshya-report';
const EPOCH = new Date(0);

/** Writes `names` (files in `dir`) as a deterministic tar.gz at `outPath` ('wx': never overwrites). */
export async function writeDeterministicTarGz(dir: string, names: readonly string[], outPath: string): Promise<void> {
  const pack = tar.pack();
  const finished = pipeline(pack, createGzip({ level: constants.Z_BEST_COMPRESSION }), createWriteStream(outPath, { flags: 'wx', mode: 0o644 }));
  try {
    for (const name of [...names].sort()) {
      const path = join(dir, name);
      const size = statSync(path).size;
      const entry = pack.entry({ name: `${TAR_ROOT}/${name}`, size, mode: 0o644, mtime: EPOCH, uid: 0, gid: 0, uname: '', gname: '', type: 'file' });
      await pipeline(createReadStream(path), entry);
    }
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
    await finished.catch(() => undefined);
    throw err;
  }
  await finished;
}
