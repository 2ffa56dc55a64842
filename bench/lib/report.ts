/**
 * Benchmark results: one row per figure, the table printed to stdout and the JSON written to
 * `bench/results/latest.json`.
 *
 * A row may name a reference (a limit or floor measured in the same run on the same machine),
 * the ratio of its value to that reference, and a target for the ratio. Targets are
 * informational: a miss is reported, not a failure of `npm run bench`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface Target {
  /** `>=`: the ratio must reach `value`; `<=`: it must stay below it. */
  op: '>=' | '<=';
  value: number;
}

export interface Row {
  /** Stable key for the JSON (`ingest.records_per_second`). */
  key: string;
  /** What is measured, for the table. */
  metric: string;
  value: number;
  unit: string;
  reference?: { label: string; value: number; unit: string };
  /** value / reference.value, unless the row says otherwise. */
  ratio?: number;
  target?: Target;
}

export interface JudgedRow extends Row {
  /** Whether the ratio meets the target; undefined without a target. */
  pass?: boolean;
}

export function judge(row: Row): JudgedRow {
  if (!row.target || row.ratio === undefined) return row;
  const pass = row.target.op === '>=' ? row.ratio >= row.target.value : row.ratio <= row.target.value;
  return { ...row, pass };
}

/** A figure as people read it: 3 significant digits, thousands separated. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 1000) return Math.round(value).toLocaleString('en-US');
  if (abs >= 100) return value.toFixed(0);
  if (abs >= 10) return value.toFixed(1);
  if (abs >= 1) return value.toFixed(2);
  if (abs === 0) return '0';
  return value.toPrecision(2);
}

/** A count as people read it: whole, thousands separated. */
export function formatCount(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** Bytes in the largest decimal unit that leaves a figure of at least 1 (B, kB, MB, GB, TB). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${formatNumber(value)} ${units[unit]}`;
}

function cells(row: JudgedRow): string[] {
  const reference = row.reference ? `${formatNumber(row.reference.value)} ${row.reference.unit} (${row.reference.label})` : '';
  const ratio = row.ratio === undefined ? '' : `${row.ratio.toFixed(2)}×`;
  const target = row.target ? `${row.target.op} ${row.target.value}×` : '';
  const verdict = row.pass === undefined ? '' : row.pass ? 'pass' : 'MISS';
  return [row.metric, `${formatNumber(row.value)} ${row.unit}`, reference, ratio, target, verdict];
}

const HEADERS = ['metric', 'value', 'limit / reference (same run)', 'ratio', 'target', 'result'];

/** Plain-text table for the terminal. */
export function formatTable(rows: readonly JudgedRow[]): string {
  const table = [HEADERS, ...rows.map(cells)];
  const widths = HEADERS.map((_, c) => Math.max(...table.map((line) => line[c]!.length)));
  const line = (values: string[]) => values.map((value, c) => value.padEnd(widths[c]!)).join('  ').trimEnd();
  return [line(HEADERS), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map((row) => line(cells(row)))].join('\n');
}

/** The same table in Markdown, for docs/benchmarks.md. */
export function formatMarkdownTable(rows: readonly JudgedRow[]): string {
  const line = (values: string[]) => `| ${values.map((value) => value.replaceAll('|', '\\|')).join(' | ')} |`;
  return [line(HEADERS), line(HEADERS.map(() => '---')), ...rows.map((row) => line(cells(row)))].join('\n');
}

export function writeJson(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(value, null, 2) + '\n');
}
