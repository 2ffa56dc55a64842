/**
 * The plain-text verdict `sakshya-verify` prints, written for an auditor (docs/auditors.md
 * explains every line):
 *
 *   Manifest checked with the PINNED collector report key <kid> (from keys-2026.json); checkpoint with the pinned log key.
 *   Bundle: collector <origin>, checkpoint size 40,112, records with at in [from, to), agents AS-KMR-*, all kinds, all types.
 *   AS-KMR-001 epoch 1: seq 1–18,240 complete, 18,240 records verified
 *   AS-KMR-002 epoch 1: seq 1–500, 2 gaps (seq 101–110 outside the date range; seq 300 not in ledger), 489 records verified
 *     AS-KMR-002 epoch 1: 1,204 telemetry records dropped by the agent between <T1> and <T2> (telemetry.dropped record seq 77)
 *     AS-KMR-002 epoch 1: revoked at <T>, ledger index <i>; no record of this epoch is after it
 *   VERIFIED: 18,729 records in 2 chains …
 * or, after the chain lines, `FAILED: n problems` and one line per problem, or, when every check
 * passed but no collector key was pinned, `CONSISTENT, NOT AUTHENTICATED: …`.
 *
 * Every line goes through escapeForTerminal (terminal-text.ts) at the end, in formatVerdict:
 * the fields come from the bundle, and no field, present or future, can forget it.
 */
import { GAP_REASONS, type Gap } from '../shared/report/bundle-format.ts';
import type { ChainVerdict } from './chain-tracker.ts';
import { formatProblem } from './problems.ts';
import { linesForTerminal } from './terminal-text.ts';
import type { BundleVerification } from './verify-bundle.ts';

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

function formatSeqRange(from: number, to: number): string {
  return from === to ? `seq ${formatCount(from)}` : `seq ${formatCount(from)}–${formatCount(to)}`;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${formatCount(n)} ${n === 1 ? one : many}`;
}

const GAP_REASON_TEXT: { [reason: string]: string } = {
  [GAP_REASONS.outsideDateRange]: 'outside the date range',
  [GAP_REASONS.excludedByFilter]: 'excluded by the kind/type filter',
  [GAP_REASONS.notInLedger]: 'not in ledger',
};

function formatGap(gap: Gap): string {
  return `${formatSeqRange(gap.from, gap.to)} ${GAP_REASON_TEXT[gap.reason] ?? gap.reason}`;
}

export function formatChain(chain: ChainVerdict): string[] {
  const name = `${chain.agent} epoch ${chain.epoch}`;
  const parts: string[] = [];
  if (chain.firstSeq === null || chain.lastSeq === null) parts.push('no readable record');
  else if (chain.complete) parts.push(`${formatSeqRange(chain.firstSeq, chain.lastSeq)} complete`);
  else parts.push(formatSeqRange(chain.firstSeq, chain.lastSeq));
  if (chain.gaps.length > 0) parts.push(`${plural(chain.gaps.length, 'gap')} (${chain.gaps.map(formatGap).join('; ')})`);
  if (chain.undeclaredGaps.length > 0) {
    parts.push(`${plural(chain.undeclaredGaps.length, 'UNDECLARED gap')} (${chain.undeclaredGaps.map((range) => formatSeqRange(range.from, range.to)).join('; ')})`);
  }
  parts.push(`${plural(chain.verified, 'record')} verified`);
  if (chain.failed > 0) parts.push(`${formatCount(chain.failed)} FAILED`);
  else if (chain.problems > chain.undeclaredGaps.length) parts.push(`${plural(chain.problems - chain.undeclaredGaps.length, 'other problem')} (listed below)`);
  const lines = [`${name}: ${parts.join(', ')}`];
  for (const drop of chain.dropped) {
    lines.push(`  ${name}: ${plural(drop.dropped, 'telemetry record')} dropped by the agent between ${drop.firstAt} and ${drop.lastAt} (telemetry.dropped record seq ${formatCount(drop.seq)})`);
  }
  if (chain.revokedAt !== null) {
    const how = chain.supersededBy === null ? 'revoked' : `superseded by epoch ${chain.supersededBy} (a replacement enrollment)`;
    const after = chain.afterRevocation === 0 ? 'no record of this epoch is after it' : `${plural(chain.afterRevocation, 'record')} of this epoch AFTER it (FAILED)`;
    lines.push(`  ${name}: ${how} at ${chain.revokedAt}, ledger index ${formatCount(chain.revokedIndex ?? 0)}; ${after}`);
  }
  return lines;
}

function keyLine(result: BundleVerification): string[] {
  const kid = result.key.kid ?? 'none';
  if (result.key.pinned) {
    const logKey = result.key.logKeyId ?? 'none';
    const log = result.key.logKeyPinned ? `checkpoint with the pinned log key ${logKey}` : `checkpoint with the log key in keys.json, ${logKey} (the pinned file has no log key)`;
    return [`Manifest checked with the PINNED collector report key ${kid} (from ${result.key.source}); ${log}.`];
  }
  const bar = '!'.repeat(100);
  return [
    `Manifest checked with the report key INSIDE THE BUNDLE (keys.json, ${kid}): no collector key was pinned.`,
    bar,
    ...result.warnings.map((warning) => `!! WARNING: ${warning}`),
    bar,
  ];
}

function filterLine(result: BundleVerification): string | null {
  const manifest = result.manifest;
  if (!manifest) return null;
  const { filter } = manifest;
  return (
    `Bundle: collector ${manifest.origin}, checkpoint size ${formatCount(manifest.checkpoint.size)}, ` +
    `records with at in [${filter.from}, ${filter.to}), ` +
    `${filter.agent === null ? 'all agents' : `agents ${filter.agent}`}, ` +
    `${filter.kind === null ? 'all kinds' : `kind ${filter.kind}`}, ${filter.type === null ? 'all types' : `type ${filter.type}`}.`
  );
}

/** The verdict as text for a terminal: one line per fact, every line escaped. */
export function formatVerdict(result: BundleVerification): string {
  return linesForTerminal(verdictLines(result));
}

function verdictLines(result: BundleVerification): string[] {
  const lines = [...keyLine(result)];
  const filter = filterLine(result);
  if (filter) lines.push(filter);
  for (const chain of result.chains) lines.push(...formatChain(chain));
  const checked = `${plural(result.records.total, 'record')} in ${plural(result.chains.length, 'chain')}; every file hash, signature, inclusion proof, chain link and gap checks out`;
  const against = result.manifest ? ` against checkpoint size ${formatCount(result.manifest.checkpoint.size)}` : '';
  if (result.verdict === 'VERIFIED') {
    lines.push(`VERIFIED: ${checked}${against}.`);
  } else if (result.verdict === 'CONSISTENT_NOT_AUTHENTICATED') {
    lines.push(
      `CONSISTENT, NOT AUTHENTICATED: ${checked}${against}, but only against the keys inside the bundle, which anyone can make. ` +
        'This is NOT a verification: run again with --collector-key and the collector keys obtained out of band.',
    );
  } else {
    lines.push(`FAILED: ${plural(result.problemCount, 'problem')}`);
    if (!result.recordsChecked) lines.push('  (the records were not checked: the bundle is too damaged; see below)');
    for (const problem of result.problems) lines.push(`  ${formatProblem(problem)}`);
    if (result.problemsTruncated) lines.push(`  … and ${formatCount(result.problemCount - result.problems.length)} more problems`);
  }
  if (!result.key.pinned) lines.push('!! REMEMBER: no collector key was pinned; this says nothing about who made the bundle.');
  return lines;
}
