/** W3C Trace Context `traceparent` (version 00): follows a batch from agent to collector logs. */
import { randomBytes } from 'node:crypto';

const TRACEPARENT_PATTERN = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

export interface TraceContext {
  traceId: string;
  spanId: string;
  traceparent: string;
}

export function newTraceContext(traceId?: string): TraceContext {
  const id = traceId ?? randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { traceId: id, spanId, traceparent: `00-${id}-${spanId}-01` };
}

/** Parses a traceparent header; returns undefined for absent or invalid (all-zero ids are invalid). */
export function parseTraceparent(header: string | undefined): TraceContext | undefined {
  if (!header) return undefined;
  const match = TRACEPARENT_PATTERN.exec(header.trim().toLowerCase());
  if (!match) return undefined;
  const [, traceId, spanId] = match as unknown as [string, string, string];
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId, traceparent: header.trim().toLowerCase() };
}
