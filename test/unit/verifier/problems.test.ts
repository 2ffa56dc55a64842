import assert from 'node:assert/strict';
import { BundleInputError, MAX_PROBLEM_TEXT, ProblemList } from '../../../verifier/problems.ts';

describe('problems', () => {
  it('a listed problem keeps at most MAX_PROBLEM_TEXT characters of each field, and says how long it was', () => {
    const list = new ProblemList(10);
    const id = 'x'.repeat(1024 * 1024);
    list.add({ check: 'record.invalid', file: 'records.jsonl', line: 1, id, found: id, message: `bad ${id}` });
    const [problem] = list.listed;
    assert.ok(problem!.id!.length < MAX_PROBLEM_TEXT + 40, `${problem!.id!.length}`);
    assert.ok(problem!.id!.startsWith('x'.repeat(MAX_PROBLEM_TEXT)));
    assert.match(problem!.id!, /… \(1,048,576 characters in all\)$/);
    assert.ok((problem!.found as string).length < MAX_PROBLEM_TEXT + 40);
    assert.ok(problem!.message.length < MAX_PROBLEM_TEXT + 40);
    assert.deepEqual([problem!.check, problem!.line], ['record.invalid', 1]);
  });

  it('a BundleInputError carries one named problem', () => {
    const err = new BundleInputError('file.too_large', 'manifest.json', 'too large');
    assert.deepEqual(err.problem, { check: 'file.too_large', file: 'manifest.json', message: 'too large' });
    assert.equal(err.message, 'too large');
  });
});
