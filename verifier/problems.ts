/**
 * What `sakshya-verify` found wrong. Every problem names the bundle file, where in it (line
 * number, record id, chain) when that is known, a stable check code, and expected vs found, so
 * an auditor can point at the exact evidence. The list is capped (a bundle whose every record is
 * damaged would otherwise print a million lines and hold them in memory); every problem is
 * counted. Each text field of a listed problem is clipped to `MAX_PROBLEM_TEXT` characters: a
 * record line may be 4 MiB, and a thousand invalid records with 4 MB ids must not become 4 GB
 * of listed problems.
 *
 * Input that cannot be used at all (exit 2, nothing verified) is a BundleInputError carrying one
 * problem, with one of the `INPUT_CHECKS` codes.
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

/** Longest text kept in one field of a listed problem; longer text keeps its start and says how long it was. */
export const MAX_PROBLEM_TEXT = 1000;

function clip<T>(value: T): T {
  if (typeof value !== 'string' || value.length <= MAX_PROBLEM_TEXT) return value;
  return `${value.slice(0, MAX_PROBLEM_TEXT)}… (${value.length.toLocaleString('en-US')} characters in all)` as T;
}

function clipProblem(problem: BundleProblem): BundleProblem {
  const clipped = { ...problem };
  for (const key of Object.keys(clipped) as (keyof BundleProblem)[]) (clipped as { [key: string]: unknown })[key] = clip(clipped[key]);
  return clipped;
}

/**
 * Why an input was refused before anything was verified (exit code 2):
 * - `input.unreadable`: the path does not exist or cannot be read;
 * - `input.not_a_bundle`: neither a directory nor a `.tar.gz`;
 * - `file.not_regular`: a bundle file is a symbolic link, FIFO, device, socket or directory;
 * - `file.too_large`: manifest.json, manifest.jws, keys.json or checkpoint is over its cap;
 * - `archive.refused`: the `.tar.gz` holds something a bundle never holds (a link, a path
 *   outside its folder, a member twice, too many members);
 * - `archive.too_large`: a member, all members, or the unpacked stream is over its cap;
 * - `archive.unreadable`: not a readable `.tar.gz`.
 */
export const INPUT_CHECKS = [
  'input.unreadable',
  'input.not_a_bundle',
  'file.not_regular',
  'file.too_large',
  'archive.refused',
  'archive.too_large',
  'archive.unreadable',
] as const;
export type InputCheck = (typeof INPUT_CHECKS)[number];

/** The input cannot be used at all (exit code 2), as opposed to a bundle that fails its checks. */
export class BundleInputError extends Error {
  override name = 'BundleInputError';
  readonly problem: BundleProblem & { check: InputCheck };

  constructor(check: InputCheck, file: string, message: string) {
    super(message);
    this.problem = clipProblem({ check, file, message }) as BundleProblem & { check: InputCheck };
  }
}

export class ProblemList {
  readonly #limit: number;
  readonly listed: BundleProblem[] = [];
  count = 0;

  constructor(limit = DEFAULT_MAX_LISTED_PROBLEMS) {
    this.#limit = limit;
  }

  add(problem: BundleProblem): void {
    this.count++;
    if (this.listed.length < this.#limit) this.listed.push(clipProblem(problem));
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
