/**
 * Signed receipts. A receipt is the collector's promise that a batch's records and their ledger
 * entries are committed. It travels as `{ receipt, signature }` where `signature` is a compact
 * JWS (EdDSA, collector receipt key) whose payload is JCS(receipt). An agent MUST verify it
 * against the receipt key it pinned at enrollment before it marks anything acknowledged.
 */
import type { KeyObject } from 'node:crypto';
import { CompactSign, compactVerify } from 'jose';
import { canonicalBytes } from './canonical-json.ts';
import type { Receipt, SignedReceipt } from './protocol.ts';

export const RECEIPT_JWS_TYP = 'sakshya-receipt+jws';

export class ReceiptSignatureError extends Error {
  override name = 'ReceiptSignatureError';
}

export async function signReceipt(receipt: Receipt, privateKey: KeyObject, kid: string): Promise<SignedReceipt> {
  const signature = await new CompactSign(canonicalBytes(receipt))
    .setProtectedHeader({ alg: 'EdDSA', kid, typ: RECEIPT_JWS_TYP })
    .sign(privateKey);
  return { receipt, signature };
}

/** Throws ReceiptSignatureError unless `signature` is a valid JWS over exactly JCS(receipt). */
export async function verifyReceipt(signed: SignedReceipt, publicKey: KeyObject): Promise<void> {
  let payload: Uint8Array;
  try {
    const result = await compactVerify(signed.signature, publicKey, { algorithms: ['EdDSA'] });
    if (result.protectedHeader.typ !== RECEIPT_JWS_TYP) throw new Error(`unexpected typ ${String(result.protectedHeader.typ)}`);
    payload = result.payload;
  } catch (err) {
    throw new ReceiptSignatureError(`receipt signature does not verify: ${(err as Error).message}`);
  }
  if (!Buffer.from(payload).equals(canonicalBytes(signed.receipt))) {
    throw new ReceiptSignatureError('receipt signature covers a different receipt');
  }
}
