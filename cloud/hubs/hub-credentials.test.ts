import crypto from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { openTestDatabase, SQL_DATABASES, type TestDatabase } from '../../test/support/test-database.ts';
import { hashPassword, LEGACY_SCRYPT } from '../accounts/password-hash.ts';
import {
  generatePassword, hashHubSecret, hashSecret, HUB_SECRET_MIN_LENGTH, hubSecretForm, openHubCredentialStore, verifyHubSecret, verifySecret,
  type HubCredentialStore,
} from './hub-credentials.ts';

/** A secret as the cloud stored it before issue 17: scrypt N=2^14, r=8, p=1. */
const legacyHash = (secret: string) => hashPassword(secret, LEGACY_SCRYPT);

/** The hub credentials port's contract (issues 14 and 17): the same tests on SQLite and PostgreSQL. */
describe.each(SQL_DATABASES)('HubCredentialStore on %s', (kind) => {
  let t: TestDatabase;
  afterEach(async () => t?.cleanup());
  const open = async (now: () => number = Date.now) => {
    t = await openTestDatabase(kind);
    return openHubCredentialStore(t.db, now);
  };
  const secretOf = async (hubId: string) => (await t.db.sql.one<{ secret: string }>('SELECT secret FROM hub_credentials WHERE hub_id = ?', [hubId]))?.secret;
  /** Stores a row as an older cloud would have (what `set` did before issue 17), or any value at all. */
  const plant = (hubId: string, secret: string, username = hubId) =>
    t.db.sql.run('INSERT INTO hub_credentials (hub_id, region, username, secret, updated_at) VALUES (?, ?, ?, ?, ?)', [hubId, 'r1', username, secret, 1]);

  it('keeps a hub\'s secret in the fast form (HMAC-SHA-256, a key of its own) and answers the hub and its region for it', async () => {
    const store = await open();
    const password = generatePassword();
    await store.set('nomi-terai', 'ishikawa-nomi', 'nomi-terai', password);
    const row = await t.db.sql.one<{ secret: string; updated_at: number }>('SELECT secret, updated_at FROM hub_credentials WHERE hub_id = ?', ['nomi-terai']);
    expect(row!.secret).toMatch(/^hmac-sha256\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    expect(row!.secret).not.toContain(password);
    expect(typeof row!.updated_at).toBe('number');
    expect(await store.verify('nomi-terai', password)).toEqual({ hubId: 'nomi-terai', region: 'ishikawa-nomi' });
    expect(await store.verify('nomi-terai', password)).toEqual({ hubId: 'nomi-terai', region: 'ishikawa-nomi' });
    expect(await store.verify('nomi-terai', generatePassword())).toBeNull();
    expect(await store.verify('nomi-terai', 'wrong')).toBeNull();
    expect(await store.verify('nobody', password)).toBeNull();
    expect(await store.has('nomi-terai')).toBe(true);
    expect(await store.has('nobody')).toBe(false);
    expect(store.checks()).toEqual({ fast: 4, scrypt: 0, unknownUser: 1, upgraded: 0, unreadable: 0 });
    // Two hubs given the same secret still store different values (each its own key).
    await store.set('h2', 'ishikawa-nomi', 'h2', password);
    expect(await secretOf('h2')).not.toBe(row!.secret);
  });

  it('refuses to store a secret shorter than the floor: the fast hash is safe only for generated secrets', async () => {
    const store = await open();
    await expect(store.set('h1', 'r1', 'h1', 'x'.repeat(HUB_SECRET_MIN_LENGTH - 1))).rejects.toThrow(/at least 22 characters/);
    expect(await store.has('h1')).toBe(false);
    await store.set('h1', 'r1', 'h1', 'x'.repeat(HUB_SECRET_MIN_LENGTH));
    expect(await store.verify('h1', 'x'.repeat(HUB_SECRET_MIN_LENGTH))).not.toBeNull();
  });

  it('a new password replaces the old one at once; removed credentials are refused', async () => {
    const store = await open();
    await store.set('h1', 'r1', 'h1', 'first-password-of-hub-1');
    expect(await store.verify('h1', 'first-password-of-hub-1')).not.toBeNull();
    await store.set('h1', 'r2', 'h1', 'second-password-of-hub-1');
    expect(await store.verify('h1', 'first-password-of-hub-1')).toBeNull();
    expect(await store.verify('h1', 'second-password-of-hub-1')).toEqual({ hubId: 'h1', region: 'r2' });
    await store.remove('h1');
    expect(await store.verify('h1', 'second-password-of-hub-1')).toBeNull();
    expect(await store.has('h1')).toBe(false);
    await store.remove('h1'); // idempotent
  });

  it('refuses a username another hub already has', async () => {
    const store = await open();
    await store.set('h1', 'r1', 'shared', 'p1-password-of-hub-one');
    await expect(store.set('h2', 'r1', 'shared', 'p2-password-of-hub-two')).rejects.toThrow();
    expect(await store.verify('shared', 'p1-password-of-hub-one')).toEqual({ hubId: 'h1', region: 'r1' });
  });

  it('a password changed or removed by another process is refused here at the next login', async () => {
    const a = await open();
    const b = await openHubCredentialStore(await t.reopen());
    await a.set('h1', 'r1', 'h1', 'first-password-of-hub-1');
    expect(await b.verify('h1', 'first-password-of-hub-1')).not.toBeNull();
    await a.set('h1', 'r1', 'h1', 'second-password-of-hub-1');
    expect(await b.verify('h1', 'first-password-of-hub-1')).toBeNull();
    expect(await b.verify('h1', 'second-password-of-hub-1')).not.toBeNull();
    await a.remove('h1');
    expect(await b.verify('h1', 'second-password-of-hub-1')).toBeNull();
    // Two processes setting one hub's password at once: one row, and one of the two passwords works.
    await Promise.all([a.set('h2', 'r1', 'h2', 'password-a-of-the-hub-2'), b.set('h2', 'r1', 'h2', 'password-b-of-the-hub-2')]);
    const ok = [await a.verify('h2', 'password-a-of-the-hub-2'), await a.verify('h2', 'password-b-of-the-hub-2')].filter(Boolean);
    expect(ok).toHaveLength(1);
  });

  it('survives a restart', async () => {
    const store = await open();
    await store.set('h1', 'r1', 'h1', 'the-password-of-hub-one');
    const again = await openHubCredentialStore(await t.reopen());
    expect(await again.verify('h1', 'the-password-of-hub-one')).toEqual({ hubId: 'h1', region: 'r1' });
  });

  describe('secrets stored as scrypt hashes before issue 17', () => {
    it('log in, and the first successful login re-stores the secret in the fast form: one scrypt run, then none', async () => {
      const store = await open();
      const password = generatePassword();
      const old = await legacyHash(password);
      await plant('h1', old);
      expect(hubSecretForm(old)).toBe('scrypt');
      expect(await store.forms()).toEqual({ hubs: 1, fast: 0, scrypt: 1, unreadable: 0 });
      expect(await store.legacyHubs()).toEqual(['h1']);

      expect(await store.verify('h1', password)).toEqual({ hubId: 'h1', region: 'r1' });
      const upgraded = await secretOf('h1');
      expect(hubSecretForm(upgraded!)).toBe('fast');
      expect(verifyHubSecret(password, upgraded!)).toBe(true);
      expect(store.checks()).toMatchObject({ scrypt: 1, upgraded: 1, fast: 0 });

      // Every later login is a fast check: the reconnect after a restart costs no scrypt.
      for (let i = 0; i < 3; i++) expect(await store.verify('h1', password)).toEqual({ hubId: 'h1', region: 'r1' });
      expect(store.checks()).toMatchObject({ scrypt: 1, upgraded: 1, fast: 3 });
      // Another process (or node) reads the upgraded row too.
      const other = await openHubCredentialStore(await t.reopen());
      expect(await other.verify('h1', password)).not.toBeNull();
      expect(other.checks()).toMatchObject({ scrypt: 0, fast: 1 });
      expect(await store.forms()).toEqual({ hubs: 1, fast: 1, scrypt: 0, unreadable: 0 });
      expect(await store.legacyHubs()).toEqual([]);
    });

    it('a wrong secret is refused in both forms and changes nothing', async () => {
      const store = await open();
      const password = generatePassword();
      const old = await legacyHash(password);
      await plant('legacy', old);
      await store.set('fast', 'r1', 'fast', password);
      const fast = await secretOf('fast');
      for (const wrong of [generatePassword(), password.slice(0, -1), `${password}x`, password.toUpperCase(), '']) {
        expect(await store.verify('legacy', wrong)).toBeNull();
        expect(await store.verify('fast', wrong)).toBeNull();
      }
      expect(await secretOf('legacy')).toBe(old);
      expect(await secretOf('fast')).toBe(fast);
      expect(store.checks()).toMatchObject({ upgraded: 0 });
    });

    it('compares in constant time in both forms (crypto.timingSafeEqual over the whole digest)', async () => {
      const store = await open();
      const password = generatePassword();
      await plant('legacy', await legacyHash(password));
      await store.set('fast', 'r1', 'fast', password);
      const spy = vi.spyOn(crypto, 'timingSafeEqual');
      try {
        expect(await store.verify('fast', generatePassword())).toBeNull();
        expect(await store.verify('legacy', generatePassword())).toBeNull();
        expect(spy).toHaveBeenCalledTimes(2);
        for (const [a, b] of spy.mock.calls) expect([(a as Buffer).length, (b as Buffer).length]).toEqual([32, 32]);
      } finally {
        spy.mockRestore();
      }
    });

    it('two nodes upgrading the same hub at once: both logins succeed, the row ends in the fast form, one of them wrote it', async () => {
      const a = await open();
      const b = await openHubCredentialStore(await t.reopen());
      const password = generatePassword();
      await plant('h1', await legacyHash(password));
      const [x, y] = await Promise.all([a.verify('h1', password), b.verify('h1', password)]);
      expect(x).toEqual({ hubId: 'h1', region: 'r1' });
      expect(y).toEqual({ hubId: 'h1', region: 'r1' });
      expect(a.checks().upgraded + b.checks().upgraded).toBeLessThanOrEqual(1);
      const stored = await secretOf('h1');
      expect(hubSecretForm(stored!)).toBe('fast');
      expect(verifyHubSecret(password, stored!)).toBe(true);
    });

    it('a new secret set while an old one is being checked wins: the old secret is refused and the new one kept', async () => {
      const a = await open();
      const b = await openHubCredentialStore(await t.reopen());
      const old = generatePassword();
      const fresh = generatePassword();
      await plant('h1', await legacyHash(old));
      // The scrypt check (~46 ms) is still running when the new secret (a fast hash) is stored.
      const checking = a.verify('h1', old);
      await b.set('h1', 'r1', 'h1', fresh);
      expect(await checking).toBeNull();
      expect(await a.verify('h1', old)).toBeNull();
      expect(await a.verify('h1', fresh)).toEqual({ hubId: 'h1', region: 'r1' });
      expect(a.checks().upgraded).toBe(0);
    });

    it('a legacy secret shorter than the floor verifies but stays in scrypt (it was not generated)', async () => {
      const store = await open();
      await plant('h1', await legacyHash('short-password'));
      expect(await store.verify('h1', 'short-password')).not.toBeNull();
      expect(hubSecretForm((await secretOf('h1'))!)).toBe('scrypt');
      expect(store.checks()).toMatchObject({ scrypt: 1, upgraded: 0 });
    });
  });

  it('a stored value of the wrong kind, or garbage, never verifies — whatever the password', async () => {
    const store = await open();
    const password = generatePassword();
    const good = hashHubSecret(password);
    const [, salt, mac] = good.split('$') as [string, string, string];
    const scrypt = await legacyHash(password);
    const planted = {
      plain: password, // the secret itself, stored in clear by mistake
      empty: '',
      sha256: crypto.createHash('sha256').update(password).digest('hex'),
      md5Label: scrypt.replace(/^scrypt/, 'md5'),
      bcryptLike: `$2b$10$${'a'.repeat(53)}`,
      truncatedFast: `hmac-sha256$${salt}$${mac.slice(0, 20)}`,
      shortSalt: `hmac-sha256$${salt.slice(0, 8)}$${mac}`,
      extraField: `${good}$x`,
      otherAlgorithm: good.replace(/^hmac-sha256/, 'hmac-sha1'),
      notBase64: `hmac-sha256$${salt}$${'*'.repeat(43)}`,
      scryptHuge: scrypt.replace(/^scrypt\$16384\$/, 'scrypt$1073741824$'), // must not try to allocate 1 TiB
      scryptNotPowerOfTwo: scrypt.replace(/^scrypt\$16384\$/, 'scrypt$16385$'),
      scryptZero: scrypt.replace(/^scrypt\$16384\$8\$1\$/, 'scrypt$16384$0$1$'),
      scryptCut: scrypt.split('$').slice(0, 5).join('$'),
    };
    for (const [hub, secret] of Object.entries(planted)) await plant(hub, secret);
    for (const hub of Object.keys(planted)) {
      expect(await store.verify(hub, password), hub).toBeNull();
      expect(await store.verify(hub, secret(planted, hub)), hub).toBeNull(); // the stored value itself as the password
    }
    expect(store.checks()).toMatchObject({ unreadable: 2 * Object.keys(planted).length, fast: 0, scrypt: 0 });
    expect(await store.forms()).toEqual({ hubs: Object.keys(planted).length, fast: 0, scrypt: 0, unreadable: Object.keys(planted).length });
    expect(await store.legacyHubs()).toEqual([]);
  });

  it('the reconnect path is cheap: 300 hubs in the fast form log in with no scrypt run and well under a CPU-millisecond each', async () => {
    const store = await open();
    const hubs = Array.from({ length: 300 }, (_, i) => ({ id: `h${i}`, password: generatePassword() }));
    for (const h of hubs) await store.set(h.id, 'r1', h.id, h.password);
    const cpu0 = process.cpuUsage();
    const answers = await Promise.all(hubs.map((h) => store.verify(h.id, h.password)));
    const cpu = process.cpuUsage(cpu0);
    expect(answers.every((a, i) => a?.hubId === hubs[i]!.id)).toBe(true);
    expect(store.checks()).toMatchObject({ fast: 300, scrypt: 0 });
    // CPU of this process (all its threads: a scrypt run on libuv's pool would count, ~46 ms each,
    // 14 s for 300). Measured: 0.02 ms per login on SQLite, 0.3 ms on PostgreSQL (mostly the pg client).
    const msPerLogin = (cpu.user + cpu.system) / 1000 / hubs.length;
    console.info(`[hub-credentials ${kind}] ${msPerLogin.toFixed(3)} ms CPU per fast-form login`);
    expect(msPerLogin).toBeLessThan(5);
  });
});

const secret = (planted: Record<string, string>, hub: string) => planted[hub]!;

describe('the two forms', () => {
  it('verifyHubSecret checks the fast form only; hashSecret / verifySecret (pickup codes) stay scrypt at the old cost', async () => {
    const s = generatePassword();
    const fast = hashHubSecret(s);
    expect(verifyHubSecret(s, fast)).toBe(true);
    expect(verifyHubSecret(`${s}x`, fast)).toBe(false);
    const slow = await hashSecret('123456');
    expect(slow).toMatch(/^scrypt\$16384\$8\$1\$/);
    expect(await verifySecret('123456', slow)).toBe(true);
    expect(await verifySecret('123457', slow)).toBe(false);
    expect(verifyHubSecret('123456', slow)).toBe(false);
    expect(await verifySecret(s, fast)).toBe(false);
    expect(await verifySecret('pw', 'plain')).toBe(false);
    expect(await verifySecret('123456', slow.replace(/^scrypt/, 'md5'))).toBe(false);
  });
});

export type { HubCredentialStore };
