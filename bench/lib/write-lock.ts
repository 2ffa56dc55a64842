/**
 * The serialised part of ingest, from the collectors' own /metrics: how long batches held the
 * single writer's lock (from taking it to the durable commit), how long they waited for it, and
 * how many records they integrated. Scraped from every replica just before and just after a
 * timed phase; the figures are the differences, summed over the replicas.
 *
 * On PostgreSQL the lock is one advisory lock for every replica of the database, so the sum of
 * the replicas' hold times is the time the database's one writer was busy: `1e6 / µs per
 * record` is the most records a second the log can integrate, however many replicas check
 * signatures in front of it.
 */
import { sampleValue, scrape, type Exposition } from '../../test/helpers/prometheus-text.ts';

const HOLD = 'sakshya_collector_write_lock_hold_seconds';
const WAIT = 'sakshya_collector_write_lock_wait_seconds';
const RECORDS = 'sakshya_collector_integration_records';

export interface WriteLockSample {
  heldSeconds: number;
  holds: number;
  waitedSeconds: number;
  waits: number;
  records: number;
}

function sample(exposition: Exposition): WriteLockSample {
  return {
    heldSeconds: sampleValue(exposition, `${HOLD}_sum`),
    holds: sampleValue(exposition, `${HOLD}_count`),
    waitedSeconds: sampleValue(exposition, `${WAIT}_sum`),
    waits: sampleValue(exposition, `${WAIT}_count`),
    records: sampleValue(exposition, `${RECORDS}_sum`),
  };
}

/** Each replica's counters now, in the order of `metricsUrls`. */
export async function scrapeWriteLock(metricsUrls: readonly string[]): Promise<WriteLockSample[]> {
  return Promise.all(metricsUrls.map(async (url) => sample(await scrape(url))));
}

export interface WriteLockFigures {
  /** Seconds the lock was held, over every replica, and by how many write transactions. */
  heldSeconds: number;
  transactions: number;
  /** Records integrated by those transactions. */
  records: number;
  /** µs of lock hold per record integrated: the serialised cost of a record. */
  heldMicrosPerRecord: number;
  /** Mean hold per write transaction (one batch), ms. */
  heldMsPerTransaction: number;
  /** Mean wait for the lock per write transaction, ms, and per record, µs. */
  waitMsPerTransaction: number;
  waitMicrosPerRecord: number;
  /** Share of the timed wall time during which some replica held the lock (1 = the writer never idled). */
  busyShare: number;
  /** The same figures per replica. */
  perReplica: WriteLockSample[];
}

export function writeLockFigures(before: readonly WriteLockSample[], after: readonly WriteLockSample[], wallSeconds: number): WriteLockFigures {
  const perReplica = after.map((end, i) => {
    const start = before[i]!;
    return {
      heldSeconds: end.heldSeconds - start.heldSeconds,
      holds: end.holds - start.holds,
      waitedSeconds: end.waitedSeconds - start.waitedSeconds,
      waits: end.waits - start.waits,
      records: end.records - start.records,
    };
  });
  const total = (key: keyof WriteLockSample) => perReplica.reduce((sum, replica) => sum + replica[key], 0);
  const heldSeconds = total('heldSeconds');
  const transactions = total('holds');
  const records = total('records');
  const waits = total('waits');
  const waitedSeconds = total('waitedSeconds');
  return {
    heldSeconds,
    transactions,
    records,
    heldMicrosPerRecord: (heldSeconds / records) * 1e6,
    heldMsPerTransaction: (heldSeconds / transactions) * 1000,
    waitMsPerTransaction: (waitedSeconds / waits) * 1000,
    waitMicrosPerRecord: (waitedSeconds / records) * 1e6,
    busyShare: heldSeconds / wallSeconds,
    perReplica,
  };
}
