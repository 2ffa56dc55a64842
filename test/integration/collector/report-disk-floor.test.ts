/**
 * The disk floor while an export writes (services/report/disk-floor.ts): the check before an
 * export starts is in security-report-export.test.ts; here the disk fills up under a running one.
 * The free space is the one thing faked (a disk cannot be filled on demand); the store, the files
 * and the exporter are real.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { ProblemError } from '../../../shared/problem.ts';
import { DiskFloor, formatBytes } from '../../../collector/services/report/disk-floor.ts';
import { exportReport } from '../../../collector/services/report/export-report.ts';
import { makeTempDir, startCollectorInProcess, type InProcessCollector } from '../../helpers/collector-process.ts';
import { enrolledAgent } from './security-support.ts';

describe('report export disk floor', function () {
  this.timeout(60_000);
  let collector: InProcessCollector;

  before(async () => {
    collector = await startCollectorInProcess();
    const agent = await enrolledAgent(collector, 'AS-FULL');
    await agent.sendOk(agent.batch(Array.from({ length: 3 }, (_, i) => agent.next({ n: i }, 'audit', 'certificate.issued', `2026-11-22T0${i}:00:00.000Z`))));
  });
  after(async () => {
    await collector?.stop();
  });

  it('an export that brings the disk down to the floor while it writes stops with 507 report.storage_full instead of filling it', async () => {
    let checks = 0;
    // Room when the export starts; none once it has written its first files.
    const floor = new DiskFloor(1024 ** 3, async () => (++checks === 1 ? 2 * 1024 ** 3 : 1024 ** 2));
    const dir = makeTempDir();
    const { keys, publicKeys, store } = collector.container;
    await assert.rejects(
      exportReport(
        { store, origin: collector.origin, reportKey: keys.receipt, publicKeys },
        {
          filter: { from: '2026-11-22T00:00:00.000Z', to: '2026-11-23T00:00:00.000Z', agent: null, kind: null, type: null },
          checkpointSize: (await store.latestCheckpoint())!.size,
          dir,
          diskFloor: { floor, label: 'the test disk' },
        },
      ),
      (err: unknown) => {
        assert.ok(err instanceof ProblemError);
        assert.equal(err.code, 'report.storage_full');
        assert.equal(err.status, 507);
        assert.match(err.message, /^1\.0 MiB free on the disk of the test disk, below the floor of 1\.0 GiB/);
        assert.deepEqual(err.extras, { freeBytes: 1024 ** 2, minFreeBytes: 1024 ** 3 });
        return true;
      },
    );
    assert.ok(checks >= 2);
    assert.ok(!readdirSync(dir).includes('manifest.json'), 'no complete-looking bundle');
    assert.ok(!readdirSync(dir).includes('.records.csv.spool'), 'the spool is removed');
  });

  it('lets an operator turn the floor off with 0, and names sizes in binary units', async () => {
    await new DiskFloor(0, async () => 0).check('/', 'anywhere');
    await assert.rejects(new DiskFloor(1, async () => 0).check('/', 'anywhere'), /report|free/);
    assert.deepEqual([0, 1023, 1024, 1536, 1024 ** 3].map(formatBytes), ['0 B', '1023 B', '1.0 KiB', '1.5 KiB', '1.0 GiB']);
  });
});
