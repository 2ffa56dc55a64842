/**
 * The fleet view: per (agent, epoch), what an operator running hundreds of offices needs — state,
 * last contact, reported backlog, chain head, quarantine, clock skew, witness and the software
 * version the agent reports. No audit content: records are read through services/records.ts.
 *
 * - The COLLECTOR's own chain is not part of the fleet: never listed, and 404 by id.
 * - Pages are keyset pages in (agent, epoch) order: the cursor names the last row given, so a
 *   row added or changed meanwhile never makes another row repeat or go missing. The cursor is
 *   opaque to callers (base64url of `<agent>/<epoch>`); one that does not decode to an agent id
 *   and epoch is 400 `request.invalid`.
 * - Each read by an auditor is a `fleet.read` record of the COLLECTOR chain (who, the filter,
 *   how many rows), committed before the answer is sent, as each `record.read` is. Reads by
 *   admins are not recorded (no admin read is).
 */
import { parseDurationMs } from '../../shared/duration.ts';
import type { FleetAgent, FleetAgentDetail, FleetList, FleetStatus } from '../../shared/api-schemas.ts';
import { COLLECTOR_READ_TYPES, type FleetReadBody } from '../../shared/collector-acts.ts';
import { ProblemError } from '../../shared/problem.ts';
import { AGENT_ID_PATTERN, COLLECTOR_AGENT_ID } from '../../shared/record.ts';
import type { AgentEpochSummary, CollectorStore, FleetQuery } from '../store/store.ts';
import { actorOf, mayReadFleet, type Principal } from './access.ts';
import type { CollectorChain } from './collector-chain.ts';
import { epochStatus } from './enrollment.ts';

/** A list request, as the resource parsed it. */
export interface FleetFilter {
  status?: FleetStatus | undefined;
  /** A duration such as 30m, 6h or 2d (shared/api-schemas.ts FLEET_DURATION_PATTERN). */
  silentFor?: string | undefined;
  backlogOver?: number | undefined;
  limit: number;
  cursor?: string | undefined;
}

/** Epochs of one agent read per store call for the detail view (an agent has a handful). */
const EPOCHS_PER_READ = 500;

/** `silentFor`, already held to FLEET_DURATION_PATTERN by the query schema; parsed by the one duration parser. */
function durationMs(text: string): number {
  const ms = parseDurationMs(text);
  if (ms === undefined) throw new ProblemError('request.invalid', `silentFor: "${text}" is not a duration such as 30m, 6h or 2d`);
  return ms;
}

export function encodeFleetCursor(row: { agent: string; epoch: number }): string {
  return Buffer.from(`${row.agent}/${row.epoch}`, 'utf8').toString('base64url');
}

/** The (agent, epoch) a cursor names; throws 400 `request.invalid` for anything this service did not make. */
export function decodeFleetCursor(cursor: string): { agent: string; epoch: number } {
  const invalid = () => new ProblemError('request.invalid', 'cursor: not a cursor this API gave; use nextCursor of the previous page as it was sent');
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(cursor)) throw invalid();
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const slash = text.lastIndexOf('/');
  const agent = text.slice(0, slash);
  const epochText = text.slice(slash + 1);
  if (slash < 0 || !AGENT_ID_PATTERN.test(agent) || !/^[1-9][0-9]{0,15}$/.test(epochText)) throw invalid();
  const epoch = Number(epochText);
  // Only the exact text this service makes: base64url decoding forgives stray trailing bits.
  if (!Number.isSafeInteger(epoch) || encodeFleetCursor({ agent, epoch }) !== cursor) throw invalid();
  return { agent, epoch };
}

export function toFleetAgent(row: AgentEpochSummary): FleetAgent {
  const lastSkew = row.clockSkew?.lastSkew ?? null;
  return {
    agent: row.agent,
    epoch: row.epoch,
    status: epochStatus(row),
    enrolledAt: row.enrolledAt,
    revokedAt: row.revokedAt,
    supersededBy: row.supersededBy,
    lastSeenAt: row.lastSeenAt,
    backlog: { pending: row.backlog.pending, oldestAt: row.backlog.oldestAt, reportedAt: row.backlog.reportedAt },
    highestSeq: row.highestSeq,
    ledgerEntries: row.ledgerEntries,
    quarantined: row.quarantined,
    clockSkew: row.clockSkew
      ? { implausible: row.clockSkew.implausible, lastOffsetSeconds: lastSkew ? lastSkew.offsetMs / 1000 : null, lastRule: lastSkew?.rule ?? null }
      : null,
    witnessed: row.witnessedSize !== null && row.witnessedAt !== null ? { size: row.witnessedSize, at: row.witnessedAt } : null,
    version: row.version,
  };
}

