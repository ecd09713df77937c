import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { openTestDatabase, type TestDatabase } from '../../test/support/test-database.ts';
import { createMemorySeenMessageStore, HUB_LEVEL_DEVICE, openSeenMessageStore, startSeenMessagePruning, type SeenMessage, type SeenMessageStore } from './seen-messages.ts';

const HOUR = 3_600_000;
const KINDS = ['sqlite', 'postgres', 'memory'] as const;
const entry = (hub: string, device: string, msgId: string, seenAt: number): SeenMessage => ({ hub, device, msgId, seenAt });

/** The dedupe memory's contract (issue 3, issue 11, issue 14): every adapter passes it. */
describe.each(KINDS)('SeenMessageStore on %s', (kind) => {
  let t: TestDatabase | null = null;
  let store: SeenMessageStore;
  const open = async () => {
    if (kind === 'memory') return (store = createMemorySeenMessageStore());
    t ??= await openTestDatabase(kind);
    return (store = await openSeenMessageStore(t.db));
  };
  afterEach(async () => {
    await t?.cleanup();
    t = null;
  });

  it('remembers (hub, device, message id); the same id at another hub or from another device is another message', async () => {
    await open();
    expect(await store.recordNew([entry('h1', 'd1', 'm1', 1)])).toEqual([true]);
    expect(await store.has('h1', 'd1', 'm1')).toBe(true);
    expect(await store.has('h2', 'd1', 'm1')).toBe(false);
    expect(await store.has('h1', 'd1', 'm2')).toBe(false);
    expect(await store.has('h1', 'd2', 'm1')).toBe(false); // issue 11: one device cannot use up another's ids
    expect(await store.has('h1', HUB_LEVEL_DEVICE, 'm1')).toBe(false);
    expect(await store.recordNew([entry('h1', 'd2', 'm1', 2), entry('h1', 'd1', 'm1', 3)])).toEqual([true, false]);
    expect(await store.count()).toBe(2);
  });

  it('tells per entry which were new in one call: a copy in the same call, or remembered before, is not', async () => {
    await open();
    await store.recordNew([entry('h1', 'd1', 'old', 1)]);
    const batch = [entry('h1', 'd1', 'a', 5), entry('h1', 'd1', 'old', 5), entry('h1', 'd1', 'a', 6), entry('h2', HUB_LEVEL_DEVICE, 'a', 6)];
    expect(await store.recordNew(batch)).toEqual([true, false, false, true]);
    expect(await store.recordNew([])).toEqual([]);
    expect(await store.count()).toBe(3);
  });

  it('gives the entries seen last, oldest of them first', async () => {
    await open();
    await store.recordNew([entry('h1', 'd1', 'c', 30), entry('h1', 'd1', 'a', 10), entry('h2', '', 'b', 20)]);
    expect(await store.newest(2)).toEqual([entry('h2', '', 'b', 20), entry('h1', 'd1', 'c', 30)]);
    expect(await store.newest(10)).toHaveLength(3);
  });

  it('keeps the first time of an entry recorded twice', async () => {
    await open();
    await store.recordNew([entry('h1', 'd1', 'm1', 1), entry('h1', 'd1', 'm1', 5)]);
    expect(await store.count()).toBe(1);
    expect(await store.prune(2, 10)).toBe(1);
  });

  it('takes more entries than one statement holds', async () => {
    await open();
    const many = Array.from({ length: 2_500 }, (_, i) => entry('h1', 'd1', `m${i}`, i));
    expect((await store.recordNew(many)).every(Boolean)).toBe(true);
    expect((await store.recordNew(many.slice(2_000).concat([entry('h1', 'd1', 'new', 1)]))).filter(Boolean)).toHaveLength(1);
    expect(await store.count()).toBe(2_501);
  });

  it('prunes only entries older than the cut-off, oldest first, at most `limit` at a time', async () => {
    await open();
    await store.recordNew(Array.from({ length: 10 }, (_, i) => entry('h1', 'd1', `m${i}`, i)));
    expect(await store.prune(5, 3)).toBe(3);
    expect(await store.has('h1', 'd1', 'm0')).toBe(false);
    expect(await store.has('h1', 'd1', 'm3')).toBe(true);
    expect(await store.prune(5, 100)).toBe(2);
    expect(await store.count()).toBe(5);
  });

  it('forgets entries past the retention in bounded chunks per pass', async () => {
    await open();
    const now = 1000 * HOUR;
    await store.recordNew(Array.from({ length: 25 }, (_, i) => entry('h1', 'd1', `old-${i}`, now - 200 * HOUR)));
    await store.recordNew([entry('h1', 'd1', 'recent', now - HOUR)]);
    const pruning = startSeenMessagePruning({ store, retentionMs: 168 * HOUR, intervalMs: 60_000, now: () => now, logger: pino({ level: 'silent' }), chunk: 4, maxPerPass: 10 });
    try {
      expect(await pruning.runOnce()).toBe(10);
      expect(await pruning.runOnce()).toBe(10);
      expect(await pruning.runOnce()).toBe(5);
      expect(await pruning.runOnce()).toBe(0);
      expect(await store.has('h1', 'd1', 'recent')).toBe(true);
      expect(await store.count()).toBe(1);
    } finally {
      pruning.stop();
    }
  });

  it('prunes only while this node holds the global lease (issue 15: one node prunes for the cluster)', async () => {
    await open();
    const now = 1000 * HOUR;
    await store.recordNew(Array.from({ length: 3 }, (_, i) => entry('h1', 'd1', `old-${i}`, now - 200 * HOUR)));
    let holds = false;
    const pruning = startSeenMessagePruning({ store, retentionMs: 168 * HOUR, intervalMs: 60_000, now: () => now, logger: pino({ level: 'silent' }), mayRun: () => holds });
    try {
      expect(await pruning.runOnce()).toBe(0);
      expect(await store.count()).toBe(3);
      holds = true;
      expect(await pruning.runOnce()).toBe(3);
    } finally {
      pruning.stop();
    }
  });

  if (kind === 'memory') return;

  it('survives a restart (it lives in the operational database)', async () => {
    await open();
    await store.recordNew([entry('h1', 'd1', 'm1', 1)]);
    store = await openSeenMessageStore(await t!.reopen());
    expect(await store.has('h1', 'd1', 'm1')).toBe(true);
    expect(await store.recordNew([entry('h1', 'd1', 'm1', 2)])).toEqual([false]);
  });

  it('recorded in a transaction that rolls back, an entry is not remembered', async () => {
    await open();
    await expect(t!.db.sql.transaction(async (tx) => {
      expect(await store.recordNew([entry('h1', 'd1', 'm1', 1)], tx)).toEqual([true]);
      throw new Error('the batch failed');
    })).rejects.toThrow('the batch failed');
    expect(await store.has('h1', 'd1', 'm1')).toBe(false);
    expect(await store.recordNew([entry('h1', 'd1', 'm1', 2)])).toEqual([true]);
  });

  // Two cloud processes share one PostgreSQL (SQLite has one process, so one writer).
  if (kind === 'postgres') it('two writers recording the same keys at once: each key is new for exactly one of them', async () => {
    await open();
    const other = await openSeenMessageStore(await t!.reopen());
    const keys = (from: number) => Array.from({ length: 200 }, (_, i) => entry('h1', 'd1', `m${(from + i) % 300}`, 1));
    const rounds = await Promise.all(Array.from({ length: 6 }, (_, i) => (i % 2 ? other : store).recordNew(keys(i * 50))));
    const newCount = rounds.flat().filter(Boolean).length;
    expect(newCount).toBe(300);
    expect(await store.count()).toBe(300);
  });
});

