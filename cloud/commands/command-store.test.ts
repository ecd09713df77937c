import { afterEach, describe, expect, it } from 'vitest';
import { openTestDatabase, type TestDatabase } from '../../test/support/test-database.ts';
import { createMemoryCommandStore, effectiveState, openCommandStore, type CommandRecord, type CommandStore } from './command-store.ts';

/** One suite, every implementation (SQLite, PostgreSQL, memory): the in-memory store used by unit tests cannot drift from the real ones. */
const T = 1_764_000_000_000;
const KINDS = ['sqlite', 'postgres', 'memory'] as const;

const cmd = (id: string, over: Partial<CommandRecord> = {}): CommandRecord => ({
  id, hub: 'nomi-terai', region: 'ishikawa-nomi', device: 'locker-a', kind: 'locker', command: 'locker.unlock',
  args: { compartment: 'A02', note: null, force: false, n: 2 }, issuedAt: T, expiresAt: T + 60_000, state: 'pending', detail: null, ackedAt: null,
  ...over,
});

describe.each(KINDS)('CommandStore (%s)', (kind) => {
  let t: TestDatabase | null = null;
  let store: CommandStore;
  const open = async () => {
    if (kind === 'memory') return (store = createMemoryCommandStore());
    t ??= await openTestDatabase(kind);
    return (store = await openCommandStore(t.db));
  };
  afterEach(async () => {
    await t?.cleanup();
    t = null;
  });

  it('keeps what was inserted, args included', async () => {
    await open();
    await store.insert(cmd('c1'));
    expect(await store.get('c1')).toEqual(cmd('c1'));
    expect(await store.get('nope')).toBeNull();
    await expect(store.insert(cmd('c1'))).rejects.toThrow();
  });

  it('lists a hub\'s commands newest first, by state as shown at `now`, up to the limit', async () => {
    await open();
    await store.insert(cmd('old', { issuedAt: T - 10_000, expiresAt: T - 1 }));
    await store.insert(cmd('live', { issuedAt: T, expiresAt: T + 60_000 }));
    await store.insert(cmd('done', { issuedAt: T + 1, state: 'done', ackedAt: T + 5 }));
    await store.insert(cmd('hub-expired', { issuedAt: T + 2, state: 'expired', ackedAt: T + 6 }));
    await store.insert(cmd('other-hub', { hub: 'nomi-neagari' }));
    const ids = async (q: { state?: CommandRecord['state']; limit?: number }) => (await store.list({ hub: 'nomi-terai', now: T + 10, limit: q.limit ?? 50, state: q.state })).map((c) => c.id);
    expect(await ids({})).toEqual(['hub-expired', 'done', 'live', 'old']);
    expect(await ids({ limit: 2 })).toEqual(['hub-expired', 'done']);
    expect(await ids({ state: 'pending' })).toEqual(['live']);
    expect(await ids({ state: 'expired' })).toEqual(['hub-expired', 'old']);
    expect(await ids({ state: 'done' })).toEqual(['done']);
    expect(await ids({ state: 'failed' })).toEqual([]);
  });

  it('gives the pending, unexpired commands of a hub oldest first', async () => {
    await open();
    await store.insert(cmd('b', { issuedAt: T + 2 }));
    await store.insert(cmd('a', { issuedAt: T + 1 }));
    await store.insert(cmd('gone', { issuedAt: T, expiresAt: T + 5 }));
    await store.insert(cmd('done', { state: 'done' }));
    await store.insert(cmd('other-hub', { hub: 'nomi-neagari' }));
    expect((await store.pendingFor(['nomi-terai'], T + 5, 10)).map((c) => c.id)).toEqual(['a', 'b']);
    expect((await store.pendingFor(['nomi-terai'], T + 5, 1)).map((c) => c.id)).toEqual(['a']);
    expect(await store.pendingFor([], T + 5, 10)).toEqual([]);
  });

  it('gives the pending commands of many hubs in one call: each hub oldest first, at most the limit per hub', async () => {
    await open();
    await store.insert(cmd('t2', { issuedAt: T + 2 }));
    await store.insert(cmd('t1', { issuedAt: T + 1 }));
    await store.insert(cmd('t3', { issuedAt: T + 3 }));
    await store.insert(cmd('n1', { hub: 'nomi-neagari', issuedAt: T + 1 }));
    await store.insert(cmd('n-done', { hub: 'nomi-neagari', state: 'done' }));
    await store.insert(cmd('x1', { hub: 'nomi-other' }));
    const byHub = (cs: CommandRecord[]) => {
      const m: Record<string, string[]> = {};
      for (const c of cs) (m[c.hub] ??= []).push(c.id);
      return m;
    };
    const got = await store.pendingFor(['nomi-terai', 'nomi-neagari', 'nomi-nowhere'], T + 5, 2);
    expect(byHub(got)).toEqual({ 'nomi-terai': ['t1', 't2'], 'nomi-neagari': ['n1'] });
    // Each hub's commands come together.
    expect(got.map((c) => c.hub).filter((h, i, a) => i === 0 || a[i - 1] !== h)).toHaveLength(2);
    // Hub ids are data, not SQL: quotes, brackets and JSON in them match nothing and break nothing.
    expect(await store.pendingFor(["x' OR 1=1 --", '"]', 'nomi-terai"'], T + 5, 10)).toEqual([]);
  });

  it('sets a result only while the state is still the expected one', async () => {
    await open();
    await store.insert(cmd('c1'));
    expect(await store.setResult('c1', 'done', { state: 'failed', detail: 'x', ackedAt: T })).toBe(false);
    expect(await store.setResult('c1', 'pending', { state: 'done', detail: 'opened', ackedAt: T + 3 })).toBe(true);
    expect(await store.get('c1')).toMatchObject({ state: 'done', detail: 'opened', ackedAt: T + 3 });
    expect(await store.setResult('c1', 'pending', { state: 'failed', detail: null, ackedAt: T + 4 })).toBe(false);
    expect(await store.setResult('nope', 'pending', { state: 'done', detail: null, ackedAt: T })).toBe(false);
  });

  it('keeps every result set, oldest first, including one that was superseded', async () => {
    await open();
    await store.insert(cmd('c1'));
    await store.setResult('c1', 'pending', { state: 'failed', detail: 'the device did not answer within 10 s', ackedAt: T + 10 });
    await store.setResult('c1', 'failed', { state: 'done', detail: 'opened', ackedAt: T + 12 });
    expect(await store.history('c1')).toEqual([
      { from: 'pending', state: 'failed', detail: 'the device did not answer within 10 s', ackedAt: T + 10 },
      { from: 'failed', state: 'done', detail: 'opened', ackedAt: T + 12 },
    ]);
    expect(await store.history('nope')).toEqual([]);
  });

  if (kind !== 'memory') it("set in the caller's transaction that rolls back, a result and its history entry are not kept", async () => {
    await open();
    await store.insert(cmd('c1'));
    await expect(t!.db.sql.transaction(async (tx) => {
      expect(await store.setResult('c1', 'pending', { state: 'done', detail: 'opened', ackedAt: T + 3 }, tx)).toBe(true);
      expect((await store.get('c1', tx))!.state).toBe('done');
      throw new Error('the batch failed');
    })).rejects.toThrow('the batch failed');
    expect((await store.get('c1'))!.state).toBe('pending');
    expect(await store.history('c1')).toEqual([]);
  });

  // Two cloud processes on one PostgreSQL (SQLite has one process, so one writer).
  if (kind === 'postgres') it('of two writers setting a result from the same state at once, exactly one wins', async () => {
    await open();
    const other = await openCommandStore(await t!.reopen());
    const ids = Array.from({ length: 20 }, (_, i) => `c${i}`);
    for (const id of ids) await store.insert(cmd(id));
    const wins = await Promise.all(ids.flatMap((id) => [
      store.setResult(id, 'pending', { state: 'done', detail: 'a', ackedAt: T + 1 }),
      other.setResult(id, 'pending', { state: 'duplicate', detail: 'b', ackedAt: T + 2 }),
    ]));
    expect(wins.filter(Boolean)).toHaveLength(ids.length);
    for (const id of ids) expect(await store.history(id)).toHaveLength(1);
  });
});

describe('effectiveState', () => {
  it('shows a pending command as expired from its expiry on; any other state as stored', () => {
    expect(effectiveState({ state: 'pending', expiresAt: T }, T - 1)).toBe('pending');
    expect(effectiveState({ state: 'pending', expiresAt: T }, T)).toBe('expired');
    expect(effectiveState({ state: 'done', expiresAt: T }, T + 1)).toBe('done');
  });
});
