import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { openOperationalDb, type OperationalDb } from '../db/operational-db.ts';
import { createMemoryCommandStore, createSqliteCommandStore, effectiveState, type CommandRecord, type CommandStore } from './command-store.ts';

/** One suite, both implementations: the in-memory store used by unit tests cannot drift from the real one. */
const T = 1_764_000_000_000;
const dirs: string[] = [];
const dbs: OperationalDb[] = [];
afterAll(() => {
  for (const db of dbs) db.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const implementations: [string, () => CommandStore][] = [
  ['sqlite', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chiiki-commands-'));
    dirs.push(dir);
    const db = openOperationalDb(dir, 'normal');
    dbs.push(db);
    return createSqliteCommandStore(db);
  }],
  ['memory', createMemoryCommandStore],
];

const cmd = (id: string, over: Partial<CommandRecord> = {}): CommandRecord => ({
  id, hub: 'nomi-terai', region: 'ishikawa-nomi', device: 'locker-a', kind: 'locker', command: 'locker.unlock',
  args: { compartment: 'A02', note: null, force: false, n: 2 }, issuedAt: T, expiresAt: T + 60_000, state: 'pending', detail: null, ackedAt: null,
  ...over,
});

describe.each(implementations)('CommandStore (%s)', (_name, create) => {
  let store: CommandStore;
  beforeEach(() => {
    store = create();
  });

  it('keeps what was inserted, args included', () => {
    store.insert(cmd('c1'));
    expect(store.get('c1')).toEqual(cmd('c1'));
    expect(store.get('nope')).toBeNull();
    expect(() => store.insert(cmd('c1'))).toThrow();
  });

  it('lists a hub\'s commands newest first, by state as shown at `now`, up to the limit', () => {
    store.insert(cmd('old', { issuedAt: T - 10_000, expiresAt: T - 1 }));
    store.insert(cmd('live', { issuedAt: T, expiresAt: T + 60_000 }));
    store.insert(cmd('done', { issuedAt: T + 1, state: 'done', ackedAt: T + 5 }));
    store.insert(cmd('hub-expired', { issuedAt: T + 2, state: 'expired', ackedAt: T + 6 }));
    store.insert(cmd('other-hub', { hub: 'nomi-neagari' }));
    const ids = (q: { state?: CommandRecord['state']; limit?: number }) => store.list({ hub: 'nomi-terai', now: T + 10, limit: q.limit ?? 50, state: q.state }).map((c) => c.id);
    expect(ids({})).toEqual(['hub-expired', 'done', 'live', 'old']);
    expect(ids({ limit: 2 })).toEqual(['hub-expired', 'done']);
    expect(ids({ state: 'pending' })).toEqual(['live']);
    expect(ids({ state: 'expired' })).toEqual(['hub-expired', 'old']);
    expect(ids({ state: 'done' })).toEqual(['done']);
    expect(ids({ state: 'failed' })).toEqual([]);
  });

  it('gives the pending, unexpired commands of a hub oldest first', () => {
    store.insert(cmd('b', { issuedAt: T + 2 }));
    store.insert(cmd('a', { issuedAt: T + 1 }));
    store.insert(cmd('gone', { issuedAt: T, expiresAt: T + 5 }));
    store.insert(cmd('done', { state: 'done' }));
    store.insert(cmd('other-hub', { hub: 'nomi-neagari' }));
    expect(store.pendingFor('nomi-terai', T + 5, 10).map((c) => c.id)).toEqual(['a', 'b']);
    expect(store.pendingFor('nomi-terai', T + 5, 1).map((c) => c.id)).toEqual(['a']);
  });

  it('sets a result only while the state is still the expected one', () => {
    store.insert(cmd('c1'));
    expect(store.setResult('c1', 'done', { state: 'failed', detail: 'x', ackedAt: T })).toBe(false);
    expect(store.setResult('c1', 'pending', { state: 'done', detail: 'opened', ackedAt: T + 3 })).toBe(true);
    expect(store.get('c1')).toMatchObject({ state: 'done', detail: 'opened', ackedAt: T + 3 });
    expect(store.setResult('c1', 'pending', { state: 'failed', detail: null, ackedAt: T + 4 })).toBe(false);
    expect(store.setResult('nope', 'pending', { state: 'done', detail: null, ackedAt: T })).toBe(false);
  });

  it('keeps every result set, oldest first, including one that was superseded', () => {
    store.insert(cmd('c1'));
    store.setResult('c1', 'pending', { state: 'failed', detail: 'the device did not answer within 10 s', ackedAt: T + 10 });
    store.setResult('c1', 'failed', { state: 'done', detail: 'opened', ackedAt: T + 12 });
    expect(store.history('c1')).toEqual([
      { from: 'pending', state: 'failed', detail: 'the device did not answer within 10 s', ackedAt: T + 10 },
      { from: 'failed', state: 'done', detail: 'opened', ackedAt: T + 12 },
    ]);
    expect(store.history('nope')).toEqual([]);
  });
});

describe('effectiveState', () => {
  it('shows a pending command as expired from its expiry on; any other state as stored', () => {
    expect(effectiveState({ state: 'pending', expiresAt: T }, T - 1)).toBe('pending');
    expect(effectiveState({ state: 'pending', expiresAt: T }, T)).toBe('expired');
    expect(effectiveState({ state: 'done', expiresAt: T }, T + 1)).toBe('done');
  });
});
