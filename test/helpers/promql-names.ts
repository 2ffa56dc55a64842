/**
 * Metric names used by PromQL expressions and promtool input series, for checking them against
 * what the code exports. Deliberately small: PromQL as this project's rules and dashboard write
 * it, not a parser. String literals (label values, regexes), label matchers, range and subquery
 * brackets, and the label lists of by/without/on/ignoring/group_left/group_right are removed
 * first; of the identifiers left, those followed by `(` are functions or aggregations, and the
 * keywords below are operators. What remains are metric names.
 */
const IDENTIFIER = /(?<![a-zA-Z0-9_:.$])[a-zA-Z_:][a-zA-Z0-9_:]*/g;
const LABEL_LIST = /\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)/g;
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'and', 'or', 'unless', 'atan2', 'inf', 'nan', 'start', 'end']);

/** Metric names an expression selects (Grafana's `$variables` are not names). */
export function metricNamesOf(expr: string): Set<string> {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/#[^\n]*/g, '')
    .replace(/\{[^{}]*\}/g, '{}')
    .replace(/\[[^\]]*\]/g, '[]')
    .replace(LABEL_LIST, ' ');
  const names = new Set<string>();
  for (const match of stripped.matchAll(IDENTIFIER)) {
    const name = match[0];
    const after = stripped.slice(match.index + name.length).trimStart();
    if (after.startsWith('(')) continue;
    if (KEYWORDS.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return names;
}

/** The metric name of a promtool input series, `name{labels}` (or `{__name__="name", ...}`). */
export function seriesName(series: string): string {
  const plain = /^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{|$)/.exec(series);
  if (plain) return plain[1]!;
  const byLabel = /__name__\s*=\s*"([^"]+)"/.exec(series);
  if (byLabel) return byLabel[1]!;
  throw new Error(`no metric name in series ${series}`);
}
