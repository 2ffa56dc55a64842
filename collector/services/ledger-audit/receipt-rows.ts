/**
 * The receipts of `ledger verify`, streamed by the ledger range they name: each JWS verifies
 * with the receipt key and covers exactly the stored text; the receipt names its row's batch and
 * agent and this collector; its range holds only its chain's entries and ends just before the
 * checkpoint it names, stored with that root. Every agent entry is in exactly one receipt's range
 * (the collector's own chain has none), so entries outside every range are named.
 */
import type { KeyObject } from 'node:crypto';
import { canonicalJson } from '../../../shared/canonical-json.ts';
import { toBase64Url } from '../../../shared/crypto.ts';
import { EMPTY_ROOT } from '../../../shared/merkle.ts';
import { describeZodError, receiptSchema, type Receipt } from '../../../shared/protocol.ts';
import { verifyReceipt } from '../../../shared/receipt.ts';
import { COLLECTOR_AGENT_ID } from '../../../shared/record.ts';
import type { LedgerAuditSource } from '../../store/store.ts';
import { chainKey, type ChainState } from './chains.ts';
import type { Findings } from './findings.ts';
import type { LedgerPass } from './ledger-pass.ts';

/** Checks every receipt row; returns how many were read. */
export async function checkReceipts(
  source: LedgerAuditSource,
  chains: Map<string, ChainState>,
  ledger: LedgerPass,
  collector: { origin: string; receiptKey: KeyObject },
  findings: Findings,
): Promise<number> {
  const { size, brokenCheckpoints } = ledger;
  let count = 0;
  let coveredTo = -1;
  const uncovered = async (from: number, to: number): Promise<void> => {
    if (from > to) return;
    const stray = await source.countExceptAgent(from, to, COLLECTOR_AGENT_ID);
    if (stray.count > 0) {
      findings.add({
        table: 'receipts',
        row: { ledger_index: stray.first! },
        check: 'missing',
        message: `${stray.count} agent ledger ${stray.count === 1 ? 'entry' : 'entries'} in ${stray.first}…${stray.last} in no receipt's range (a receipt was deleted?)`,
      });
    }
  };
  for await (const row of source.receipts()) {
    count++;
    const ref = { batch_id: row.batchId, agent: row.agent };
    const add = (check: string, message: string, expected?: string, found?: string) =>
      findings.add({ table: 'receipts', row: ref, check, message, ...(expected !== undefined ? { expected, found: found ?? '' } : {}) });
    let parsed: unknown;
    try {
      parsed = JSON.parse(row.receiptJson);
    } catch {
      add('receipt_json', 'receipt_json is not JSON');
      continue;
    }
    const result = receiptSchema.safeParse(parsed);
    if (!result.success) {
      add('receipt_schema', `receipt_json is not a receipt: ${describeZodError(result.error, 3)}`);
      continue;
    }
    const receipt: Receipt = result.data;
    if (canonicalJson(receipt) !== row.receiptJson) add('canonical_form', 'receipt_json is not the RFC 8785 canonical form of the receipt');
    try {
      await verifyReceipt({ receipt, signature: row.signature }, collector.receiptKey);
    } catch (err) {
      add('signature', (err as Error).message);
    }
    if (receipt.batchId !== row.batchId) add('batch_id', 'the receipt is for another batch', row.batchId, receipt.batchId);
    if (receipt.agent !== row.agent) add('agent', 'the receipt is for another agent', row.agent, receipt.agent);
    if (receipt.collector !== collector.origin) add('collector', 'the receipt names another collector', collector.origin, receipt.collector);

    const named = receipt.checkpoint;
    const stored = await source.checkpointOfSize(named.size);
    if (!stored) {
      if (!(named.size === 0 && named.root === toBase64Url(EMPTY_ROOT))) {
        findings.add({ table: 'checkpoints', row: { size: named.size }, check: 'missing', message: `no checkpoint of size ${named.size}, which the receipt of batch ${row.batchId} names` });
      }
    } else if (brokenCheckpoints !== 'too_many' && !brokenCheckpoints.has(named.size) && (!Buffer.isBuffer(stored.root) || toBase64Url(stored.root) !== named.root)) {
      // (A checkpoint row already reported as wrong is no witness against the receipt.)
      add('checkpoint_root', `the receipt names checkpoint ${named.size} with another root than the stored one`, Buffer.isBuffer(stored.root) ? toBase64Url(stored.root) : '', named.root);
    }

    const chain = chains.get(chainKey(receipt.agent, receipt.epoch));
    if (chain && receipt.highestSeq > chain.seq) add('highest_seq', `highestSeq is beyond the last ledger entry of ${receipt.agent} epoch ${receipt.epoch}`, `≤ ${chain.seq}`, String(receipt.highestSeq));
    if (receipt.ledger === null) continue;
    const { first, last } = receipt.ledger;
    if (last < first || last >= size) {
      add('ledger_range', `the ledger range ${first}…${last} is not within the ${size} entries`);
      continue;
    }
    if (named.size !== last + 1) add('checkpoint_size', "the checkpoint is not the one the batch's append made (size = last ledger index + 1)", String(last + 1), String(named.size));
    if (first <= coveredTo) add('ledger_overlap', `the ledger range ${first}…${last} overlaps another receipt's range (up to ${coveredTo})`);
    await uncovered(coveredTo + 1, first - 1);
    const foreign = await source.countOutsideChain(first, last, receipt.agent, receipt.epoch);
    if (foreign.count > 0) {
      add('ledger_range', `${foreign.count} ${foreign.count === 1 ? 'entry' : 'entries'} in ${first}…${last} (first at ${foreign.first}) not of ${receipt.agent} epoch ${receipt.epoch}`);
    }
    coveredTo = Math.max(coveredTo, last);
  }
  await uncovered(coveredTo + 1, size - 1);
  return count;
}
