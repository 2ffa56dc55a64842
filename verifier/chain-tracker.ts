/**
 * Chain and completeness checks (spec check 5), fed one record summary at a time in file order,
 * so memory grows with the number of chains and gaps, never with the number of records.
 *
 * Per (agent, epoch):
 * - seqs strictly ascending in the file (the ledger stores a chain in seq order);
 * - where seq and seq + 1 are both present, `prev` of seq + 1 is the hash of record seq's line;
 * - a key rotation in keys.json (a key from seq s + 1) matches the `key.rotated` record at seq s
 *   when that record is in the bundle;
 * - the seqs missing between firstSeq and lastSeq are exactly the manifest's declared `gaps`;
 * - firstSeq, lastSeq, records, dropped (the telemetry.dropped records) and the revocation
 *   (revokedAt, revokedIndex, supersededBy) agree with the records and with keys.json;
 * - no record of a revoked epoch sits at a ledger index after its revocation record: the
 *   collector accepted it after it had revoked the key (its revocation state was tampered with).
 */
import type { KeysAgent, ManifestChain } from '../shared/report/bundle-format.ts';
import { BUNDLE_FILES, type Gap } from '../shared/report/bundle-format.ts';
import type { ProblemList } from './problems.ts';
import type { RecordSummary } from './record-check.ts';

export interface SeqRange {
  from: number;
  to: number;
}

export interface DroppedTelemetry {
  seq: number;
  id: string;
  dropped: number;
  firstAt: string;
  lastAt: string;
}

/** The verdict of one chain: what the auditor reads. */
export interface ChainVerdict {
  agent: string;
  epoch: number;
  /** Lowest and highest seq in the bundle (null if the chain has no readable record). */
  firstSeq: number | null;
  lastSeq: number | null;
  /** Record lines of this chain in the bundle. */
  records: number;
  /** Records that passed every check. */
  verified: number;
  /** Records with at least one problem. */
  failed: number;
  /** The gaps the manifest declares, with their reasons. */
  gaps: Gap[];
  /** Seqs missing from the bundle that the manifest does not declare. */
  undeclaredGaps: SeqRange[];
  /** telemetry.dropped records of this chain in the bundle. */
  dropped: DroppedTelemetry[];
  /** From keys.json. */
  revokedAt: string | null;
  /** Ledger index of the revocation record (keys.json). */
  revokedIndex: number | null;
  /** The epoch that replaced this one, when a replacement enrollment revoked it (keys.json). */
  supersededBy: number | null;
  /** Records at a ledger index after the revocation. */
  afterRevocation: number;
  /** Every seq from firstSeq to lastSeq is in the bundle and verified. */
  complete: boolean;
  /** Problems found in this chain's records or its manifest entry. */
  problems: number;
}

interface ChainState {
  agent: string;
  epoch: number;
  firstSeq: number | null;
  lastSeq: number | null;
  lastHash: string | null;
  records: number;
  failed: number;
  missing: SeqRange[];
  dropped: DroppedTelemetry[];
  problems: number;
  /** kid of the key from seq s, for the rotations keys.json lists (s > 1). */
  rotations: Map<number, string>;
  /** Ledger index of the epoch's revocation record (keys.json), null if not revoked. */
  revokedIndex: number | null;
  afterRevocation: number;
}

function chainKey(agent: string, epoch: number): string {
  return `${agent}\u0000${epoch}`;
}

/** Sorted, merged ranges: adjacent and overlapping ranges become one. */
function mergeRanges(ranges: readonly SeqRange[]): SeqRange[] {
  const sorted = [...ranges].sort((a, b) => a.from - b.from);
  const merged: SeqRange[] = [];
  for (const range of sorted) {
    const last = merged.at(-1);
    if (last && range.from <= last.to + 1) last.to = Math.max(last.to, range.to);
    else merged.push({ ...range });
  }
  return merged;
}

/** The seqs in `a` that are not in `b`, as ranges; both sorted and merged. */
export function subtractRanges(a: readonly SeqRange[], b: readonly SeqRange[]): SeqRange[] {
  const out: SeqRange[] = [];
  let j = 0;
  for (const range of a) {
    let from = range.from;
    while (j < b.length && b[j]!.to < from) j++;
    let k = j;
    while (from <= range.to) {
      const cut = b[k];
      if (!cut || cut.from > range.to) {
        out.push({ from, to: range.to });
        break;
      }
      if (cut.from > from) out.push({ from, to: cut.from - 1 });
      from = cut.to + 1;
      k++;
    }
  }
  return out;
}

export function formatRange(range: SeqRange): string {
  return range.from === range.to ? `seq ${range.from}` : `seq ${range.from}–${range.to}`;
}

export class ChainTracker {
  readonly #problems: ProblemList;
  readonly #chains = new Map<string, ChainState>();
  readonly #manifestChains: ManifestChain[];
  readonly #keysAgents: Map<string, KeysAgent>;

