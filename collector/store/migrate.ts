/**
 * Schema migrations, independent of the backend: numbered, forward-only, applied in order, one
 * transaction each. A backend keeps the applied version (SQLite: `PRAGMA user_version`) and asks
 * this module what to run.
 *
 * The schema-version gate: a database whose version is newer than the newest migration this code
 * knows was written by a newer collector. Starting on it could write rows the newer schema
 * forbids, so the collector MUST refuse, naming both versions.
 */

/**
 * What a migration runs its SQL on: the backend's connection inside the migration's own
 * transaction. Each backend has its own migration list (its SQL dialect); the runner and the
 * version bookkeeping are the contract.
 */
export interface MigrationRunner {
  /** Runs one or more statements; MUST NOT commit or roll back. */
  exec(sql: string): Promise<void>;
}

export interface Migration {
  /** 1, 2, 3 … without gaps; the file is named `NNNN-name.ts` after it. */
  version: number;
  name: string;
  /** Runs inside the migration's transaction; MUST NOT commit or roll back itself. */
  up(db: MigrationRunner): Promise<void>;
}

/** A backend's side of migrating: its schema version, and one transaction per migration. */
export interface MigrationTarget {
  /** Where the database is, for messages (a path or a URL without its password). */
  readonly where: string;
  /**
   * Runs `step` in ONE write transaction that excludes other migrators (the backend's write
   * lock), committing if it resolves and rolling back if it rejects. `step` gets the runner and
   * the schema version read inside that transaction, and may set a new one.
   */
  transaction<T>(step: (db: MigrationRunner, version: { read(): Promise<number>; write(version: number): Promise<void> }) => Promise<T>): Promise<T>;
}

/**
 * Applies every pending migration of `migrations` to `target`, one transaction each (a crash
 * leaves the database at the previous version, and the next run applies it again). The version
 * is re-read under the lock before each step: another process may have migrated meanwhile.
 */
export async function runMigrations(target: MigrationTarget, migrations: readonly Migration[]): Promise<MigrationReport> {
  let from: number | undefined;
  const applied: string[] = [];
  for (;;) {
    const done = await target.transaction(async (db, version) => {
      const current = await version.read();
      from ??= current;
      const [next] = pendingMigrations(migrations, current, target.where);
      if (!next) return { to: current };
      await next.up(db);
      await version.write(next.version);
      applied.push(next.name);
      return undefined;
    });
    if (done) return { from: from ?? done.to, to: done.to, applied };
  }
}

export interface MigrationReport {
  from: number;
  to: number;
  applied: string[];
}

export class SchemaVersionError extends Error {
  override name = 'SchemaVersionError';
  readonly databaseVersion: number;
  readonly codeVersion: number;
  constructor(message: string, databaseVersion: number, codeVersion: number) {
    super(message);
    this.databaseVersion = databaseVersion;
    this.codeVersion = codeVersion;
  }
}

/** Throws unless `migrations` are numbered 1…n in order (a packaging mistake, caught at start). */
export function latestVersion(migrations: readonly Migration[]): number {
  migrations.forEach((migration, i) => {
    if (migration.version !== i + 1) {
      throw new Error(`migration list is broken: position ${i + 1} holds version ${migration.version} (${migration.name})`);
    }
  });
  return migrations.length;
}

/** The gate against a database newer than the code. */
export function assertNotNewer(databaseVersion: number, codeVersion: number, where: string): void {
  if (databaseVersion > codeVersion) {
    throw new SchemaVersionError(
      `database ${where} has schema version ${databaseVersion}, newer than the newest this collector knows (${codeVersion}); ` +
        'run a collector release that knows it, or restore a backup made by this release',
      databaseVersion,
      codeVersion,
    );
  }
}

/** For commands that only read: the schema must be exactly current. */
export function assertCurrent(databaseVersion: number, codeVersion: number, where: string): void {
  assertNotNewer(databaseVersion, codeVersion, where);
  if (databaseVersion < codeVersion) {
    throw new SchemaVersionError(
      `database ${where} has schema version ${databaseVersion}, older than this collector's (${codeVersion}); run \`sakshya-collector migrate\``,
      databaseVersion,
      codeVersion,
    );
  }
}

/** Migrations still to apply to a database at `databaseVersion`, in order. */
export function pendingMigrations(migrations: readonly Migration[], databaseVersion: number, where: string): Migration[] {
  assertNotNewer(databaseVersion, latestVersion(migrations), where);
  return migrations.slice(databaseVersion);
}
