import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelayMs } from './backoff.ts';

describe('backoffDelayMs', () => {
  it('doubles from initialMs up to maxMs; full jitter spans [0, d), equal jitter [d/2, d)', () => {
    const b = { initialMs: 100, maxMs: 10_000 } as const;
    expect([0, 1, 2, 3, 10, 1000].map((a) => backoffDelayMs({ ...b, jitter: 'equal' }, a, () => 0.999999))).toEqual(
      [100, 200, 400, 800, 10_000, 10_000].map((d) => expect.closeTo(d, 0)),
    );
    expect(backoffDelayMs({ ...b, jitter: 'equal' }, 2, () => 0)).toBe(200);
    expect(backoffDelayMs({ ...b, jitter: 'full' }, 2, () => 0)).toBe(0);
  });

  it('stays within [0, maxMs] for any attempt, however large or negative', () => {
    fc.assert(
      fc.property(fc.integer({ min: -5, max: 1e9 }), fc.double({ min: 0, max: 0.9999999, noNaN: true }), fc.constantFrom('full', 'equal' as const), (attempt, r, jitter) => {
        const d = backoffDelayMs({ initialMs: 50, maxMs: 30_000, jitter: jitter as 'full' | 'equal' }, attempt, () => r);
        return Number.isFinite(d) && d >= 0 && d <= 30_000;
      }),
      { seed: 11 },
    );
  });
});
