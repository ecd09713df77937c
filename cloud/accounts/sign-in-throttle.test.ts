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

  it('counts attempts still being checked as failures: sent at once, no more than the free ones go through', () => {
    const t = new SignInThrottle(o);
    const inFlight: (() => void)[] = [];
    const let_through = () => {
      let n = 0;
      for (let i = 0; i < 10; i++) {
        if (t.check('erin', `e${i}`, 0)) continue;
        inFlight.push(t.begin('erin'));
        n++;
      }
      return n;
    };
    expect(let_through()).toBe(3);
    expect(t.check('erin', 'e0', 0)).toEqual({ by: 'username', retryAfterMs: 1000 });
    // They fail: after the delay, one attempt again, not a new burst.
    for (const end of inFlight.splice(0)) { t.failed('erin', 'e', 0); end(); end(); /* a second end() does nothing */ }
    expect(t.check('erin', 'e0', 999)).toMatchObject({ by: 'username', retryAfterMs: 1 });
    expect(t.check('erin', 'e0', 1000)).toBeNull();
    inFlight.push(t.begin('erin'));
    expect(t.check('erin', 'e1', 1000)).toEqual({ by: 'username', retryAfterMs: 2000 });
    // It succeeds: the username is free again at once.
    t.succeeded('erin');
    inFlight.pop()!();
    expect(t.check('erin', 'e1', 1000)).toBeNull();
  });

  it('does not refuse concurrent sign-ins from one address for being concurrent (a hall\'s tablets): only its recorded failures count', () => {
    const t = new SignInThrottle(o);
    for (let i = 0; i < 4; i++) t.failed(`typo${i}`, 'hall', 0); // 4 of the address's 5 free failures used
    const ends = Array.from({ length: 6 }, (_, i) => {
      expect(t.check(`staff${i}`, 'hall', 0)).toBeNull();
      return t.begin(`staff${i}`);
    });
    for (const end of ends) end(); // all signed in
    t.failed('typo9', 'hall', 0);
    expect(t.check('staff9', 'hall', 0)).toEqual({ by: 'address', retryAfterMs: 1000 });
  });

  it('holds at most maxEntries keys, dropping the least recently failed', () => {
    const t = new SignInThrottle({ ...o, maxEntries: 10 });
    for (let i = 0; i < 1000; i++) t.failed(`u${i}`, `addr${i}`, i);
    expect(t.sizes).toEqual({ usernames: 10, addresses: 10 });
  });
});
