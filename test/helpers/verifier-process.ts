/**
 * Runs the real `sakshya-verify` bin as a child process (no SAKSHYA_* environment: it reads
 * none), and copies bundles so each tampering test starts from a fresh one.
 */
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const VERIFY_BIN = fileURLToPath(new URL('../../verifier/bin/sakshya-verify.ts', import.meta.url));

export interface VerifyCliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runVerifyCli(args: readonly string[], options: { timeoutMs?: number } = {}): Promise<VerifyCliResult> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = {};
    for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('SAKSHYA_')) env[name] = value;
    const child = spawn(process.execPath, [VERIFY_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`sakshya-verify ${args.join(' ')} did not finish in ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A fresh copy of `bundleDir` in a new temp directory. */
export function copyBundle(bundleDir: string): string {
  const copy = join(mkdtempSync(join(tmpdir(), 'sakshya-bundle-copy-')), 'bundle');
  cpSync(bundleDir, copy, { recursive: true });
  return copy;
}
