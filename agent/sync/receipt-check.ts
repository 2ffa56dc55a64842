/**
 * Whether a receipt acknowledges the batch that was sent. A receipt MUST pass every check here
 * before a single record is marked acknowledged: its JWS verifies against the receipt key pinned
 * at enrollment (not a key the collector offers now), and it names this batch, agent and epoch
 * and a highest seq that covers the batch.
 */
import type { KeyObject } from 'node:crypto';
import type { SignedReceipt } from '../../shared/protocol.ts';
import { verifyReceipt } from '../../shared/receipt.ts';

export class ReceiptRejectedError extends Error {
  override name = 'ReceiptRejectedError';
}

export interface ExpectedReceipt {
  batchId: string;
  agent: string;
  epoch: number;
  lastSeq: number;
}

export async function checkReceipt(signed: SignedReceipt, receiptKey: KeyObject, expected: ExpectedReceipt): Promise<void> {
  try {
    await verifyReceipt(signed, receiptKey);
  } catch (err) {
    throw new ReceiptRejectedError((err as Error).message);
  }
  const { receipt } = signed;
  if (receipt.batchId !== expected.batchId) throw new ReceiptRejectedError(`receipt is for batch ${receipt.batchId}, not ${expected.batchId}`);
  if (receipt.agent !== expected.agent) throw new ReceiptRejectedError(`receipt is for agent ${receipt.agent}, not ${expected.agent}`);
  if (receipt.epoch !== expected.epoch) throw new ReceiptRejectedError(`receipt is for epoch ${receipt.epoch}, not ${expected.epoch}`);
  if (receipt.highestSeq < expected.lastSeq) {
    throw new ReceiptRejectedError(`receipt's highest seq ${receipt.highestSeq} does not cover the batch (last seq ${expected.lastSeq})`);
  }
}
