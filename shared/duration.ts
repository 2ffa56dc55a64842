/**
 * Durations as operators write them: digits and one unit (ms, s, m, h, d), e.g. `90s`, `6h`,
 * `2d`. Deliberately narrow: "1.5h" or "2h30m" are refused, so a typo in a flag or a query is
 * an error, not a surprise.
 */
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const DURATION = /^(\d{1,9})(ms|s|m|h|d)$/;

/** Milliseconds of `text`, or undefined if it is not a duration such as 30s, 5m, 6h or 2d. */
export function parseDurationMs(text: string): number | undefined {
  const match = DURATION.exec(text);
  if (!match) return undefined;
  return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
}
