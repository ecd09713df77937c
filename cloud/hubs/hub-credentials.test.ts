import { afterEach, describe, expect, it } from 'vitest';
import { openTestDatabase, SQL_DATABASES, type TestDatabase } from '../../test/support/test-database.ts';
import { generatePassword, hashSecret, openHubCredentialStore, verifySecret } from './hub-credentials.ts';

/** The hub credentials port's contract (issue 14): the same tests on SQLite and PostgreSQL. */
describe.each(SQL_DATABASES)('HubCredentialStore on %s', (kind) => {
  let t: TestDatabase;
  afterEach(async () => t?.cleanup());
  const open = async (now: () => number = Date.now) => {
    t = await openTestDatabase(kind);
    return openHubCredentialStore(t.db, now);
  };

  it('keeps a hub\'s password as a scrypt hash and answers the hub and its region for it', async () => {
    const store = await open();
    const password = generatePassword();
    await store.set('nomi-terai', 'ishikawa-nomi', 'nomi-terai', password);
    const row = await t.db.sql.one<{ secret: string; updated_at: number }>('SELECT secret, updated_at FROM hub_credentials WHERE hub_id = ?', ['nomi-terai']);
    expect(row!.secret).toMatch(/^scrypt\$16384\$8\$1\$/);
    expect(row!.secret).not.toContain(password);
    expect(typeof row!.updated_at).toBe('number');
    expect(await store.verify('nomi-terai', password)).toEqual({ hubId: 'nomi-terai', region: 'ishikawa-nomi' });
    expect(await store.verify('nomi-terai', password)).toEqual({ hubId: 'nomi-terai', region: 'ishikawa-nomi' }); // remembered
    expect(await store.verify('nomi-terai', 'wrong')).toBeNull();
    expect(await store.verify('nobody', password)).toBeNull();
    expect(await store.has('nomi-terai')).toBe(true);
    expect(await store.has('nobody')).toBe(false);
  });

  it('a new password replaces the old one at once; removed credentials are refused', async () => {
    const store = await open();
    await store.set('h1', 'r1', 'h1', 'first-password');
    expect(await store.verify('h1', 'first-password')).not.toBeNull();
    await store.set('h1', 'r2', 'h1', 'second-password');
    expect(await store.verify('h1', 'first-password')).toBeNull(); // the remembered check was keyed by the old secret
    expect(await store.verify('h1', 'second-password')).toEqual({ hubId: 'h1', region: 'r2' });
    await store.remove('h1');
    expect(await store.verify('h1', 'second-password')).toBeNull();
    expect(await store.has('h1')).toBe(false);
    await store.remove('h1'); // idempotent
  });

  it('refuses a username another hub already has', async () => {
    const store = await open();
    await store.set('h1', 'r1', 'shared', 'p1-password');
    await expect(store.set('h2', 'r1', 'shared', 'p2-password')).rejects.toThrow();
    expect(await store.verify('shared', 'p1-password')).toEqual({ hubId: 'h1', region: 'r1' });
  });

  it('a password changed or removed by another process is refused here at the next login', async () => {
    const a = await open();
    const b = await openHubCredentialStore(await t.reopen());
    await a.set('h1', 'r1', 'h1', 'first-password');
    expect(await b.verify('h1', 'first-password')).not.toBeNull();
    await a.set('h1', 'r1', 'h1', 'second-password');
    expect(await b.verify('h1', 'first-password')).toBeNull();
    expect(await b.verify('h1', 'second-password')).not.toBeNull();
    await a.remove('h1');
    expect(await b.verify('h1', 'second-password')).toBeNull();
    // Two processes setting one hub's password at once: one row, and one of the two passwords works.
    await Promise.all([a.set('h2', 'r1', 'h2', 'password-a'), b.set('h2', 'r1', 'h2', 'password-b')]);
    const ok = [await a.verify('h2', 'password-a'), await a.verify('h2', 'password-b')].filter(Boolean);
    expect(ok).toHaveLength(1);
  });

  it('survives a restart', async () => {
    const store = await open();
    await store.set('h1', 'r1', 'h1', 'the-password');
    const again = await openHubCredentialStore(await t.reopen());
    expect(await again.verify('h1', 'the-password')).toEqual({ hubId: 'h1', region: 'r1' });
  });
});

describe('hashSecret / verifySecret', () => {
  it('checks a password against its scrypt hash and refuses malformed hashes', async () => {
    const secret = await hashSecret('pw');
    expect(await verifySecret('pw', secret)).toBe(true);
    expect(await verifySecret('pW', secret)).toBe(false);
    expect(await verifySecret('pw', 'plain')).toBe(false);
    expect(await verifySecret('pw', secret.replace(/^scrypt/, 'md5'))).toBe(false);
  });
});
