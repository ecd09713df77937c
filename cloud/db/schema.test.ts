import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openTestDatabase, SQL_DATABASES, type SqlDatabaseKind, type TestDatabase } from '../../test/support/test-database.ts';
import { SchemaTooNewError, type Database } from './database.ts';
import { assertSchemaNotNewer, migrateAll, SCHEMA, SCHEMA_TABLES, schemaStatus } from './schema.ts';

/** The tables of a database, but for the migration bookkeeping. */
async function tablesOf(db: Database): Promise<string[]> {
  const rows = await db.sql.query<{ name: string }>(
    db.dialect === 'sqlite'
      ? "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> 'schema_migrations'"
      : "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name <> 'schema_migrations'",
  );
  return rows.map((r) => r.name).sort();
}

async function columnsOf(db: Database, table: string): Promise<string[]> {
  const rows = await db.sql.query<{ name: string }>(
    db.dialect === 'sqlite'
      ? 'SELECT name FROM pragma_table_info(?)'
      : 'SELECT column_name AS name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?',
    [table],
  );
  return rows.map((r) => r.name).sort();
}

describe('the schema registry', () => {
  const opened: TestDatabase[] = [];
  const open = async (kind: SqlDatabaseKind) => {
    const t = await openTestDatabase(kind);
    opened.push(t);
    return t;
  };
  afterEach(async () => {
    for (const t of opened.splice(0)) await t.cleanup();
  });

  it('names each feature once and each table once', () => {
    expect(new Set(SCHEMA.map((f) => f.feature)).size).toBe(SCHEMA.length);
    expect(new Set(SCHEMA_TABLES).size).toBe(SCHEMA_TABLES.length);
  });

  // A store that migrated a feature the registry does not list would be left out of db:migrate's
  // report, of the start-up check and of db:copy.
  it('lists every feature a store migrates, and no other', async () => {
    const cloudDir = path.resolve(import.meta.dirname, '..');
    const migrated = new Set<string>();
    for (const file of fs.readdirSync(cloudDir, { recursive: true }) as string[]) {
      if (!file.endsWith('.ts') || file.endsWith('.test.ts')) continue;
      for (const m of fs.readFileSync(path.join(cloudDir, file), 'utf8').matchAll(/\.migrate\('([^']+)'/g)) migrated.add(m[1]!);
    }
    expect(migrated.size).toBeGreaterThan(5);
    expect([...migrated].filter((f) => !SCHEMA.some((s) => s.feature === f))).toEqual([]);
    expect(SCHEMA.map((f) => f.feature).filter((f) => !migrated.has(f))).toEqual([]);
  });

  // The copy from SQLite to PostgreSQL moves exactly the registry's tables, column by column: a table
  // the registry does not list would be left behind, a column on one side only would stop the copy.
  it('lists exactly the tables the migrations create, with the same columns on SQLite and PostgreSQL', async () => {
    const [lite, pg] = [await open('sqlite'), await open('postgres')];
    await migrateAll(lite.db);
    await migrateAll(pg.db);
    const expected = [...SCHEMA_TABLES].sort();
    expect(await tablesOf(lite.db)).toEqual(expected);
    expect(await tablesOf(pg.db)).toEqual(expected);
    for (const table of SCHEMA_TABLES) {
      expect({ table, columns: await columnsOf(pg.db, table) }).toEqual({ table, columns: await columnsOf(lite.db, table) });
    }
  });

  describe.each(SQL_DATABASES)('on %s', (kind) => {
    it('migrates every feature to the newest version once, and says so', async () => {
      const t = await open(kind);
      const first = await migrateAll(t.db);
      expect(first.map((f) => f.feature)).toEqual(SCHEMA.map((f) => f.feature));
      for (const f of first) expect(f.after).toBe(SCHEMA.find((s) => s.feature === f.feature)!.steps[kind].length);
      const again = await migrateAll(await t.reopen());
      expect(again.every((f) => f.before === f.after)).toBe(true);
      const status = await schemaStatus(t.db);
      expect(status.features.every((f) => f.found === f.known)).toBe(true);
      expect(status.unknown).toEqual([]);
    });

    it('refuses a database a newer release migrated, before creating anything', async () => {
      const t = await open(kind);
      const feature = SCHEMA.find((f) => f.steps[kind].length > 0)!.feature;
      await t.db.sql.exec('CREATE TABLE schema_migrations (feature TEXT PRIMARY KEY, version INTEGER NOT NULL)');
      await t.db.sql.run('INSERT INTO schema_migrations (feature, version) VALUES (?, ?)', [feature, 999]);
      const before = await tablesOf(t.db);
      await expect(assertSchemaNotNewer(t.db)).rejects.toThrow(SchemaTooNewError);
      await expect(migrateAll(t.db)).rejects.toThrow(new RegExp(`the ${feature} schema is at version 999, newer than this software knows`));
      expect(await tablesOf(t.db)).toEqual(before);
    });
  });
});
