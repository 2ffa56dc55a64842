/**
 * This machine's Ed25519 verify rate, per core and on all cores, measured in the same run as the
 * system under test so that benchmark ratios compare like with like. Each worker verifies the
 * signature of a record-sized message in a loop for a fixed time.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { generateKeyPairSync, sign, verify } = require('node:crypto');
const { publicKey, privateKey } = generateKeyPairSync('ed25519');
const message = Buffer.alloc(400, 7);
const signature = sign(null, message, privateKey);
const deadline = Date.now() + workerData.millis;
let count = 0;
while (Date.now() < deadline) {
  for (let i = 0; i < 200; i++) if (verify(null, message, publicKey, signature)) count++;
}
parentPort.postMessage(count);
`;

async function runWorkers(threads: number, millis: number): Promise<number> {
  const counts = await Promise.all(
    Array.from({ length: threads }, () =>
      new Promise<number>((resolve, reject) => {
        const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { millis } });
        worker.once('message', (n: number) => resolve(n));
        worker.once('error', reject);
      }),
    ),
  );
  return counts.reduce((a, b) => a + b, 0) / (millis / 1000);
}

export interface VerifyRate {
  cores: number;
  perCore: number;
  allCores: number;
}

export async function measureEd25519VerifyRate(millis = 2000): Promise<VerifyRate> {
  const cores = availableParallelism();
  const perCore = await runWorkers(1, millis);
  const allCores = await runWorkers(cores, millis);
  return { cores, perCore, allCores };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rate = await measureEd25519VerifyRate();
  console.log(JSON.stringify(rate));
}
