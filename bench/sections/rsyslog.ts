/** The rsyslog section: rsyslog + RELP over the same capped link, with the same JSON lines, beside the catch-up (bench/rsyslog-relp.ts). */
import { officeDay, signedOfficeDayLines } from '../lib/office-day.ts';
import { phase } from '../lib/phase.ts';
import { formatNumber, type Row } from '../lib/report.ts';
import { benchRsyslogRelp } from '../rsyslog-relp.ts';
import type { RunContext, Section } from './section.ts';

export async function rsyslogSection({ sizes, cleanup, earlier }: RunContext): Promise<Section> {
  const { records } = sizes.rsyslog;
  // The same records as the catch-up (its outbox's canonical lines), sampled evenly over the day
  // so the mix of audit and telemetry stays the same; signed here if the catch-up did not run.
  let source = earlier.catchUp?.canonicalLines;
  const sourceNote = source ? 'the catch-up agent\'s own signed records' : 'records of the same office day, signed by this process (the catch-up did not run)';
  source ??= signedOfficeDayLines('BN-OFFICE-001', officeDay('BN-OFFICE-001', sizes.catchUp));
  const step = Math.max(1, Math.floor(source.length / records));
  const lines = source.filter((_, i) => i % step === 0).slice(0, records);
  const result = await phase(`rsyslog + RELP: ${formatNumber(lines.length)} records through the same capped link`, () => benchRsyslogRelp(lines, sizes.rsyslog, cleanup));
  if ('skipped' in result) {
    return {
      rows: [{ key: 'rsyslog.skipped', metric: `rsyslog RELP comparison skipped: ${result.skipped}`, value: NaN, unit: '' }],
      notes: [`rsyslog comparison skipped: ${result.skipped}`],
      details: result,
    };
  }
  const sakshya = earlier.catchUp;
  const rows: Row[] = [
    {
      key: 'rsyslog.seconds',
      metric: `rsyslog RELP: ${formatNumber(result.records)} records at ${formatNumber((sizes.rsyslog.bytesPerSecond * 8) / 1000)} kbit/s`,
      value: result.seconds,
      unit: 's',
      reference: { label: 'bytes to receiver ÷ link rate', value: result.limitSeconds, unit: 's' },
      ratio: result.seconds / result.limitSeconds,
    },
    {
      key: 'rsyslog.records_per_second',
      metric: 'rsyslog RELP: records delivered per second',
      value: result.recordsPerSecond,
      unit: 'records/s',
      ...(sakshya ? { reference: { label: 'Sakshya catch-up, same link', value: sakshya.recordsPerSecond, unit: 'records/s' }, ratio: result.recordsPerSecond / sakshya.recordsPerSecond } : {}),
    },
    {
      key: 'rsyslog.wire_bytes_per_record',
      metric: 'rsyslog RELP: bytes on the wire per record (both ways)',
      value: result.wireBytesPerRecord,
      unit: 'B',
      ...(sakshya
        ? { reference: { label: 'Sakshya catch-up', value: sakshya.wireBytesPerRecord, unit: 'B' }, ratio: result.wireBytesPerRecord / sakshya.wireBytesPerRecord }
        : { reference: { label: 'raw JSON of one record', value: result.rawJsonBytes / result.records, unit: 'B' }, ratio: (result.wireBytesPerRecord * result.records) / result.rawJsonBytes }),
    },
  ];
  const notes = [
    `rsyslog (${result.version}): ${formatNumber(result.records)} records (${sourceNote}, every ${step}th), ${formatNumber(result.rawJsonBytes / result.records)} B of JSON each, ` +
      `in ${result.seconds.toFixed(1)} s: ${formatNumber(result.bytesToReceiver)} B to the receiver, ${formatNumber(result.bytesToSender)} B back. Queue: ${result.queue}. Compression: ${result.compression}.`,
  ];
  if (sakshya) {
    notes.push(
      `Side by side at ${formatNumber((sizes.rsyslog.bytesPerSecond * 8) / 1000)} kbit/s: Sakshya ${formatNumber(sakshya.recordsPerSecond)} records/s, ${formatNumber(sakshya.wireBytesPerRecord)} B/record ` +
        `(signed, hash-chained, verified by the collector, in a Merkle ledger with receipts); rsyslog RELP ${formatNumber(result.recordsPerSecond)} records/s, ` +
        `${formatNumber(result.wireBytesPerRecord)} B/record (delivery with acknowledgements only).`,
    );
  }
  return { rows, notes, details: { ...result, source: sourceNote, every: step } };
}
