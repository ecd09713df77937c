import { afterEach, describe, expect, it } from 'vitest';
import { openTestDatabase, type TestDatabase } from '../../test/support/test-database.ts';
import { copySqliteToPostgres } from './copy-sqlite-to-postgres.ts';
import { migrateAll } from './schema.ts';

/**
 * SQLite keeps U+0000 in TEXT, PostgreSQL refuses it (22021): an old dead letter whose detail quoted a
 * payload with a NUL must not abort `npm run db:copy` (issue 14). It arrives with U+FFFD instead,
 * counted per table and column, and the row counts are still verified.
 */
describe('copying TEXT values that hold U+0000', () => {
  const opened: TestDatabase[] = [];
  afterEach(async () => {
    for (const t of opened.splice(0)) await t.cleanup();
  });
  const open = async (kind: 'sqlite' | 'postgres') => {
    const t = await openTestDatabase(kind);
    opened.push(t);
    return t;
  };

  it('replaces U+0000 by U+FFFD, reports how many values per column, and copies every row', async () => {
    const src = await open('sqlite');
    await migrateAll(src.db);
    const q = src.db.sql;
    const insert = "INSERT INTO dead_letters (received_at, region, hub, client_id, topic, reason, detail, size, truncated, payload) VALUES (?, NULL, 'hub-1', ?, 't', 'malformed_json', ?, 7, 0, ?)";
    await q.run(insert, [1, 'c\u0000', 'not JSON: Unexpected token \'\u0000\', "{"a":\u0000}" is not valid JSON', Buffer.from('{"a":\u0000}')]);
    await q.run(insert, [2, 'c', 'plain\u0000', Buffer.from([0])]);
    await q.run(insert, [3, 'c', 'no nul here', Buffer.from([1])]);
    const dst = await open('postgres');
    const lines: string[] = [];

    const copied = await copySqliteToPostgres({ from: src.where, to: dst.where, log: (l) => lines.push(l) });

    const letters = copied.find((c) => c.table === 'dead_letters')!;
    expect(letters).toMatchObject({ rows: 3, nulReplaced: { detail: 2, client_id: 1 } });
    expect(copied.filter((c) => c.table !== 'dead_letters').every((c) => Object.keys(c.nulReplaced).length === 0)).toBe(true);
    expect(lines.find((l) => l.trimStart().startsWith('dead_letters '))).toMatch(/3 rows; U\+0000 replaced by U\+FFFD in client_id: 1, detail: 2 values/);
    expect(lines.at(-1)).toMatch(/verified and committed/);
    const rows = await dst.db.sql.query<{ detail: string; client_id: string; payload: Buffer }>('SELECT detail, client_id, payload FROM dead_letters ORDER BY id');
    expect(rows.map((r) => r.detail)).toEqual(['not JSON: Unexpected token \'\uFFFD\', "{"a":\uFFFD}" is not valid JSON', 'plain\uFFFD', 'no nul here']);
    expect(rows[0]!.client_id).toBe('c\uFFFD');
    expect(rows[0]!.payload).toEqual(Buffer.from('{"a":\u0000}')); // bytes stay bytes
  });
});
