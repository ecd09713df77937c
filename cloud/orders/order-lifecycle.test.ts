import { describe, expect, it } from 'vitest';
import { assertTransition, canTransition, FINAL_STATES, ORDER_STATES, type OrderState } from './order-lifecycle.ts';

describe('order lifecycle', () => {
  it('allows the delivery path for lockers and landing sites', () => {
    const path = (...s: OrderState[]) => s.slice(1).every((to, i) => canTransition(s[i]!, to));
    expect(path('pending', 'assigned', 'in_flight', 'in_locker', 'picked_up')).toBe(true);
    expect(path('pending', 'assigned', 'in_flight', 'delivered')).toBe(true);
    expect(path('pending', 'held', 'pending', 'assigned')).toBe(true);
    expect(path('pending', 'assigned', 'pending', 'assigned')).toBe(true);
  });

  it('a ground-round order goes on board, then delivered or failed; once on board it cannot be cancelled (issue 12 (2))', () => {
    const path = (...s: OrderState[]) => s.slice(1).every((to, i) => canTransition(s[i]!, to));
    expect(path('pending', 'assigned', 'on_board', 'delivered')).toBe(true);
    expect(path('pending', 'assigned', 'on_board', 'failed')).toBe(true);
    expect(canTransition('on_board', 'cancelled')).toBe(false);
    expect(canTransition('on_board', 'pending')).toBe(false);
    expect(canTransition('pending', 'on_board')).toBe(false);
  });

  it('never leaves a final state and never skips the flight', () => {
    for (const f of FINAL_STATES) for (const to of ORDER_STATES) expect(canTransition(f, to)).toBe(false);
    expect(canTransition('pending', 'in_locker')).toBe(false);
    expect(canTransition('in_flight', 'cancelled')).toBe(false); // a parcel in the air cannot be cancelled
    expect(() => assertTransition('picked_up', 'pending')).toThrow(/picked_up to pending/);
  });
});
