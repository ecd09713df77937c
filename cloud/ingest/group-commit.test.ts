import { describe, expect, it } from 'vitest';
import { GroupCommitter } from './group-commit.ts';

class Permanent extends Error {}

function committer(write: (items: number[]) => Promise<void>, poison: number[] = [], concurrency = 1) {
  return new GroupCommitter<number>({
    concurrency,
    maxBatchWeight: 100,
    weight: () => 1,
    write,
    isRetryable: (err) => !(err instanceof Permanent),
    onPoison: async (item) => void poison.push(item),
    backoff: { initialMs: 5, maxMs: 20 },
  });
}

describe('GroupCommitter', () => {
  it('groups items submitted together into one write and resolves each after it', async () => {
    const batches: number[][] = [];
    const c = committer(async (items) => void batches.push(items));
    await Promise.all(Array.from({ length: 250 }, (_, i) => c.submit(i)));
    expect(batches.map((b) => b.length)).toEqual([100, 100, 50]);
    expect(batches.flat()).toEqual(Array.from({ length: 250 }, (_, i) => i));
  });

  it('does not resolve before the write succeeds, and retries retryable failures', async () => {
    let failures = 3;
    const stored: number[] = [];
    const c = committer(async (items) => {
      if (failures-- > 0) throw new Error('store down');
      stored.push(...items);
    });
    let resolved = false;
    const p = c.submit(1).then(() => (resolved = true));
    await new Promise((r) => setTimeout(r, 2));
    expect(resolved).toBe(false);
    await p;
    expect(stored).toEqual([1]);
  });

  it('isolates the one item the store rejects permanently and stores the rest', async () => {
    const stored: number[] = [];
    const poison: number[] = [];
    const c = committer(async (items) => {
      if (items.includes(13)) throw new Permanent('bad point');
      stored.push(...items);
    }, poison);
    await Promise.all(Array.from({ length: 40 }, (_, i) => c.submit(i)));
    expect(poison).toEqual([13]);
    expect(stored.sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i).filter((i) => i !== 13));
  });

  it('on close, rejects (never acknowledges) what it could not write in time', async () => {
    const c = committer(async () => {
      throw new Error('store down');
    });
    const p = c.submit(1);
    await c.close(50);
    await expect(p).rejects.toThrow(/shut down/);
    await expect(c.submit(2)).rejects.toThrow(/shutting down/);
  });

  it('with two writes under way, acknowledges batches in arrival order even when a later one finishes first', async () => {
    let calls = 0;
    const c = committer(async () => {
      const n = calls++;
      await new Promise((r) => setTimeout(r, n === 0 ? 40 : 1)); // the first batch is the slowest
    }, [], 2);
    const order: number[] = [];
    const all = Array.from({ length: 250 }, (_, i) => c.submit(i).then(() => order.push(i)));
    await Promise.all(all);
    expect(calls).toBe(3);
    expect(order).toEqual(Array.from({ length: 250 }, (_, i) => i));
  });
});
