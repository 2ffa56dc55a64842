import assert from 'node:assert/strict';
import { ConfigError } from '../../../shared/config.ts';
import { DEFAULT_COLLECTOR_HOST, DEFAULT_COLLECTOR_ORIGIN, loadCollectorConfig } from '../../../collector/config.ts';

describe('collector configuration', () => {
  it('applies the documented defaults when only the data directory is set', () => {
    const config = loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c' });
    assert.equal(config.port, 7400);
    assert.equal(config.host, DEFAULT_COLLECTOR_HOST);
    assert.equal(config.origin, DEFAULT_COLLECTOR_ORIGIN);
    assert.equal(config.logLevel, 'info');
    assert.equal(config.jwtClockToleranceSeconds, 30);
    assert.ok(config.verifyWorkers >= 1);
  });

  it('lists every problem at once, named by environment variable', () => {
    assert.throws(
      () => loadCollectorConfig({ SAKSHYA_COLLECTOR_PORT: '70000', SAKSHYA_LOG_LEVEL: 'loud', SAKSHYA_COLLECTOR_ORIGIN: 'has space' }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        const names = err.problems.map((p) => p.split(':', 1)[0]);
        assert.deepEqual(names.sort(), ['SAKSHYA_COLLECTOR_DIR', 'SAKSHYA_COLLECTOR_ORIGIN', 'SAKSHYA_COLLECTOR_PORT', 'SAKSHYA_LOG_LEVEL']);
        return true;
      },
    );
  });

  it('lets flags override the environment, and accepts port 0 for any free port', () => {
    const config = loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/env', SAKSHYA_COLLECTOR_PORT: '7401' }, { dir: '/flag', port: '0' });
    assert.equal(config.dir, '/flag');
    assert.equal(config.port, 0);
  });
});
