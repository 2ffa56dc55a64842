import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { decodeBody, isBodyEncoding } from '../../../shared/body-encoding.ts';
import { ProblemError } from '../../../shared/problem.ts';

function problemCode(run: () => unknown): string | undefined {
  try {
    run();
  } catch (err) {
    if (err instanceof ProblemError) return err.code;
    throw err;
  }
  return undefined;
}

describe('body encodings', () => {
  it('knows identity and gzip only', () => {
    assert.deepEqual(['identity', 'gzip', 'br', 'deflate', 'GZIP', ''].map(isBodyEncoding), [true, true, false, false, false, false]);
  });

  it('inflates gzip (several members too) up to exactly the limit, and refuses one byte more', () => {
    const text = Buffer.from('{"a":"ক"}'.repeat(100));
    assert.deepEqual(decodeBody(gzipSync(text), 'gzip', text.length), text);
    const twoMembers = Buffer.concat([gzipSync(text), gzipSync(text)]);
    assert.equal(decodeBody(twoMembers, 'gzip', 2 * text.length).length, 2 * text.length);
    assert.equal(problemCode(() => decodeBody(gzipSync(text), 'gzip', text.length - 1)), 'batch.too_large');
  });

  it('holds an identity body to the limit and hands it back without copying', () => {
    const bytes = new Uint8Array(Buffer.from('{"a":1}'));
    const decoded = decodeBody(bytes, 'identity', 7);
    assert.equal(decoded.buffer, bytes.buffer);
    assert.equal(problemCode(() => decodeBody(bytes, 'identity', 6)), 'batch.too_large');
  });

  it('refuses what does not inflate with request.malformed', () => {
    const good = gzipSync('{"a":1}');
    for (const broken of [good.subarray(0, good.length - 4), Buffer.from('{"a":1}'), Buffer.alloc(0), Buffer.from([0x1f, 0x8b, 0x08, 0x00])]) {
      assert.equal(problemCode(() => decodeBody(broken, 'gzip', 1000)), 'request.malformed', broken.toString('hex'));
    }
  });
});