describe('SeenMessageStore on sqlite, an installation from before the device was in the key', () => {
  let t: TestDatabase | null = null;
  afterEach(async () => t?.cleanup());

  it('keeps its entries, matching any device until pruned', async () => {
    t = await openTestDatabase('sqlite');
    // The dedupe memory as the previous release left it: the legacy steps, keyed by (hub, msg_id).
    const legacy = t.db.legacySqlite!;
    legacy.exec(`INSERT INTO seen_messages (hub, msg_id, seen_at) VALUES ('h1', 'before-upgrade', 5), ('h1', 'older', 1)`);
    let store = await openSeenMessageStore(t.db);
    expect(await store.count()).toBe(2);
    expect(await store.has('h1', 'd1', 'before-upgrade')).toBe(true); // a re-sent copy after the upgrade is still a copy
    expect(await store.has('h1', 'd7', 'before-upgrade')).toBe(true);
    expect(await store.recordNew([entry('h1', 'd1', 'before-upgrade', 9), entry('h1', 'd1', 'after', 10)])).toEqual([false, true]);
    expect(await store.has('h1', 'd2', 'after')).toBe(false);
    expect(await store.prune(2, 10)).toBe(1);
    expect(await store.has('h1', 'd1', 'older')).toBe(false);
    store = await openSeenMessageStore(await t.reopen()); // migrated once, not again
    expect(await store.count()).toBe(3);
  });
});
