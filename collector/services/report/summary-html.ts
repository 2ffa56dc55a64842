/**
 * summary.html: one self-contained page for people who would rather look than read — totals, a
 * per-chain table and a records-per-day bar chart in inline SVG. No script, no external
 * resource of any kind (no fonts, stylesheets, images or links), so it opens offline and
 * cannot call home. Every text from the ledger is HTML-escaped. Like every bundle file it is a
 * pure function of its input: no export time, no locale-dependent formatting.
 */
import type { Manifest, ManifestChain } from '../../../shared/report/bundle-format.ts';

export interface SummaryInput {
  manifest: Omit<Manifest, 'files'>;
  /** Records per UTC day ("YYYY-MM-DD") of `at`. */
  perDay: Map<string, number>;
}

/** More days than this are charted per month, so the chart stays readable. */
const MAX_DAY_BARS = 400;
const CHART_WIDTH = 960;
const CHART_HEIGHT = 240;
const CHART_MARGIN = { top: 12, right: 12, bottom: 36, left: 64 };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** 1234567 → "1,234,567" (fixed, not locale-dependent). */
export function formatCount(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

function gapSeqs(chain: ManifestChain): number {
  return chain.gaps.reduce((sum, gap) => sum + gap.to - gap.from + 1, 0);
}

function chainRow(chain: ManifestChain): string {
  const dropped = chain.dropped.reduce((sum, d) => sum + d.dropped, 0);
  const gaps = chain.gaps.length === 0 ? 'none' : `${formatCount(chain.gaps.length)} (${formatCount(gapSeqs(chain))} seq${gapSeqs(chain) === 1 ? '' : 's'})`;
  return `<tr><td>${escapeHtml(chain.agent)}</td><td class="n">${chain.epoch}</td><td class="n">${formatCount(chain.firstSeq)}–${formatCount(chain.lastSeq)}</td><td class="n">${formatCount(chain.records)}</td><td>${gaps}</td><td class="n">${dropped === 0 ? '' : formatCount(dropped)}</td><td>${chain.revokedAt === null ? '' : escapeHtml(chain.revokedAt)}</td></tr>`;
}

/** Buckets (label, count) in time order: per day, or per month when there are too many days. */
function chartBuckets(perDay: Map<string, number>): { label: string; count: number }[] {
  const days = [...perDay.keys()].sort();
  if (days.length === 0) return [];
  const first = Date.parse(`${days[0]}T00:00:00.000Z`);
  const last = Date.parse(`${days[days.length - 1]}T00:00:00.000Z`);
  const span = Math.round((last - first) / 86_400_000) + 1;
  const byMonth = span > MAX_DAY_BARS;
  const buckets = new Map<string, number>();
  for (let t = first; t <= last; t += 86_400_000) {
    const day = new Date(t).toISOString().slice(0, 10);
    const label = byMonth ? day.slice(0, 7) : day;
    buckets.set(label, (buckets.get(label) ?? 0) + (perDay.get(day) ?? 0));
  }
  return [...buckets].map(([label, count]) => ({ label, count }));
}

function chartSvg(perDay: Map<string, number>): string {
  const buckets = chartBuckets(perDay);
  if (buckets.length === 0) return '<p>No records in this range.</p>';
  const max = Math.max(...buckets.map((b) => b.count), 1);
  const innerW = CHART_WIDTH - CHART_MARGIN.left - CHART_MARGIN.right;
  const innerH = CHART_HEIGHT - CHART_MARGIN.top - CHART_MARGIN.bottom;
  const step = innerW / buckets.length;
  const barW = Math.max(step * 0.8, 0.5);
  const fixed = (n: number) => n.toFixed(2);
  const bars = buckets
    .map((b, i) => {
      const h = (b.count / max) * innerH;
      const x = CHART_MARGIN.left + i * step + (step - barW) / 2;
      const y = CHART_MARGIN.top + innerH - h;
      return `<rect x="${fixed(x)}" y="${fixed(y)}" width="${fixed(barW)}" height="${fixed(h)}"><title>${b.label}: ${formatCount(b.count)}</title></rect>`;
    })
    .join('');
  const base = CHART_MARGIN.top + innerH;
  const labelEvery = Math.ceil(buckets.length / 8);
  const labels = buckets
    .map((b, i) => (i % labelEvery === 0 ? `<text x="${fixed(CHART_MARGIN.left + i * step + step / 2)}" y="${base + 16}" text-anchor="middle">${b.label}</text>` : ''))
    .join('');
  const axis = `<line x1="${CHART_MARGIN.left}" y1="${base}" x2="${CHART_WIDTH - CHART_MARGIN.right}" y2="${base}" class="axis"/>
<text x="${CHART_MARGIN.left - 6}" y="${CHART_MARGIN.top + 10}" text-anchor="end">${formatCount(max)}</text>
<text x="${CHART_MARGIN.left - 6}" y="${base}" text-anchor="end">0</text>`;
  const unit = buckets[0]!.label.length === 7 ? 'month' : 'day';
  return `<svg role="img" aria-label="Records per ${unit}" viewBox="0 0 ${CHART_WIDTH} ${CHART_HEIGHT}" width="100%">${axis}<g class="bars">${bars}</g>${labels}</svg>
<p class="note">Records per ${unit} (UTC) of the agents' own clocks (<code>at</code>).</p>`;
}

export function renderSummaryHtml({ manifest, perDay }: SummaryInput): string {
  const f = manifest.filter;
  const filterRows = [
    ['From (inclusive)', f.from],
    ['To (exclusive)', f.to],
    ['Agents', f.agent ?? 'all'],
    ['Kind', f.kind ?? 'all'],
    ['Type', f.type ?? 'all'],
  ]
    .map(([k, v]) => `<tr><th>${k}</th><td>${escapeHtml(v!)}</td></tr>`)
    .join('');
  const c = manifest.counts;
  const chains = manifest.chains.map(chainRow).join('\n');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Sakshya report: ${escapeHtml(manifest.origin)}, ${escapeHtml(f.from)} to ${escapeHtml(f.to)}</title>
<style>
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 70em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.bars rect { fill: #3b6ea5; }
.axis { stroke: #444; }
svg text { font-size: 11px; fill: #444; }
.note { color: #555; font-size: 0.9em; }
</style>
</head>
<body>
<h1>Sakshya report</h1>
<p>Collector <strong>${escapeHtml(manifest.origin)}</strong>, ledger checkpoint of size ${formatCount(manifest.checkpoint.size)} (root <code>${escapeHtml(manifest.checkpoint.root)}</code>). Generated by ${escapeHtml(manifest.generator.name)} ${escapeHtml(manifest.generator.version)}.</p>
<p class="note">This page is a convenience. The evidence is <code>records.jsonl</code> with its proofs and signed manifest: check the bundle with <code>sakshya-verify</code>.</p>
<h2>Filter</h2>
<table>${filterRows}</table>
<h2>Totals</h2>
<table>
<tr><th>Records</th><td class="n" id="total-records">${formatCount(c.records)}</td></tr>
<tr><th>Audit</th><td class="n">${formatCount(c.byKind.audit)}</td></tr>
<tr><th>Telemetry</th><td class="n">${formatCount(c.byKind.telemetry)}</td></tr>
<tr><th>Agent (lifecycle)</th><td class="n">${formatCount(c.byKind.agent)}</td></tr>
<tr><th>Chains (agent, epoch)</th><td class="n" id="total-chains">${formatCount(c.chains)}</td></tr>
</table>
<h2>Per agent</h2>
<table>
<tr><th>Agent</th><th>Epoch</th><th>Seq range</th><th>Records</th><th>Gaps</th><th>Telemetry dropped</th><th>Revoked at</th></tr>
${chains}
</table>
<h2>Records over time</h2>
${chartSvg(perDay)}
</body>
</html>
`;
}
