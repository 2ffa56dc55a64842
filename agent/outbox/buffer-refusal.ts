/**
 * What the agent's writers (local API, `emit`, system telemetry) share about buffer-cap
 * refusals: one log line per refusal — warn when a cap is reached (the first refusal at that
 * level since the last summary), debug after that, so a flood of refused telemetry does not
 * flood the log — and the rule that only the agent writes `telemetry.dropped` summaries.
 */
import type { Logger } from '../../shared/logger.ts';
import { TELEMETRY_DROPPED_TYPE } from './buffer-cap.ts';
import type { BufferCapError } from './outbox-errors.ts';

export function logBufferRefusal(logger: Logger, err: BufferCapError): void {
  const fields = { kind: err.kind, type: err.type, cap: err.level, pendingBytes: err.pendingBytes, softCapBytes: err.cap.softBytes, hardCapBytes: err.cap.hardBytes };
  if (err.capJustReached) {
    logger.warn(
      fields,
      err.level === 'soft'
        ? 'buffer soft cap reached: telemetry is refused (507) and counted until the collector acknowledges records'
        : 'buffer hard cap reached: audit records are refused (507) and counted until the collector acknowledges records',
    );
  } else {
    logger.debug(fields, 'record refused at the buffer cap (counted)');
  }
}

/** A `telemetry.dropped` summary: the agent writes these itself; callers may not forge one. */
export function isDropSummaryRecord(record: { kind: string; type: string }): boolean {
  return record.kind === 'agent' && record.type === TELEMETRY_DROPPED_TYPE;
}
