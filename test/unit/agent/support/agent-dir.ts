/** An initialised agent directory without a collector: key, local token and a pinned outbox. */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromBase64Url, generateSigningKey, type SigningKey } from '../../../../shared/crypto.ts';
import { verifierKeyString } from '../../../../shared/signed-note.ts';
import { createAgentKey } from '../../../../agent/keys.ts';
import { createLocalToken } from '../../../../agent/local-api/local-token.ts';
import { outboxPath, SqliteOutbox, type Pins } from '../../../../agent/outbox/sqlite-outbox.ts';

export const TEST_AGENT = 'AS-TST-001';
export const TEST_ORIGIN = 'test.local/collector';

export interface TestAgentDir {
  root: string;
  dir: string;
  key: SigningKey;
  localToken: string;
  /** The key whose public half is pinned as the collector's receipt key. */
  receiptKey: SigningKey;
  pins: Pins;
  open(): SqliteOutbox;
  remove(): void;
}

export function makeTestAgentDir(options: { collector?: string; receiptKey?: SigningKey; agent?: string; origin?: string; logKey?: string } = {}): TestAgentDir {
  const root = mkdtempSync(join(tmpdir(), 'sakshya-agent-test-'));
  const dir = join(root, 'agent');
  mkdirSync(dir, { mode: 0o700 });
  const key = createAgentKey(dir);
  const localToken = createLocalToken(dir);
  const receiptKey = options.receiptKey ?? generateSigningKey().key;
  const pins: Pins = {
    collector: options.collector ?? 'http://127.0.0.1:9',
    origin: options.origin ?? TEST_ORIGIN,
    logKey: options.logKey ?? verifierKeyString(options.origin ?? TEST_ORIGIN, fromBase64Url(generateSigningKey().key.publicJwk.x)),
    receiptKey: receiptKey.publicJwk,
    agent: options.agent ?? TEST_AGENT,
    epoch: 1,
    kid: key.kid,
    enrolledAt: new Date().toISOString(),
  };
  const outbox = SqliteOutbox.open(outboxPath(dir), { create: true });
  outbox.pin(pins);
  outbox.close();
  return {
    root,
    dir,
    key,
    localToken,
    receiptKey,
    pins,
    open: () => SqliteOutbox.open(outboxPath(dir)),
    remove: () => rmSync(root, { recursive: true, force: true }),
  };
}
