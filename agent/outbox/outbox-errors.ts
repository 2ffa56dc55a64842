/**
 * What the outbox throws. Every error is an OutboxError; each subclass says what the caller can
 * do about it (bin/ turns them into exit codes, the local API into problem+json answers).
 */
import type { BufferCap, CapLevel } from './buffer-cap.ts';

export class OutboxError extends Error {
  override name = 'OutboxError';
}

/** The database was written by a newer agent, or is not an outbox at all. */
export class OutboxSchemaError extends OutboxError {
  override name = 'OutboxSchemaError';
}

/**
 * The outbox file failed SQLite's integrity check (or is not a database at all). The agent
 * MUST NOT use it, repair it or recreate it: the operator follows the recovery path in
 * docs/operations.md. Nothing was written to the file.
 */
export class OutboxCorruptError extends OutboxError {
  override name = 'OutboxCorruptError';
  readonly problems: string[];
  constructor(path: string, check: string, problems: string[]) {
    super(
      `the outbox ${path} is corrupt (${check}: ${problems.slice(0, 3).join('; ')}${problems.length > 3 ? '; …' : ''}). ` +
        'The agent refuses to use it and has not changed it. Recovery (docs/operations.md, "A corrupted outbox"): stop the agent; ' +
        'keep the file with its -wal and -shm files for forensics; run `sakshya-agent verify` to see what can still be read; ' +
        'then move the agent directory aside and `sakshya-agent init` it again with a new enrollment token (a new epoch) — ' +
        'the collector already holds every record it acknowledged.',
    );
    this.problems = problems;
  }
}

/** The agent directory has not been initialised (no pins). */
export class OutboxNotInitialisedError extends OutboxError {
  override name = 'OutboxNotInitialisedError';
}

/** A record that cannot be stored: bad kind, type, at or body. Nothing was stored. */
export class RecordRejectedError extends OutboxError {
  override name = 'RecordRejectedError';
}

/**
 * A cap refused the record (buffer-cap.ts). Nothing was stored; the refusal was counted and
 * committed. `level` 'soft' → 507 `buffer.telemetry_refused`, 'hard' → 507 `buffer.full`.
 */
export class BufferCapError extends OutboxError {
  override name = 'BufferCapError';
  readonly level: CapLevel;
  readonly kind: string;
  readonly type: string;
  readonly pendingBytes: number;
  readonly cap: BufferCap;
  /** True for the first refusal at this level since the last summary: the moment to warn. */
  readonly capJustReached: boolean;
  constructor(refusal: { level: CapLevel; kind: string; type: string; pendingBytes: number; cap: BufferCap; capJustReached: boolean }) {
    const limit = refusal.level === 'soft' ? `soft cap of ${refusal.cap.softBytes}` : `hard cap of ${refusal.cap.hardBytes}`;
    super(
      `the agent's buffer holds ${refusal.pendingBytes} bytes of records the collector has not acknowledged yet, at its ${limit} bytes: ` +
        `the ${refusal.kind} record (type ${refusal.type}) was NOT stored; it was counted and will be reported in a signed telemetry.dropped record`,
    );
    this.level = refusal.level;
    this.kind = refusal.kind;
    this.type = refusal.type;
    this.pendingBytes = refusal.pendingBytes;
    this.cap = refusal.cap;
    this.capJustReached = refusal.capJustReached;
  }
}
