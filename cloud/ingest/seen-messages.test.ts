import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openOperationalDb, type OperationalDb } from '../db/operational-db.ts';
import { createSeenMessageStore, HUB_LEVEL_DEVICE, startSeenMessagePruning, type SeenMessageStore } from './seen-messages.ts';

const HOUR = 3_600_000;
let dir: string;
let db: OperationalDb;
let store: SeenMessageStore;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chiiki-seen-'));
  db = openOperationalDb(dir, 'normal');
  store = createSeenMessageStore(db);
});
afterEach(() => {
  db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('SeenMessageStore', () => {
  it('remembers (hub, device, message id); the same id at another hub or from another device is another message', () => {
    store.recordMany([{ hub: 'h1', device: 'd1', msgId: 'm1', seenAt: 1 }]);
    expect(store.has('h1', 'd1', 'm1')).toBe(true);
    expect(store.has('h2', 'd1', 'm1')).toBe(false);
    expect(store.has('h1', 'd1', 'm2')).toBe(false);
    expect(store.has('h1', 'd2', 'm1')).toBe(false); // issue 11: one device cannot use up another's ids
    expect(store.has('h1', HUB_LEVEL_DEVICE, 'm1')).toBe(false);
    store.recordMany([{ hub: 'h1', device: 'd2', msgId: 'm1', seenAt: 2 }]);
    expect(store.count()).toBe(2);
  });

  it('keeps the entries of a cloud.db from before the device was in the key, matching any device until pruned', () => {
    db.close();
    fs.rmSync(dir, { recursive: true, force: true });
    // The dedupe memory as the previous release left it: cloud.db's own migrations, keyed by (hub, msg_id).
    db = openOperationalDb(dir, 'normal');
    db.exec(`INSERT INTO seen_messages (hub, msg_id, seen_at) VALUES ('h1', 'before-upgrade', 5), ('h1', 'older', 1)`);
    store = createSeenMessageStore(db);
    expect(store.count()).toBe(2);
    expect(store.has('h1', 'd1', 'before-upgrade')).toBe(true); // a re-sent copy after the upgrade is still a copy
    expect(store.has('h1', 'd7', 'before-upgrade')).toBe(true);
    store.recordMany([{ hub: 'h1', device: 'd1', msgId: 'after', seenAt: 10 }]);
    expect(store.has('h1', 'd2', 'after')).toBe(false);
    expect(store.prune(2, 10)).toBe(1);
    expect(store.has('h1', 'd1', 'older')).toBe(false);
    db.close();
    db = openOperationalDb(dir, 'normal');
    store = createSeenMessageStore(db); // migrated once, not again
    expect(store.count()).toBe(2);
  });

  it('keeps the first time of an entry recorded twice', () => {
    store.recordMany([{ hub: 'h1', device: 'd1', msgId: 'm1', seenAt: 1 }, { hub: 'h1', device: 'd1', msgId: 'm1', seenAt: 5 }]);
    expect(store.count()).toBe(1);
    expect(store.prune(2, 10)).toBe(1);
  });

  it('survives a restart (it lives in cloud.db)', () => {
    store.recordMany([{ hub: 'h1', device: 'd1', msgId: 'm1', seenAt: 1 }]);
    db.close();
    db = openOperationalDb(dir, 'normal');
    store = createSeenMessageStore(db);
    expect(store.has('h1', 'd1', 'm1')).toBe(true);
  });

  it('prunes only entries older than the cut-off, oldest first, at most `limit` at a time', () => {
    store.recordMany(Array.from({ length: 10 }, (_, i) => ({ hub: 'h1', device: 'd1', msgId: `m${i}`, seenAt: i })));
    expect(store.prune(5, 3)).toBe(3);
    expect(store.has('h1', 'd1', 'm0')).toBe(false);
    expect(store.has('h1', 'd1', 'm3')).toBe(true);
    expect(store.prune(5, 100)).toBe(2);
    expect(store.count()).toBe(5);
  });
});

describe('startSeenMessagePruning', () => {
  it('forgets entries past the retention in bounded chunks per pass', async () => {
    const now = 1000 * HOUR;
    store.recordMany(Array.from({ length: 25 }, (_, i) => ({ hub: 'h1', device: 'd1', msgId: `old-${i}`, seenAt: now - 200 * HOUR })));
    store.recordMany([{ hub: 'h1', device: 'd1', msgId: 'recent', seenAt: now - HOUR }]);
    const pruning = startSeenMessagePruning({ store, retentionMs: 168 * HOUR, intervalMs: 60_000, now: () => now, logger: pino({ level: 'silent' }), chunk: 4, maxPerPass: 10 });
    try {
      expect(await pruning.runOnce()).toBe(10);
      expect(await pruning.runOnce()).toBe(10);
      expect(await pruning.runOnce()).toBe(5);
      expect(await pruning.runOnce()).toBe(0);
      expect(store.has('h1', 'd1', 'recent')).toBe(true);
      expect(store.count()).toBe(1);
    } finally {
      pruning.stop();
    }
  });
});
