import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import { BatchCompressor, encodeBatchJson, type BatchEnvelope } from '../../../agent/sync/batch-encoder.ts';

/** Canonical-looking record texts of varied sizes (the encoder never parses them). */
function records(count: number, from = 1): string[] {
  return Array.from({ length: count }, (_, i) => `{"seq":${from + i},"body":{"pad":"${'x'.repeat((from + i) % 900)}","n":"é✓${i}"}}`);
}

function envelope(batchId: string, witness?: BatchEnvelope['witness']): BatchEnvelope {
  return { batchId, agent: 'BN-TEST-001', epoch: 2, backlog: { pending: 1234, oldestAt: '2026-11-30T09:00:00.000Z' }, witness };
}

describe('agent/sync/batch-encoder', () => {
  it('encodes the batch JSON with the records spliced in as stored', () => {
    const texts = records(3);
    const json = encodeBatchJson(envelope('b-1', { size: 7, root: 'cm9vdA' }), texts);
    const parsed = JSON.parse(json) as { records: unknown[]; batchId: string; witness: unknown; backlog: unknown };
    assert.equal(parsed.batchId, 'b-1');
    assert.deepEqual(parsed.records, texts.map((text) => JSON.parse(text)));
    assert.deepEqual(parsed.witness, { size: 7, root: 'cm9vdA' });
    assert.ok(json.includes(`[${texts.join(',')}]`), 'records are the stored texts, byte for byte');
    assert.equal(encodeBatchJson(envelope('b-2'), []), '{"batchId":"b-2","agent":"BN-TEST-001","epoch":2,"records":[],"backlog":{"pending":1234,"oldestAt":"2026-11-30T09:00:00.000Z"}}');
  });

  it('names the agent version last, when given', () => {
    const json = encodeBatchJson({ ...envelope('b-3', { size: 1, root: 'cm9vdA' }), agentVersion: '0.3.0-rc.1' }, records(1));
    assert.ok(json.endsWith(',"witness":{"size":1,"root":"cm9vdA"},"agentVersion":"0.3.0-rc.1"}'), json.slice(-80));
    assert.equal((JSON.parse(json) as { agentVersion: string }).agentVersion, '0.3.0-rc.1');
  });

  it('gzips batch after batch with one compressor, each a complete gzip of exactly the batch JSON', async () => {
    const compressor = new BatchCompressor();
    try {
      let seq = 1;
      // Sizes around the piece size (32 records) and a full default batch (500).
      for (const count of [1, 31, 32, 33, 500, 0, 64, 500, 7]) {
        const texts = records(count, seq);
        seq += count;
        const env = envelope(`b-${seq}`, count % 2 === 0 ? { size: seq, root: 'cm9vdA' } : undefined);
        const gzipped = await compressor.gzip(env, texts);
        assert.equal(gzipped[0], 0x1f, 'a gzip header starts every batch');
        assert.equal(gzipped[1], 0x8b);
        // gunzipSync of this buffer alone: nothing of the previous batch is needed or left over.
        assert.equal(gunzipSync(gzipped).toString('utf8'), encodeBatchJson(env, texts), `batch of ${count} records`);
      }
      // Pieces larger than the compressor's 64 KB buffer, between ordinary ones.
      const big = Array.from({ length: 70 }, (_, i) => `{"seq":${i},"body":{"blob":"${'ü'.repeat(i % 3 === 0 ? 4000 : 10)}"}}`);
      const gzipped = await compressor.gzip(envelope('b-big'), big);
      assert.equal(gunzipSync(gzipped).toString('utf8'), encodeBatchJson(envelope('b-big'), big), 'a batch with oversized pieces');
    } finally {
      compressor.close();
    }
  });

  it('refuses a second batch while one is being compressed, and works again after close', async () => {
    const compressor = new BatchCompressor();
    try {
      const first = compressor.gzip(envelope('b-1'), records(500));
      await assert.rejects(compressor.gzip(envelope('b-2'), records(1)), /one batch at a time/);
      assert.equal(JSON.parse(gunzipSync(await first).toString('utf8')).records.length, 500);
      compressor.close();
      assert.equal(JSON.parse(gunzipSync(await compressor.gzip(envelope('b-3'), records(2))).toString('utf8')).batchId, 'b-3');
    } finally {
      compressor.close();
    }
  });
});
