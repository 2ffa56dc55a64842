/**
 * Runs a command to completion as a child process while sampling its peak RSS (VmHWM from
 * /proc, see proc-memory.ts): for benchmarks of CLIs whose memory is part of the result.
 */
import { spawn } from 'node:child_process';
import type { Cleanup } from './cleanup.ts';
import { PeakRssSampler } from './proc-memory.ts';
import { nowMs } from './stats.ts';

export interface SampledRun {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
  /** Highest VmHWM seen (bytes); undefined where /proc is absent. */
  peakRssBytes: number | undefined;
}

export function runSampled(command: string, args: readonly string[], env: NodeJS.ProcessEnv, cleanup: Cleanup, timeoutMs: number): Promise<SampledRun> {
  return new Promise((resolve, reject) => {
    const started = nowMs();
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    cleanup.defer(`stop ${args[0] ?? command}`, () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const sampler = new PeakRssSampler(child.pid!, 20);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < 100_000) stderr += chunk;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not finish in ${timeoutMs / 1000} s\n${stderr.slice(-2000)}`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      sampler.stop();
      reject(err);
    });
    // The last samples come from the 'exit' of a process that is already gone: VmHWM is
    // monotonic, so the final value read while it lived is at most 20 ms of growth short.
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, seconds: (nowMs() - started) / 1000, peakRssBytes: sampler.stop() });
    });
  });
}
