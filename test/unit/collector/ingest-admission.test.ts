import assert from 'node:assert/strict';
import { INGEST_BUSY_RETRY_AFTER_SECONDS, IngestAdmission, IngestBusyError } from '../../../collector/services/ingest-admission.ts';

function busy(fn: () => unknown, queue: 'check' | 'write'): IngestBusyError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof IngestBusyError, String(err));
    assert.equal(err.queue, queue);
    assert.equal(err.code, 'ingest.busy');
    assert.equal(err.status, 503);
    return err;
  }
  assert.fail(`expected IngestBusyError (${queue})`);
}

describe('collector/services/ingest-admission', () => {
  it('admits checkSlots + checkQueue batches to the check queue, refuses the next with ingest.busy, and admits again after a release', () => {
    const admission = new IngestAdmission({ checkSlots: 2, checkQueue: 1, writeQueue: 5 });
    const leases = [admission.enterCheck(), admission.enterCheck(), admission.enterCheck()];
    assert.deepEqual(admission.load, { checking: 3, writing: 0 });
    busy(() => admission.enterCheck(), 'check');
    busy(() => admission.assertRoom(), 'check');
    assert.deepEqual(admission.load, { checking: 3, writing: 0 }, 'a refusal takes no place');
    leases[0]!();
    leases[0]!(); // a second release of the same lease changes nothing
    assert.deepEqual(admission.load, { checking: 2, writing: 0 });
    admission.assertRoom();
    admission.enterCheck();
    assert.deepEqual(admission.refusals, { check: 2, write: 0 });
  });

  it('lets one batch write and writeQueue wait; past that both a checked batch and a new arrival are refused for the write queue', () => {
    const admission = new IngestAdmission({ checkSlots: 4, checkQueue: 0, writeQueue: 1 });
    const writes = [admission.enterWrite(), admission.enterWrite()];
    busy(() => admission.enterWrite(), 'write');
    // A batch that would only be refused after its check is refused before it.
    busy(() => admission.enterCheck(), 'write');
    busy(() => admission.assertRoom(), 'write');
    assert.deepEqual(admission.refusals, { check: 0, write: 3 });
    writes[1]!();
    admission.assertRoom();
    assert.deepEqual(admission.load, { checking: 0, writing: 1 });
  });

  it('with queues of 0 admits exactly the batches being checked and the one being written', () => {
    const admission = new IngestAdmission({ checkSlots: 1, checkQueue: 0, writeQueue: 0 });
    admission.enterCheck();
    busy(() => admission.enterCheck(), 'check');
    admission.enterWrite();
    busy(() => admission.enterWrite(), 'write');
  });

  it('answers a Retry-After of whole seconds within the documented range, spread at random', () => {
    const { min, max } = INGEST_BUSY_RETRY_AFTER_SECONDS;
    const seen = new Set<number>();
    for (const r of [0, 0.34, 0.5, 0.67, 0.999_999]) {
      const admission = new IngestAdmission({ checkSlots: 1, checkQueue: 0, writeQueue: 0 }, { random: () => r });
      admission.enterCheck();
      const err = busy(() => admission.enterCheck(), 'check');
      assert.ok(Number.isInteger(err.retryAfterSeconds) && err.retryAfterSeconds! >= min && err.retryAfterSeconds! <= max, `${err.retryAfterSeconds}`);
      assert.equal(err.toBody().retryAfterSeconds, err.retryAfterSeconds);
      seen.add(err.retryAfterSeconds!);
    }
    assert.deepEqual([...seen].sort(), [1, 2, 3]);
  });

  it('refuses bounds that are not whole numbers, and a check queue without a slot', () => {
    assert.throws(() => new IngestAdmission({ checkSlots: 0, checkQueue: 1, writeQueue: 1 }), RangeError);
    assert.throws(() => new IngestAdmission({ checkSlots: 1, checkQueue: -1, writeQueue: 1 }), RangeError);
    assert.throws(() => new IngestAdmission({ checkSlots: 1, checkQueue: 1, writeQueue: 1.5 }), RangeError);
  });
});
