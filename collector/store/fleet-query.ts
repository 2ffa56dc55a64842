/**
 * The fleet view's question to the store (`CollectorStore.listFleet`, services/fleet.ts). Part
 * of the storage contract (store.ts).
 */

/**
 * An epoch's state: `active` (not revoked), `revoked` (revoked, not by a replacement) or
 * `superseded` (revoked by a `--replace` enrollment: `supersededBy` is set).
 */
export type EpochStatus = 'active' | 'revoked' | 'superseded';

/**
 * Which (agent, epoch) rows to list, and which page. Every field but `limit` is optional; the
 * conditions that are given all hold for every row listed.
 */
export interface FleetQuery {
  /** Only this agent id (exact match). */
  agent?: string;
  /** Never this agent id (the fleet view leaves out the collector's own chain). */
  excludeAgent?: string;
  status?: EpochStatus;
  /**
   * Only epochs never seen, or last seen strictly before this instant (an ISO 8601 UTC text as
   * `toISOString` writes it; stored `lastSeenAt` texts compare as instants because they are all
   * in that one format).
   */
  silentBefore?: string;
  /** Only epochs whose last reported backlog has more than this many records pending (a never-reported backlog does not match). */
  backlogOver?: number;
  /** Keyset pagination: only rows after this (agent, epoch) in (agent, epoch) order. */
  after?: { agent: string; epoch: number };
  /** At most this many rows (≥ 1). */
  limit: number;
}
