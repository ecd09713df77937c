import { describe, expect, it } from 'vitest';
import { checkPassword, hashPassword, isCurrentPasswordHash, isScryptHash, LEGACY_SCRYPT, PASSWORD_SCRYPT } from './password-hash.ts';

describe('password hashes (scrypt)', () => {
  it('hashes at today\'s parameters (N=2^14, r=8, p=5: OWASP\'s 16 MiB equivalent of N=2^17) and checks them', async () => {
    const stored = await hashPassword('correct horse battery');
    expect(stored).toMatch(/^scrypt\$16384\$8\$5\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    expect(PASSWORD_SCRYPT).toEqual({ N: 16384, r: 8, p: 5, keylen: 32 });
    expect(isCurrentPasswordHash(stored)).toBe(true);
    expect(await checkPassword('correct horse battery', stored)).toBe(true);
    expect(await checkPassword('correct horse batterY', stored)).toBe(false);
    expect(await checkPassword('', stored)).toBe(false);
  });

  it('a hash made at the old parameters still checks, and is reported as not current', async () => {
    const old = await hashPassword('correct horse battery', LEGACY_SCRYPT);
    expect(old).toMatch(/^scrypt\$16384\$8\$1\$/);
    expect(await checkPassword('correct horse battery', old)).toBe(true);
    expect(await checkPassword('wrong', old)).toBe(false);
    expect(isCurrentPasswordHash(old)).toBe(false);
  });

  it('anything that is not a well-formed scrypt hash within bounds never verifies, and is not tried', async () => {
    const good = await hashPassword('pw', LEGACY_SCRYPT);
    const [, , , , salt, hash] = good.split('$');
    const bad = [
      '', 'pw', 'scrypt$x', good.replace(/^scrypt/, 'md5'), `${good}$extra`, good.split('$').slice(0, 5).join('$'),
      `scrypt$1073741824$8$1$${salt}$${hash}`, // N=2^30: would allocate 1 TiB
      `scrypt$16384$64$1$${salt}$${hash}`, `scrypt$16384$8$99$${salt}$${hash}`, `scrypt$16383$8$1$${salt}$${hash}`,
      `scrypt$0$8$1$${salt}$${hash}`, `scrypt$-16384$8$1$${salt}$${hash}`, `scrypt$16384.0$8$1$${salt}$${hash}`, `scrypt$1e4$8$1$${salt}$${hash}`,
      `scrypt$16384$8$1$$${hash}`, `scrypt$16384$8$1$${salt}$`, `scrypt$16384$8$1$${salt}$${hash!.slice(0, 8)}`, `scrypt$16384$8$1$${salt}$${'*'.repeat(43)}`,
      `hmac-sha256$${salt}$${hash}`,
    ];
    for (const stored of bad) {
      expect(isScryptHash(stored), stored).toBe(false);
      expect(await checkPassword('pw', stored), stored).toBe(false);
      expect(isCurrentPasswordHash(stored), stored).toBe(false);
    }
  });
});
