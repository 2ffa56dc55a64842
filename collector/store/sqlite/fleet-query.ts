/**
 * `listFleet` in SQL: one statement per shape of query (which filters are given), built here and
 * prepared once per shape by the store. Values are always bound parameters; only the status,
 * one of three fixed fragments, is part of the text.
 *
 * The page walks the (agent, epoch) primary key from the cursor on (`(agent, epoch) > (…)` is
 * a range on that key), and the per-row counts run only for the rows that pass the filters and
 * fit in the page: a page costs its own rows, not the fleet's.
 */
import type { EpochStatus, FleetQuery } from '../fleet-query.ts';

const STATUS_CONDITION: { [S in EpochStatus]: string } = {
  active: 'e.revoked_at IS NULL',
  revoked: 'e.revoked_at IS NOT NULL AND e.superseded_by IS NULL',
  superseded: 'e.revoked_at IS NOT NULL AND e.superseded_by IS NOT NULL',
};

/** The columns listAgentEpochs and listFleet read per (agent, epoch). */
export const EPOCH_SUMMARY_COLUMNS = `e.*,
  (SELECT count(*) FROM records r WHERE r.agent = e.agent AND r.epoch = e.epoch) AS ledger_entries,
  (SELECT count(*) FROM quarantine q WHERE q.agent = e.agent AND q.epoch = e.epoch) AS quarantined`;

export interface FleetStatement {
  /** Names the statement's shape: equal keys, equal text. */
  key: string;
  text: string;
  params: { [name: string]: string | number };
}

export function fleetStatement(query: FleetQuery): FleetStatement {
  if (!Number.isSafeInteger(query.limit) || query.limit < 1) throw new RangeError(`listFleet: limit must be a positive integer, not ${query.limit}`);
  const conditions: string[] = [];
  const params: { [name: string]: string | number } = { limit: query.limit };
  const shape: string[] = [];
  if (query.agent !== undefined) {
    conditions.push('e.agent = @agent');
    params.agent = query.agent;
    shape.push('agent');
  }
  if (query.excludeAgent !== undefined) {
    conditions.push('e.agent <> @excludeAgent');
    params.excludeAgent = query.excludeAgent;
    shape.push('exclude');
  }
  if (query.status !== undefined) {
    conditions.push(`(${STATUS_CONDITION[query.status]})`);
    shape.push(query.status);
  }
  if (query.silentBefore !== undefined) {
    conditions.push('(e.last_seen_at IS NULL OR e.last_seen_at < @silentBefore)');
    params.silentBefore = query.silentBefore;
    shape.push('silent');
  }
  if (query.backlogOver !== undefined) {
    conditions.push('e.backlog_pending > @backlogOver');
    params.backlogOver = query.backlogOver;
    shape.push('backlog');
  }
  if (query.after !== undefined) {
    conditions.push('(e.agent, e.epoch) > (@afterAgent, @afterEpoch)');
    params.afterAgent = query.after.agent;
    params.afterEpoch = query.after.epoch;
    shape.push('after');
  }
  const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
  return {
    key: shape.join(','),
    text: `SELECT ${EPOCH_SUMMARY_COLUMNS} FROM agent_epochs e ${where} ORDER BY e.agent, e.epoch LIMIT @limit`,
    params,
  };
}
