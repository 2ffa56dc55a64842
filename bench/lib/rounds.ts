/**
 * Comparing rates on a machine whose speed drifts: each contender's work is cut into rounds and
 * the contenders take turns round by round, so a slow spell of the machine hits them alike. A
 * rate is all items over all the contender's rounds' time: periodic costs (a WAL checkpoint
 * every few megabytes) land in some rounds only and must be spread over all of them, which a
 * median of round rates would not do. The median is kept as a second opinion.
 */
import { nowMs, percentile } from './stats.ts';

export interface RoundRunner {
  label: string;
  /** Each round does its work and returns how many items (rows, leaves) it handled. */
  rounds: (() => number | Promise<number>)[];
}

export interface RoundFigures {
  items: number;
  rounds: number;
  seconds: number;
  /** All items over all the rounds' time (items/s). */
  perSecond: number;
  /** Median of the rounds' rates. */
  medianRoundPerSecond: number;
}

export async function timeRoundsInTurn(runners: readonly RoundRunner[]): Promise<RoundFigures[]> {
  const figures = runners.map(() => ({ items: 0, seconds: 0, rates: [] as number[] }));
  const roundCount = Math.max(...runners.map((runner) => runner.rounds.length));
  for (let r = 0; r < roundCount; r++) {
    for (const [i, runner] of runners.entries()) {
      const round = runner.rounds[r];
      if (!round) continue;
      const started = nowMs();
      const items = await round();
      const seconds = (nowMs() - started) / 1000;
      const figure = figures[i]!;
      figure.items += items;
      figure.seconds += seconds;
      figure.rates.push(items / seconds);
    }
  }
  return figures.map(({ items, seconds, rates }) => ({
    items,
    rounds: rates.length,
    seconds,
    perSecond: items / seconds,
    medianRoundPerSecond: percentile(rates, 50),
  }));
}

/** Splits `items` into rounds of `perRound` (the last one shorter). */
export function chunk<T>(items: readonly T[], perRound: number): T[][] {
  const out: T[][] = [];
  for (let start = 0; start < items.length; start += perRound) out.push(items.slice(start, start + perRound));
  return out;
}
