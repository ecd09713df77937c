import { describe, expect, it } from 'vitest';
import { AnonymousAuditBudget } from './anonymous-audit-budget.ts';

describe('AnonymousAuditBudget', () => {
  it('records the first calls of a window, says once that the limit was reached, then only counts', () => {
    const b = new AnonymousAuditBudget(3, 60_000);
    const decisions = Array.from({ length: 6 }, (_, i) => b.admit(1000 + i).decision);
    expect(decisions).toEqual(['record', 'record', 'record', 'limit_reached', 'count', 'count']);
  });

  it('summarises the unrecorded calls once when the next window starts, and records again', () => {
    const b = new AnonymousAuditBudget(2, 60_000);
    for (let i = 0; i < 10; i++) b.admit(1000 + i);
    const next = b.admit(61_000);
    expect(next).toEqual({ decision: 'record', summary: { count: 8, from: 1002, to: 1009 } });
    expect(b.admit(61_001).summary).toBeNull();
  });

  it('a timer flush summarises a flood that stopped, once, and only after its window is over', () => {
    const b = new AnonymousAuditBudget(1, 60_000);
    for (let i = 0; i < 5; i++) b.admit(0 + i);
    expect(b.flush(59_999)).toBeNull();
    expect(b.flush(60_000)).toEqual({ count: 4, from: 1, to: 4 });
    expect(b.flush(120_000)).toBeNull();
    expect(b.admit(120_001)).toEqual({ decision: 'record', summary: null });
  });
});
