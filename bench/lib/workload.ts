/**
 * The benchmark workload: realistic record bodies, and simulated agents that sign and chain
 * records exactly as `sakshya-agent` does (shared/record.ts; seq 1, 2, 3 …, `prev` = hash of the
 * previous record) and encode batches with the agent's own encoder, gzipped like the agent.
 *
 * Everything here is prepared BEFORE a timed phase: the load generator then only writes bytes
 * to sockets, so it takes as little CPU as possible from the system under test.
 */
import type { KeyObject } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { encodeBatchJson } from '../../agent/sync/batch-encoder.ts';
import { signAgentToken } from '../../shared/agent-token.ts';
import { canonicalJson } from '../../shared/canonical-json.ts';
import { generateSigningKey, publicKeyFromJwk, type SigningKey } from '../../shared/crypto.ts';
import { newId } from '../../shared/ids.ts';
import { MAX_AGENT_JWT_LIFETIME_SECONDS, type EnrollResponse } from '../../shared/protocol.ts';
import {
  GENESIS_PREV,
  leafHashOfCanonical,
  recordHashOfCanonical,
  signRecord,
  type RecordKind,
} from '../../shared/record.ts';

const SERVICES = ['income-certificate', 'caste-certificate', 'land-mutation', 'trade-licence', 'birth-registration'];
const DISTRICTS = ['Kamrup', 'Cachar', 'Dibrugarh', 'Jorhat', 'Nagaon', 'Barpeta'];
const DECISIONS = ['approved', 'approved', 'approved', 'returned', 'rejected'];
const REMARKS = [
  'Verified against land records; field enquiry not required.',
  'Applicant appeared in person; documents matched the originals.',
  'Returned for a fresh residence proof issued within six months.',
  'Fee waived under the senior-citizen scheme; approval by circle officer.',
];

/** A realistic body for record number `n` of an office: 4 audit records, then 1 telemetry. */
export function recordContent(office: string, n: number, at: string): { kind: RecordKind; type: string; body: { [key: string]: unknown } } {
  if (n % 5 === 4) {
    return {
      kind: 'telemetry',
      type: 'system.health',
      body: {
        host: `${office.toLowerCase()}-app-01`,
        load: { m1: 0.4 + (n % 13) / 10, m5: 0.5 + (n % 7) / 10, m15: 0.6 },
        memory: { totalMb: 16_384, usedMb: 9_000 + (n % 997), swapMb: 0 },
        disk: { path: '/var/lib/sakshya-agent', totalGb: 480, usedGb: 212 + (n % 50) / 10 },
        services: { 'e-district-portal': { up: true, responseMs: 40 + (n % 90) }, postgresql: { up: true, connections: 12 + (n % 30) } },
        uptimeSeconds: 86_400 * 12 + n * 60,
        backlog: { pending: n % 400, oldestAt: at },
      },
    };
  }
  const service = SERVICES[n % SERVICES.length]!;
  const serial = String(100_000 + n).padStart(7, '0');
  return {
    kind: 'audit',
    type: n % 2 === 0 ? 'certificate.issued' : 'application.decided',
    body: {
      office,
      service,
      application: `${office}/${service.slice(0, 3).toUpperCase()}/2026/${serial}`,
      applicant: { ref: `APL-${serial}`, district: DISTRICTS[n % DISTRICTS.length], ageBand: `${20 + (n % 5) * 10}-${29 + (n % 5) * 10}` },
      officer: { id: `op-${(n % 9) + 1}`, role: n % 3 === 0 ? 'circle-officer' : 'lot-mandal' },
      decision: DECISIONS[n % DECISIONS.length],
      fee: { amount: 30 + (n % 4) * 10, currency: 'INR', receipt: `RCPT-${serial}` },
      documents: ['aadhaar-masked', n % 2 === 0 ? 'ration-card' : 'voter-id'],
      terminal: `10.12.${n % 40}.${(n * 7) % 250}`,
      remarks: REMARKS[n % REMARKS.length],
    },
  };
}

/** One record as the collector will store it. */
export interface PreparedRecord {
  seq: number;
  id: string;
  kind: RecordKind;
  type: string;
  at: string;
  canonical: string;
  recordHash: string;
  leafHash: Buffer;
  bodyBytes: number;
}

/** A batch ready to POST: the exact gzipped bytes the agent would send. */
export interface PreparedBatch {
  batchId: string;
  agent: string;
  firstSeq: number;
  lastSeq: number;
  records: PreparedRecord[];
  jsonBytes: number;
  gzipped: Buffer;
}

/** An agent that exists only in the benchmark: a real key, a real chain, real tokens. */
export class SimulatedAgent {
  readonly id: string;
  readonly key: SigningKey = generateSigningKey().key;
  epoch = 1;
  seq = 0;
  prev = GENESIS_PREV;
  enrollment: EnrollResponse | undefined;

  constructor(id: string) {
    this.id = id;
  }

  get receiptKey(): KeyObject {
    if (!this.enrollment) throw new Error(`${this.id} is not enrolled`);
    return publicKeyFromJwk(this.enrollment.receiptKey);
  }

  /** Records the enrollment answer: the epoch to sign with and the pinned collector keys. */
  enrolled(answer: EnrollResponse): void {
    this.enrollment = answer;
    this.epoch = answer.epoch;
    this.seq = 0;
    this.prev = GENESIS_PREV;
  }

  /** Signs and chains the next record, as the agent's outbox does. */
  nextRecord(now = new Date()): PreparedRecord {
    const seq = this.seq + 1;
    const at = now.toISOString();
    const content = recordContent(this.id, seq, at);
    const record = signRecord(
      { v: 1, id: newId(), agent: this.id, epoch: this.epoch, seq, prev: this.prev, ...content, at, kid: this.key.kid },
      this.key.privateKey,
    );
    const canonical = canonicalJson(record);
    const bytes = Buffer.from(canonical, 'utf8');
    const prepared: PreparedRecord = {
      seq,
      id: record.id,
      kind: record.kind,
      type: record.type,
      at,
      canonical,
      recordHash: recordHashOfCanonical(bytes),
      leafHash: leafHashOfCanonical(bytes),
      bodyBytes: Buffer.byteLength(canonicalJson(record.body), 'utf8'),
    };
    this.seq = seq;
    this.prev = prepared.recordHash;
    return prepared;
  }

  /** The next `size` records as one batch, encoded and gzipped as the agent sends it. */
  nextBatch(size: number, pendingAfter: number): PreparedBatch {
    const records = Array.from({ length: size }, () => this.nextRecord());
    const batchId = newId();
    const json = encodeBatchJson(
      { batchId, agent: this.id, epoch: this.epoch, backlog: { pending: size + pendingAfter, oldestAt: records[0]!.at } },
      records.map((record) => record.canonical),
    );
    return {
      batchId,
      agent: this.id,
      firstSeq: records[0]!.seq,
      lastSeq: records[records.length - 1]!.seq,
      records,
      jsonBytes: Buffer.byteLength(json, 'utf8'),
      gzipped: gzipSync(json),
    };
  }

  /** A fresh agent JWT (unique jti) valid for the longest lifetime the collector accepts. */
  token(audience: string): Promise<string> {
    return signAgentToken({ key: this.key, agent: this.id, audience, lifetimeSeconds: MAX_AGENT_JWT_LIFETIME_SECONDS });
  }
}

/** Agent ids `BN-SIM-001` … in the enrollable format. */
export function simulatedAgentIds(count: number, prefix = 'BN-SIM'): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}-${String(i + 1).padStart(3, '0')}`);
}
