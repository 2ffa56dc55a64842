/**
 * System telemetry: on a node-cron schedule, one `kind: telemetry, type: system.health` record
 * with load averages, memory, free disk of the agent directory, uptimes and the outbox backlog.
 * It goes through the same outbox path as any record, so it is signed, chained and synced — and
 * is refused like any telemetry above the buffer's soft cap (counted, summarised later).
 */
import { statfs } from 'node:fs/promises';
import { freemem, loadavg, totalmem, uptime } from 'node:os';
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from '../../shared/logger.ts';
import { BufferCapError, type AppendResult, type RecordSigner, type SqliteOutbox } from '../outbox/sqlite-outbox.ts';
import { logBufferRefusal } from '../outbox/buffer-refusal.ts';

export const SYSTEM_HEALTH_TYPE = 'system.health';

export interface SystemHealth {
  load: { '1m': number; '5m': number; '15m': number };
  memory: { totalBytes: number; freeBytes: number; processRssBytes: number };
  disk: { path: string; freeBytes: number; totalBytes: number } | null;
  uptime: { systemSeconds: number; processSeconds: number };
  backlog: { pending: number; oldestAt: string | null };
}

export async function collectSystemHealth(dir: string, outbox: SqliteOutbox): Promise<SystemHealth> {
  const [one, five, fifteen] = loadavg() as [number, number, number];
  let disk: SystemHealth['disk'] = null;
  try {
    const stats = await statfs(dir);
    disk = { path: dir, freeBytes: stats.bavail * stats.bsize, totalBytes: stats.blocks * stats.bsize };
  } catch {
    disk = null;
  }
  return {
    load: { '1m': round(one), '5m': round(five), '15m': round(fifteen) },
    memory: { totalBytes: totalmem(), freeBytes: freemem(), processRssBytes: process.memoryUsage.rss() },
    disk,
    uptime: { systemSeconds: Math.floor(uptime()), processSeconds: Math.floor(process.uptime()) },
    backlog: outbox.backlog(),
  };
}

/** Writes one system.health record now. */
export async function recordSystemHealth(dir: string, outbox: SqliteOutbox, key: RecordSigner): Promise<AppendResult> {
  const body = await collectSystemHealth(dir, outbox);
  return outbox.append({ kind: 'telemetry', type: SYSTEM_HEALTH_TYPE, body: body as unknown as { [key: string]: unknown } }, key);
}

/** Starts the schedule; stop it with the returned task's `stop()`. */
export function scheduleSystemTelemetry(options: { expression: string; dir: string; outbox: SqliteOutbox; key: RecordSigner; logger: Logger }): ScheduledTask {
  const { expression, dir, outbox, key, logger } = options;
  return cron.schedule(
    expression,
    async () => {
      try {
        const { seq } = await recordSystemHealth(dir, outbox, key);
        logger.debug({ seq }, 'system telemetry recorded');
      } catch (err) {
        if (err instanceof BufferCapError) logBufferRefusal(logger, err);
        else logger.error({ err }, 'system telemetry failed');
      }
    },
    { name: 'system-telemetry', noOverlap: true },
  );
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
