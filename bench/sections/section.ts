/**
 * What one benchmark of `npm run bench` adds to the run (a section), and what every section is
 * given: the sizes, the options, the run's cleanup, and what earlier sections measured.
 */
import type { CatchUpResult } from '../catch-up.ts';
import type { VerifyRate } from '../ed25519-verify-rate.ts';
import type { Cleanup } from '../lib/cleanup.ts';
import type { PostgresAvailability } from '../lib/postgres-server.ts';
import type { Row } from '../lib/report.ts';
import type { BenchSizes } from '../lib/sizes.ts';

/** Rows for the table, text after it, details for the JSON. */
export interface Section {
  rows: Row[];
  notes: string[];
  details: { [key: string]: unknown };
  /** Whether other processes disturbed this section's figures. */
  disturbed?: boolean;
}

export interface RunContext {
  sizes: BenchSizes;
  /** `--quick`: sizes too small for real figures. */
  quick: boolean;
  /** False with `--no-profile`: no CPU-profiled collector run. */
  profile: boolean;
  cleanup: Cleanup;
  /** The run's PostgreSQL server, made on first use and shared by every section, or why there is none. */
  postgres: () => Promise<PostgresAvailability>;
  /** Results of earlier sections that later ones compare with (the run order is fixed). */
  earlier: {
    /** The Ed25519 verify rate the ingest section measured. */
    verifyRate?: VerifyRate;
    /** The reported SQLite ingest run, for the PostgreSQL ingest to compare with. */
    sqliteIngest?: { recordsPerSecond: number; ratio: number; writeLockMicrosPerRecord: number; serialWriteLockMicrosPerRecord: number | undefined };
    /** The catch-up's records, for the rsyslog comparison to ship the very same JSON lines. */
    catchUp?: CatchUpResult;
  };
}

export type SectionRunner = (run: RunContext) => Promise<Section>;
