import { afterEach, describe, expect, it } from 'vitest';
import { openTestDatabase, SQL_DATABASES, type TestDatabase } from '../../test/support/test-database.ts';
import { ACCOUNT_MIGRATIONS, AccountExistsError, openAccountStore, SESSION_TTL_MS } from './account-store.ts';
import { hashPassword, isCurrentPasswordHash, LEGACY_SCRYPT } from './password-hash.ts';

/** The accounts port's contract (issue 14): the same tests on SQLite and PostgreSQL. */
describe.each(SQL_DATABASES)('AccountStore on %s', (kind) => {
  let t: TestDatabase;
  afterEach(async () => t?.cleanup());
  const open = async (now: () => number = Date.now) => {
    t = await openTestDatabase(kind);
    return openAccountStore(t.db, now);
  };

  it('keeps passwords as scrypt hashes and checks them', async () => {
    const store = await open();
    await store.create({ username: 'hanako', role: 'staff', hubs: ['nomi-terai'], password: 'correct horse battery' });
    const row = await t.db.sql.one<{ secret: string }>('SELECT secret FROM accounts WHERE username = ?', ['hanako']);
    expect(row!.secret).toMatch(/^scrypt\$16384\$8\$5\$/);
    expect(row!.secret).not.toContain('correct');
    expect(await store.verifyPassword('hanako', 'correct horse battery')).toMatchObject({ username: 'hanako', role: 'staff', hubs: ['nomi-terai'], regions: null });
    expect(await store.verifyPassword('hanako', 'wrong')).toBeNull();
    expect(await store.verifyPassword('nobody', 'correct horse battery')).toBeNull();
  });

  it('a password hashed at the old parameters signs in and is hashed again at today\'s; its sessions and tokens stay; a wrong one changes nothing', async () => {
    const store = await open();
    await store.create({ username: 'sato', role: 'operator', password: 'placeholder-password' });
    const old = await hashPassword('an old password', LEGACY_SCRYPT);
    await t.db.sql.run('UPDATE accounts SET secret = ?, updated_at = 1 WHERE username = ?', [old, 'sato']);
    const session = await store.createSession('sato');
    const secret = async () => (await t.db.sql.one<{ secret: string; updated_at: number }>('SELECT secret, updated_at FROM accounts WHERE username = ?', ['sato']))!;

    expect(await store.verifyPassword('sato', 'an old passworD')).toBeNull();
    expect((await secret()).secret).toBe(old);
    expect(await store.verifyPassword('sato', 'an old password')).toMatchObject({ username: 'sato' });
    const now = await secret();
    expect(now.secret).toMatch(/^scrypt\$16384\$8\$5\$/);
    expect(isCurrentPasswordHash(now.secret)).toBe(true);
    expect(now.updated_at).toBe(1); // the password did not change, only how it is kept
    expect(await store.resolveToken(session.token)).not.toBeNull();
    expect(await store.verifyPassword('sato', 'an old password')).toMatchObject({ username: 'sato' });
    expect((await secret()).secret).toBe(now.secret); // current: not hashed again
    // Another process reads the new hash.
    const other = await openAccountStore(await t.reopen());
    expect(await other.verifyPassword('sato', 'an old password')).toMatchObject({ username: 'sato' });
  });

  it('ends a session after 12 hours (clock injected), stores only its hash, and ends sessions on a password change', async () => {
    let now = Date.parse('2026-11-22T09:00:00+09:00');
    const store = await open(() => now);
    await store.create({ username: 'bousai', role: 'coordinator', password: 'x'.repeat(12) });
    const s = await store.createSession('bousai');
    expect(s.expiresAt - now).toBe(SESSION_TTL_MS);
    const stored = await t.db.sql.query<{ token_hash: string }>('SELECT token_hash FROM account_tokens');
    expect(stored.map((r) => r.token_hash)).not.toContain(s.token);
    expect((await store.resolveToken(s.token))?.account.username).toBe('bousai');
    now += SESSION_TTL_MS - 1;
    expect(await store.resolveToken(s.token)).not.toBeNull();
    now += 1;
    expect(await store.resolveToken(s.token)).toBeNull();

    const again = await store.createSession('bousai');
    const api = await store.createApiToken('bousai', 'node-red');
    await store.setPassword('bousai', 'y'.repeat(12));
    expect(await store.resolveToken(again.token)).toBeNull();
    expect(await store.verifyPassword('bousai', 'y'.repeat(12))).not.toBeNull();
    now += 365 * 86_400_000;
    expect(await store.resolveToken(api.token)).toMatchObject({ kind: 'api', expiresAt: null }); // API tokens do not expire unless asked
    await store.revokeToken(api.token);
    expect(await store.resolveToken(api.token)).toBeNull();
    expect(await store.resolveToken('made-up')).toBeNull();
    // Expired sessions are pruned when a new one is made.
    await store.createSession('bousai');
    expect((await t.db.sql.query('SELECT token_hash FROM account_tokens')).length).toBe(1);
  });

  it('takes a new role or hubs at once for existing sessions, and changes only the fields given', async () => {
    const store = await open();
    await store.create({ username: 'k', role: 'staff', hubs: ['a1'], displayName: 'K', password: 'p'.repeat(12) });
    const s = await store.createSession('k');
    expect(await store.update('k', { role: 'operator' })).toMatchObject({ role: 'operator', displayName: 'K', hubs: ['a1'] });
    expect((await store.resolveToken(s.token))?.account.role).toBe('operator');
    expect(await store.update('k', { displayName: '花子' })).toMatchObject({ role: 'operator', displayName: '花子' });
    expect(await store.update('nobody', { role: 'admin' })).toBeNull();
    expect((await store.list()).map((a) => a.username)).toEqual(['k']);
    expect(await store.get('nobody')).toBeNull();
  });

  it('keeps a coordinator\'s regions (null: every region), and none for other roles', async () => {
    const store = await open();
    const changed: string[] = [];
    store.onChange((a) => changed.push(`${a.username}:${a.displayName}`));
    expect(await store.create({ username: 'bousai-a', role: 'coordinator', regions: ['region-a', 'region-a'], password: 'p'.repeat(12) })).toMatchObject({ regions: ['region-a'] });
    expect(await store.create({ username: 'bousai-all', role: 'coordinator', password: 'p'.repeat(12) })).toMatchObject({ regions: null });
    expect(await store.create({ username: 'root', role: 'admin', regions: ['region-a'], password: 'p'.repeat(12) })).toMatchObject({ regions: null });
    const s = await store.createSession('bousai-a');
    expect((await store.resolveToken(s.token))?.account.regions).toEqual(['region-a']);
    expect(await store.update('bousai-a', { regions: ['region-a', 'region-b'] })).toMatchObject({ regions: ['region-a', 'region-b'] });
    expect((await store.resolveToken(s.token))?.account.regions).toEqual(['region-a', 'region-b']); // at once, on the next request
    expect(await store.update('bousai-a', { displayName: 'A' })).toMatchObject({ regions: ['region-a', 'region-b'] }); // absent: unchanged
    expect(await store.update('bousai-a', { regions: null })).toMatchObject({ regions: null });
    await store.update('bousai-a', { regions: ['region-a'] });
    expect(await store.update('bousai-a', { role: 'operator' })).toMatchObject({ role: 'operator', regions: null }); // not a coordinator: no regions
    expect(await store.update('bousai-a', { role: 'coordinator' })).toMatchObject({ regions: null }); // and they do not come back
    expect(changed).toContain('bousai-a:A');
    expect(Object.fromEntries(await store.displayNames())).toMatchObject({ 'bousai-a': 'A', root: 'root' });
  });

  it('refuses a second account with a taken username (AccountExistsError), keeping the first one\'s password', async () => {
    const store = await open();
    await store.create({ username: 'taken', role: 'staff', hubs: ['a1'], password: 'first-password' });
    await expect(store.create({ username: 'taken', role: 'admin', password: 'second-password' })).rejects.toThrow(AccountExistsError);
    expect(await store.verifyPassword('taken', 'first-password')).toMatchObject({ role: 'staff' });
  });

  it('keeps the audit log append-only', async () => {
    const store = await open(() => 1_000);
    await store.recordAudit({ account: 'k', role: 'staff', method: 'POST', route: '/api/v1/orders', path: '/api/v1/orders', status: 201 });
    await store.recordAudit({ account: null, role: null, method: 'POST', route: null, path: '/x', status: 401 });
    expect(await store.audit(10)).toEqual([
      { id: 2, at: 1_000, account: null, role: null, method: 'POST', route: null, path: '/x', status: 401 },
      { id: 1, at: 1_000, account: 'k', role: 'staff', method: 'POST', route: '/api/v1/orders', path: '/api/v1/orders', status: 201 },
    ]);
    expect(await store.audit(1)).toHaveLength(1);
    await expect(t.db.sql.run('DELETE FROM api_audit')).rejects.toThrow(/append-only/);
    await expect(t.db.sql.run("UPDATE api_audit SET account = 'someone-else'")).rejects.toThrow(/append-only/);
    if (kind === 'postgres') await expect(t.db.sql.exec('TRUNCATE api_audit')).rejects.toThrow(/append-only/);
    expect(await store.audit(10)).toHaveLength(2);
  });

  it('survives a restart: accounts, sessions and the audit log are in the database', async () => {
    const store = await open();
    await store.create({ username: 'k', role: 'coordinator', regions: ['r1'], password: 'p'.repeat(12) });
    const s = await store.createSession('k');
    await store.recordAudit({ account: 'k', role: 'coordinator', method: 'POST', route: null, path: '/', status: 200 });
    const again = await openAccountStore(await t.reopen());
    expect((await again.resolveToken(s.token))?.account).toMatchObject({ username: 'k', regions: ['r1'] });
    expect(await again.audit(10)).toHaveLength(1);
  });

  // Two cloud processes on one database (issue 14, item 2): two stores on two connections.
  describe('with two processes on one database', () => {
    it('creating one username at once gives one account and AccountExistsError for the other', async () => {
      const a = await open();
      const b = await openAccountStore(await t.reopen());
      for (let round = 0; round < 5; round++) {
        const results = await Promise.allSettled([
          a.create({ username: `same-${round}`, role: 'staff', hubs: ['a1'], password: 'password-of-a' }),
          b.create({ username: `same-${round}`, role: 'admin', password: 'password-of-b' }),
        ]);
        const won = results.filter((r) => r.status === 'fulfilled');
        const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
        expect(won).toHaveLength(1);
        expect(lost).toHaveLength(1);
        expect(lost[0]!.reason).toBeInstanceOf(AccountExistsError);
        // The winner's password signs in; the loser's never overwrote it.
        const winner = (won[0] as PromiseFulfilledResult<{ role: string }>).value;
        const password = winner.role === 'staff' ? 'password-of-a' : 'password-of-b';
        expect(await a.verifyPassword(`same-${round}`, password)).toMatchObject({ role: winner.role });
      }
      expect((await a.list()).length).toBe(5);
    });

    it('a session revoked, or ended by a password change, on one process is refused on the other at once', async () => {
      const a = await open();
      const b = await openAccountStore(await t.reopen());
      await a.create({ username: 'k', role: 'coordinator', password: 'p'.repeat(12) });
      const s1 = await a.createSession('k');
      const s2 = await a.createSession('k');
      expect(await b.resolveToken(s1.token)).not.toBeNull();
      await a.revokeToken(s1.token);
      expect(await b.resolveToken(s1.token)).toBeNull();
      await b.setPassword('k', 'q'.repeat(12));
      expect(await a.resolveToken(s2.token)).toBeNull();
      const s3 = await b.createSession('k');
      await b.update('k', { role: 'staff', hubs: ['h1'] });
      expect((await a.resolveToken(s3.token))?.account).toMatchObject({ role: 'staff', hubs: ['h1'] });
    });

    it('two admins changing different fields of one account at once both win', async () => {
      const a = await open();
      const b = await openAccountStore(await t.reopen());
      await a.create({ username: 'k', role: 'coordinator', displayName: 'K', password: 'p'.repeat(12) });
      for (let round = 0; round < 5; round++) {
        await Promise.all([a.update('k', { displayName: `name-${round}` }), b.update('k', { regions: [`region-${round}`] })]);
        expect(await a.get('k')).toMatchObject({ displayName: `name-${round}`, regions: [`region-${round}`] });
      }
    });
  });
});

describe('AccountStore on an existing cloud.db (SQLite, before regions)', () => {
  it('migrates it: accounts and sessions stay, an existing coordinator is every region\'s', async () => {
    const t = await openTestDatabase('sqlite');
    try {
      await t.db.migrate('accounts', { sqlite: ACCOUNT_MIGRATIONS.sqlite.slice(0, 1), postgres: [] });
      await t.db.sql.run("INSERT INTO accounts (username, display_name, role, hubs, secret, created_at, updated_at) VALUES ('old', 'Old', 'coordinator', '[]', 'scrypt$x', 1, 1)");
      await t.db.sql.run("INSERT INTO account_tokens (token_hash, username, kind, label, created_at, expires_at) VALUES ('h', 'old', 'api', null, 1, null)");
      const store = await openAccountStore(t.db);
      expect(await store.get('old')).toEqual({ username: 'old', displayName: 'Old', role: 'coordinator', hubs: [], regions: null });
      expect((await t.db.sql.query('SELECT token_hash FROM account_tokens')).length).toBe(1);
    } finally {
      await t.cleanup();
    }
  });
});
