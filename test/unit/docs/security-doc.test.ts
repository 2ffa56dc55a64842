/**
 * docs/security.md promises that every OWASP row points to a real test. This checks that each
 * "file — title" it names exists: the file, and an `it(...)` with exactly that title in it.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

describe('docs/security.md', () => {
  const doc = readFileSync(`${ROOT}docs/security.md`, 'utf8');
  const rows = doc.split('\n').filter((line) => /^\| API\d+ /.test(line));

  it('has one row for each of the ten OWASP API Security risks of 2023', () => {
    assert.deepEqual(
      rows.map((row) => /^\| (API\d+) /.exec(row)![1]),
      Array.from({ length: 10 }, (_, i) => `API${i + 1}`),
    );
  });

  it('names in every row at least one test that exists, by file and exact title', () => {
    for (const row of rows) {
      const proof = row.split('|').at(-2)!;
      // Segments: "path — "title", "title"; other/path — "title"" (a bare file name reuses the last directory).
      let dir = '';
      let file = '';
      let found = 0;
      for (const segment of proof.split(';')) {
        const named = /(\S+\.test\.ts) —/.exec(segment);
        if (named) {
          const path = named[1]!.includes('/') ? named[1]! : `${dir}/${named[1]}`;
          dir = path.slice(0, path.lastIndexOf('/'));
          file = path;
        }
        assert.ok(file, `${row.slice(0, 40)}: no test file named`);
        assert.ok(existsSync(`${ROOT}${file}`), `${file} does not exist`);
        const source = readFileSync(`${ROOT}${file}`, 'utf8');
        const titles = [...segment.matchAll(/"((?:[^"]|"(?=[^,;]*"))+?)"(?=,|\s*$)/g)].map((m) => m[1]!);
        for (const title of titles) {
          assert.ok(source.includes(title), `${file} has no test titled: ${title}`);
          found++;
        }
      }
      assert.ok(found >= 1, `${row.slice(0, 40)} names no test title`);
    }
  });

  it('points the key rotation line at the key rotation tests', () => {
    assert.match(doc, /Key rotation: see test\/integration\/collector\/key-rotation\.test\.ts/);
    assert.ok(existsSync(`${ROOT}test/integration/collector/key-rotation.test.ts`));
  });
});
