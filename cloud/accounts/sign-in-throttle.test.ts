import { describe, expect, it } from 'vitest';
import { SignInThrottle } from './sign-in-throttle.ts';

const o = { freeFailuresPerUsername: 3, freeFailuresPerAddress: 5, baseDelayMs: 1000, maxDelayMs: 8000, forgetAfterMs: 60_000, maxEntries: 100 };

describe('SignInThrottle', () => {
  it('lets the free failures through, then makes each next attempt wait 1 s, 2 s, 4 s … up to the cap', () => {
    const t = new SignInThrottle(o);
    let now = 0;
    for (let i = 0; i < 3; i++) {
      expect(t.check('alice', 'a1', now)).toBeNull();
      t.failed('alice', 'a1', now);
    }
    const waits: number[] = [];
    for (let i = 0; i < 6; i++) {
      const r = t.check('alice', `a${i + 2}`, now); // another address each time: the username's limit still holds
      expect(r).toMatchObject({ by: 'username' });
      waits.push(r!.retryAfterMs);
      now += r!.retryAfterMs;
      expect(t.check('alice', `a${i + 2}`, now)).toBeNull();
      t.failed('alice', `a${i + 2}`, now);
    }
    expect(waits).toEqual([1000, 2000, 4000, 8000, 8000, 8000]);
  });

  it('does not count refused attempts (they cannot lengthen the wait)', () => {
    const t = new SignInThrottle(o);
    for (let i = 0; i < 3; i++) t.failed('bob', 'x', 0);
    expect(t.check('bob', 'y', 0)!.retryAfterMs).toBe(1000);
    expect(t.check('bob', 'y', 500)!.retryAfterMs).toBe(500);
  });

  it('a success clears the username, not the address', () => {
    const t = new SignInThrottle(o);
    for (let i = 0; i < 5; i++) t.failed(`user${i}`, 'spray', 0);
    t.failed('carol', 'other', 0);
    t.succeeded('carol');
    expect(t.check('carol', 'other', 0)).toBeNull();
    t.succeeded('user0');
    expect(t.check('user0', 'spray', 0)).toMatchObject({ by: 'address', retryAfterMs: 1000 });
    expect(t.check('user0', 'elsewhere', 0)).toBeNull(); // the same user from another address
  });

  it('counts usernames case-insensitively and forgets failures after a quiet hour', () => {
    const t = new SignInThrottle(o);
    for (let i = 0; i < 4; i++) t.failed(i % 2 ? 'Dave' : 'dave ', `n${i}`, 0);
    expect(t.check('DAVE', 'z', 0)).toMatchObject({ by: 'username' });
    expect(t.check('dave', 'z', 60_000)).toBeNull();
    expect(t.sizes.usernames).toBe(0);
  });

  it('holds at most maxEntries keys, dropping the least recently failed', () => {
    const t = new SignInThrottle({ ...o, maxEntries: 10 });
    for (let i = 0; i < 1000; i++) t.failed(`u${i}`, `addr${i}`, i);
    expect(t.sizes).toEqual({ usernames: 10, addresses: 10 });
  });
});
