import assert from 'node:assert/strict';
import { createLogger } from '../../../shared/logger.ts';
import { progressReporter } from '../../../collector/services/report/progress.ts';

describe('report export progress without a terminal', () => {
  it('logs one line per interval with the stage, ledger position, records, rate and ETA', () => {
    const lines: string[] = [];
    const logger = createLogger('collector', 'info', { write: (line: string) => void lines.push(line) });
    let now = 0;
    const progress = progressReporter({ logger, tty: false, now: () => now, intervalMs: 5000 });
    progress.start('records', 1000);
    now = 1000;
    progress.update(100, 50);
    assert.equal(lines.length, 0, 'nothing before the interval has passed');
    now = 5000;
    progress.update(250, 200);
    now = 6000;
    progress.update(300, 240);
    progress.stop();
    assert.equal(lines.length, 1);
    const line = JSON.parse(lines[0]!) as { [key: string]: unknown };
    assert.equal(line.msg, 'report export progress');
    assert.deepEqual(
      { stage: line.stage, ledgerDone: line.ledgerDone, ledgerTotal: line.ledgerTotal, records: line.records, recordsPerSecond: line.recordsPerSecond, etaSeconds: line.etaSeconds },
      { stage: 'records', ledgerDone: 250, ledgerTotal: 1000, records: 200, recordsPerSecond: 40, etaSeconds: 15 },
    );
  });
});
