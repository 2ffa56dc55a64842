/**
 * A numbered, forward-only outbox migration. `up` runs inside the migrating transaction, which
 * also sets `PRAGMA user_version` to `version`; a migration MUST NOT commit on its own.
 */
import type { Database } from 'better-sqlite3';

export interface OutboxMigration {
  version: number;
  name: string;
  up(db: Database): void;
}
