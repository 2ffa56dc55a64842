/**
 * shared/batch-accept.ts answers "does batchSchema accept this?" without zod's copy. Its contract
 * is one-way (accepted ⇒ zod accepts the value unchanged), but the collector's speed also needs
 * the other way (zod accepts ⇒ accepted), so both are held here: on valid batches of every shape
 * the protocol allows, and on the same batches damaged at every field.
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { acceptsBatch } from '../../../shared/batch-accept.ts';
import { batchSchema, MAX_RECORDS_PER_BATCH } from '../../../shared/protocol.ts';
import { GENESIS_PREV, MAX_BODY_CANONICAL_BYTES } from '../../../shared/record.ts';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Batch = { [key: string]: Json };

const hex = (length: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF'), minLength: length, maxLength: length });
const uuidV7 = fc.tuple(hex(8), hex(4), hex(3), fc.constantFrom('8', '9', 'a', 'b', 'A', 'B'), hex(3), hex(12)).map(([a, b, c, v, d, e]) => `${a}-${b}-7${c}-${v}${d}-${e}`);
const uuid = fc.oneof(uuidV7, fc.constant('00000000-0000-0000-0000-000000000000'), hex(8).map((a) => `${a}-1234-4abc-9def-0123456789ab`));
const base64url = (length: number) => fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'), minLength: length, maxLength: length });
const agentId = fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-'), minLength: 3, maxLength: 64 });
const instant = fc
  .date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true })
  .chain((date) => fc.constantFrom(date.toISOString(), date.toISOString().replace('.000Z', 'Z'), date.toISOString().replace('Z', '456Z')));
const recordType = fc.constantFrom('certificate.issued', 'cpu.load', 'a.b', 'x_1.y_2.z', `a.${'b'.repeat(126)}`);
const body = fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 })).map((value) => JSON.parse(JSON.stringify(value)) as Json);

const validBatch: fc.Arbitrary<Batch> = fc
  .record({
    batchId: uuid,
    agent: agentId,
    epoch: fc.oneof(fc.integer({ min: 1, max: 5 }), fc.constant(Number.MAX_SAFE_INTEGER)),
    firstSeq: fc.oneof(fc.constant(1), fc.integer({ min: 2, max: 10_000 }), fc.constant(Number.MAX_SAFE_INTEGER - 3)),
    count: fc.integer({ min: 1, max: 4 }),
    records: fc.array(fc.record({ id: uuidV7, prev: base64url(43), kind: fc.constantFrom('audit', 'telemetry', 'agent'), type: recordType, at: instant, body, kid: base64url(43), sig: base64url(86) }), {
      minLength: 4,
      maxLength: 4,
    }),
    pending: fc.oneof(fc.constant(0), fc.nat()),
    oldestAt: fc.option(instant, { nil: null }),
    witness: fc.option(fc.record({ size: fc.nat(), root: base64url(43) }), { nil: undefined }),
    agentVersion: fc.option(
      fc.oneof(fc.constantFrom('0.1.0', '1.4.0-rc.1+build.7', 'v2', '9'.repeat(64)), fc.string({ unit: fc.constantFrom(...'0123456789.+-abcXYZ'), minLength: 1, maxLength: 64 })),
      { nil: undefined },
    ),
  })
  .map(({ batchId, agent, epoch, firstSeq, count, records, pending, oldestAt, witness, agentVersion }) => {
    const batch: Batch = {
      batchId,
      agent,
      epoch,
      records: records.slice(0, count).map((record, i) => ({
        v: 1,
        id: record.id,
        agent,
        epoch,
        seq: firstSeq + i,
        prev: firstSeq + i === 1 ? GENESIS_PREV : record.prev,
        kind: record.kind,
        type: record.type,
        at: record.at,
        body: record.body,
        kid: record.kid,
        sig: record.sig,
      })),
      backlog: { pending, oldestAt },
    };
    if (witness) batch.witness = witness;
    if (agentVersion !== undefined) batch.agentVersion = agentVersion;
    return JSON.parse(JSON.stringify(batch)) as Batch;
  });

/** Every place in a batch a damage can go: [path to the containing object or array, key]. */
function places(batch: Batch): [(string | number)[], string | number][] {
  const out: [(string | number)[], string | number][] = [];
  const walk = (value: Json, path: (string | number)[], depth: number) => {
    if (typeof value !== 'object' || value === null || depth > 3) return;
    for (const key of Array.isArray(value) ? value.map((_, i) => i) : Object.keys(value)) {
      out.push([path, key]);
      walk((value as { [key: string | number]: Json })[key]!, [...path, key], depth + 1);
    }
  };
  walk(batch, [], 0);
  return out;
}

const strange: fc.Arbitrary<Json> = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
  fc.constantFrom<Json>(0, 1, -1, 1.5, 2 ** 53, 2 ** 53 - 1, '', 'A'.repeat(43), GENESIS_PREV, null, {}, [], true, 'audit', 'AS-KMR-001', '2026-11-30T04:33:05Z', '2026-02-30T04:33:05Z', '2026-11-30T04:33:05+05:30'),
);

type Damage = { kind: 'replace'; value: Json } | { kind: 'delete' } | { kind: 'add'; key: string; value: Json } | { kind: 'char'; at: number; char: string };

