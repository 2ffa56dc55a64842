/**
 * A file written in order, chunk by chunk, that knows its sha256 and length when closed — so a
 * bundle file is hashed while it is written, never read back. Honours back-pressure: `write`
 * resolves when the chunk is buffered below the stream's high-water mark, so memory stays flat
 * however large the file.
 */
import { createHash, type Hash } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import type { FileDigest } from '../../../shared/report/bundle-format.ts';

export class HashedFileWriter {
  readonly path: string;
  readonly #stream: WriteStream;
  readonly #hash: Hash = createHash('sha256');
  #bytes = 0;
  #failure: Error | undefined;

  constructor(path: string) {
    this.path = path;
    // 'wx': a bundle file is always new; an existing file means two exports share a directory.
    this.#stream = createWriteStream(path, { flags: 'wx', mode: 0o644 });
    this.#stream.on('error', (err) => {
      this.#failure = err;
    });
  }

  async write(chunk: string | Buffer): Promise<void> {
    if (this.#failure) throw this.#failure;
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    this.#hash.update(bytes);
    this.#bytes += bytes.length;
    // events.once rejects if the stream emits 'error' while we wait.
    if (!this.#stream.write(bytes)) await once(this.#stream, 'drain');
  }

  /** Flushes, fsyncs-by-close and returns the digest of everything written. */
  async close(): Promise<FileDigest> {
    if (this.#failure) throw this.#failure;
    this.#stream.end();
    await once(this.#stream, 'close');
    if (this.#failure) throw this.#failure;
    return { sha256: this.#hash.digest('hex'), bytes: this.#bytes };
  }

  /** Closes without caring about the content (after a failure). */
  destroy(): void {
    this.#stream.destroy();
  }
}

/** Writes a whole small file at once, returning its digest. */
export async function writeHashedFile(path: string, content: string | Buffer): Promise<FileDigest> {
  const writer = new HashedFileWriter(path);
  try {
    await writer.write(content);
    return await writer.close();
  } catch (err) {
    writer.destroy();
    throw err;
  }
}
