import assert from 'node:assert/strict';
import { escapePointerToken, forEachBodyLeaf, MAX_COLUMN_POINTER_CHARS } from '../../../collector/services/report/body-pointers.ts';
import { CsvRowBuilder, FIELD_CANDIDATES, FieldColumnChooser } from '../../../collector/services/report/records-csv.ts';
import { TopKeys } from '../../../collector/services/report/top-keys.ts';
import { CSV_FIXED_COLUMNS, CSV_MAX_FIELD_COLUMNS } from '../../../shared/report/bundle-format.ts';

function leaves(body: { [key: string]: unknown }, maxChars?: number): [string, unknown][] {
  const out: [string, unknown][] = [];
  forEachBodyLeaf(body, (pointer, value) => out.push([pointer, value]), maxChars);
  return out;
}

describe('records.csv field columns', () => {
  it('names every body field by its RFC 6901 JSON Pointer, so fields that a dotted path would merge stay apart', () => {
    assert.deepEqual(leaves({ a: { b: 1 }, 'a.b': 2, 'x/y': 3, 'm~n': 4, '~1': 5, '': 6, list: [1, { c: 2 }], empty: {}, none: null }), [
      ['/body/a/b', 1],
      ['/body/a.b', 2],
      ['/body/x~1y', 3],
      ['/body/m~0n', 4],
      ['/body/~01', 5],
      ['/body/', 6],
      ['/body/list', [1, { c: 2 }]],
      ['/body/empty', {}],
      ['/body/none', null],
    ]);
    assert.equal(escapePointerToken('~/'), '~0~1', '~ first, then /: "~/" does not become "~01"');
  });

  it('does not walk below a pointer longer than the column limit, so a deep body costs its size, not size × depth', () => {
    let deep: { [key: string]: unknown } = { leaf: 1 };
    for (let i = 0; i < 5000; i++) deep = { [`k${i}`]: deep, [`s${i}`]: i };
    const found = leaves(deep);
    assert.ok(found.length > 0 && found.length < 200);
    assert.ok(found.every(([pointer]) => pointer.length <= MAX_COLUMN_POINTER_CHARS));
    assert.deepEqual(leaves({ abc: { x: 1 }, d: { e: 2 } }, 9), [['/body/d/e', 2]], '"/body/abc/x" is 11 characters: too long for 9');
  });

  it('keeps at most its capacity of counters however many distinct keys arrive, and still finds the frequent ones', () => {
    const top = new TopKeys(64);
    for (let i = 0; i < 100_000; i++) {
      top.add(`noise-${i}`);
      if (i % 10 === 0) top.add('common');
      if (i % 25 === 0) top.add('rarer');
    }
    // Kept for sure: each is seen more than (all adds) / capacity = 1,781 times.
    assert.equal(top.size, 64);
    assert.deepEqual(top.top(2).map((entry) => entry.key).sort(), ['common', 'rarer']);
    const counts = new Map(top.top(2).map((entry) => [entry.key, entry.count]));
    assert.ok(counts.get('common')! >= 10_000 && counts.get('rarer')! >= 4_000, 'a count is never below the true count');
  });

  it('counts exactly while the keys fit, and orders equal counts by key so the columns never depend on chance', () => {
    const top = new TopKeys(8);
    for (const key of ['b', 'a', 'c', 'a', 'b', 'a']) top.add(key);
    assert.deepEqual(top.top(8), [
      { key: 'a', count: 3 },
      { key: 'b', count: 2 },
      { key: 'c', count: 1 },
    ]);
    const again = new TopKeys(2);
    const other = new TopKeys(2);
    for (const key of ['x', 'y', 'z', 'w', 'x']) {
      again.add(key);
      other.add(key);
    }
    assert.deepEqual(again.top(2), other.top(2));
  });

  it('chooses at most 64 columns, the fields most records have, sorted, from bounded candidates', () => {
    assert.equal(CSV_MAX_FIELD_COLUMNS, 64);
    assert.equal(FIELD_CANDIDATES, 1024);
    const chooser = new FieldColumnChooser();
    for (let record = 0; record < 500; record++) {
      const body: { [key: string]: unknown } = { user: 'u', office: { code: record } };
      for (let k = 0; k < 200; k++) body[`x${record}-${k}`] = k;
      chooser.add(body);
    }
    const columns = chooser.columns();
    assert.equal(columns.length, 64);
    assert.deepEqual(columns.slice(0, 2), ['/body/office/code', '/body/user'].sort());
    assert.deepEqual(columns, [...columns].sort());
  });

  it('writes each row as its fixed cells, its fields in the column order, and the whole body, all behind the formula guard', () => {
    const rows = new CsvRowBuilder(['/body/a', '/body/b/c']);
    const fixed = ['7', 'id', 'AS-1', '1', '2', 'audit', 't.x', '2026-11-22T00:00:00.000Z', '=cmd'];
    const cells = rows.cells(fixed, '{"b":{"c":"-1"},"z":true}');
    assert.equal(cells.length, CSV_FIXED_COLUMNS.length + 3);
    assert.deepEqual(cells.slice(CSV_FIXED_COLUMNS.length), ['', "'-1", '{"b":{"c":"-1"},"z":true}']);
    assert.equal(cells[CSV_FIXED_COLUMNS.length - 1], "'=cmd");
  });
});
