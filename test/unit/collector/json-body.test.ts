import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { createGzip, gzipSync } from 'node:zlib';
import { jsonDepthExceeds, readLimitedBody } from '../../../collector/http/json-body.ts';
import { ProblemError } from '../../../shared/problem.ts';

/** A gzip stream of `total` zero bytes, compressed lazily as it is read; counts the bytes it was asked to compress. */
function lazyBomb(total: number): { stream: Readable; produced: () => number } {
  let sent = 0;
  const chunk = Buffer.alloc(1024 * 1024);
  const source = new Readable({
    read() {
      if (sent >= total) this.push(null);
      else {
        sent += chunk.length;
        this.push(chunk);
      }
    },
  });
  const gzip = source.pipe(createGzip());
  return { stream: gzip, produced: () => sent };
}

describe('JSON body reader', () => {
  it('cuts a gzip bomb off after the decoded limit: of 1 GiB it never inflates more than a few MiB', async () => {
    const bomb = lazyBomb(1024 * 1024 * 1024);
    const started = performance.now();
    await assert.rejects(readLimitedBody(bomb.stream, 'gzip', { limit: 1024 * 1024, compressedLimit: 1024 * 1024, maxDepth: 32 }), (err: unknown) => {
      assert.ok(err instanceof ProblemError);
      assert.equal(err.code, 'batch.too_large');
      assert.match(err.message, /after decompression/);
      return true;
    });
    assert.ok(bomb.produced() < 64 * 1024 * 1024, `inflated source bytes generated: ${bomb.produced()}`);
    assert.ok(performance.now() - started < 2000);
  });

  it('cuts a body off on the wire limit even without Content-Length', async () => {
    const body = Readable.from([Buffer.alloc(600), Buffer.alloc(600)]);
    await assert.rejects(readLimitedBody(body, 'identity', { limit: 10_000, compressedLimit: 1000, maxDepth: 32 }), /on the wire/);
  });

  it('answers request.malformed for truncated gzip', async () => {
    const body = Readable.from([Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x00])]);
    await assert.rejects(readLimitedBody(body, 'gzip', { limit: 1000, compressedLimit: 1000, maxDepth: 32 }), (err: unknown) => {
      assert.ok(err instanceof ProblemError && err.code === 'request.malformed');
      return true;
    });
  });

  it('hands a body on as sent when asked not to inflate: gzip held to the wire limit only, identity to both', async () => {
    const text = JSON.stringify({ padding: ' '.repeat(50_000) });
    const gzipped = gzipSync(text);
    const limits = { limit: 1000, compressedLimit: 10_000, maxDepth: 32 };
    const asSent = await readLimitedBody(Readable.from([gzipped.subarray(0, 100), gzipped.subarray(100)]), 'gzip', limits, false);
    assert.deepEqual(asSent, gzipped, 'the gzip bytes, not inflated (the consumer inflates them under `limit`)');
    await assert.rejects(readLimitedBody(Readable.from([Buffer.alloc(20_000)]), 'gzip', limits, false), /on the wire/);
    await assert.rejects(readLimitedBody(Readable.from([Buffer.from(text)]), 'identity', { ...limits, compressedLimit: 100_000 }, false), /after decompression/);
  });

  it('measures nesting depth outside strings, escapes included', () => {
    assert.equal(jsonDepthExceeds('[[[]]]', 3), false);
    assert.equal(jsonDepthExceeds('[[[[]]]]', 3), true);
    assert.equal(jsonDepthExceeds('{"a":"[[[[[[\\"[[[["}', 1), false);
    assert.equal(jsonDepthExceeds('{"a":"\\\\"}', 1), false);
  });
});

describe('JSON body reader with a client that goes away', () => {
  it('rejects with request.malformed, instead of waiting forever, when the body stream is destroyed mid-way', async () => {
    const body = new Readable({ read() {} });
    body.push(Buffer.from('{"a":'));
    const reading = readLimitedBody(body, 'identity', { limit: 1000, compressedLimit: 1000, maxDepth: 32 });
    setTimeout(() => body.destroy(), 10);
    await assert.rejects(reading, (err: unknown) => err instanceof ProblemError && err.code === 'request.malformed');
  });
});
