import { describe, expect, it } from 'vitest';
import { EventQueue } from './event-queue.ts';
import { createRng } from '../../simulators/devices/seeded-rng.ts';

describe('EventQueue (the virtual clock of planning mode)', () => {
  it('runs steps in time order, ties in the order they were scheduled, and moves the clock to each', () => {
    const q = new EventQueue(1_000);
    const rng = createRng(42);
    const scheduled: { at: number; label: string }[] = [];
    for (let i = 0; i < 500; i++) {
      const at = 1_000 + rng.int(0, 50) * 100; // many ties
      const label = `s${i}`;
      scheduled.push({ at, label });
      q.at(at, label, () => undefined);
    }
    const popped: { at: number; label: string; now: number }[] = [];
    for (let s = q.pop(); s; s = q.pop()) popped.push({ at: s.at, label: s.label, now: q.now });
    const expected = [...scheduled].sort((a, b) => a.at - b.at || Number(a.label.slice(1)) - Number(b.label.slice(1)));
    expect(popped.map((p) => p.label)).toEqual(expected.map((e) => e.label));
    expect(popped.every((p) => p.now === p.at)).toBe(true);
  });

  it('never schedules a step in the past', () => {
    const q = new EventQueue(5_000);
    q.at(1_000, 'late', () => undefined);
    q.after(-10, 'negative', () => undefined);
    expect(q.pop()!.at).toBe(5_000);
    expect(q.pop()!.at).toBe(5_000);
    expect(q.now).toBe(5_000);
    expect(q.pop()).toBeUndefined();
  });
});
