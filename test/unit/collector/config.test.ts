import assert from 'node:assert/strict';
import { ConfigError } from '../../../shared/config.ts';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEFAULT_COLLECTOR_HOST,
  DEFAULT_COLLECTOR_ORIGIN,
  DEFAULT_INGEST_QUEUE_PER_WORKER,
  DEFAULT_WRITE_QUEUE_PER_WORKER,
  databaseConnection,
  describeConfig,
  loadCollectorConfig,
} from '../../../collector/config.ts';

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

  it('opens the database named by SAKSHYA_COLLECTOR_DATABASE, by default sqlite:<dir>/collector.db, and refuses a URL this release cannot use', () => {
    assert.equal(loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c' }).database, 'sqlite:/srv/c/collector.db');
    assert.equal(loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c' }, { dir: '/srv/d' }).database, 'sqlite:/srv/d/collector.db', 'the default follows --dir');
    assert.equal(loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c', SAKSHYA_COLLECTOR_DATABASE: 'sqlite:/data/ledger.db' }).database, 'sqlite:/data/ledger.db');
    for (const url of ['postgres://sakshya@db.example:5432/sakshya', 'postgresql://sakshya@db.example/sakshya?sslmode=verify-full&sslrootcert=/etc/ca.pem']) {
      assert.equal(loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c', SAKSHYA_COLLECTOR_DATABASE: url }).database, url);
    }
    for (const [url, why] of [
      ['postgres://sakshya:secret@db.example:5432/', /SAKSHYA_COLLECTOR_DATABASE: postgres:\/\/ needs a database name/],
      ['postgres://sakshya:secret@:5432/sakshya', /SAKSHYA_COLLECTOR_DATABASE: (postgres:\/\/ needs a host|is not a valid URL)/],
      ['mysql://db/x', /SAKSHYA_COLLECTOR_DATABASE: must be sqlite:<path> or postgres:\/\//],
      ['sqlite:', /SAKSHYA_COLLECTOR_DATABASE: sqlite: needs a file path/],
    ] as const) {
      assert.throws(
        () => loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c', SAKSHYA_COLLECTOR_DATABASE: url }),
        (err: unknown) => err instanceof ConfigError && why.test(err.message) && !err.message.includes('secret'),
        url,
      );
    }
  });

  it('takes a PostgreSQL password from a file and a pool size, and never logs a password', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sakshya-config-'));
    writeFileSync(join(dir, 'db-password'), 'pa:ss@w%rd\n');
    const url = 'postgres://sakshya@db.example:5432/sakshya';
    const config = loadCollectorConfig({
      SAKSHYA_COLLECTOR_DIR: '/srv/c',
      SAKSHYA_COLLECTOR_DATABASE: url,
      SAKSHYA_COLLECTOR_DATABASE_PASSWORD_FILE: join(dir, 'db-password'),
      SAKSHYA_COLLECTOR_DATABASE_POOL: '25',
    });
    assert.deepEqual(databaseConnection(config), { url, password: 'pa:ss@w%rd', poolSize: 25 });
    assert.equal(loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c', SAKSHYA_COLLECTOR_DATABASE: url }).databasePool, 10);
    assert.doesNotMatch(JSON.stringify(describeConfig(config)), /pa:ss/);
    const inUrl = loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c', SAKSHYA_COLLECTOR_DATABASE: 'postgres://sakshya:s3cret@db.example/sakshya?password=s3cret' });
    const described = JSON.stringify(describeConfig(inUrl));
    assert.doesNotMatch(described, /s3cret/);
    assert.match(described, /postgres:\/\/sakshya:\*\*\*@db\.example\/sakshya/);
    for (const [env, why] of [
      [{ SAKSHYA_COLLECTOR_DATABASE_PASSWORD_FILE: join(dir, 'db-password') }, /SAKSHYA_COLLECTOR_DATABASE_PASSWORD: is for a postgres:\/\/ database/],
      [
        { SAKSHYA_COLLECTOR_DATABASE: 'postgres://sakshya:other@db.example/sakshya', SAKSHYA_COLLECTOR_DATABASE_PASSWORD_FILE: join(dir, 'db-password') },
        /SAKSHYA_COLLECTOR_DATABASE_PASSWORD: is set, and SAKSHYA_COLLECTOR_DATABASE carries a password too/,
      ],
      [{ SAKSHYA_COLLECTOR_DATABASE: url, SAKSHYA_COLLECTOR_DATABASE_PASSWORD_FILE: join(dir, 'absent') }, /SAKSHYA_COLLECTOR_DATABASE_PASSWORD_FILE: cannot read/],
      [{ SAKSHYA_COLLECTOR_DATABASE: url, SAKSHYA_COLLECTOR_DATABASE_POOL: '0' }, /SAKSHYA_COLLECTOR_DATABASE_POOL/],
    ] as const) {
      assert.throws(
        () => loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c', ...env }),
        (err: unknown) => err instanceof ConfigError && why.test(err.message) && !err.message.includes('pa:ss') && !err.message.includes('other'),
        JSON.stringify(env),
      );
    }
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

  it('applies the documented rate-limit defaults and takes fractional rates', () => {
    const config = loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c', SAKSHYA_RATE_AGENT_PER_SECOND: '0.5' });
    assert.deepEqual(
      [config.rateIpPerSecond, config.rateIpBurst, config.rateAgentPerSecond, config.rateAgentBurst, config.rateEnrollPerMinute, config.rateEnrollBurst],
      [200, 1000, 0.5, 200, 10, 10],
    );
    assert.throws(() => loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c', SAKSHYA_RATE_IP_PER_SECOND: '0' }), /SAKSHYA_RATE_IP_PER_SECOND/);
  });

  it('takes TLS settings from *_FILE paths, both or neither, and never logs them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sakshya-config-'));
    writeFileSync(join(dir, 'cert.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    writeFileSync(join(dir, 'key.pem'), '-----BEGIN PRIVATE KEY-----\nSECRETKEY\n-----END PRIVATE KEY-----\n');
    const both = loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c', SAKSHYA_COLLECTOR_TLS_CERT_FILE: join(dir, 'cert.pem'), SAKSHYA_COLLECTOR_TLS_KEY_FILE: join(dir, 'key.pem') });
    assert.match(both.tlsKey ?? '', /SECRETKEY/);
    const described = JSON.stringify(describeConfig(both));
    assert.ok(!described.includes('SECRETKEY') && described.includes('"tls":true'));
    assert.throws(() => loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c', SAKSHYA_COLLECTOR_TLS_CERT_FILE: join(dir, 'cert.pem') }), /both/);
    assert.throws(() => loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c', SAKSHYA_COLLECTOR_TLS_KEY_FILE: join(dir, 'cert.pem'), SAKSHYA_COLLECTOR_TLS_CERT_FILE: join(dir, 'cert.pem') }), /SAKSHYA_COLLECTOR_TLS_KEY/);
  });

  it('lets flags override the environment, and accepts port 0 for any free port', () => {
    const config = loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/env', SAKSHYA_COLLECTOR_PORT: '7401' }, { dir: '/flag', port: '0' });
    assert.equal(config.dir, '/flag');
    assert.equal(config.port, 0);
  });

  it('keeps report bundles 7 days and 1 GiB of disk free by default, and reads both from the environment', () => {
    const defaults = loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c' });
    assert.deepEqual([defaults.reportRetentionMs, defaults.reportMinFreeBytes], [7 * 86_400_000, 1024 ** 3]);
    const set = loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c', SAKSHYA_REPORT_RETENTION: '36h', SAKSHYA_REPORT_MIN_FREE_BYTES: '0' });
    assert.deepEqual([set.reportRetentionMs, set.reportMinFreeBytes], [36 * 3_600_000, 0]);
    for (const [name, bad] of [['SAKSHYA_REPORT_RETENTION', '7'], ['SAKSHYA_REPORT_RETENTION', '30s'], ['SAKSHYA_REPORT_MIN_FREE_BYTES', '1GiB'], ['SAKSHYA_REPORT_MIN_FREE_BYTES', '-1']] as const) {
      assert.throws(
        () => loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c', [name]: bad }),
        (err: unknown) => err instanceof ConfigError && err.problems.some((p) => p.startsWith(`${name}:`)),
        `${name}=${bad}`,
      );
    }
  });

  it('reads the clock-skew tolerance as a duration (default 5 minutes) and refuses anything else', () => {
    assert.equal(loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c' }).clockSkewToleranceMs, 5 * 60_000);
    assert.equal(loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c', SAKSHYA_CLOCK_SKEW_TOLERANCE: '90s' }).clockSkewToleranceMs, 90_000);
    assert.equal(loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c', SAKSHYA_CLOCK_SKEW_TOLERANCE: '2h' }).clockSkewToleranceMs, 2 * 3_600_000);
    for (const bad of ['5', '1.5h', '2h30m', '0s', '31d']) {
      assert.throws(
        () => loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c', SAKSHYA_CLOCK_SKEW_TOLERANCE: bad }),
        (err: unknown) => err instanceof ConfigError && err.problems.some((p) => p.startsWith('SAKSHYA_CLOCK_SKEW_TOLERANCE:')),
        bad,
      );
    }
  });

  it('bounds the ingest queues per verify worker by default, takes explicit bounds (0 allowed) and refuses anything else', () => {
    const byDefault = loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c', SAKSHYA_VERIFY_WORKERS: '3' });
    assert.deepEqual([byDefault.ingestQueue, byDefault.writeQueue], [3 * DEFAULT_INGEST_QUEUE_PER_WORKER, 3 * DEFAULT_WRITE_QUEUE_PER_WORKER]);
    const flags = loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c' }, { verifyWorkers: '5' });
    assert.equal(flags.ingestQueue, 5 * DEFAULT_INGEST_QUEUE_PER_WORKER, 'the default follows the worker count however it was set');
    const explicit = loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c', SAKSHYA_COLLECTOR_INGEST_QUEUE: '0', SAKSHYA_COLLECTOR_WRITE_QUEUE: '7' });
    assert.deepEqual([explicit.ingestQueue, explicit.writeQueue], [0, 7]);
    assert.deepEqual([describeConfig(explicit).ingestQueue, describeConfig(explicit).writeQueue], [0, 7], 'the effective bounds are logged at start');
    assert.throws(
      () => loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c', SAKSHYA_COLLECTOR_INGEST_QUEUE: '-1', SAKSHYA_COLLECTOR_WRITE_QUEUE: '1e9' }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.deepEqual(err.problems.map((p) => p.split(':', 1)[0]).sort(), ['SAKSHYA_COLLECTOR_INGEST_QUEUE', 'SAKSHYA_COLLECTOR_WRITE_QUEUE']);
        return true;
      },
    );
    assert.throws(() => loadCollectorConfig({ SAKSHYA_COLLECTOR_DIR: '/srv/c', SAKSHYA_COLLECTOR_WRITE_QUEUE: '5000' }), /SAKSHYA_COLLECTOR_WRITE_QUEUE/);
  });
});
