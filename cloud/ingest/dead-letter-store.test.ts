import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openOperationalDb, type OperationalDb } from '../db/operational-db.ts';
import { createDeadLetterStore, KEPT_PAYLOAD_BYTES, type DeadLetterInput, type DeadLetterLimits } from './dead-letter-store.ts';

/** The dead-letter store's bounds (issue 11): per hub in rows and bytes, and in total. */
const TOPIC = 'v1/r/h/sensor/wx/telemetry';
const LIMITS: DeadLetterLimits = { maxRows: 100, maxBytes: 1 << 30, maxRowsPerHub: 10, maxBytesPerHub: 200_000 };

let dir: string;
let db: OperationalDb;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chiiki-dead-letters-'));
  db = openOperationalDb(dir, 'normal');
});
afterEach(() => {
  db.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

let seq = 0;
const letter = (hub: string | null, payloadBytes = 10): DeadLetterInput => ({
  receivedAt: ++seq, region: 'r', hub, clientId: hub, topic: TOPIC, reason: 'malformed_json', detail: `letter ${seq}`, payload: Buffer.alloc(payloadBytes, 0x7b),
});
const details = (store: ReturnType<typeof createDeadLetterStore>, hub: string) => store.list({ hub, limit: 500 }).map((d) => d.detail);

describe('DeadLetterStore quotas', () => {
  it("evicts only the flooding hub's own oldest rows beyond its row quota", () => {
    const store = createDeadLetterStore(db, LIMITS);
    store.addMany([letter('victim'), letter('victim')]);
    const victim = details(store, 'victim');
    const evicted = store.addMany(Array.from({ length: 50 }, () => letter('flooder')));
    expect(evicted).toBe(40);
    expect(details(store, 'victim')).toEqual(victim);
    const kept = store.list({ hub: 'flooder', limit: 500 });
    expect(kept).toHaveLength(10);
    expect(kept.map((d) => d.detail)[0]).toBe(`letter ${seq}`); // the newest are kept
    expect(store.usage('flooder').rows).toBe(10);
  });

  it("evicts the hub's own oldest rows beyond its byte quota, counting kept payload, topic and detail", () => {
    const store = createDeadLetterStore(db, LIMITS);
    store.addMany([letter('victim', 100_000)]);
    for (let i = 0; i < 8; i++) store.addMany([letter('flooder', 70_000)]); // each keeps 64 KiB
    const usage = store.usage('flooder');
    expect(usage.bytes).toBeLessThanOrEqual(LIMITS.maxBytesPerHub);
    expect(usage.rows).toBe(Math.floor(LIMITS.maxBytesPerHub / (KEPT_PAYLOAD_BYTES + 40)));
    expect(store.usage('victim').rows).toBe(1);
    expect(store.list({ hub: 'flooder', limit: 500 }).every((d) => d.truncated && d.size === 70_000)).toBe(true);
  });

  it('keeps the total bound in rows and bytes, oldest of all first', () => {
    const store = createDeadLetterStore(db, { ...LIMITS, maxRows: 25, maxBytes: 5_000 });
    for (let h = 0; h < 5; h++) store.addMany(Array.from({ length: 8 }, () => letter(`hub-${h}`)));
    expect(store.count()).toBe(25);
    expect(store.usage('hub-0').rows).toBe(0);
    expect(store.usage('hub-4').rows).toBe(8);
    store.addMany([letter('hub-5', 4_000)]);
    expect(store.totalUsage().bytes).toBeLessThanOrEqual(5_000);
    expect(store.usage('hub-5').rows).toBe(1);
  });

  it('counts dead letters with no hub (a last will after its client left) as one bucket of their own', () => {
    const store = createDeadLetterStore(db, LIMITS);
    store.addMany([letter('h1'), ...Array.from({ length: 15 }, () => letter(null))]);
    expect(store.usage(null).rows).toBe(10);
    expect(store.usage('h1').rows).toBe(1);
  });

  it('reads the usage back from cloud.db after a restart', () => {
    const store = createDeadLetterStore(db, LIMITS);
    store.addMany([letter('h1', 1_000), letter('h1', 1_000), letter('h2')]);
    const before = { h1: store.usage('h1'), h2: store.usage('h2'), total: store.totalUsage() };
    db.close();
    db = openOperationalDb(dir, 'normal');
    const again = createDeadLetterStore(db, LIMITS);
    expect({ h1: again.usage('h1'), h2: again.usage('h2'), total: again.totalUsage() }).toEqual(before);
    again.addMany(Array.from({ length: 20 }, () => letter('h1')));
    expect(again.usage('h1').rows).toBe(10);
    expect(again.usage('h2').rows).toBe(1);
  });
});
