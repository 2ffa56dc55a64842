/** Progress on stderr: each step of a benchmark run numbered, named and timed. */
import { nowMs } from './stats.ts';

let step = 0;

/** Runs `fn` as the run's next numbered step, printing its name first and its duration after. */
export async function phase<T>(name: string, fn: () => Promise<T>): Promise<T> {
  step++;
  process.stderr.write(`bench: [${step}] ${name} … `);
  const started = nowMs();
  const result = await fn();
  process.stderr.write(`${((nowMs() - started) / 1000).toFixed(1)} s\n`);
  return result;
}
