/**
 * What a benchmark leaves behind, undone in reverse order: child processes stopped, temp
 * directories removed. `run.ts` also runs it on SIGINT/SIGTERM and on failure, so an
 * interrupted `npm run bench` leaves neither processes nor files.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

type Undo = () => void | Promise<void>;

export class Cleanup {
  readonly #undo: { label: string; fn: Undo }[] = [];

  /** Registers `fn` to run at `close()`, before everything registered earlier. */
  defer(label: string, fn: Undo): void {
    this.#undo.push({ label, fn });
  }

  /** A fresh directory under the system temp dir, removed at `close()`. */
  tempDir(prefix: string): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.defer(`remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  /** Runs every registered step, newest first; a failing step is reported, the rest still run. */
  async close(): Promise<void> {
    for (let step = this.#undo.pop(); step; step = this.#undo.pop()) {
      try {
        await step.fn();
      } catch (err) {
        process.stderr.write(`bench: cleanup step "${step.label}" failed: ${(err as Error).message}\n`);
      }
    }
  }
}
