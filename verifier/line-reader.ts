/**
 * Reads a file line by line as exact bytes, in flat memory (one read buffer plus one line).
 *
 * Why not node:readline: it also ends lines at a lone `\r` and at `\r\n`, and says nothing of a
 * last line without `\n`. A bundle's lines are evidence byte for byte (the leaf hash is over
 * them), so a line ends only at `\n` and a missing final `\n` is reported.
 *
 * The file must be a regular file (bundle-file.ts): a symlink or a FIFO is a BundleInputError.
 */
import { basename } from 'node:path';
import { openRegularFile } from './bundle-file.ts';
import { BundleInputError } from './problems.ts';

export interface Line {
  /** The line's bytes without its `\n`. A view: valid until the next line is read, copy to keep it. */
  bytes: Buffer;
  /** 1-based. */
  number: number;
  /** False for a last line that has no `\n`. */
  terminated: boolean;
}

const NEWLINE = 0x0a;

/** A record line is at most a 64 KiB body plus its envelope; anything near this is not a bundle line. */
export const MAX_LINE_BYTES = 4 * 1024 * 1024;

export class LineTooLongError extends Error {
  override name = 'LineTooLongError';
  readonly path: string;
  readonly line: number;

  constructor(path: string, line: number, limit: number) {
    super(`line ${line} is longer than ${limit} bytes`);
    this.path = path;
    this.line = line;
  }
}

export async function* readLines(path: string, maxLineBytes = MAX_LINE_BYTES): AsyncGenerator<Line> {
  let carry: Buffer = Buffer.alloc(0);
  let number = 0;
  const handle = await openRegularFile(path);
  if (!handle) throw new BundleInputError('input.unreadable', basename(path), `cannot read ${path}: ENOENT`);
  for await (const chunk of handle.createReadStream({ highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    const data = carry.length > 0 ? Buffer.concat([carry, chunk]) : chunk;
    let start = 0;
    for (let end = data.indexOf(NEWLINE, start); end >= 0; end = data.indexOf(NEWLINE, start)) {
      yield { bytes: data.subarray(start, end), number: ++number, terminated: true };
      start = end + 1;
    }
    // Copy the partial line: `data` may be a view of the stream's reused buffer.
    carry = Buffer.from(data.subarray(start));
    if (carry.length > maxLineBytes) throw new LineTooLongError(path, number + 1, maxLineBytes);
  }
  if (carry.length > 0) yield { bytes: carry, number: ++number, terminated: false };
}
