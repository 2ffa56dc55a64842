/**
 * The sync loop's keys in the outbox `state` table, and the shape of what it stores there, so
 * that `status` (often another process) can read them without loading the sync machinery.
 */
export const STATE_LAST_ERROR = 'sync.lastError';
export const STATE_NEXT_ATTEMPT = 'sync.nextAttemptAt';
export const STATE_CIRCUIT = 'sync.circuit';
export const STATE_LAST_RECEIPT = 'sync.lastReceipt';

/** What `status --json` shows as the last error. */
export interface SyncErrorInfo {
  at: string;
  reason: string;
  detail: string;
  status?: number | undefined;
  code?: string | undefined;
  /** The collector refused the batch and retrying would not help; retried only after a long delay. */
  refused: boolean;
  batchId: string;
  traceId: string;
  firstSeq: number;
  lastSeq: number;
}
