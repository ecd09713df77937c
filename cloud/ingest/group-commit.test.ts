import { afterEach, describe, expect, it, vi } from 'vitest';
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

  it('keeps acknowledging later batches when dead-lettering a poisoned item throws, and leaves that item unacknowledged (issue 12, defect 9)', async () => {
    const deadLetterFailures: number[] = [];
    let deadLetterThrows = 1;
    const c = new GroupCommitter<number>({
      maxBatchWeight: 100, weight: () => 1, concurrency: 2, backoff: { initialMs: 5, maxMs: 20 },
      write: async (items) => {
        if (items.includes(13)) throw new Permanent('bad point');
      },
      isRetryable: (err) => !(err instanceof Permanent),
      onPoison: async () => {
        if (deadLetterThrows-- > 0) throw new Error('SQLITE_FULL: database or disk is full');
      },
      onPoisonFailed: (item) => void deadLetterFailures.push(item),
    });
    const poisoned = c.submit(13);
    const sibling = c.submit(12); // same batch, stored
    await expect(poisoned).rejects.toThrow(/dead letter failed/);
    await sibling;
    expect(deadLetterFailures).toEqual([13]);
    // Later batches are still acknowledged; the re-sent poisoned copy is dead-lettered and acknowledged this time.
    await Promise.all(Array.from({ length: 20 }, (_, i) => c.submit(100 + i)));
    await c.submit(13);
    expect(deadLetterFailures).toEqual([13]);
  });

  it('applies side effects in arrival order when a later batch finishes writing first (issue 12, defect 8)', async () => {
    let releaseFirst!: () => void;
    const firstHeld = new Promise<void>((r) => (releaseFirst = r));
    let calls = 0;
    const applied: number[] = [];
    const c = new GroupCommitter<number>({
      maxBatchWeight: 100, weight: () => 1, concurrency: 2,
      write: async () => {
        if (calls++ === 0) await firstHeld;
      },
      isRetryable: () => true,
      onPoison: async () => undefined,
      onCommitted: (items) => void applied.push(...items),
    });
    const first = c.submit(1);
    await expect.poll(() => calls).toBe(1);
    const second = c.submit(2);
    await expect.poll(() => calls).toBe(2); // the second batch's write is under way (and done) while the first is held
    await new Promise((r) => setImmediate(r));
    expect(applied).toEqual([]);
    releaseFirst();
    await Promise.all([first, second]);
    expect(applied).toEqual([1, 2]);
  });

  describe('pacing (issue 17: fewer SQLite commits in a reconnect storm)', () => {
    afterEach(() => void vi.useRealTimers());
    const paced = (batches: number[][]) => new GroupCommitter<number>({
      maxBatchWeight: 100, weight: () => 1, write: async (items) => void batches.push(items), isRetryable: () => true,
      onPoison: async () => undefined, concurrency: 2, minIntervalMs: 20,
    });

    it('writes an item after a quiet spell at once, and gathers what comes within minIntervalMs of a batch into the next one', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'performance'] });
      const batches: number[][] = [];
      const c = paced(batches);
      const done = [c.submit(1)];
      await vi.advanceTimersByTimeAsync(1);
      expect(batches).toEqual([[1]]); // nothing before it: no wait
      for (let i = 2; i <= 9; i++) {
        done.push(c.submit(i));
        await vi.advanceTimersByTimeAsync(2); // one every 2 ms: a flood
      }
      expect(batches).toEqual([[1]]);
      await vi.advanceTimersByTimeAsync(4); // 21 ms after the first batch
      expect(batches).toEqual([[1], [2, 3, 4, 5, 6, 7, 8, 9]]);
      await Promise.all(done);
      await vi.advanceTimersByTimeAsync(100); // quiet again
      const late = c.submit(10);
      await vi.advanceTimersByTimeAsync(1);
      expect(batches.at(-1)).toEqual([10]);
      await late;
    });

    it('does not hold anything back when shutting down', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'performance'] });
      const batches: number[][] = [];
      const c = paced(batches);
      const first = c.submit(1);
      await vi.advanceTimersByTimeAsync(1);
      const second = c.submit(2);
      const closed = c.close(1_000);
      await vi.advanceTimersByTimeAsync(1);
      expect(batches).toEqual([[1], [2]]);
      await Promise.all([first, second, closed]);
    });
  });

  describe('linger (issue 17: fewer, larger telemetry writes)', () => {
    afterEach(() => void vi.useRealTimers());
    const lingering = (batches: number[][]) => new GroupCommitter<number>({
      maxBatchWeight: 100, weight: () => 1, write: async (items) => void batches.push(items), isRetryable: () => true,
      onPoison: async () => undefined, concurrency: 2, linger: { maxDelayMs: 50, minWeight: 10 },
    });

    it('holds a light batch until its oldest item is maxDelayMs old, and writes everything that came meanwhile together', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'performance'] });
      const batches: number[][] = [];
      const c = lingering(batches);
      const done = [c.submit(1)];
      await vi.advanceTimersByTimeAsync(30);
      done.push(c.submit(2), c.submit(3));
      await vi.advanceTimersByTimeAsync(19);
      expect(batches).toEqual([]);
      await vi.advanceTimersByTimeAsync(2);
      expect(batches).toEqual([[1, 2, 3]]);
      await Promise.all(done);
    });

    it('writes at once when the queue reaches minWeight, and when shutting down', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'performance'] });
      const batches: number[][] = [];
      const c = lingering(batches);
      const full = Array.from({ length: 10 }, (_, i) => c.submit(i));
      await vi.advanceTimersByTimeAsync(1);
      expect(batches).toEqual([Array.from({ length: 10 }, (_, i) => i)]);
      await Promise.all(full);
      const last = c.submit(99);
      await vi.advanceTimersByTimeAsync(1);
      expect(batches).toHaveLength(1);
      const closed = c.close(1_000);
      await vi.advanceTimersByTimeAsync(1);
      expect(batches.at(-1)).toEqual([99]);
      await Promise.all([last, closed]);
    });
  });
});
