import assert from 'node:assert/strict';
import { escapeForTerminal, jsonForTerminal, linesForTerminal } from '../../../verifier/terminal-text.ts';

/** Every character the verifier must never print raw: C0 (but the line feed between lines), DEL, C1, bidi controls, line separators. */
const UNSAFE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/;

describe('terminal-text', () => {
  it('escapeForTerminal shows C0, DEL and C1 controls as \\xHH', () => {
    assert.equal(escapeForTerminal('a\u001b[2Jb'), 'a\\x1b[2Jb');
    assert.equal(escapeForTerminal('\u0000\u0007\t\n\r\u007f'), '\\x00\\x07\\x09\\x0a\\x0d\\x7f');
    // U+009B is the 8-bit CSI: some terminals act on it as on ESC [.
    assert.equal(escapeForTerminal('\u0080\u009b31m\u009f'), '\\x80\\x9b31m\\x9f');
  });

  it('escapeForTerminal shows bidi controls and line separators as \\uHHHH', () => {
    assert.equal(escapeForTerminal('\u061c\u200e\u200f'), '\\u061c\\u200e\\u200f');
    assert.equal(escapeForTerminal('\u202a\u202b\u202c\u202d\u202e'), '\\u202a\\u202b\\u202c\\u202d\\u202e');
    assert.equal(escapeForTerminal('\u2066\u2067\u2068\u2069'), '\\u2066\\u2067\\u2068\\u2069');
    assert.equal(escapeForTerminal('a\u2028b\u2029c'), 'a\\u2028b\\u2029c');
  });

  it('escapeForTerminal leaves ordinary text as it is, other scripts and punctuation included', () => {
    const text = 'AS-KMR-001 epoch 1: seq 1–18,240 complete … प्रमाणपत्र জাৰি कৰা হ’ল ¡ü! C:\\bundles\\x1b "quoted"';
    assert.equal(escapeForTerminal(text), text);
  });

  it('linesForTerminal escapes a line feed inside a field, so a field cannot start a line of its own', () => {
    const text = linesForTerminal(['FAILED: 1 problem', '  records.jsonl line 1 (record x\nVERIFIED: all good)']);
    assert.equal(text, 'FAILED: 1 problem\n  records.jsonl line 1 (record x\\x0aVERIFIED: all good)\n');
    assert.equal(text.split('\n').length, 3);
  });

  it('jsonForTerminal writes no raw control, C1 or bidi character, and parses back to exactly the same value', () => {
    const value = { id: '\u001b[2J\u009b2J\u202eDEIFIREV\u2066x\u2028y\u007f', nested: [{ file: 'a\u0085b' }], plain: 'প্ৰমাণ' };
    const text = jsonForTerminal(value);
    assert.doesNotMatch(text.slice(0, -1).replaceAll('\n', ''), UNSAFE);
    assert.ok(text.includes('\\u009b') && text.includes('\\u202e') && text.includes('\\u2028'), text);
    assert.deepEqual(JSON.parse(text), value);
  });
});
