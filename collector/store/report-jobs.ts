/** Report export jobs as the store keeps them (part of the storage contract, store.ts). */
/** A report export started over HTTP (migrations 0005, 0008). */
export interface ReportJob {
  id: string;
  /** `expired`: was done; its bundle was deleted after the retention period (services/report/retention.ts). */
  status: 'running' | 'done' | 'failed' | 'expired';
  /** Public id of the auditor token that started it: the only one that may read it. */
  owner: string;
  /** Who the COLLECTOR chain records as the exporter (an Actor). */
  actor: string;
  /** The normalised filter, as JSON text. */
  filterJson: string;
  checkpointSize: number;
  createdAt: string;
  finishedAt: string | null;
  /** JSON of the bundle's counts, when done. */
  countsJson: string | null;
  manifestSha256: string | null;
  bundleBytes: number | null;
  /** JSON of the RFC 9457 problem, when failed. */
  problemJson: string | null;
  /** When the bundle was deleted, when expired. */
  expiredAt: string | null;
  /** The replica that runs the job and keeps its bundle (SAKSHYA_COLLECTOR_REPLICA); null: a job from before replicas. */
  replica: string | null;
}

/** How a running job ends. */
export type ReportJobOutcome =
  | { status: 'done'; finishedAt: string; countsJson: string; manifestSha256: string; bundleBytes: number }
  | { status: 'failed'; finishedAt: string; problemJson: string };
