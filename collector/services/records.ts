/**
 * Reading ledger records by id. Records are audit content, so unlike checkpoints and proofs
 * (hashes and signatures only) they are shown only to a principal the access rules allow
 * (services/access.ts): an agent sees the records of its own current epoch; an auditor sees
 * any record, and each auditor read is a `record.read` record of the COLLECTOR chain (who read
 * which record), committed before the record is answered.
 */
import { COLLECTOR_READ_TYPES } from '../../shared/collector-acts.ts';
import { ProblemError } from '../../shared/problem.ts';
import type { CollectorStore } from '../store/store.ts';
import { actorOf, mayReadRecordsOf, type Principal } from './access.ts';
import type { CollectorChain } from './collector-chain.ts';

export interface RecordView {
  /** The record's canonical text, byte for byte as stored and hashed. */
  canonical: string;
  ledgerIndex: number;
  receivedAt: string;
}

export class RecordsService {
  readonly #store: CollectorStore;
  readonly #chain: CollectorChain;

  constructor(options: { store: CollectorStore; chain: CollectorChain }) {
    this.#store = options.store;
    this.#chain = options.chain;
  }

  /**
   * The committed record `id` if `principal` may read it. Rejects with `resource.not_found` if
   * there is no such record and `auth.forbidden` if it belongs to an agent the principal may
   * not read.
   */
  async read(id: string, principal: Principal): Promise<RecordView> {
    const record = await this.#store.findLedgerRecord(id);
    if (!record) throw new ProblemError('resource.not_found', `there is no record ${id} in the ledger`);
    if (!mayReadRecordsOf(principal, record)) {
      throw new ProblemError('auth.forbidden', `record ${id} belongs to another agent or epoch; an agent may read only the records of its own current epoch`);
    }
    if (principal.role === 'auditor') {
      const by = actorOf(principal);
      await this.#store.write((tx) => this.#chain.append(tx, COLLECTOR_READ_TYPES.recordRead, { id, agent: record.agent, ledgerIndex: record.ledgerIndex, by }));
    }
    return { canonical: record.canonical, ledgerIndex: record.ledgerIndex, receivedAt: record.receivedAt };
  }
}
