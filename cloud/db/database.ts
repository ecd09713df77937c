import fs from 'node:fs';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { migrateLegacy } from './operational-db.ts';
import { postgresPool, postgresSql } from './postgres-sql.ts';
import type { Dialect, Sql } from './sql.ts';
import { sqliteSql } from './sqlite-sql.ts';

/**
 * The cloud's operational database (issue 14): embedded SQLite (`<DATA_DIR>/cloud.db`, the default)
 * or PostgreSQL (`DATABASE_URL=postgres://…`). Every store opens through this and migrates its own
 * tables with `migrate(feature, steps)`: ordered steps per feature, tracked in `schema_migrations`,
 * one list per database, append-only. We use this small runner rather than a migration library
 * because the same scheme must serve SQLite and PostgreSQL (the well-kept runners, node-pg-migrate
 * among them, are PostgreSQL-only) and existing `cloud.db` files already carry its table.
 */
export interface Database {
  readonly dialect: Dialect;
  readonly sql: Sql;
  /** Where it is, for logs and errors: a file, or the URL without its password. */
  readonly target: string;
  /** Brings the feature's tables to the newest step; throws `SchemaTooNewError` if the database is ahead of this code. */
  migrate(feature: string, steps: FeatureMigrations): Promise<void>;
  close(): Promise<void>;
  /** SQLite only: the better-sqlite3 handle, for tests that write a cloud.db as an older release left it. Stores use `sql`. */
  readonly legacySqlite?: BetterSqlite3.Database;
}

/** A feature's schema steps, one list per database. Append, never edit. */
export interface FeatureMigrations {
  readonly sqlite: readonly string[];
  readonly postgres: readonly string[];
}

export class SchemaTooNewError extends Error {
  constructor(target: string, feature: string, found: number, known: number) {
    super(`database ${target}: the ${feature} schema is at version ${found}, newer than this software knows (${known}); upgrade the software or point it at another database`);
    this.name = 'SchemaTooNewError';
  }
}

export class DatabaseUnreachableError extends Error {
  constructor(target: string, cause: Error, setting: 'DATABASE_URL' | 'DATA_DIR' = 'DATABASE_URL') {
    super(`cannot reach the database ${target} (${setting}): ${cause.message}`, { cause });
    this.name = 'DatabaseUnreachableError';
  }
}

export interface OpenDatabaseOptions {
  /** `postgres://…` or `postgresql://…` selects PostgreSQL; absent, the embedded SQLite. */
  url?: string | null;
  /** SQLite: the folder of `cloud.db`. */
  dataDir: string;
  /** SQLite `synchronous`. */
  synchronous?: 'full' | 'normal';
  /** PostgreSQL: pool size. */
  maxConnections?: number;
}

export async function openDatabase(o: OpenDatabaseOptions): Promise<Database> {
  if (o.url) return openPostgresDatabase(o.url, { max: o.maxConnections });
  return openSqliteDatabase(path.join(o.dataDir, 'cloud.db'), o.synchronous ?? 'full');
}

export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}

/** The URL as it may be logged: no password. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(an unparsable DATABASE_URL)';
  }
}

export function openSqliteDatabase(file: string, synchronous: 'full' | 'normal' = 'full'): Database {
  let db: BetterSqlite3.Database;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    db = new BetterSqlite3(file);
  } catch (err) {
    throw new DatabaseUnreachableError(file, err as Error, 'DATA_DIR');
  }
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
  db.pragma('busy_timeout = 5000');
  db.pragma('foreign_keys = ON');
  migrateLegacy(db);
  const sql = sqliteSql(db);
  return {
    dialect: 'sqlite', sql, target: file, legacySqlite: db,
    migrate: (feature, steps) => runMigrations(sql, file, feature, steps.sqlite),
    close: async () => {
      // Waits for an open transaction to end before closing.
      await sql.transaction(async () => {});
      if (db.open) db.close();
    },
  };
}

export async function openPostgresDatabase(url: string, o: { max?: number; applicationName?: string } = {}): Promise<Database> {
  if (!isPostgresUrl(url)) throw new Error(`DATABASE_URL must start with postgres:// or postgresql:// (got ${redactUrl(url)})`);
  const target = redactUrl(url);
  const pool = postgresPool({ url, max: o.max, applicationName: o.applicationName });
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    await pool.end().catch(() => {});
    throw new DatabaseUnreachableError(target, err as Error);
  }
  const sql = postgresSql(pool);
  let closed: Promise<void> | null = null;
  return {
    dialect: 'postgres', sql, target,
    migrate: (feature, steps) => runMigrations(sql, target, feature, steps.postgres),
    close: () => (closed ??= pool.end()),
  };
}

/** One advisory-lock key for every migration, so cloud processes starting together migrate one at a time. */
const MIGRATION_LOCK = 4_714_014;

async function runMigrations(sql: Sql, target: string, feature: string, steps: readonly string[]): Promise<void> {
  await sql.transaction(async (tx) => {
    if (tx.dialect === 'postgres') await tx.query('SELECT pg_advisory_xact_lock(?)', [MIGRATION_LOCK]);
    await tx.exec(
      tx.dialect === 'sqlite'
        ? 'CREATE TABLE IF NOT EXISTS schema_migrations (feature TEXT PRIMARY KEY, version INTEGER NOT NULL) WITHOUT ROWID'
        : 'CREATE TABLE IF NOT EXISTS schema_migrations (feature TEXT PRIMARY KEY, version INTEGER NOT NULL)',
    );
    const row = await tx.one<{ version: number }>('SELECT version FROM schema_migrations WHERE feature = ?', [feature]);
    const current = row?.version ?? 0;
    if (current > steps.length) throw new SchemaTooNewError(target, feature, current, steps.length);
    for (let v = current; v < steps.length; v++) await tx.exec(steps[v]!);
    if (current < steps.length) {
      await tx.run(
        'INSERT INTO schema_migrations (feature, version) VALUES (?, ?) ON CONFLICT (feature) DO UPDATE SET version = excluded.version',
        [feature, steps.length],
      );
    }
  });
}

/** Versions of every feature in the database (for `db:migrate --status` and tests). */
export async function schemaVersions(db: Database): Promise<Map<string, number>> {
  const rows = await db.sql.query<{ feature: string; version: number }>(
    db.dialect === 'sqlite'
      ? "SELECT feature, version FROM schema_migrations WHERE EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations')"
      : 'SELECT feature, version FROM schema_migrations',
  ).catch(() => []);
  return new Map(rows.map((r) => [r.feature, r.version]));
}
