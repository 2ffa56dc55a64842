/**
 * `listFleet` in SQL (PostgreSQL): one statement per query, filtered, ordered and limited by the
 * database over the (agent, epoch) primary key, as store/fleet-query.ts asks. Values are always
 * parameters; only the status, one of three fixed fragments, is part of the text.
 */
import type { EpochStatus, FleetQuery } from '../fleet-query.ts';

const STATUS_CONDITION: { [S in EpochStatus]: string } = {
  active: 'e.revoked_at IS NULL',
  revoked: 'e.revoked_at IS NOT NULL AND e.superseded_by IS NULL',
  superseded: 'e.revoked_at IS NOT NULL AND e.superseded_by IS NOT NULL',
};

/** What listAgentEpochs and listFleet read per (agent, epoch): the row, its counts and its clock-skew row (NULL before the first judged batch). */
export const EPOCH_SUMMARY_COLUMNS = `e.*,
  (SELECT count(*) FROM records r WHERE r.agent = e.agent AND r.epoch = e.epoch) AS ledger_entries,
  (SELECT count(*) FROM quarantine q WHERE q.agent = e.agent AND q.epoch = e.epoch) AS quarantined,
  (SELECT to_json(s) FROM clock_skew s WHERE s.agent = e.agent AND s.epoch = e.epoch) AS clock_skew`;

export function fleetStatement(query: FleetQuery): { sql: string; params: unknown[] } {
  if (!Number.isSafeInteger(query.limit) || query.limit < 1) throw new RangeError(`listFleet: limit must be a positive integer, not ${query.limit}`);
  const conditions: string[] = [];
  const params: unknown[] = [];
  const param = (value: unknown, type: string) => {
    params.push(value);
    return `$${params.length}::${type}`;
  };
  if (query.agent !== undefined) conditions.push(`e.agent = ${param(query.agent, 'text')}`);
  if (query.excludeAgent !== undefined) conditions.push(`e.agent <> ${param(query.excludeAgent, 'text')}`);
  if (query.status !== undefined) conditions.push(`(${STATUS_CONDITION[query.status]})`);
  if (query.silentBefore !== undefined) conditions.push(`(e.last_seen_at IS NULL OR e.last_seen_at < ${param(query.silentBefore, 'text')})`);
  if (query.backlogOver !== undefined) conditions.push(`e.backlog_pending > ${param(query.backlogOver, 'bigint')}`);
  if (query.after !== undefined) conditions.push(`(e.agent, e.epoch) > (${param(query.after.agent, 'text')}, ${param(query.after.epoch, 'bigint')})`);
  const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
  return { sql: `SELECT ${EPOCH_SUMMARY_COLUMNS} FROM agent_epochs e ${where} ORDER BY e.agent, e.epoch LIMIT ${param(query.limit, 'bigint')}`, params };
}
