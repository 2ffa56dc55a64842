/** Every outbox migration, in order. Append only: a released migration never changes. */
import { migration0001 } from './0001-initial.ts';
import { migration0002 } from './0002-witness-checkpoint.ts';
import { migration0003 } from './0003-signing-keys.ts';
import { migration0004 } from './0004-buffer-bytes.ts';
import type { OutboxMigration } from './migration.ts';

export const MIGRATIONS: readonly OutboxMigration[] = [migration0001, migration0002, migration0003, migration0004];

/** The schema version this code writes; a database newer than this is refused. */
export const CURRENT_SCHEMA_VERSION = MIGRATIONS.length;
