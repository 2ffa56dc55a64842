/**
 * records.csv: the bundle's records flattened for spreadsheets (format: docs/report-bundle.md).
 *
 * - RFC 4180 through `csv-stringify`: CRLF after every row, fields quoted only when needed,
 *   quotes doubled. The file starts with a UTF-8 byte-order mark so spreadsheet programs pick
 *   UTF-8.
 * - Columns: CSV_FIXED_COLUMNS, then `body.<dotted path>` for every body path in the bundle,
 *   sorted. Arrays and empty objects are canonical JSON text; null and absent are empty.
 * - CSV injection guard: a cell starting with = + - @ TAB or CR gets a leading `'`.
 */
import { stringify } from 'csv-stringify/sync';
import { canonicalJson } from '../../../shared/canonical-json.ts';
import { CSV_FIXED_COLUMNS } from '../../../shared/report/bundle-format.ts';
import type { ReportRecordRow } from '../../store/store.ts';

export const UTF8_BOM = '\uFEFF';
const FORMULA_START = /^[=+\-@\t\r]/;
/**
 * csv-stringify quotes fields holding the delimiter or a quote, but not a bare CR or LF when
 * the record delimiter is CRLF; RFC 4180 requires those quoted too.
 */
const CSV_OPTIONS = { record_delimiter: '\r\n', quoted_match: /[\r\n]/ } as const;

/** Flattens `body` into dotted `body.…` paths → cell text (without the injection guard). */
export function flattenBody(body: { [key: string]: unknown }, into: Map<string, string> = new Map(), prefix = 'body'): Map<string, string> {
  for (const [key, value] of Object.entries(body)) {
    const path = `${prefix}.${key}`;
    if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
      flattenBody(value as { [key: string]: unknown }, into, path);
    } else {
      into.set(path, cellText(value));
    }
  }
  return into;
}

function cellText(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  return canonicalJson(value);
}

/** The guard against spreadsheet formula injection (OWASP "CSV Injection"). */
export function guardCell(text: string): string {
  return FORMULA_START.test(text) ? `'${text}` : text;
}

/** Sorted body columns, in the order the header and every row use. */
export function bodyColumns(paths: Iterable<string>): string[] {
  return [...paths].sort();
}

export function csvHeader(columns: readonly string[]): string {
  return UTF8_BOM + stringify([[...CSV_FIXED_COLUMNS, ...columns].map(guardCell)], CSV_OPTIONS);
}

/** A record's cells in CSV_FIXED_COLUMNS order, unguarded. */
export function fixedCells(row: ReportRecordRow): string[] {
  return [String(row.ledgerIndex), row.id, row.agent, String(row.epoch), String(row.seq), row.kind, row.type, row.at, row.receivedAt];
}

/** RFC 4180 text of several rows (each ending CRLF). Rows are stringified in groups: one call per row would cost more than the rows. */
export function csvRows(rows: readonly string[][]): string {
  return stringify(rows as string[][], CSV_OPTIONS);
}
