/**
 * One district office's day, as the agent would buffer it during a day-long outage: the audit
 * events of the office's working hours plus one telemetry record a minute, around the clock, in
 * the order they happened. Bodies come from `recordContent` (bench/lib/workload.ts), so their
 * sizes match the ingest benchmark's records.
 */
import { canonicalJson } from '../../shared/canonical-json.ts';
import { generateSigningKey } from '../../shared/crypto.ts';
import { newId } from '../../shared/ids.ts';
import { GENESIS_PREV, recordHashOfCanonical, signRecord, type RecordKind } from '../../shared/record.ts';
import { recordContent } from './workload.ts';

export interface OfficeDayOptions {
  /** Audit events in the working day (spread evenly over WORKING_HOURS). */
  auditRecords: number;
  /** One telemetry record every this many minutes over 24 hours (1 = 1,440 records). */
  telemetryEveryMinutes: number;
}

export interface DayRecord {
  kind: RecordKind;
  type: string;
  at: string;
  body: { [key: string]: unknown };
}

/** 09:30–17:30 IST = 04:00–12:00 UTC. */
const WORKING_HOURS = { startUtcHour: 4, hours: 8 };
const DAY_START = Date.parse('2026-11-21T00:00:00.000Z');

/** The day's records in time order (`at` set), ready for the agent's local API. */
export function officeDay(office: string, options: OfficeDayOptions): DayRecord[] {
  const events: { atMs: number; n: number }[] = [];
  const workStart = DAY_START + WORKING_HOURS.startUtcHour * 3_600_000;
  const spacing = (WORKING_HOURS.hours * 3_600_000) / Math.max(1, options.auditRecords);
  // recordContent makes telemetry for n % 5 === 4 and audit records otherwise: pick numbers of each.
  let auditN = 0;
  for (let i = 0; i < options.auditRecords; i++) {
    auditN++;
    if (auditN % 5 === 4) auditN++;
    events.push({ atMs: workStart + Math.floor(i * spacing), n: auditN });
  }
  for (let minute = 0; minute < 24 * 60; minute += options.telemetryEveryMinutes) {
    events.push({ atMs: DAY_START + minute * 60_000 + 17_000, n: 5 * minute + 4 });
  }
  events.sort((a, b) => a.atMs - b.atMs);
  return events.map(({ atMs, n }) => {
    const at = new Date(atMs).toISOString();
    return { ...recordContent(office, n, at), at };
  });
}

/**
 * The same day as signed, chained v1 records (canonical JSON lines) from a key made here: what
 * an agent would have stored, for a benchmark that needs the records without running an agent.
 */
export function signedOfficeDayLines(office: string, day: readonly DayRecord[]): string[] {
  const key = generateSigningKey().key;
  let prev = GENESIS_PREV;
  return day.map((content, i) => {
    const record = signRecord({ v: 1, id: newId(), agent: office, epoch: 1, seq: i + 1, prev, ...content, kid: key.kid }, key.privateKey);
    const canonical = canonicalJson(record);
    prev = recordHashOfCanonical(Buffer.from(canonical, 'utf8'));
    return canonical;
  });
}
