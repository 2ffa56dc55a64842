/**
 * Imports only run down. Reads every import of the source (static, `export … from`, dynamic, and
 * worker files named by `new URL('./…', import.meta.url)`) with the TypeScript scanner and
 * holds two rules:
 * - inside collector/, each file belongs to a layer of COLLECTOR_LAYERS and imports only its own
 *   layer or lower ones; the container wires services and the store and imports nothing of HTTP;
 * - agent/, collector/ and verifier/ import only shared/ and themselves; shared/ only itself.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * The collector's layers, top first: a file may import its own layer and those below it. Every
 * collector file must match one (a new top-level file or folder needs a decision here).
 */
const COLLECTOR_LAYERS: readonly { name: string; paths: readonly string[] }[] = [
  { name: 'bin', paths: ['bin/'] },
  { name: 'app', paths: ['app.ts'] },
  { name: 'container', paths: ['container.ts', 'config.ts'] },
  { name: 'resources', paths: ['resources/'] },
  { name: 'http', paths: ['http/'] },
  { name: 'services', paths: ['services/'] },
  { name: 'store', paths: ['store/', 'keys.ts'] },
];

/** Layers a layer MUST NOT import although they are below it: the container wires services and the store only. */
const SKIPS_FORBIDDEN: { [layer: string]: readonly string[] } = { container: ['resources', 'http'] };

/** Top-level source folders and the other top-level folders each may import. */
const PACKAGES: { [top: string]: readonly string[] } = {
  agent: ['shared'],
  collector: ['shared'],
  verifier: ['shared'],
  shared: [],
};

