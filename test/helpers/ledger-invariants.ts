/**
 * The invariant checker end-to-end tests finish with: every record an agent's local API
 * acknowledged (201) is in the collector's ledger exactly once, under the same id and seq, and the
 * agent's chain in the ledger is gapless with every `prev` link intact. It reads the collector's
 * SQLite file directly (read-only), so it checks the stored truth, not an API's summary of it.
 */
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { GENESIS_PREV, recordHashOfCanonical } from '../../shared/record.ts';

export interface AcknowledgedRecord {
  id: string;
  seq: number;
}

export interface LedgerCheck {
  agent: string;
  inLedger: number;
  acknowledged: number;
  lost: number;
  duplicated: number;
}

export function checkAgentInLedger(collectorDir: string, agent: string, acknowledged: readonly AcknowledgedRecord[]): LedgerCheck {
  const db = new Database(join(collectorDir, 'collector.db'), { readonly: true, fileMustExist: true });
  try {
    const rows = db
      .prepare('SELECT id, epoch, seq, canonical FROM records WHERE agent = ? ORDER BY epoch, seq, ledger_index')
      .all(agent) as Array<{ id: string; epoch: number; seq: number; canonical: string }>;
    const perId = new Map<string, number>();
    for (const row of rows) perId.set(row.id, (perId.get(row.id) ?? 0) + 1);
    const perSeq = new Map<string, number>();
    for (const row of rows) perSeq.set(`${row.epoch}/${row.seq}`, (perSeq.get(`${row.epoch}/${row.seq}`) ?? 0) + 1);
    const duplicated = [...perId.values(), ...perSeq.values()].filter((n) => n > 1).length;
    const lost = acknowledged.filter((r) => !perId.has(r.id)).length;

    // Chain: per epoch, seq 1..n gapless and each prev = hash of the record before it.
    let previousHash = GENESIS_PREV;
    let expectedSeq = 1;
    let epoch = rows[0]?.epoch;
    for (const row of rows) {
      if (row.epoch !== epoch) {
        epoch = row.epoch;
        expectedSeq = 1;
        previousHash = GENESIS_PREV;
      }
      const record = JSON.parse(row.canonical) as { prev: string; seq: number };
      assert.equal(row.seq, expectedSeq, `${agent} epoch ${row.epoch}: gap before seq ${row.seq}`);
      assert.equal(record.prev, previousHash, `${agent} epoch ${row.epoch} seq ${row.seq}: prev does not link`);
      previousHash = recordHashOfCanonical(Buffer.from(row.canonical, 'utf8'));
      expectedSeq++;
    }
    const bySeq = new Map(rows.map((r) => [r.id, r.seq]));
    for (const ack of acknowledged) {
      if (bySeq.has(ack.id)) assert.equal(bySeq.get(ack.id), ack.seq, `record ${ack.id} acknowledged as seq ${ack.seq}`);
    }
    return { agent, inLedger: rows.length, acknowledged: acknowledged.length, lost, duplicated };
  } finally {
    db.close();
  }
}

/** POSTs one record to an agent's local API and returns what the 201 acknowledged. */
export async function writeThroughLocalApi(
  port: number,
  localToken: string,
  record: { kind: string; type: string; body: { [key: string]: unknown } },
): Promise<AcknowledgedRecord> {
  const response = await fetch(`http://127.0.0.1:${port}/v1/records`, {
    method: 'POST',
    headers: { authorization: `Bearer ${localToken}`, 'content-type': 'application/json' },
    body: JSON.stringify(record),
  });
  const body = (await response.json()) as AcknowledgedRecord;
  assert.equal(response.status, 201, `local API answered ${response.status}: ${JSON.stringify(body)}`);
  return body;
}
