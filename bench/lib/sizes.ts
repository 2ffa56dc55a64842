/**
 * How much work each benchmark does: the full sizes, or the `--quick` ones that only check that
 * the benchmarks work. The results JSON records them as they are.
 */

/** The office's link: 256 kbit/s each way. */
export const LINK_BYTES_PER_SECOND = 256_000 / 8;

export function benchSizes({ quick, partialDrain }: { quick: boolean; partialDrain: boolean }) {
  return quick
    ? {
        verifyMillis: 500,
        ingest: { agents: 4, batchSize: 500, warmupBatchesPerAgent: 1, timedBatchesPerAgent: 2, serialBatches: 2 },
        profiledIngest: { agents: 4, batchSize: 500, warmupBatchesPerAgent: 1, timedBatchesPerAgent: 2 },
        realAgent: { records: 1000, writers: 4 },
        storage: { agents: 4, records: 4_000, batchSize: 500, small: { records: 200, batchSize: 1 }, serialSmallBatches: 20 },
        ledger: { batchSize: 500, smallTree: 10_000, bigTree: 100_000, proofs: 500 },
        catchUp: { auditRecords: 856, telemetryEveryMinutes: 10, bytesPerSecond: LINK_BYTES_PER_SECOND, writers: 4, timeoutMs: 300_000 },
        agentMemory: { backlogs: [1_000, 10_000], timeoutMs: 300_000 },
        rsyslog: { records: 200, bytesPerSecond: LINK_BYTES_PER_SECOND, timeoutMs: 300_000 },
        exportVerify: { records: 5_000, timeoutMs: 300_000 },
        exportLoop: { records: 5_000, idleSeconds: 3, timeoutMs: 300_000 },
      }
    : {
        verifyMillis: 2000,
        // Then 8 batches of the first agent alone, one at a time: the write lock without contention.
        ingest: { agents: 8, batchSize: 500, warmupBatchesPerAgent: 1, timedBatchesPerAgent: 12, serialBatches: 8 },
        profiledIngest: { agents: 8, batchSize: 500, warmupBatchesPerAgent: 1, timedBatchesPerAgent: 6 },
        realAgent: { records: 10_000, writers: 4 },
        // 10^5 records in full batches, then 4,000 more one per batch (the per-batch bytes), then
        // 200 one-record batches of one agent alone (a commit's serialised cost, uncontended).
        storage: { agents: 8, records: 100_000, batchSize: 500, small: { records: 4_000, batchSize: 1 }, serialSmallBatches: 200 },
        ledger: { batchSize: 500, smallTree: 10_000, bigTree: 1_000_000, proofs: 2000 },
        catchUp: { auditRecords: 18_560, telemetryEveryMinutes: 1, bytesPerSecond: LINK_BYTES_PER_SECOND, writers: 4, timeoutMs: 600_000 },
        // It is the whole drain of 10^6 that shows whether memory grows with the work done (how
        // long it takes: docs/benchmarks.md); --partial-drain stops after 10^5.
        agentMemory: { backlogs: [10_000, 1_000_000], drainLimit: partialDrain ? 100_000 : undefined, timeoutMs: 1_800_000 },
        rsyslog: { records: 2_000, bytesPerSecond: LINK_BYTES_PER_SECOND, timeoutMs: 600_000 },
        exportVerify: { records: 100_000, timeoutMs: 600_000 },
        exportLoop: { records: 100_000, idleSeconds: 10, timeoutMs: 600_000 },
      };
}

export type BenchSizes = ReturnType<typeof benchSizes>;
