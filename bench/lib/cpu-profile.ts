/**
 * Reads the V8 CPU profiles a process wrote with `--cpu-prof` (one file per thread: the main
 * thread and each worker) and says where each thread's time went during a window, by stage.
 *
 * V8 samples the stack at a fixed interval of wall time, so a thread's samples add up to the
 * window: `(idle)` (or piscina's wait loop, for a worker) is time the thread had nothing to
 * do; a thread blocked in a system call (an fsync in COMMIT) or waiting for a core counts as
 * busy in the frame it is in. Each sample goes to the first stage, in the order below, that
 * its stack belongs to: for most stages any frame of the stack counts (the canonicalisation a
 * zod refinement does is canonicalisation), for SQLite only the innermost JavaScript frame (a
 * store method), because the write transaction's wrapper is on the stack of everything the
 * transaction's callback does synchronously.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

type Matcher = (frame: CallFrame) => boolean;

const url = (...parts: string[]): Matcher => (frame) => parts.some((part) => frame.url.includes(part));
const fn = (name: string, ...parts: string[]): Matcher => (frame) => frame.functionName === name && (parts.length === 0 || parts.some((part) => frame.url.includes(part)));

/**
 * Stages in priority order; the first that matches takes the sample. `innermost`: only the
 * innermost frame that has a URL (native frames have none) is looked at; otherwise any frame.
 */
export const STAGES: readonly { stage: string; match: Matcher; innermost?: boolean }[] = [
  { stage: 'idle', match: (frame) => frame.functionName === '(idle)' || fn('atomicsWaitLoop', 'piscina')(frame) },
  { stage: 'garbage collection', match: fn('(garbage collector)') },
  { stage: 'SQLite BEGIN/COMMIT (fsync)', match: fn('exec', 'better-sqlite3') },
  { stage: 'SQLite statements', match: url('better-sqlite3', '/store/sqlite/'), innermost: true },
  { stage: 'canonicalisation (JCS)', match: url('/canonicalize/', 'shared/canonical-json.ts') },
  { stage: 'zod validation', match: url('/zod/') },
  { stage: 'JWT check, receipt signing (jose)', match: url('/jose/', 'services/agent-auth.ts', 'shared/receipt.ts') },
  { stage: 'Merkle hashing', match: url('shared/merkle.ts') },
  { stage: 'checkpoint signing', match: url('shared/signed-note.ts', 'shared/checkpoint.ts') },
  { stage: 'Ed25519 verify', match: url('node:internal/crypto/sig') },
  { stage: 'sha256 (record and leaf hashes)', match: url('node:internal/crypto/hash') },
  { stage: 'body: read, depth check, JSON.parse', match: url('http/json-body.ts', 'shared/json-text.ts', '/body-parser/lib/types/json') },
  { stage: 'gunzip', match: url('node:zlib') },
  { stage: 'worker hand-off (piscina, structured clone)', match: url('/piscina/', 'services/batch-check-pool.ts', 'node:internal/worker') },
  { stage: 'HTTP, express, logging', match: url('node:_http', 'node:net', 'node:stream', 'node:internal/streams', '/express/', '/router/', '/body-parser/', '/raw-body/', '/pino', '/on-finished/') },
  { stage: 'ingest rules (services, resources)', match: url('/collector/') },
  { stage: 'other', match: () => true },
];

export interface ThreadProfile {
  /** `main` or `worker <tid>`. */
  thread: string;
  /** Sampled milliseconds inside the window. */
  windowMs: number;
  /** Milliseconds per stage inside the window, largest first. */
  stages: { stage: string; ms: number }[];
  /** The busiest leaf functions of the `other` stage, to keep the stage list honest. */
  topOther: { frame: string; ms: number }[];
}

function stageOf(stack: readonly CallFrame[]): string {
  const innermost = stack.find((frame) => frame.url !== '') ?? stack[0]!;
  for (const { stage, match, innermost: only } of STAGES) if (only ? match(innermost) : stack.some(match)) return stage;
  return 'other';
}

/** Summarises one profile file within [startMicros, endMicros] of the monotonic clock. */
export function summariseProfile(path: string, thread: string, startMicros: number, endMicros: number): ThreadProfile {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const stageById = new Map<number, string>();
  const stackOf = (id: number): CallFrame[] => {
    const stack: CallFrame[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) stack.push(byId.get(at)!.callFrame);
    return stack;
  };

  const ms = new Map<string, number>();
  const other = new Map<string, number>();
  let windowMs = 0;
  let time = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    time += profile.timeDeltas[i] ?? 0;
    const delta = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    if (time < startMicros || time > endMicros) continue;
    const id = profile.samples[i]!;
    let stage = stageById.get(id);
    if (stage === undefined) {
      stage = stageOf(stackOf(id));
      stageById.set(id, stage);
    }
    ms.set(stage, (ms.get(stage) ?? 0) + delta);
    windowMs += delta;
    if (stage === 'other') {
      const leaf = byId.get(id)!.callFrame;
      const key = `${leaf.functionName || '(anonymous)'} ${leaf.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/(collector|shared|agent)\//, '$1/')}`;
      other.set(key, (other.get(key) ?? 0) + delta);
    }
  }
  const sorted = <K extends string>(map: Map<string, number>, key: K) =>
    [...map].sort((a, b) => b[1] - a[1]).map(([name, value]) => ({ [key]: name, ms: value }) as { [P in K]: string } & { ms: number });
  return { thread, windowMs, stages: sorted(ms, 'stage'), topOther: sorted(other, 'frame').slice(0, 8) };
}

/** Every profile in `dir` (files CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile), main thread first. */
export function summariseProfiles(dir: string, startMicros: number, endMicros: number): ThreadProfile[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.cpuprofile'))
    .map((name) => ({ name, tid: Number(name.split('.')[4]) }))
    .sort((a, b) => a.tid - b.tid)
    .map(({ name, tid }) => summariseProfile(join(dir, name), tid === 0 ? 'main' : `worker ${tid}`, startMicros, endMicros));
}
