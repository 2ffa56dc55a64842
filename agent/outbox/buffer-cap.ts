/**
 * The buffer cap (DESIGN "Buffer cap", invariant 3 "Nothing silently dropped"): how much
 * unacknowledged data the outbox may hold, what it refuses beyond that, and how every refusal
 * is counted until it is summarised in ONE signed `kind: agent, type: telemetry.dropped` record.
 *
 * ## Rules (measured against `chains.pending_bytes`: canonical bytes of unacknowledged records)
 * - telemetry: refused when storing it would take the backlog above the SOFT cap;
 * - audit: refused only when storing it would take the backlog above the HARD cap;
 * - agent (lifecycle, the drop summary itself, key rotation, witness alarms): accepted up to the
 *   hard cap plus a small headroom (`agentHeadroomBytes`). These records are few, small and are
 *   the evidence of what happened to the others — a full buffer must not also hide that it was
 *   full or that a key changed — so they get a reserve the other kinds cannot use. The reserve
 *   is bounded so that a misbehaving writer of `kind: agent` records cannot grow the outbox
 *   without limit either.
 *
 * ## The drop counter
 * Every refusal is added, in the refused append's own committed transaction, to one counter in
 * the outbox `state` table (`buffer.dropped`): total, first and last time, the count per type and
 * the worst cap reached. It therefore survives a restart and is shared by every process writing
 * to the outbox (`run`, `emit`). The summary record is written — and the counter cleared, in the
 * same transaction — by the first write that finds room again: the backlog at or below the
 * RESUME mark, 90% of the soft cap. That is any append, and the sync loop after each
 * acknowledgement (the usual way room comes back). Why not at once, or just under the soft cap:
 * a summary written while the backlog still sits at the cap is followed by the next refusal and
 * the next summary — one summary per refused record, in the worst case. The 10% gap between the
 * resume mark and the soft cap gives one summary per episode; and a summary could not reach the
 * collector any sooner anyway (it is synced behind the backlog).
 */

/** Type of the summary record (kind `agent`). */
export const TELEMETRY_DROPPED_TYPE = 'telemetry.dropped';

export const DEFAULT_SOFT_CAP_BYTES = 512 * 1024 * 1024;
export const DEFAULT_HARD_CAP_BYTES = 1024 * 1024 * 1024;
/** Reserve above the hard cap for `kind: agent` records: 1% of the hard cap, at least 256 KiB. */
export const MIN_AGENT_HEADROOM_BYTES = 256 * 1024;
/** Distinct types the counter keeps; refusals of further types are counted under `OTHER_TYPES_KEY`. */
export const MAX_COUNTED_TYPES = 256;
export const OTHER_TYPES_KEY = '*';

export interface BufferCap {
  softBytes: number;
  hardBytes: number;
}

export const DEFAULT_BUFFER_CAP: BufferCap = { softBytes: DEFAULT_SOFT_CAP_BYTES, hardBytes: DEFAULT_HARD_CAP_BYTES };

export type CapLevel = 'soft' | 'hard';
export type CapState = 'ok' | 'soft_cap' | 'hard_cap';

export function agentHeadroomBytes(cap: BufferCap): number {
  return Math.max(MIN_AGENT_HEADROOM_BYTES, Math.floor(cap.hardBytes / 100));
}

/** Which cap, if any, refuses a record of `kind` and `bytes` onto a backlog of `pendingBytes`. */
export function capRefusing(kind: string, bytes: number, pendingBytes: number, cap: BufferCap): CapLevel | undefined {
  const after = pendingBytes + bytes;
  if (kind === 'telemetry') {
    if (after > cap.hardBytes) return 'hard';
    return after > cap.softBytes ? 'soft' : undefined;
  }
  if (kind === 'agent') return after > cap.hardBytes + agentHeadroomBytes(cap) ? 'hard' : undefined;
  return after > cap.hardBytes ? 'hard' : undefined;
}

/** Room again: at or below this backlog, the counted refusals are summarised (see the header). */
export function resumeMarkBytes(cap: BufferCap): number {
  return Math.floor(cap.softBytes * 0.9);
}

/**
 * The cap state `status` shows: which cap is refusing records now. A backlog just under a cap
 * still refuses a record that would cross it, so while refusals are counted and there is no
 * room yet (above the resume mark), the state stays at the cap that refused.
 */
export function capState(pendingBytes: number, cap: BufferCap, counter?: DropCounter): CapState {
  const episode = counter !== undefined && pendingBytes > resumeMarkBytes(cap);
  if (pendingBytes >= cap.hardBytes || (episode && counter.worst === 'hard' && pendingBytes > cap.softBytes)) return 'hard_cap';
  return pendingBytes >= cap.softBytes || episode ? 'soft_cap' : 'ok';
}

/** The persisted counter of refused records since the last summary. */
export interface DropCounter {
  dropped: number;
  firstAt: string;
  lastAt: string;
  byType: { [type: string]: number };
  /** The worst cap that refused a record in this episode. */
  worst: CapLevel;
  /** The caps in force at the last refusal (for the summary's reason). */
  cap: BufferCap;
}

/** The body of a `telemetry.dropped` record. The auditors' report exporter relies on exactly this shape. */
export interface DroppedSummaryBody {
  dropped: number;
  firstAt: string;
  lastAt: string;
  reason: string;
  byType: { [type: string]: number };
}

/** The counter after one more refusal of `type` at `at` by `level`. */
export function countRefusal(counter: DropCounter | undefined, type: string, level: CapLevel, at: string, cap: BufferCap): DropCounter {
  const byType = { ...(counter?.byType ?? {}) };
  const key = Object.hasOwn(byType, type) || Object.keys(byType).length < MAX_COUNTED_TYPES ? type : OTHER_TYPES_KEY;
  byType[key] = (byType[key] ?? 0) + 1;
  return {
    dropped: (counter?.dropped ?? 0) + 1,
    firstAt: counter?.firstAt ?? at,
    lastAt: at,
    byType,
    worst: counter?.worst === 'hard' || level === 'hard' ? 'hard' : 'soft',
    cap,
  };
}

export function summaryBody(counter: DropCounter): DroppedSummaryBody {
  const reason =
    counter.worst === 'hard'
      ? `unacknowledged outbox data reached the hard cap (${counter.cap.hardBytes} bytes): telemetry and audit records were refused with 507`
      : `unacknowledged outbox data passed the soft cap (${counter.cap.softBytes} bytes): telemetry was refused with 507`;
  return { dropped: counter.dropped, firstAt: counter.firstAt, lastAt: counter.lastAt, reason, byType: counter.byType };
}
