/**
 * The CSV spool: lets records.csv be written from ONE scan of the store and ONE parse of each
 * record. records.csv's header is the union of every body path in the bundle, known only after
 * the last record; so the records pass flattens each record's body once and appends its cells
 * here, and the CSV pass reads them back in order once the columns are known.
 *
 * - Format (internal, never part of a bundle): one JSON array per line,
 *   `[<the CSV_FIXED_COLUMNS cells>, pathNo, text, pathNo, text, …]`, `pathNo` indexing the
 *   body paths in first-seen order (so a path's name is stored once, not once per record).
 * - Memory: O(distinct body paths) plus one write chunk; the file is read back line by line.
 * - The file lives in the bundle's own (temporary) directory under a dot-name, on the same disk
 *   as the bundle (not the system temp dir, which may be RAM), and the exporter removes it
 *   before the bundle is complete, also on failure.
 */
import { createReadStream, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { CSV_FIXED_COLUMNS } from '../../../shared/report/bundle-format.ts';
import { HashedFileWriter } from './hashed-file.ts';
import { guardCell } from './records-csv.ts';

export const CSV_SPOOL_FILE = '.records.csv.spool';
/** Lines buffered before a write: few large writes instead of one per record. */
const SPOOL_CHUNK_CHARS = 1 << 16;

export class CsvSpoolWriter {
  readonly path: string;
  readonly #file: HashedFileWriter;
  readonly #pathNo = new Map<string, number>();
  #pending = '';

  constructor(path: string) {
    this.path = path;
    this.#file = new HashedFileWriter(path);
  }

  /** Appends one row: its fixed cells (CSV_FIXED_COLUMNS order) and its flattened body. */
  async add(fixed: readonly string[], flatBody: ReadonlyMap<string, string>): Promise<void> {
    const line: (string | number)[] = [...fixed];
    for (const [path, text] of flatBody) {
      let no = this.#pathNo.get(path);
      if (no === undefined) this.#pathNo.set(path, (no = this.#pathNo.size));
      line.push(no, text);
    }
    this.#pending += `${JSON.stringify(line)}\n`;
    if (this.#pending.length >= SPOOL_CHUNK_CHARS) await this.#flush();
  }

  /** Every body path seen, in first-seen order (pathNo order). */
  get bodyPaths(): string[] {
    return [...this.#pathNo.keys()];
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

/**
 * The spooled rows as records.csv cells, guarded, in `columns` order (CSV_FIXED_COLUMNS, then
 * the body columns). `bodyPaths` is the writer's list (pathNo order).
 */
export async function* spooledCsvRows(path: string, bodyPaths: readonly string[], columns: readonly string[]): AsyncIterable<string[]> {
  const columnOf = new Map(columns.map((column, i) => [column, i]));
  const columnOfPathNo = bodyPaths.map((bodyPath) => {
    const at = columnOf.get(bodyPath);
    if (at === undefined) throw new Error(`the spool's body path ${bodyPath} is not a CSV column`);
    return CSV_FIXED_COLUMNS.length + at;
  });
  const width = CSV_FIXED_COLUMNS.length + columns.length;
  const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  for await (const text of lines) {
    const line = JSON.parse(text) as (string | number)[];
    const cells: string[] = new Array<string>(width).fill('');
    for (let i = 0; i < CSV_FIXED_COLUMNS.length; i++) cells[i] = line[i] as string;
    for (let i = CSV_FIXED_COLUMNS.length; i < line.length; i += 2) cells[columnOfPathNo[line[i] as number]!] = line[i + 1] as string;
    yield cells.map(guardCell);
  }
}
