/**
 * Schema migrations, independent of the backend: numbered, forward-only, applied in order, one
 * transaction each. A backend keeps the applied version (SQLite: `PRAGMA user_version`) and asks
 * this module what to run.
 *
 * The schema-version gate: a database whose version is newer than the newest migration this code
 * knows was written by a newer collector. Starting on it could write rows the newer schema
 * forbids, so the collector MUST refuse, naming both versions.
 */

export interface Migration<Db> {
  /** 1, 2, 3 … without gaps; the file is named `NNNN-name.ts` after it. */
  version: number;
  name: string;
  /** Runs inside the migration's transaction; MUST NOT commit or roll back itself. */
  up(db: Db): void;
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
export function latestVersion<Db>(migrations: readonly Migration<Db>[]): number {
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
export function pendingMigrations<Db>(migrations: readonly Migration<Db>[], databaseVersion: number, where: string): Migration<Db>[] {
  assertNotNewer(databaseVersion, latestVersion(migrations), where);
  return migrations.slice(databaseVersion);
}