interface Edge {
  /** Repository-relative paths with `/`. */
  from: string;
  to: string;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

function repoPath(absolute: string): string {
  return relative(REPO, absolute).split(sep).join('/');
}

/** The relative module specifiers of one file's source text. */
export function specifiersOf(text: string): string[] {
  const found = ts.preProcessFile(text, true, true).importedFiles.map((file) => file.fileName);
  // Worker files: `new URL('./batch-check-worker${ext}', import.meta.url)`; the part before `${` names the file.
  for (const match of text.matchAll(/new URL\(\s*[`'"](\.[^`'"$]*)/g)) found.push(match[1]!);
  return found.filter((spec) => spec.startsWith('.'));
}

function edgesOf(top: string): Edge[] {
  return sourceFiles(join(REPO, top)).flatMap((file) =>
    specifiersOf(readFileSync(file, 'utf8')).map((spec) => ({ from: repoPath(file), to: repoPath(resolve(dirname(file), spec)) })),
  );
}

function collectorLayer(path: string): number | undefined {
  if (!path.startsWith('collector/')) return undefined;
  const inside = path.slice('collector/'.length);
  const index = COLLECTOR_LAYERS.findIndex((layer) => layer.paths.some((p) => (p.endsWith('/') ? inside.startsWith(p) : inside === p || inside.startsWith(p.replace(/\.ts$/, '')))));
  return index < 0 ? undefined : index;
}

/** Every edge that breaks a rule, as `from -> to: why`. */
export function violations(edges: readonly Edge[]): string[] {
  const found: string[] = [];
  for (const { from, to } of edges) {
    const fromTop = from.split('/', 1)[0]!;
    const toTop = to.split('/', 1)[0]!;
    if (fromTop !== toTop) {
      const allowed = PACKAGES[fromTop];
      if (allowed === undefined || !allowed.includes(toTop)) found.push(`${from} -> ${to}: ${fromTop}/ imports only ${[...(allowed ?? []), fromTop].map((t) => `${t}/`).join(' and ')}`);
      continue;
    }
    if (fromTop !== 'collector') continue;
    const a = collectorLayer(from);
    const b = collectorLayer(to);
    if (a === undefined || b === undefined) {
      found.push(`${from} -> ${to}: ${a === undefined ? from : to} is in no layer of COLLECTOR_LAYERS`);
      continue;
    }
    const fromName = COLLECTOR_LAYERS[a]!.name;
    const toName = COLLECTOR_LAYERS[b]!.name;
    if (b < a) found.push(`${from} -> ${to}: upward, ${fromName} imports ${toName}`);
    else if (SKIPS_FORBIDDEN[fromName]?.includes(toName)) found.push(`${from} -> ${to}: ${fromName} must not import ${toName}`);
  }
  return found;
}

describe('layering: imports only run down', () => {
  const edges = ['agent', 'collector', 'verifier', 'shared'].flatMap(edgesOf);

  it('reads the imports of every source file, multi-line, type-only, re-exports, dynamic imports and worker URLs included', () => {
    assert.ok(edges.length > 300, `only ${edges.length} imports found`);
    const text = [
      `import {`,
      `  a,`,
      `  type B,`,
      `} from './multi-line.ts';`,
      `import type { C } from '../type-only.ts';`,
      `export { d } from './re-export.ts';`,
      `export * from './star.ts';`,
      `const e = await import('./dynamic.ts');`,
      `import 'node:fs';`,
      `import express from 'express';`,
      "const worker = new URL(`./worker${ext}`, import.meta.url);",
    ].join('\n');
    assert.deepEqual(specifiersOf(text).sort(), ['../type-only.ts', './dynamic.ts', './multi-line.ts', './re-export.ts', './star.ts', './worker'].sort());
    assert.ok(
      edges.some((e) => e.from === 'collector/services/batch-check-pool.ts' && e.to === 'collector/services/batch-check-worker'),
      'the batch-check worker URL is an import of the pool',
    );
  });

  it('puts every collector file in a layer, and no collector file imports a layer above its own (the container no http/ or resources/)', () => {
    const problems = violations(edges.filter((e) => e.from.startsWith('collector/')));
    assert.deepEqual(problems, []);
    for (const file of sourceFiles(join(REPO, 'collector'))) assert.notEqual(collectorLayer(repoPath(file)), undefined, `${repoPath(file)} is in no layer`);
  });

  it('keeps each database driver inside its backend: better-sqlite3 in the SQLite store and the agent outbox, pg in the PostgreSQL store; above store/ only open-store.ts and the contract are imported', () => {
    const users = (driver: string) =>
      ['agent', 'collector', 'verifier', 'shared']
        .flatMap((top) => sourceFiles(join(REPO, top)))
        .filter((file) => ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles.some((f) => f.fileName === driver || f.fileName.startsWith(`${driver}/`)))
        .map(repoPath);
    assert.deepEqual(users('better-sqlite3').filter((path) => !path.startsWith('collector/store/sqlite/') && !path.startsWith('agent/outbox/')), []);
    assert.deepEqual(users('pg').filter((path) => !path.startsWith('collector/store/postgres/')), []);
    assert.ok(users('pg').length > 0, 'the PostgreSQL store imports pg');
    const intoBackend = edges.filter(
      (e) => e.from.startsWith('collector/') && !e.from.startsWith('collector/store/') && (e.to.startsWith('collector/store/sqlite/') || e.to.startsWith('collector/store/postgres/')),
    );
    assert.deepEqual(intoBackend.map((e) => `${e.from} -> ${e.to}`), []);
    const betweenBackends = edges.filter(
      (e) => (e.from.startsWith('collector/store/sqlite/') && e.to.startsWith('collector/store/postgres/')) || (e.from.startsWith('collector/store/postgres/') && e.to.startsWith('collector/store/sqlite/')),
    );
    assert.deepEqual(betweenBackends.map((e) => `${e.from} -> ${e.to}`), [], 'the backends share only store/ files, never each other');
  });

  it('lets agent/, collector/ and verifier/ import only shared/ and themselves, and shared/ only itself', () => {
    assert.deepEqual(violations(edges), []);
  });

  it('flags upward arrows, a container that imports http/, and imports between the programs', () => {
    const bad: Edge[] = [
      { from: 'collector/store/store.ts', to: 'collector/services/ledger.ts' },
      { from: 'collector/services/ingest.ts', to: 'collector/http/errors.ts' },
      { from: 'collector/services/ingest.ts', to: 'collector/resources/batches.ts' },
      { from: 'collector/http/errors.ts', to: 'collector/resources/batches.ts' },
      { from: 'collector/resources/batches.ts', to: 'collector/app.ts' },
      { from: 'collector/container.ts', to: 'collector/http/auth.ts' },
      { from: 'collector/container.ts', to: 'collector/app.ts' },
      { from: 'collector/nowhere.ts', to: 'collector/store/store.ts' },
      { from: 'agent/sync/syncer.ts', to: 'collector/services/ingest.ts' },
      { from: 'verifier/verify.ts', to: 'agent/keys.ts' },
      { from: 'shared/record.ts', to: 'collector/keys.ts' },
      { from: 'collector/services/ingest.ts', to: 'test/helpers/x.ts' },
    ];
    const problems = violations(bad);
    assert.equal(problems.length, bad.length, problems.join('\n'));
    assert.deepEqual(
      violations([
        { from: 'collector/bin/sakshya-collector.ts', to: 'collector/app.ts' },
        { from: 'collector/app.ts', to: 'collector/container.ts' },
        { from: 'collector/container.ts', to: 'collector/services/authenticators.ts' },
        { from: 'collector/resources/batches.ts', to: 'collector/http/auth.ts' },
        { from: 'collector/http/errors.ts', to: 'collector/store/store.ts' },
        { from: 'collector/services/reports.ts', to: 'collector/keys.ts' },
        { from: 'agent/sync/syncer.ts', to: 'shared/record.ts' },
      ]),
      [],
    );
  });
});
