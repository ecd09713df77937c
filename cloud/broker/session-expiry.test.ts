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
});
