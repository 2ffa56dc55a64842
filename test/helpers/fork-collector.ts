/**
 * Forks a stopped collector's history, as an operator with access to its database and key files
 * could: one past ledger entry is rewritten, the Merkle tree is made consistent with it again,
 * and every checkpoint that includes it is re-signed with the collector's REAL log key. The
 * result is a collector whose ledger, subtrees and signed checkpoints all agree with each other
 * — it serves a rewritten history with valid signatures. Only a witness that remembers an
 * earlier checkpoint can tell.
 *
 * It works on the SQLite file directly (the append-only triggers are dropped for the rewrite and
 * put back afterwards, so the database looks untouched). The collector MUST be stopped.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { signCheckpoint } from '../../shared/checkpoint.ts';
import { readPrivateKeyFile, toBase64Url } from '../../shared/crypto.ts';
import { leafHash, nodeHash, rootFromSubtrees } from '../../shared/merkle.ts';
import { noteSignerFromSigningKey } from '../../shared/signed-note.ts';
import { KEY_FILES, keysDirectory } from '../../collector/keys.ts';
import { DATABASE_FILE_NAME } from '../../collector/store/sqlite/sqlite-store.ts';

export interface ForkOptions {
  /** The ledger entry to rewrite: the record of this agent and seq. */
  agent: string;
  seq: number;
  /** The collector's origin (the checkpoint origin and note key name). */
  origin: string;
  /** Turns the stored canonical record text into the forged one (default: changes its `at`). */
  rewrite?: (canonical: string) => string;
}

export interface ForkResult {
  /** Ledger index of the rewritten entry. */
  index: number;
  /** Ledger size when forked. */
  size: number;
  /** Sizes of the checkpoints re-signed (every stored one that includes the entry). */
  resigned: number[];
  /** Root of the current size before and after. */
  rootBefore: string;
  rootAfter: string;
}

const GUARDED_TABLES = ['records', 'merkle_subtrees', 'checkpoints'];

export function forkCollectorHistory(collectorDir: string, options: ForkOptions): ForkResult {
  const logKey = readPrivateKeyFile(join(keysDirectory(collectorDir), KEY_FILES.log));
  const signer = noteSignerFromSigningKey(options.origin, logKey);
  const db = new Database(join(collectorDir, DATABASE_FILE_NAME));
  try {
    return db.transaction((): ForkResult => {
      const target = db.prepare('SELECT ledger_index, canonical FROM records WHERE agent = ? AND seq = ?').get(options.agent, options.seq) as
        | { ledger_index: number; canonical: string }
        | undefined;
      if (target === undefined) throw new Error(`no ledger entry for ${options.agent} seq ${options.seq}`);
      const index = target.ledger_index;
      const size = db.prepare('SELECT count(*) FROM records').pluck().get() as number;
      const readNode = db.prepare('SELECT hash FROM merkle_subtrees WHERE level = ? AND idx = ?').pluck();
      const read = (level: number, idx: number): Buffer => {
        const hash = readNode.get(level, idx) as Buffer | undefined;
        if (hash === undefined) throw new Error(`merkle subtree (${level}, ${idx}) missing`);
        return hash;
      };
      const rootBefore = toBase64Url(rootFromSubtrees(size, read));

      // The append-only guard is a trigger: whoever owns the file can drop it, and put it back.
      const triggers = db
        .prepare(`SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN (${GUARDED_TABLES.map(() => '?').join(', ')})`)
        .all(...GUARDED_TABLES) as Array<{ name: string; sql: string }>;
      for (const trigger of triggers) db.exec(`DROP TRIGGER "${trigger.name}"`);

      // 1. The entry itself: another text, hence another leaf hash.
      const forged = (options.rewrite ?? ((text: string) => text.replace(/"at":"(\d{4})/, (_m, year: string) => `"at":"${Number(year) - 1}`)))(target.canonical);
      if (forged === target.canonical) throw new Error('the rewrite changed nothing');
      const leaf = leafHash(Buffer.from(forged, 'utf8'));
      db.prepare('UPDATE records SET canonical = ?, leaf_hash = ? WHERE ledger_index = ?').run(forged, leaf, index);

      // 2. Every stored complete subtree above it, level by level, up to the largest one.
      const putNode = db.prepare('UPDATE merkle_subtrees SET hash = ? WHERE level = ? AND idx = ?');
      putNode.run(leaf, 0, index);
      for (let level = 1; ; level++) {
        const idx = Math.floor(index / 2 ** level);
        if (readNode.get(level, idx) === undefined) break; // not complete: computed on demand, not stored
        putNode.run(nodeHash(read(level - 1, 2 * idx), read(level - 1, 2 * idx + 1)), level, idx);
      }

      // 3. Every checkpoint that includes the entry, re-signed with the real log key.
      const sizes = db.prepare('SELECT size FROM checkpoints WHERE size > ? ORDER BY size').pluck().all(index) as number[];
      const putCheckpoint = db.prepare('UPDATE checkpoints SET root = ?, note = ? WHERE size = ?');
      for (const n of sizes) {
        const root = rootFromSubtrees(n, read);
        putCheckpoint.run(root, signCheckpoint({ origin: options.origin, size: n, rootHash: root, extensions: [] }, signer), n);
      }

      for (const trigger of triggers) db.exec(trigger.sql);
      return { index, size, resigned: sizes, rootBefore, rootAfter: toBase64Url(rootFromSubtrees(size, read)) };
    })();
  } finally {
    db.close();
  }
}
