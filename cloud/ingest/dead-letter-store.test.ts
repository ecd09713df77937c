import { afterEach, describe, expect, it } from 'vitest';
import { openTestDatabase, SQL_DATABASES, type TestDatabase } from '../../test/support/test-database.ts';
import { KEPT_PAYLOAD_BYTES, openDeadLetterStore, type DeadLetterInput, type DeadLetterLimits, type DeadLetterStore } from './dead-letter-store.ts';

/** The dead-letter store's contract (issue 11 bounds; issue 14: the same on SQLite and PostgreSQL). */
const TOPIC = 'v1/r/h/sensor/wx/telemetry';
const LIMITS: DeadLetterLimits = { maxRows: 100, maxBytes: 1 << 30, maxRowsPerHub: 10, maxBytesPerHub: 200_000 };

let seq = 0;
const letter = (hub: string | null, payloadBytes = 10): DeadLetterInput => ({
  receivedAt: ++seq, region: 'r', hub, clientId: hub, topic: TOPIC, reason: 'malformed_json', detail: `letter ${seq}`, payload: Buffer.alloc(payloadBytes, 0x7b),
});
const details = async (store: DeadLetterStore, hub: string) => (await store.list({ hub, limit: 500 })).map((d) => d.detail);

describe.each(SQL_DATABASES)('DeadLetterStore on %s', (kind) => {
  let t: TestDatabase | null = null;
  const open = async (limits = LIMITS) => {
    t ??= await openTestDatabase(kind);
    return openDeadLetterStore(t.db, limits);
  };
  afterEach(async () => {
    await t?.cleanup();
    t = null;
  });

  it('keeps a message as it came: payload as text or base64, truncated beyond the kept bytes, newest first', async () => {
    const store = await open();
    const binary = Buffer.from([0xff, 0x00, 0x7b]);
    await store.addMany([letter('h1'), { ...letter('h1'), payload: binary }, letter('h1', KEPT_PAYLOAD_BYTES + 5)]);
    const [big, bin, text] = await store.list({ limit: 10 });
    expect(big).toMatchObject({ hub: 'h1', region: 'r', size: KEPT_PAYLOAD_BYTES + 5, truncated: true, reason: 'malformed_json', topic: TOPIC });
    expect(bin).toMatchObject({ payloadText: null, payloadBase64: binary.toString('base64'), truncated: false, size: 3 });
    expect(text).toMatchObject({ payloadText: '{'.repeat(10), payloadBase64: null });
    expect(new Date(text!.receivedAt).getTime()).toBe(seq - 2);
    expect(await store.list({ limit: 10, beforeId: bin!.id })).toEqual([text]);
    expect(await store.list({ limit: 10, reason: 'schema' })).toEqual([]);
    expect(await store.count()).toBe(3);
  });

  it("evicts only the flooding hub's own oldest rows beyond its row quota", async () => {
    const store = await open();
    await store.addMany([letter('victim'), letter('victim')]);
    const victim = await details(store, 'victim');
    const evicted = await store.addMany(Array.from({ length: 50 }, () => letter('flooder')));
    expect(evicted).toBe(40);
    expect(await details(store, 'victim')).toEqual(victim);
    const kept = await store.list({ hub: 'flooder', limit: 500 });
    expect(kept).toHaveLength(10);
    expect(kept.map((d) => d.detail)[0]).toBe(`letter ${seq}`); // the newest are kept
    expect((await store.usage('flooder')).rows).toBe(10);
  });

  it("evicts the hub's own oldest rows beyond its byte quota, counting kept payload, topic and detail", async () => {
    const store = await open();
    await store.addMany([letter('victim', 100_000)]);
    for (let i = 0; i < 8; i++) await store.addMany([letter('flooder', 70_000)]); // each keeps 64 KiB
    const usage = await store.usage('flooder');
    expect(usage.bytes).toBeLessThanOrEqual(LIMITS.maxBytesPerHub);
    expect(usage.rows).toBe(Math.floor(LIMITS.maxBytesPerHub / (KEPT_PAYLOAD_BYTES + 40)));
    expect((await store.usage('victim')).rows).toBe(1);
    expect((await store.list({ hub: 'flooder', limit: 500 })).every((d) => d.truncated && d.size === 70_000)).toBe(true);
  });

  it('keeps the total bound in rows and bytes, oldest of all first', async () => {
    const store = await open({ ...LIMITS, maxRows: 25, maxBytes: 5_000 });
    for (let h = 0; h < 5; h++) await store.addMany(Array.from({ length: 8 }, () => letter(`hub-${h}`)));
    expect(await store.count()).toBe(25);
    expect((await store.usage('hub-0')).rows).toBe(0);
    expect((await store.usage('hub-4')).rows).toBe(8);
    await store.addMany([letter('hub-5', 4_000)]);
    expect((await store.totalUsage()).bytes).toBeLessThanOrEqual(5_000);
    expect((await store.usage('hub-5')).rows).toBe(1);
  });

  it('counts dead letters with no hub (a last will after its client left) as one bucket of their own', async () => {
    const store = await open();
    await store.addMany([letter('h1'), ...Array.from({ length: 15 }, () => letter(null))]);
    expect((await store.usage(null)).rows).toBe(10);
    expect((await store.usage('h1')).rows).toBe(1);
  });

  it('reads the usage back from the database after a restart', async () => {
    const store = await open();
    await store.addMany([letter('h1', 1_000), letter('h1', 1_000), letter('h2')]);
    const before = { h1: await store.usage('h1'), h2: await store.usage('h2'), total: await store.totalUsage() };
    const again = await openDeadLetterStore(await t!.reopen(), LIMITS);
    expect({ h1: await again.usage('h1'), h2: await again.usage('h2'), total: await again.totalUsage() }).toEqual(before);
    await again.addMany(Array.from({ length: 20 }, () => letter('h1')));
    expect((await again.usage('h1')).rows).toBe(10);
    expect((await again.usage('h2')).rows).toBe(1);
  });

  it("added in the caller's transaction that rolls back, neither the rows nor the usage stay", async () => {
    const store = await open();
    await store.addMany([letter('h1')]);
    await expect(t!.db.sql.transaction(async (tx) => {
      await store.addMany(Array.from({ length: 20 }, () => letter('h1')), tx);
      throw new Error('the batch failed');
    })).rejects.toThrow('the batch failed');
    expect(await store.count()).toBe(1);
    expect(await store.usage('h1')).toEqual({ rows: 1, bytes: (await store.totalUsage()).bytes });
    expect((await store.totalUsage()).rows).toBe(1);
  });

  // Several cloud processes share one PostgreSQL: the quotas hold across writers (SQLite has one process).
  if (kind === 'postgres') it('two writers flooding at once still keep every hub within its quotas and the figures true', async () => {
    const limits = { ...LIMITS, maxRows: 40, maxRowsPerHub: 12 };
    const a = await open(limits);
    const b = await openDeadLetterStore(await t!.reopen(), limits);
    await a.addMany([letter('victim')]);
    await Promise.all(Array.from({ length: 16 }, (_, i) => (i % 2 ? b : a).addMany(Array.from({ length: 5 }, (_, j) => letter(`flooder-${(i + j) % 3}`)))));
    for (const hub of ['flooder-0', 'flooder-1', 'flooder-2']) {
      const usage = await a.usage(hub);
      expect(usage.rows).toBeLessThanOrEqual(12);
      expect(usage.rows).toBe((await a.list({ hub, limit: 500 })).length);
    }
    const total = await b.totalUsage();
    expect(total.rows).toBeLessThanOrEqual(40);
    expect(total.rows).toBe(await a.count());
    const bytes = await t!.db.sql.one<{ n: number }>(`SELECT sum(LEAST(size, ${KEPT_PAYLOAD_BYTES}) + octet_length(detail) + octet_length(topic)) AS n FROM dead_letters`);
    expect(total.bytes).toBe(Number(bytes!.n));
  });
});

describe('DeadLetterStore on sqlite, an installation from before issue 14', () => {
  let t: TestDatabase | null = null;
  afterEach(async () => t?.cleanup());

  it('takes the usage of the rows already there into account', async () => {
    t = await openTestDatabase('sqlite');
    t.db.legacySqlite!.exec(`INSERT INTO dead_letters (received_at, region, hub, client_id, topic, reason, detail, size, truncated, payload)
      VALUES (1, 'r', 'h1', 'h1', '${TOPIC}', 'schema', 'old', 3, 0, x'7b7b7b'), (2, 'r', NULL, NULL, '${TOPIC}', 'schema', 'old', 3, 0, x'7b7b7b')`);
    const store = await openDeadLetterStore(t.db, LIMITS);
    const one = 3 + TOPIC.length + 3;
    expect(await store.usage('h1')).toEqual({ rows: 1, bytes: one });
    expect(await store.usage(null)).toEqual({ rows: 1, bytes: one });
    expect(await store.totalUsage()).toEqual({ rows: 2, bytes: 2 * one });
  });
});
