/**
 * What `sakshya-verify` found wrong. Every problem names the bundle file, where in it (line
 * number, record id, chain) when that is known, a stable check code, and expected vs found, so
 * an auditor can point at the exact evidence. The list is capped (a bundle whose every record is
 * damaged would otherwise print a million lines and hold them in memory); every problem is
 * counted.
 */

export interface BundleProblem {
  /** Stable code of the failed check, e.g. `record.bad_signature`, `file.sha256_mismatch`. */
  check: string;
  /** The bundle file the problem is in (`records.jsonl`, `manifest.json`, …). */
  file: string;
  /** 1-based line number in `file`, for line-oriented files. */
  line?: number;
  /** Record id, when the problem concerns one record. */
  id?: string;
  agent?: string;
  epoch?: number;
  seq?: number;
  expected?: string | number | null;
  found?: string | number | null;
  message: string;
}

export const DEFAULT_MAX_LISTED_PROBLEMS = 1000;

export class ProblemList {
  readonly #limit: number;
  readonly listed: BundleProblem[] = [];
  count = 0;

  constructor(limit = DEFAULT_MAX_LISTED_PROBLEMS) {
    this.#limit = limit;
  }

  add(problem: BundleProblem): void {
    this.count++;
    if (this.listed.length < this.#limit) this.listed.push(problem);
  }

  get truncated(): boolean {
    return this.count > this.listed.length;
  }
}

function show(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'number') return value.toLocaleString('en-US');
  return value.length > 100 ? `${JSON.stringify(value.slice(0, 97))}…` : JSON.stringify(value);
}

/** One line: `records.jsonl line 17 (record 0192…, AS-KMR-001 epoch 1 seq 17): record.bad_signature: … (expected …, found …)`. */
export function formatProblem(problem: BundleProblem): string {
  let where = problem.file;
  if (problem.line !== undefined) where += ` line ${problem.line.toLocaleString('en-US')}`;
  const about: string[] = [];
  if (problem.id !== undefined) about.push(`record ${problem.id}`);
  if (problem.agent !== undefined) {
    let chain = problem.agent;
    if (problem.epoch !== undefined) chain += ` epoch ${problem.epoch}`;
    if (problem.seq !== undefined) chain += ` seq ${problem.seq}`;
    about.push(chain);
  }
  if (about.length > 0) where += ` (${about.join(', ')})`;
  let text = `${where}: ${problem.check}: ${problem.message}`;
  if (problem.expected !== undefined || problem.found !== undefined) {
    text += ` (expected ${show(problem.expected)}, found ${show(problem.found)})`;
  }
  return text;
}
