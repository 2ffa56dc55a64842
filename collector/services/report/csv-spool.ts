/**
 * The CSV spool: lets records.csv be written from ONE scan of the store. Its field columns are
 * the bundle's most common body fields, known only after the last record; so the records pass
 * appends each record's fixed cells and body text here, and the CSV pass reads them back in
 * order once the columns are chosen.
 *
 * - Format (internal, never part of a bundle): one line per record,
 *   `<JSON array of the CSV_FIXED_COLUMNS cells>` TAB `<the body's RFC 8785 text>`. Neither part
 *   can hold a raw tab or line break (JSON escapes them), so a line splits at its first tab.
 * - Memory: one write chunk; the file is read back line by line. Not with node:readline: it also
 *   ends lines at U+2028 and U+2029, which RFC 8785 text holds unescaped — one agent's body
 *   with such a character would break every export that includes it.
 * - The file lives in the bundle's own (temporary) directory under a dot-name, on the same disk
 *   as the bundle (not the system temp dir, which may be RAM), and the exporter removes it
 *   before the bundle is complete, also on failure.
 */
import { createReadStream, rmSync } from 'node:fs';
import { HashedFileWriter } from './hashed-file.ts';

export const CSV_SPOOL_FILE = '.records.csv.spool';
/** Lines buffered before a write: few large writes instead of one per record. */
const SPOOL_CHUNK_CHARS = 1 << 16;

export class CsvSpoolWriter {
  readonly path: string;
  readonly #file: HashedFileWriter;
  #pending = '';

  constructor(path: string) {
    this.path = path;
    this.#file = new HashedFileWriter(path);
  }

  /** Appends one row: its fixed cells (CSV_FIXED_COLUMNS order) and its body's canonical text. */
  async add(fixed: readonly string[], bodyText: string): Promise<void> {
    this.#pending += `${JSON.stringify(fixed)}\t${bodyText}\n`;
    if (this.#pending.length >= SPOOL_CHUNK_CHARS) await this.#flush();
  }

  async close(): Promise<void> {
    await this.#flush();
    await this.#file.close();
  }

  /** After a failure: stops writing and removes the file. */
  discard(): void {
    this.#file.destroy();
    rmSync(this.path, { force: true });
  }

  async #flush(): Promise<void> {
    if (this.#pending.length === 0) return;
    const chunk = this.#pending;
    this.#pending = '';
    await this.#file.write(chunk);
  }
}

/** The spooled rows, in order: fixed cells and body text. */
export async function* spooledRows(path: string): AsyncIterable<{ fixed: string[]; bodyText: string }> {
  let carry = '';
  for await (const chunk of createReadStream(path, { encoding: 'utf8', highWaterMark: SPOOL_CHUNK_CHARS }) as AsyncIterable<string>) {
    const data = carry + chunk;
    let start = 0;
    for (let end = data.indexOf('\n'); end >= 0; end = data.indexOf('\n', start)) {
      const tab = data.indexOf('\t', start);
      if (tab < 0 || tab > end) throw new Error('a CSV spool line has no tab');
      yield { fixed: JSON.parse(data.slice(start, tab)) as string[], bodyText: data.slice(tab + 1, end) };
      start = end + 1;
    }
    carry = data.slice(start);
  }
  if (carry.length > 0) throw new Error('the CSV spool ends inside a line');
}