  constructor(manifestChains: readonly ManifestChain[], keysAgents: readonly KeysAgent[], problems: ProblemList) {
    this.#problems = problems;
    this.#manifestChains = [...manifestChains];
    this.#keysAgents = new Map(keysAgents.map((entry) => [chainKey(entry.agent, entry.epoch), entry]));
  }

  #state(agent: string, epoch: number): ChainState {
    const key = chainKey(agent, epoch);
    let state = this.#chains.get(key);
    if (!state) {
      const rotations = new Map<number, string>();
      for (const entry of this.#keysAgents.get(key)?.keys ?? []) if (entry.fromSeq > 1) rotations.set(entry.fromSeq, entry.kid);
      const revokedIndex = this.#keysAgents.get(key)?.revokedIndex ?? null;
      state = { agent, epoch, firstSeq: null, lastSeq: null, lastHash: null, records: 0, failed: 0, missing: [], dropped: [], problems: 0, rotations, revokedIndex, afterRevocation: 0 };
      this.#chains.set(key, state);
    }
    return state;
  }

  /** Takes the next record in file order; returns the number of chain problems it caused. */
  add(record: RecordSummary): number {
    if (!record.parsed) return 0;
    const agent = record.agent!;
    const epoch = record.epoch!;
    const seq = record.seq!;
    const state = this.#state(agent, epoch);
    state.records++;
    const where = { file: BUNDLE_FILES.records, line: record.line, id: record.id!, agent, epoch, seq };
    let found = 0;
    const report = (problem: Parameters<ProblemList['add']>[0]): void => {
      found++;
      this.#problems.add(problem);
    };

    if (state.lastSeq !== null && seq <= state.lastSeq) {
      report({ ...where, check: 'chain.seq_order', expected: `seq > ${state.lastSeq}`, found: seq, message: `the record comes after seq ${state.lastSeq} of the same chain: seqs must ascend (a record reordered, repeated or moved)` });
    } else {
      if (state.lastSeq !== null && seq === state.lastSeq + 1 && record.prev !== state.lastHash) {
        report({ ...where, check: 'chain.prev_mismatch', expected: state.lastHash, found: record.prev ?? null, message: `prev is not the hash of seq ${state.lastSeq}'s line: the chain is broken here` });
      }
      if (state.lastSeq !== null && seq > state.lastSeq + 1) state.missing.push({ from: state.lastSeq + 1, to: seq - 1 });
      if (state.firstSeq === null) state.firstSeq = seq;
      state.lastSeq = seq;
      state.lastHash = record.hash ?? null;
    }

    const rotatedKid = state.rotations.get(seq + 1);
    if (rotatedKid !== undefined && record.rotatedTo !== rotatedKid) {
      report({ ...where, check: 'chain.rotation_mismatch', expected: rotatedKid, found: record.rotatedTo ?? null, message: `keys.json says a new key signs from seq ${seq + 1}, but this record is not a key.rotated record naming it` });
    }
    if (record.dropped) state.dropped.push({ seq, id: record.id!, ...record.dropped });
    if (state.revokedIndex !== null && record.ledgerIndex !== undefined && record.ledgerIndex > state.revokedIndex) {
      state.afterRevocation++;
      report({
        ...where,
        check: 'chain.after_revocation',
        expected: `ledger index < ${state.revokedIndex}`,
        found: record.ledgerIndex,
        message: `the record entered the ledger at index ${record.ledgerIndex}, after this epoch was revoked at index ${state.revokedIndex}: the collector accepted it from a revoked key`,
      });
    }

    state.problems += found;
    if (record.problems + found > 0) state.failed++;
    return found;
  }

