/**
 * Mocha root hook plugin (registered in .mocharc.json `require`): after the whole run, writes
 * docs/reliability-results.json and docs/reliability.md from the fault scenarios that ran. A run
 * without fault scenarios writes nothing.
 */
import { writeReliabilityDocs } from './reliability.ts';

export const mochaHooks = {
  afterAll(): void {
    writeReliabilityDocs();
  },
};
