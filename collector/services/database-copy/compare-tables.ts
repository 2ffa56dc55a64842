/**
 * One table of a source and of its copy, compared row by row: both are streamed in key order
 * (store/copy-tables.ts) and merged, so memory stays flat whatever their size, and every row
 * missing from the copy, added to it, or different in any column is named (the first few per
 * table; the rest counted).
 */
import { keyPositions, type CopyRow, type CopyTable, type CopyValue } from '../../store/copy.ts';

/** At most this many differing rows are named per table; the rest are counted. */
export const MAX_DIFFERENCES_PER_TABLE = 10;

export interface RowDifference {
  /** The row's primary key. */
  key: { [column: string]: string | number | boolean | null };
  /** `missing`: in the source, not in the copy; `unexpected`: in the copy only; `different`: in both, with other values. */
  problem: 'missing' | 'unexpected' | 'different';
  /** The columns whose values differ (`different` only). */
  columns?: string[];
}

export interface TableComparison {
  table: string;
  /** Rows in the source and in the copy. */
  source: number;
  target: number;
  identical: boolean;
  differences: RowDifference[];
  /** Differences found past MAX_DIFFERENCES_PER_TABLE. */
  omitted: number;
}

/** Orders two key values as both databases do: numbers by value, text by its UTF-8 bytes. */
function compareKeyValue(a: CopyValue, b: CopyValue): number {
  if (a === b) return 0;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return Buffer.compare(Buffer.from(String(a), 'utf8'), Buffer.from(String(b), 'utf8'));
}

function sameValue(a: CopyValue, b: CopyValue): boolean {
  if (Buffer.isBuffer(a) || Buffer.isBuffer(b)) return Buffer.isBuffer(a) && Buffer.isBuffer(b) && a.equals(b);
  return a === b;
}

/** Compares the rows of `table` in the two streams (each in key order); `onRow` counts the source rows read. */
export async function compareTable(table: CopyTable, source: AsyncIterable<CopyRow>, target: AsyncIterable<CopyRow>, onRow: (done: number) => void = () => {}): Promise<TableComparison> {
  const keys = keyPositions(table);
  const result: TableComparison = { table: table.name, source: 0, target: 0, identical: true, differences: [], omitted: 0 };
  const note = (row: CopyRow, problem: RowDifference['problem'], columns?: string[]) => {
    result.identical = false;
    if (result.differences.length >= MAX_DIFFERENCES_PER_TABLE) {
      result.omitted++;
      return;
    }
    const key: RowDifference['key'] = {};
    for (const i of keys) key[table.columns[i]!.name] = row[i] as string | number | boolean | null;
    result.differences.push(columns === undefined ? { key, problem } : { key, problem, columns });
  };
  const a = source[Symbol.asyncIterator]();
  const b = target[Symbol.asyncIterator]();
  let left = await a.next();
  let right = await b.next();
  while (!left.done || !right.done) {
    let order: number;
    if (left.done) order = 1;
    else if (right.done) order = -1;
    else {
      order = 0;
      for (const i of keys) {
        order = compareKeyValue(left.value[i]!, right.value[i]!);
        if (order !== 0) break;
      }
    }
    if (order <= 0) {
      const row = left.value as CopyRow;
      if (order < 0) note(row, 'missing');
      else {
        const other = right.value as CopyRow;
        const columns = table.columns.filter((_, i) => !sameValue(row[i]!, other[i]!)).map((column) => column.name);
        if (columns.length > 0) note(row, 'different', columns);
      }
      onRow(++result.source);
      left = await a.next();
    }
    if (order >= 0) {
      if (order > 0) note(right.value as CopyRow, 'unexpected');
      result.target++;
      right = await b.next();
    }
  }
  return result;
}
