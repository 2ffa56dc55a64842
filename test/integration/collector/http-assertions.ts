/** Assertions about collector HTTP answers shared by the collector integration tests. */
import assert from 'node:assert/strict';
import { PROBLEM_TYPE_PREFIX, type ProblemBody } from '../../../shared/problem.ts';
import type { HttpAnswer } from './test-agent.ts';

/** Asserts an RFC 9457 problem+json answer with `status` and `code`, and no stack trace. */
export function assertProblem(answer: HttpAnswer, status: number, code: string): ProblemBody {
  assert.equal(answer.status, status, answer.text);
  assert.match(answer.headers.get('content-type') ?? '', /^application\/problem\+json/);
  const body = answer.body as ProblemBody;
  assert.equal(body.code, code);
  assert.equal(body.type, PROBLEM_TYPE_PREFIX + code);
  assert.equal(body.status, status);
  assert.equal(typeof body.detail, 'string');
  assert.doesNotMatch(answer.text, /\n\s+at /, 'no stack trace leaves the process');
  return body;
}
