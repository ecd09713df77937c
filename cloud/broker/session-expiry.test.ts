import { describe, expect, it } from 'vitest';
import { SessionExpiry } from './session-expiry.ts';

describe('SessionExpiry', () => {
  it('expires a session idle for the TTL, not one that came back or is live', () => {
    const s = new SessionExpiry(1_000);
    s.disconnected('a', 0);
    s.disconnected('b', 100);
    s.disconnected('c', 200);
    s.connected('b'); // came back
    expect(s.sweep(999, () => false)).toEqual([]);
    expect(s.sweep(1_000, () => false)).toEqual(['a']);
    expect(s.sweep(5_000, (id) => id === 'c')).toEqual([]); // taken over by a live connection meanwhile
    expect(s.size).toBe(0);
  });

  it('restarts the wait when the session is used and left again', () => {
    const s = new SessionExpiry(1_000);
    s.disconnected('a', 0);
    s.disconnected('b', 500);
    s.disconnected('a', 900);
    expect(s.sweep(1_600, () => false)).toEqual(['b']);
    expect(s.sweep(1_900, () => false)).toEqual(['a']);
  });

  it('keeps at most maxIdlePerOwner idle sessions per owner, removing the longest idle first', () => {
    const s = new SessionExpiry(1_000, 2);
    expect(s.disconnected('h.a', 0, 'h')).toEqual([]);
    expect(s.disconnected('h.b', 1, 'h')).toEqual([]);
    expect(s.disconnected('g.a', 2, 'g')).toEqual([]); // another owner does not count
    s.disconnected('h.a', 3, 'h'); // used again and left: now the most recent
    expect(s.disconnected('h.c', 4, 'h')).toEqual(['h.b']);
    s.connected('h.a'); // live again: not idle
    expect(s.disconnected('h.d', 5, 'h')).toEqual([]);
    expect(s.size).toBe(3);
    expect(s.sweep(2_000, () => false).sort()).toEqual(['g.a', 'h.c', 'h.d']);
  });
});
