/**
 * The disk floor of report exports: an export never takes the file system it writes to below
 * `minFreeBytes` free (SAKSHYA_REPORT_MIN_FREE_BYTES). The collector's database usually shares
 * that disk, and a bundle (which can be exported again) is worth less than the records still to
 * come. Checked before anything of an export is created — 507 `report.storage_full`, nothing
 * written — and again while it writes: it then stops with the same problem and its files are
 * removed. `0` turns the floor off.
 */
import { existsSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ProblemError } from '../../../shared/problem.ts';

/** Bytes an unprivileged process may still write on the file system holding `path`. */
export type FreeBytesOf = (path: string) => Promise<number>;

export const freeBytesOf: FreeBytesOf = async (path) => {
  const stats = await statfs(path);
  return stats.bavail * stats.bsize;
};

/** `path`, or its nearest ancestor that exists (a directory an export is about to create). */
function nearestExisting(path: string): string {
  let at = path;
  while (!existsSync(at) && dirname(at) !== at) at = dirname(at);
  return at;
}

/** 1536 → "1.5 KiB" (binary units, one decimal). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export class DiskFloor {
  readonly minFreeBytes: number;
  readonly #freeBytesOf: FreeBytesOf;

  constructor(minFreeBytes: number, free: FreeBytesOf = freeBytesOf) {
    this.minFreeBytes = minFreeBytes;
    this.#freeBytesOf = free;
  }

  /**
   * Rejects with ProblemError `report.storage_full` if the file system of `path` (or of its
   * nearest existing ancestor) has less than the floor free. `label` names the place in the
   * message (an HTTP caller is not told server paths).
   */
  async check(path: string, label: string): Promise<void> {
    if (this.minFreeBytes === 0) return;
    const free = await this.#freeBytesOf(nearestExisting(path));
    if (free >= this.minFreeBytes) return;
    throw new ProblemError(
      'report.storage_full',
      `${formatBytes(free)} free on the disk of ${label}, below the floor of ${formatBytes(this.minFreeBytes)} kept free for the collector (SAKSHYA_REPORT_MIN_FREE_BYTES); free some space or export less`,
      { freeBytes: free, minFreeBytes: this.minFreeBytes },
    );
  }
}