  /** A record line that could not be read still counts against the file, not a chain. */
  finish(): ChainVerdict[] {
    const MANIFEST = BUNDLE_FILES.manifest;
    const verdicts: ChainVerdict[] = [];
    const seen = new Set<string>();
    for (const declared of this.#manifestChains) {
      const key = chainKey(declared.agent, declared.epoch);
      const at = { file: MANIFEST, agent: declared.agent, epoch: declared.epoch };
      if (seen.has(key)) {
        this.#problems.add({ ...at, check: 'manifest.chain_repeated', message: 'the manifest lists this chain twice' });
        continue;
      }
      seen.add(key);
      const state = this.#chains.get(key) ?? this.#state(declared.agent, declared.epoch);
      let problems = 0;
      const report = (problem: Parameters<ProblemList['add']>[0]): void => {
        problems++;
        this.#problems.add(problem);
      };
      const compare = (what: 'firstSeq' | 'lastSeq' | 'records', found: number | null): void => {
        if (declared[what] !== found) report({ ...at, check: `manifest.chain_${what}`, expected: found, found: declared[what], message: `the manifest's ${what} for this chain does not match records.jsonl` });
      };
      compare('firstSeq', state.firstSeq);
      compare('lastSeq', state.lastSeq);
      compare('records', state.records);

      const declaredRanges = mergeRanges(declared.gaps);
      const observed = mergeRanges(state.missing);
      const undeclared = subtractRanges(observed, declaredRanges);
      for (const range of undeclared) {
        report({ ...at, file: BUNDLE_FILES.records, check: 'chain.undeclared_gap', expected: 'declared in manifest.json gaps', found: formatRange(range), message: `${formatRange(range)} of this chain is missing from records.jsonl and the manifest does not declare it as a gap` });
      }
      for (const range of subtractRanges(declaredRanges, observed)) {
        report({ ...at, check: 'manifest.gap_not_missing', found: formatRange(range), message: `the manifest declares ${formatRange(range)} as a gap, but records.jsonl has those seqs or they are outside firstSeq–lastSeq` });
      }
      const gapOrder = declared.gaps.findIndex((gap, i) => gap.from > gap.to || (i > 0 && gap.from <= declared.gaps[i - 1]!.to));
      if (gapOrder >= 0) report({ ...at, check: 'manifest.gaps_order', message: `gap ${gapOrder + 1} is empty, overlaps or is out of order` });

      const droppedFound = JSON.stringify(state.dropped);
      const droppedDeclared = JSON.stringify(declared.dropped.map(({ seq, id, dropped, firstAt, lastAt }) => ({ seq, id, dropped, firstAt, lastAt })));
      if (droppedFound !== droppedDeclared) {
        report({ ...at, check: 'manifest.chain_dropped', expected: droppedFound, found: droppedDeclared, message: "the manifest's dropped list does not match the telemetry.dropped records of this chain" });
      }

      const keysEntry = this.#keysAgents.get(key);
      const revokedAt = keysEntry?.revokedAt ?? null;
      if (!keysEntry) {
        report({ ...at, file: BUNDLE_FILES.keys, check: 'keys.chain_missing', message: 'keys.json has no entry for this chain' });
      } else {
        if (declared.revokedAt !== revokedAt) {
          report({ ...at, check: 'manifest.chain_revoked_at', expected: revokedAt, found: declared.revokedAt, message: "the manifest's revokedAt does not match keys.json" });
        }
        const keysIndex = keysEntry.revokedIndex ?? null;
        const keysSuperseded = keysEntry.supersededBy ?? null;
        if (declared.revokedIndex !== keysIndex || declared.supersededBy !== keysSuperseded) {
          report({
            ...at,
            check: 'manifest.chain_revocation',
            expected: `revokedIndex ${keysIndex}, supersededBy ${keysSuperseded}`,
            found: `revokedIndex ${declared.revokedIndex}, supersededBy ${declared.supersededBy}`,
            message: "the manifest's revocation index or replacing epoch does not match keys.json",
          });
        }
        if ((revokedAt === null) !== (keysIndex === null) || (keysSuperseded !== null && keysIndex === null)) {
          report({ ...at, file: BUNDLE_FILES.keys, check: 'keys.revocation_incomplete', message: 'keys.json gives a revocation time without its ledger index, or the other way round' });
        }
      }
      if (state.records === 0) report({ ...at, check: 'manifest.chain_without_records', message: 'the manifest lists a chain that has no record in records.jsonl' });

      state.problems += problems;
      verdicts.push(this.#verdict(state, declared.gaps, undeclared, keysEntry ?? null));
    }
    for (const [key, state] of this.#chains) {
      if (seen.has(key)) continue;
      this.#problems.add({ file: MANIFEST, agent: state.agent, epoch: state.epoch, check: 'manifest.chain_missing', message: 'records.jsonl has records of this chain, but the manifest does not list it' });
      state.problems++;
      const undeclared = mergeRanges(state.missing);
      verdicts.push(this.#verdict(state, [], undeclared, this.#keysAgents.get(key) ?? null));
    }
    for (const [key, entry] of this.#keysAgents) {
      if (!this.#chains.has(key)) {
        this.#problems.add({ file: BUNDLE_FILES.keys, agent: entry.agent, epoch: entry.epoch, check: 'keys.extra_chain', message: 'keys.json lists a chain that has no record in the bundle' });
      }
    }
    return verdicts.sort((a, b) => (a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : a.epoch - b.epoch));
  }

  #verdict(state: ChainState, gaps: Gap[], undeclared: SeqRange[], keysEntry: KeysAgent | null): ChainVerdict {
    return {
      agent: state.agent,
      epoch: state.epoch,
      firstSeq: state.firstSeq,
      lastSeq: state.lastSeq,
      records: state.records,
      verified: state.records - state.failed,
      failed: state.failed,
      gaps,
      undeclaredGaps: undeclared,
      dropped: state.dropped,
      revokedAt: keysEntry?.revokedAt ?? null,
      revokedIndex: keysEntry?.revokedIndex ?? null,
      supersededBy: keysEntry?.supersededBy ?? null,
      afterRevocation: state.afterRevocation,
      complete: state.problems === 0 && state.failed === 0 && gaps.length === 0 && undeclared.length === 0 && state.records > 0,
      problems: state.problems,
    };
  }
}
