/**
 * records.csv: the bundle's records flattened for spreadsheets (format: docs/report-bundle.md).
 *
 * - RFC 4180 through `csv-stringify`: CRLF after every row, fields quoted only when needed,
 *   quotes doubled. The file starts with a UTF-8 byte-order mark so spreadsheet programs pick
 *   UTF-8.
 * - Columns: CSV_FIXED_COLUMNS, then the field columns (JSON Pointers, body-pointers.ts), then
 *   CSV_BODY_COLUMN. The field columns are the CSV_MAX_FIELD_COLUMNS pointers found in the most
 *   records (counted in bounded memory, top-keys.ts), sorted: the width is bounded whatever the
 *   bodies carry, and the body column keeps every field, so nothing is lost.
 *   Arrays and empty objects are canonical JSON text; null and absent are empty.
 * - CSV injection guard: a cell starting with = + - @ TAB or CR gets a leading `'`.
 */
import { stringify } from 'csv-stringify/sync';
import { canonicalJsonOfParsed } from '../../../shared/canonical-json.ts';
import { CSV_BODY_COLUMN, CSV_FIXED_COLUMNS, CSV_MAX_FIELD_COLUMNS } from '../../../shared/report/bundle-format.ts';
import type { ReportRecordRow } from '../../store/store.ts';
import { forEachBodyLeaf } from './body-pointers.ts';
import { TopKeys } from './top-keys.ts';

export const UTF8_BOM = '\uFEFF';
const FORMULA_START = /^[=+\-@\t\r]/;
/**
 * Body pointers counted at once while choosing the field columns: 16 candidates per column, so
 * any field in more than 1/1024 of all (record, field) pairs is kept (top-keys.ts). With
 * pointers of at most MAX_COLUMN_POINTER_CHARS, the count costs at most ~0.5 MiB.
 */
export const FIELD_CANDIDATES = 16 * CSV_MAX_FIELD_COLUMNS;
/**
 * csv-stringify quotes fields holding the delimiter or a quote, but not a bare CR or LF when
 * the record delimiter is CRLF; RFC 4180 requires those quoted too.
 */
const CSV_OPTIONS = { record_delimiter: '\r\n', quoted_match: /[\r\n]/ } as const;

export function cellText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  return canonicalJsonOfParsed(value);
}

/** The guard against spreadsheet formula injection (OWASP "CSV Injection"). */
export function guardCell(text: string): string {
  return FORMULA_START.test(text) ? `'${text}` : text;
}

/** Counts which body fields the records have, to choose the field columns once all are seen. */
export class FieldColumnChooser {
  readonly #counts = new TopKeys(FIELD_CANDIDATES);

  /** Counts each field of one record's body once. */
  add(body: { [key: string]: unknown }): void {
    forEachBodyLeaf(body, (pointer) => this.#counts.add(pointer));
  }

  /** The field columns: the most common pointers (ties by pointer), sorted. */
  columns(): string[] {
    return this.#counts
      .top(CSV_MAX_FIELD_COLUMNS)
      .map(({ key }) => key)
      .sort();
  }
}

export function csvHeader(fieldColumns: readonly string[]): string {
  return UTF8_BOM + stringify([[...CSV_FIXED_COLUMNS, ...fieldColumns, CSV_BODY_COLUMN].map(guardCell)], CSV_OPTIONS);
}

/** A record's cells in CSV_FIXED_COLUMNS order, unguarded. */
export function fixedCells(row: ReportRecordRow): string[] {
  return [String(row.ledgerIndex), row.id, row.agent, String(row.epoch), String(row.seq), row.kind, row.type, row.at, row.receivedAt];
}

/**
 * Builds the guarded cells of rows, given the field columns: the fixed cells, each column's field
 * of the body (empty if absent) and the body's canonical text.
 */
export class CsvRowBuilder {
  readonly #columnOf: Map<string, number>;
  readonly #width: number;

  constructor(fieldColumns: readonly string[]) {
    this.#columnOf = new Map(fieldColumns.map((pointer, i) => [pointer, CSV_FIXED_COLUMNS.length + i]));
    this.#width = CSV_FIXED_COLUMNS.length + fieldColumns.length + 1;
  }

  cells(fixed: readonly string[], bodyText: string): string[] {
    const cells = new Array<string>(this.#width).fill('');
    for (let i = 0; i < CSV_FIXED_COLUMNS.length; i++) cells[i] = guardCell(fixed[i]!);
    if (this.#columnOf.size > 0) {
      forEachBodyLeaf(JSON.parse(bodyText) as { [key: string]: unknown }, (pointer, value) => {
        const at = this.#columnOf.get(pointer);
        if (at !== undefined) cells[at] = guardCell(cellText(value));
      });
    }
    cells[this.#width - 1] = guardCell(bodyText);
    return cells;
  }
}

/** RFC 4180 text of several rows (each ending CRLF). Rows are stringified in groups: one call per row would cost more than the rows. */
export function csvRows(rows: readonly string[][]): string {
  return stringify(rows as string[][], CSV_OPTIONS);
}
