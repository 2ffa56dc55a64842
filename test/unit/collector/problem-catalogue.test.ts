import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PROBLEMS, PROBLEM_TYPE_PREFIX, ProblemError, isProblemCode, problemBody, type ProblemCode } from '../../../shared/problem.ts';
import { toProblem } from '../../../collector/http/errors.ts';
import { StoreUnavailableError } from '../../../collector/store/store.ts';
import { IngestBusyError } from '../../../collector/services/ingest-admission.ts';

const COLLECTOR_DIR = fileURLToPath(new URL('../../../collector/', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** Codes that describe a server-side condition; everything else is the caller's problem. */
const SERVER_CODES = new Set(['internal.error', 'service.unavailable', 'report.storage_full', 'ingest.busy']);
/** The agent's local 507 answers (agent/outbox/buffer-cap.ts). */
const AGENT_BUFFER_CODES = new Set(['storage.full', 'buffer.telemetry_refused', 'buffer.full']);

describe('the problem catalogue', () => {
  const codes = Object.keys(PROBLEMS) as ProblemCode[];

  it('gives every code a unique type, a dotted lower-case name and a title', () => {
    const types = codes.map((code) => problemBody(code, 'x').type);
    assert.equal(new Set(types).size, codes.length);
    for (const code of codes) {
      assert.match(code, /^[a-z]+(\.[a-z_]+)+$/);
      assert.equal(problemBody(code, 'x').type, PROBLEM_TYPE_PREFIX + code);
      assert.ok(PROBLEMS[code].title.length > 0);
    }
  });

  it('keeps client problems in 4xx and server problems in 5xx', () => {
    for (const code of codes) {
      const { status } = PROBLEMS[code];
      assert.ok(Number.isInteger(status), code);
      if (SERVER_CODES.has(code) || AGENT_BUFFER_CODES.has(code)) {
        // The agent's 507s: its disk or buffer cap, not the caller's request, is the limit.
        assert.ok(status >= 500 && status <= 599, `${code} is ${status}`);
      } else {
        assert.ok(status >= 400 && status <= 499, `${code} is ${status}`);
      }
    }
  });

  it('builds a problem body whose extras cannot overwrite type, status or code', () => {
    const body = new ProblemError('batch.out_of_order', 'gap', { expectedSeq: 3, code: 'forged', status: 200 }).toBody();
    assert.equal(body.code, 'batch.out_of_order');
    assert.equal(body.status, 409);
    assert.equal(body.type, `${PROBLEM_TYPE_PREFIX}batch.out_of_order`);
    assert.equal(body.expectedSeq, 3);
  });

  it('only uses catalogue codes in the collector source', () => {
    const used = new Set<string>();
    for (const file of sourceFiles(COLLECTOR_DIR)) {
      for (const match of readFileSync(file, 'utf8').matchAll(/new ProblemError\(\s*'([^']+)'/g)) used.add(match[1]!);
    }
    assert.ok(used.size >= 10, `found ${used.size} codes`);
    for (const code of used) assert.ok(isProblemCode(code), `${code} is not in the catalogue`);
  });

  it('maps body-parser and database errors to their problems, and unknown errors to none', () => {
    const tooLarge = Object.assign(new Error('too large'), { type: 'entity.too.large', status: 413, limit: 10 });
    assert.equal(toProblem(tooLarge)?.code, 'batch.too_large');
    assert.equal(toProblem(Object.assign(new SyntaxError('bad'), { type: 'entity.parse.failed', status: 400 }))?.code, 'request.malformed');
    assert.equal(toProblem(Object.assign(new Error('br'), { type: 'encoding.unsupported', status: 415 }))?.code, 'request.unsupported_media_type');
    const unavailable = toProblem(new StoreUnavailableError('SQLITE_FULL', 'full'));
    assert.equal(unavailable?.code, 'service.unavailable');
    assert.ok((unavailable?.retryAfterSeconds ?? 0) > 0);
    const busy = toProblem(new IngestBusyError('check', { checking: 4, writing: 0 }, 2));
    assert.deepEqual([busy?.code, busy?.status, busy?.retryAfterSeconds], ['ingest.busy', 503, 2]);
    assert.equal(toProblem(new TypeError('bug')), undefined);
  });
});
