import { afterEach, describe, expect, it } from 'vitest';
import { openTestDatabase, SQL_DATABASES, type TestDatabase } from '../../test/support/test-database.ts';
import { SchemaTooNewError } from './database.ts';
import { isUniqueViolation } from './sql.ts';

const STEPS = {
  sqlite: ['CREATE TABLE things (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, at INTEGER NOT NULL, body BLOB)'],
  postgres: ['CREATE TABLE things (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name TEXT NOT NULL UNIQUE, at BIGINT NOT NULL, body BYTEA)'],
};

describe.each(SQL_DATABASES)('the SQL interface on %s', (kind) => {
  let t: TestDatabase;
  afterEach(async () => t?.cleanup());

  it('runs queries with ? placeholders, returns BIGINTs as numbers and Buffers as Buffers', async () => {
    t = await openTestDatabase(kind);
    await t.db.migrate('things', STEPS);
    const at = Date.UTC(2026, 11, 4);
    const [row] = await t.db.sql.query<{ id: number }>('INSERT INTO things (name, at, body) VALUES (?, ?, ?) RETURNING id', ['a?b', at, Buffer.from([1, 2])]);
    expect(row!.id).toBe(1);
    const got = await t.db.sql.one<{ name: string; at: number; body: Buffer; n: number }>("SELECT name, at, body, (SELECT count(*) FROM things WHERE name <> '?') AS n FROM things WHERE id = ?", [1]);
    expect(got).toEqual({ name: 'a?b', at, body: Buffer.from([1, 2]), n: 1 });
    expect(await t.db.sql.run('UPDATE things SET at = ? WHERE name = ?', [at + 1, 'nobody'])).toBe(0);
    const err = await t.db.sql.run('INSERT INTO things (name, at) VALUES (?, ?)', ['a?b', 1]).catch((e: unknown) => e);
    expect(isUniqueViolation(err)).toBe(true);
  });

  it('a transaction commits together or not at all, and others do not see into it', async () => {
    t = await openTestDatabase(kind);
    await t.db.migrate('things', STEPS);
    await expect(t.db.sql.transaction(async (tx) => {
      await tx.run('INSERT INTO things (name, at) VALUES (?, ?)', ['one', 1]);
      throw new Error('boom');
    })).rejects.toThrow('boom');
    expect(await t.db.sql.query('SELECT * FROM things')).toEqual([]);
    let inside!: () => void;
    const gate = new Promise<void>((r) => (inside = r));
    const tx = t.db.sql.transaction(async (q) => {
      await q.run('INSERT INTO things (name, at) VALUES (?, ?)', ['two', 2]);
      await gate;
      await q.transaction(async (nested) => nested.run('INSERT INTO things (name, at) VALUES (?, ?)', ['three', 3]));
    });
    const outside = t.db.sql.query<{ name: string }>('SELECT name FROM things ORDER BY name');
    inside();
    await tx;
    // SQLite: the outside read waited for the transaction; PostgreSQL: it saw nothing uncommitted.
    const seen = (await outside).map((r) => r.name);
    expect(seen.length === 0 || seen.join() === 'three,two').toBe(true);
    expect((await t.db.sql.query<{ name: string }>('SELECT name FROM things ORDER BY name')).map((r) => r.name)).toEqual(['three', 'two']);
  });

  it('migrates once, survives a reopen, and refuses a schema newer than the code', async () => {
    t = await openTestDatabase(kind);
    await t.db.migrate('things', STEPS);
    await t.db.sql.run('INSERT INTO things (name, at) VALUES (?, ?)', ['kept', 1]);
    const again = await t.reopen();
    await again.migrate('things', STEPS);
    expect(await again.sql.query('SELECT name FROM things')).toEqual([{ name: 'kept' }]);
    await expect(again.migrate('things', { sqlite: [], postgres: [] })).rejects.toThrow(SchemaTooNewError);
    await expect(again.migrate('things', { sqlite: [], postgres: [] })).rejects.toThrow(/newer than this software/);
  });
});
