import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Every relative module a file imports (static and dynamic), resolved against the file. */
function relativeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specifiers = [...text.matchAll(/(?:from\s+|import\s*\(\s*)['"](\.[^'"]+)['"]/g)].map((match) => match[1]!);
  return specifiers.map((specifier) => relative(ROOT, resolve(dirname(file), specifier)));
}

describe('verifier is standalone', () => {
  it('imports nothing from collector/ or agent/ (only shared/ and verifier/), so it needs no database, server or agent code', () => {
    const files = sources(join(ROOT, 'verifier'));
    assert.ok(files.length >= 10, 'the verifier sources were found');
    const outside = files.flatMap((file) =>
      relativeImports(file)
        .filter((target) => !target.startsWith('shared/') && !target.startsWith('verifier/'))
        .map((target) => `${relative(ROOT, file)} imports ${target}`),
    );
    assert.deepEqual(outside, []);
  });
});