const damage: fc.Arbitrary<Damage> = fc.oneof(
  strange.map((value) => ({ kind: 'replace' as const, value })),
  fc.constant({ kind: 'delete' as const }),
  fc.tuple(fc.constantFrom('x', 'witness', 'agentVersion', 'sig', '__proto__', 'records', 'v'), strange).map(([key, value]) => ({ kind: 'add' as const, key, value })),
  fc.tuple(fc.nat(), fc.constantFrom('a', 'Z', '-', '_', '=', '7', ' ', '.', 'é')).map(([at, char]) => ({ kind: 'char' as const, at, char })),
);

function damaged(batch: Batch, [path, key]: [(string | number)[], string | number], change: Damage): Batch {
  const copy = structuredClone(batch);
  let holder = copy as unknown as { [key: string | number]: Json };
  for (const step of path) holder = holder[step] as unknown as { [key: string | number]: Json };
  if (change.kind === 'replace') holder[key] = change.value;
  else if (change.kind === 'delete') {
    if (Array.isArray(holder)) holder.splice(key as number, 1);
    else delete holder[key];
  } else if (change.kind === 'add') {
    const target = holder[key];
    if (typeof target === 'object' && target !== null && !Array.isArray(target)) Object.defineProperty(target, change.key, { value: change.value, enumerable: true, writable: true, configurable: true });
    else holder[key] = change.value;
  } else {
    const value = holder[key];
    if (typeof value === 'string') {
      const at = value.length === 0 ? 0 : change.at % value.length;
      // Even: one character replaced; odd: one inserted (a string one longer than allowed).
      holder[key] = value.slice(0, at) + change.char + value.slice(change.at % 2 === 0 ? at + 1 : at);
    } else if (typeof value === 'number') holder[key] = value + (change.at % 3) - 1;
  }
  return copy;
}

function assertAgrees(batch: unknown): void {
  const verdict = batchSchema.safeParse(batch);
  const accepted = acceptsBatch(batch);
  assert.equal(accepted, verdict.success, `acceptsBatch says ${accepted}, batchSchema says ${verdict.success}${verdict.success ? '' : `: ${verdict.error.issues[0]?.message}`}\n${JSON.stringify(batch).slice(0, 600)}`);
  if (accepted) assert.deepEqual(verdict.data, batch, 'what zod returns for an accepted batch is the batch itself');
}

describe('acceptsBatch (batchSchema without the copy)', () => {
  it('accepts every valid batch, as batchSchema does, unchanged', () => {
    fc.assert(fc.property(validBatch, assertAgrees), { numRuns: 300 });
    fc.assert(fc.property(validBatch, (batch) => assert.equal(acceptsBatch(batch), true)), { numRuns: 100 });
  });

  it('agrees with batchSchema on batches damaged at any field: replaced, deleted, added, or one character changed or inserted', () => {
    fc.assert(
      fc.property(
        validBatch.chain((batch) => fc.tuple(fc.constant(batch), fc.constantFrom(...places(batch)), damage)),
        ([batch, place, change]) => assertAgrees(damaged(batch, place, change)),
      ),
      { numRuns: 2000 },
    );
  });

  it('agrees at the limits: record count, body size, seq at the top of the safe range, and values that are not JSON objects', () => {
    const [batch] = fc.sample(validBatch.filter((b) => (b.records as Json[]).length === 1 && b.epoch !== Number.MAX_SAFE_INTEGER), { numRuns: 1, seed: 7 });
    const record = (batch!.records as { [key: string]: Json }[])[0]!;
    const many = (n: number) => ({
      ...batch,
      records: Array.from({ length: n }, (_, i) => ({ ...record, seq: 2 + i, prev: 'B'.repeat(43) })),
    });
    assertAgrees(many(MAX_RECORDS_PER_BATCH));
    assertAgrees(many(MAX_RECORDS_PER_BATCH + 1));
    assertAgrees({ ...batch, records: [] });
    const big = (bytes: number) => ({ ...batch, records: [{ ...record, body: { pad: 'x'.repeat(bytes - '{"pad":""}'.length) } }] });
    assertAgrees(big(MAX_BODY_CANONICAL_BYTES));
    assertAgrees(big(MAX_BODY_CANONICAL_BYTES + 1));
    assertAgrees({ ...batch, records: [{ ...record, seq: Number.MAX_SAFE_INTEGER, prev: 'B'.repeat(43) }, { ...record, seq: Number.MAX_SAFE_INTEGER + 1, prev: 'B'.repeat(43) }] });
    for (const type of [`a.${'b'.repeat(126)}`, `a.${'b'.repeat(127)}`]) assertAgrees({ ...batch, records: [{ ...record, type }] });
    for (const value of [null, [], 'batch', 1, [batch]]) assertAgrees(value);
    for (const agentVersion of ['', '1'.repeat(64), '1'.repeat(65), '1.0 beta', '1.0\n', 'sakshya/1', null, 1]) assertAgrees({ ...batch, agentVersion });
    assert.equal(acceptsBatch(many(MAX_RECORDS_PER_BATCH)), true, 'the largest batch the protocol allows takes the fast path');
  });
});