export class FleetService {
  readonly #store: CollectorStore;
  readonly #chain: CollectorChain;
  readonly #now: () => Date;

  constructor(options: { store: CollectorStore; chain: CollectorChain; now: () => Date }) {
    this.#store = options.store;
    this.#chain = options.chain;
    this.#now = options.now;
  }

  /** One page of the fleet, by agent then epoch. Rejects with `request.invalid` for a bad cursor. */
  async list(filter: FleetFilter, principal: Principal): Promise<FleetList> {
    assertMayRead(principal);
    const query: FleetQuery = { excludeAgent: COLLECTOR_AGENT_ID, limit: filter.limit + 1 };
    if (filter.status !== undefined) query.status = filter.status;
    if (filter.silentFor !== undefined) query.silentBefore = new Date(this.#now().getTime() - durationMs(filter.silentFor)).toISOString();
    if (filter.backlogOver !== undefined) query.backlogOver = filter.backlogOver;
    if (filter.cursor !== undefined) query.after = decodeFleetCursor(filter.cursor);
    const rows = await this.#store.listFleet(query);
    // One row more than the page: whether a next page exists, without a count.
    const page = rows.slice(0, filter.limit);
    const nextCursor = rows.length > filter.limit ? encodeFleetCursor(page[page.length - 1]!) : null;
    const answer: FleetList = { agents: page.map(toFleetAgent), nextCursor };
    await this.#recordRead(principal, listedFilter(filter), answer.agents.length);
    return answer;
  }

  /** The agent's current (highest) epoch and the ones before it. Rejects with `resource.not_found` for an id with no epoch. */
  async get(agent: string, principal: Principal): Promise<FleetAgentDetail> {
    assertMayRead(principal);
    const rows: AgentEpochSummary[] = [];
    for (;;) {
      const after = rows.at(-1);
      const query: FleetQuery = { agent, excludeAgent: COLLECTOR_AGENT_ID, limit: EPOCHS_PER_READ };
      if (after) query.after = { agent: after.agent, epoch: after.epoch };
      const read = await this.#store.listFleet(query);
      rows.push(...read);
      if (read.length < EPOCHS_PER_READ) break;
    }
    const current = rows.at(-1);
    if (!current) throw new ProblemError('resource.not_found', `there is no enrolled agent ${agent}`);
    const answer: FleetAgentDetail = { ...toFleetAgent(current), previousEpochs: rows.slice(0, -1).map(toFleetAgent) };
    await this.#recordRead(principal, { agent }, rows.length);
    return answer;
  }

  async #recordRead(principal: Principal, filter: FleetReadBody['filter'], rows: number): Promise<void> {
    if (principal.role !== 'auditor') return;
    const body: FleetReadBody = { by: actorOf(principal), filter, rows };
    await this.#store.write((tx) => this.#chain.append(tx, COLLECTOR_READ_TYPES.fleetRead, body));
  }
}

function assertMayRead(principal: Principal): void {
  if (!mayReadFleet(principal)) throw new ProblemError('auth.forbidden', 'the fleet view is for admins and auditors');
}

/** The filter as the chain records it: the parameters given, and the page size used. */
function listedFilter(filter: FleetFilter): FleetReadBody['filter'] {
  const recorded: FleetReadBody['filter'] = {};
  if (filter.status !== undefined) recorded.status = filter.status;
  if (filter.silentFor !== undefined) recorded.silentFor = filter.silentFor;
  if (filter.backlogOver !== undefined) recorded.backlogOver = filter.backlogOver;
  recorded.limit = filter.limit;
  if (filter.cursor !== undefined) recorded.cursor = filter.cursor;
  return recorded;
}
