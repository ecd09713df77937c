import { afterEach, describe, expect, it } from 'vitest';
import { openTestDatabase, type TestDatabase } from '../../test/support/test-database.ts';
import { copySqliteToPostgres, CopyRefusedError } from './copy-sqlite-to-postgres.ts';
import type { Database } from './database.ts';
import { migrateAll, SCHEMA_TABLES } from './schema.ts';

/**
 * The copy on hand-made rows of a few tables (the system test test/db-copy.test.ts copies a real
 * cloud's state). Rows are written with SQL here so the test sees what a copy must keep: ids,
 * BLOBs, NULLs, foreign keys, SQLite's AUTOINCREMENT high-water mark.
 */
describe('copying cloud.db into PostgreSQL', () => {
  const opened: TestDatabase[] = [];
  afterEach(async () => {
    for (const t of opened.splice(0)) await t.cleanup();
  });
  const open = async (kind: 'sqlite' | 'postgres') => {
    const t = await openTestDatabase(kind);
    opened.push(t);
    return t;
  };

  async function sourceWithRows(n = 25): Promise<TestDatabase> {
    const src = await open('sqlite');
    await migrateAll(src.db);
    const q = src.db.sql;
    await q.run("INSERT INTO accounts (username, display_name, role, hubs, secret, created_at, updated_at, regions) VALUES ('ann', 'Ann', 'admin', '[]', 's', 1, 2, NULL)");
    await q.run("INSERT INTO account_tokens (token_hash, username, kind, label, created_at, expires_at) VALUES ('h1', 'ann', 'api', NULL, 3, NULL)");
    await q.run("INSERT INTO hub_credentials (hub_id, region, username, secret, updated_at) VALUES ('hub-1', 'r', 'hub-1', 'x', 1764806400000)");
    for (let i = 0; i < n; i++) {
      await q.run("INSERT INTO api_audit (at, account, role, method, route, path, status) VALUES (?, 'ann', 'admin', 'GET', NULL, '/x', 200)", [1764806400000 + i]);
      await q.run(
        "INSERT INTO dead_letters (received_at, region, hub, client_id, topic, reason, detail, size, truncated, payload) VALUES (?, NULL, 'hub-1', 'c', 't', 'bad_json', 'd', 3, 0, ?)",
        [i, Buffer.from([0, i, 255])],
      );
    }
    // SQLite never hands out an AUTOINCREMENT id twice, deleted or not: the copy must not either.
    await q.run('DELETE FROM dead_letters WHERE id > ?', [n - 5]);
    return src;
  }

  const count = async (db: Database, table: string) => (await db.sql.one<{ n: number }>(`SELECT count(*) AS n FROM ${table}`))!.n;

  it('moves every row column by column in batches, keeps ids and bytes, and moves identities past every id SQLite handed out', async () => {
    const src = await sourceWithRows(25);
    const dst = await open('postgres');
    const lines: string[] = [];
    const copied = await copySqliteToPostgres({ from: src.where, to: dst.where, batchRows: 7, log: (l) => lines.push(l) });

    expect(copied.map((c) => c.table)).toEqual(SCHEMA_TABLES);
    const rows = Object.fromEntries(copied.map((c) => [c.table, c.rows]));
    expect(rows).toMatchObject({ accounts: 1, account_tokens: 1, hub_credentials: 1, api_audit: 25, dead_letters: 20, dead_letter_totals: 1 });
    for (const t of SCHEMA_TABLES) expect({ t, n: await count(dst.db, t) }).toEqual({ t, n: await count(src.db, t) });
    expect(lines.some((l) => /api_audit\s+25 rows/.test(l))).toBe(true);
    expect(lines.at(-1)).toMatch(/verified and committed/);

    const letters = await dst.db.sql.query<{ id: number; payload: Buffer; region: string | null }>('SELECT id, payload, region FROM dead_letters ORDER BY id');
    expect(letters.map((l) => l.id)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(letters[3]).toEqual({ id: 4, payload: Buffer.from([0, 3, 255]), region: null });
    expect(await dst.db.sql.one("SELECT secret, updated_at FROM hub_credentials WHERE hub_id = 'hub-1'")).toEqual({ secret: 'x', updated_at: 1764806400000 });

    const [next] = await dst.db.sql.query<{ id: number }>(
      "INSERT INTO dead_letters (received_at, topic, reason, detail, size, truncated, payload) VALUES (1, 't', 'bad_json', 'd', 1, 0, ?) RETURNING id",
      [Buffer.from([1])],
    );
    expect(next!.id).toBe(26);
    const [audit] = await dst.db.sql.query<{ id: number }>("INSERT INTO api_audit (at, method, path, status) VALUES (1, 'GET', '/y', 200) RETURNING id");
    expect(audit!.id).toBe(26);
  });

  it('refuses a target that already holds state, and with --force replaces it (audit log included)', async () => {
    const src = await sourceWithRows(3);
    const dst = await open('postgres');
    await migrateAll(dst.db);
    await dst.db.sql.run("INSERT INTO accounts (username, display_name, role, hubs, secret, created_at, updated_at) VALUES ('demo', 'Demo', 'admin', '[]', 's', 1, 1)");
    await dst.db.sql.run("INSERT INTO api_audit (at, method, path, status) VALUES (1, 'GET', '/z', 200)");

    const refused = await copySqliteToPostgres({ from: src.where, to: dst.where }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(CopyRefusedError);
    expect((refused as Error).message).toMatch(/already holds operational state \(accounts: 1 rows, api_audit: 1 rows\).*--force/);
    expect(await count(dst.db, 'accounts')).toBe(1);

    const lines: string[] = [];
    await copySqliteToPostgres({ from: src.where, to: dst.where, force: true, log: (l) => lines.push(l) });
    expect(lines.some((l) => l.startsWith('--force: replacing accounts (1 rows), api_audit (1 rows)'))).toBe(true);
    expect(await dst.db.sql.query('SELECT username FROM accounts')).toEqual([{ username: 'ann' }]);
    expect(await count(dst.db, 'api_audit')).toBe(3);
    // The append-only trigger is back on.
    await expect(dst.db.sql.run('DELETE FROM api_audit')).rejects.toThrow(/append-only/);
  });

  it('leaves the target empty when a row does not fit (one transaction)', async () => {
    const src = await sourceWithRows(3);
    // api_audit.status is an INTEGER on PostgreSQL (32 bits); SQLite takes anything.
    await src.db.sql.run("INSERT INTO api_audit (at, method, path, status) VALUES (1, 'GET', '/big', ?)", [2 ** 40]);
    const dst = await open('postgres');
    await expect(copySqliteToPostgres({ from: src.where, to: dst.where })).rejects.toThrow(/copying api_audit: .*out of range/);
    for (const t of SCHEMA_TABLES.filter((t) => t !== 'dead_letter_totals')) expect({ t, n: await count(dst.db, t) }).toEqual({ t, n: 0 });
  });

  it('refuses a cloud.db at an older schema and says how to bring it up to date', async () => {
    const src = await sourceWithRows(1);
    await src.db.sql.run("UPDATE schema_migrations SET version = version - 1 WHERE feature = 'alarms'");
    const dst = await open('postgres');
    await expect(copySqliteToPostgres({ from: src.where, to: dst.where })).rejects.toThrow(/older schema than this software \(alarms at \d+ of \d+\).*npm run db:migrate/);
    await expect(copySqliteToPostgres({ from: `${src.where}/nothing-here.db`, to: dst.where })).rejects.toThrow(/no SQLite database at/);
  });
});
