import { describe, expect, it } from 'vitest';
import { MessageId } from '../../contract/index.ts';
import { createBootId, MessageIds } from './message-ids.ts';
import { createRng } from './seeded-rng.ts';

describe('MessageIds', () => {
  it('makes ids "<device>-<boot>-<seq>" that fit the MessageId schema and never repeat within a hub', () => {
    const ids = new MessageIds(createBootId(Date.UTC(2025, 10, 25), createRng(1).next));
    const seen = new Set<string>();
    for (let i = 0; i < 10_000; i++) {
      const id = ids.next(i % 2 ? 'drone-1' : 'locker-a');
      expect(MessageId.safeParse(id).success).toBe(true);
      seen.add(id);
    }
    expect(seen.size).toBe(10_000);
    expect(ids.next('wx')).toMatch(/^wx-[a-z0-9]+-10001$/);
  });

  it('shortens a long device id rather than exceed 64 characters, staying unique by the hub counter', () => {
    const ids = new MessageIds('m3x2kabcd1234');
    const long = 'a'.repeat(40);
    const [a, b] = [ids.next(long), ids.next(`${long.slice(0, 39)}b`)];
    for (const id of [a, b]) expect(MessageId.safeParse(id).success).toBe(true);
    expect(a).not.toBe(b);
  });

  it('gives a new boot id on every start, even within the same millisecond', () => {
    const t = Date.UTC(2025, 10, 25);
    const boots = new Set(Array.from({ length: 50 }, () => createBootId(t, Math.random)));
    expect(boots.size).toBeGreaterThan(45);
    for (const b of boots) expect(b.startsWith(t.toString(36))).toBe(true);
  });
});
