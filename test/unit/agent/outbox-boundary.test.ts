/**
 * The outbox owns its database (agent/outbox/sqlite-outbox.ts): nothing in agent/ outside
 * agent/outbox/ imports better-sqlite3, prepares or runs SQL, or reaches for the outbox's
 * connection (`outbox.db`); and agent/outbox/ depends on nothing else in agent/ (the sync loop,
 * the witness and the commands sit above it). The sources are parsed, not grepped, so comments
 * and strings do not count and a RegExp's `.exec` is not SQL.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const AGENT = join(ROOT, 'agent');
const OUTBOX = join(AGENT, 'outbox');

/** Methods of a better-sqlite3 Database that run or prepare SQL. */
const SQL_METHODS = new Set(['prepare', 'exec', 'pragma']);

interface Finding {
  file: string;
  line: number;
  what: string;
}

interface Scan {
  /** Module specifiers, resolved to absolute paths when relative. */
  imports: { specifier: string; resolved: string | undefined; line: number }[];
  sql: Finding[];
}

function agentSources(): string[] {
  return (readdirSync(AGENT, { recursive: true }) as string[]).filter((file) => file.endsWith('.ts')).map((file) => join(AGENT, file));
}

function isInside(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir + sep);
}

function scan(file: string, text = readFileSync(file, 'utf8')): Scan {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const lineOf = (node: ts.Node) => source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
  const result: Scan = { imports: [], sql: [] };
  const addImport = (literal: ts.Node) => {
    if (!ts.isStringLiteralLike(literal)) return;
    const specifier = literal.text;
    const resolved = specifier.startsWith('.') ? resolve(dirname(file), specifier) : undefined;
    result.imports.push({ specifier, resolved, line: lineOf(literal) });
  };
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier) addImport(node.moduleSpecifier);
    if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) addImport(node.moduleReference.expression);
    if (ts.isCallExpression(node)) {
      const callee = node.expression;
      const dynamic = callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && callee.text === 'require');
      if (dynamic && node.arguments[0]) addImport(node.arguments[0]);
      if (ts.isPropertyAccessExpression(callee) && SQL_METHODS.has(callee.name.text) && !ts.isRegularExpressionLiteral(callee.expression)) {
        result.sql.push({ file, line: lineOf(node), what: `.${callee.name.text}(…)` });
      }
    }
    if (ts.isPropertyAccessExpression(node) && node.name.text === 'db') result.sql.push({ file, line: lineOf(node), what: `${node.getText(source)} (the outbox's connection)` });
    ts.forEachChild(node, visit);
  };
  visit(source);
  return result;
}

function describeFindings(findings: Finding[]): string {
  return findings.map((f) => `${relative(ROOT, f.file)}:${f.line} ${f.what}`).join('\n');
}

describe('agent/outbox boundary: the outbox owns its database', () => {
  const files = agentSources();
  const outside = files.filter((file) => !isInside(file, OUTBOX));
  const inside = files.filter((file) => isInside(file, OUTBOX));

  it('finds the agent sources on both sides of the boundary', () => {
    assert.ok(outside.length >= 20, `only ${outside.length} agent sources outside agent/outbox/`);
    assert.ok(inside.some((file) => file.endsWith('sqlite-outbox.ts')));
  });

  it('no agent module outside agent/outbox/ imports better-sqlite3', () => {
    const found: Finding[] = [];
    for (const file of outside) {
      for (const imp of scan(file).imports) if (imp.specifier === 'better-sqlite3') found.push({ file, line: imp.line, what: `imports ${imp.specifier}` });
    }
    assert.equal(describeFindings(found), '', 'move the SQL into agent/outbox/ and call it through SqliteOutbox');
  });

  it('no agent module outside agent/outbox/ prepares or runs SQL, or touches the outbox\u2019s connection', () => {
    const found = outside.flatMap((file) => scan(file).sql);
    assert.equal(describeFindings(found), '', 'use an SqliteOutbox method (outbox.transaction/snapshot to group calls)');
  });

  it('no module of agent/outbox/ imports from agent/sync/ or from anything else in agent/ outside agent/outbox/', () => {
    const found: Finding[] = [];
    for (const file of inside) {
      for (const imp of scan(file).imports) {
        if (imp.resolved !== undefined && isInside(imp.resolved, AGENT) && !isInside(imp.resolved, OUTBOX)) {
          found.push({ file, line: imp.line, what: `imports ${imp.specifier}` });
        }
      }
    }
    assert.equal(describeFindings(found), '', 'the outbox sits below the sync loop and the witness: move what it needs into agent/outbox/ or shared/');
  });

  it('would catch each kind of breach, and lets a RegExp exec, comments and strings pass', () => {
    const file = join(AGENT, 'witness', 'example.ts');
    const breach = scan(
      file,
      [
        "import Database from 'better-sqlite3';",
        "import { STATE } from '../sync/example.ts';",
        "const row = outbox.db.prepare('SELECT 1').get();",
        "db.exec('BEGIN');",
        "db.pragma('user_version');",
      ].join('\n'),
    );
    assert.deepEqual(
      breach.imports.map((imp) => imp.specifier),
      ['better-sqlite3', '../sync/example.ts'],
    );
    assert.equal(breach.imports[1]!.resolved, join(AGENT, 'sync', 'example.ts'));
    assert.deepEqual(
      breach.sql.map((f) => [f.line, f.what]),
      [
        [3, '.prepare(…)'],
        [3, "outbox.db (the outbox's connection)"],
        [4, '.exec(…)'],
        [5, '.pragma(…)'],
      ],
    );
    const innocent = scan(file, ["// outbox.db.prepare('x') in a comment", "const m = /^Bearer (\\S+)$/i.exec(header);", "log('db.exec(x)');"].join('\n'));
    assert.deepEqual(innocent.sql, []);
  });
});
