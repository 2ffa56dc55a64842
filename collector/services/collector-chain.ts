/**
 * The collector's own chain: its acts (token issues, enrollments, later revocations and
 * exports) are records of agent `COLLECTOR`, epoch 1, kind `agent`, signed with the
 * collector-chain key and appended to the same ledger through the same `LedgerService.append`
 * as any agent's batch.
 *
 * Invariants
 * - seq and prev are assigned inside the caller's write transaction, from the chain head read
 *   in that transaction: two processes (the server and a CLI command) serialise on the write
 *   lock and never fork the chain.
 * - The (COLLECTOR, 1) row holds the chain key's public JWK from the first start on; a key file
 *   that no longer matches it is refused at start rather than signing an unverifiable chain.
 *
 * Crash behaviour: a record is appended in the transaction of the act it records (a token and
 * its `enrollment_token.issued` record commit together), so neither exists without the other.
 */
import { canonicalJson } from '../../shared/canonical-json.ts';
import type { SigningKey } from '../../shared/crypto.ts';
import { newId } from '../../shared/ids.ts';
import { COLLECTOR_AGENT_ID, leafHashOfCanonical, recordHashOfCanonical, signRecord, GENESIS_PREV, type SignedRecord } from '../../shared/record.ts';
import type { CollectorStore, WriteTransaction } from '../store/store.ts';
import type { AppendResult, LedgerService } from './ledger.ts';

export const COLLECTOR_EPOCH = 1;

export class CollectorKeyMismatchError extends Error {
  override name = 'CollectorKeyMismatchError';
}

export class CollectorChain {
  readonly #key: SigningKey;
  readonly #ledger: LedgerService;
  readonly #store: CollectorStore;
  readonly #now: () => Date;

  constructor(options: { key: SigningKey; ledger: LedgerService; store: CollectorStore; now: () => Date }) {
    this.#key = options.key;
    this.#ledger = options.ledger;
    this.#store = options.store;
    this.#now = options.now;
  }

  /** Creates the (COLLECTOR, 1) chain with the chain key at first start; checks the key later. */
  async ensure(): Promise<void> {
    await this.#store.write(async (tx) => {
      const current = await tx.currentEpoch(COLLECTOR_AGENT_ID);
      if (!current) {
        await tx.createAgentEpoch({
          agent: COLLECTOR_AGENT_ID,
          epoch: COLLECTOR_EPOCH,
          publicJwk: this.#key.publicJwk,
          kid: this.#key.kid,
          enrolledAt: this.#now().toISOString(),
        });
      } else if (current.kid !== this.#key.kid) {
        throw new CollectorKeyMismatchError(
          `keys/collector-chain-key.jwk (kid ${this.#key.kid}) is not the key the COLLECTOR chain was created with (kid ${current.kid}); restore the original key file`,
        );
      }
    });
  }

  /**
   * Appends one record of `type` with `body` to the collector chain. MUST be called inside
   * `store.write`; the record is durable when that transaction commits. `body` MUST NOT hold
   * secrets: it is in the ledger, and in every report that covers it.
   */
  async append(tx: WriteTransaction, type: string, body: { [key: string]: unknown }): Promise<{ record: SignedRecord; ledger: AppendResult }> {
    const head = await tx.chainHead(COLLECTOR_AGENT_ID, COLLECTOR_EPOCH);
    if (!head) throw new Error('the COLLECTOR chain does not exist; ensure() runs at start');
    const now = this.#now().toISOString();
    const record = signRecord(
      {
        v: 1,
        id: newId(),
        agent: COLLECTOR_AGENT_ID,
        epoch: COLLECTOR_EPOCH,
        seq: head.highestSeq + 1,
        prev: head.highestHash ?? GENESIS_PREV,
        kind: 'agent',
        type,
        at: now,
        body,
        kid: this.#key.kid,
      },
      this.#key.privateKey,
    );
    const canonical = canonicalJson(record);
    const bytes = Buffer.from(canonical, 'utf8');
    const ledger = await this.#ledger.append(
      tx,
      { agent: COLLECTOR_AGENT_ID, epoch: COLLECTOR_EPOCH, head },
      [{ record, canonical, recordHash: recordHashOfCanonical(bytes), leafHash: leafHashOfCanonical(bytes) }],
      now,
    );
    return { record, ledger };
  }
}
