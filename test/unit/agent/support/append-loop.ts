/**
 * Child process for the concurrency test: appends `count` records to the outbox in `dir`, one
 * transaction each, as fast as it can. Usage: node append-loop.ts DIR COUNT TAG
 */
import { loadAgentKey } from '../../../../agent/keys.ts';
import { outboxPath, SqliteOutbox } from '../../../../agent/outbox/sqlite-outbox.ts';

const [dir, countText, tag] = process.argv.slice(2) as [string, string, string];
const outbox = SqliteOutbox.open(outboxPath(dir));
const key = loadAgentKey(dir);
for (let i = 0; i < Number(countText); i++) {
  outbox.append({ kind: 'audit', type: 'test.concurrent', body: { tag, i } }, key);
}
outbox.close();
