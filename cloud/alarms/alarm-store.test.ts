import { afterEach, describe, expect, it } from 'vitest';
import { openTestDatabase, type TestDatabase } from '../../test/support/test-database.ts';
import type { Database } from '../db/database.ts';
import { AlarmParams } from './alarm-rules.ts';
import { ALARM_MIGRATIONS, AlarmConflictError, createMemoryAlarmStore, openAlarmStore, type AlarmQuery, type AlarmRecord, type AlarmStore } from './alarm-store.ts';

/**
 * One contract, every implementation (issue 14): the SQL store on SQLite and on PostgreSQL, and the
 * in-memory store unit tests use — so the fake cannot drift from the real ones.
 */
const T = 1_764_000_000_000;
const KINDS = ['sqlite', 'postgres', 'memory'] as const;

const alarm = (id: string, over: Partial<AlarmRecord> = {}): AlarmRecord => ({
  id, region: 'ishikawa-nomi', hub: 'nomi-terai', device: 'locker-a', compartment: 'A03', kind: 'door_open_too_long', severity: 'warning', state: 'open',
  raisedAt: T, lastSeenAt: T, count: 1, observedAt: T - 500, lastObservedAt: T - 500,
  acknowledgedAt: null, acknowledgedBy: null, ackNote: null, clearedAt: null, clearedBy: null, clearNote: null,
  detail: 'door of compartment A03 open too long; device says: "開いたまま"', params: {}, deviceDetail: '開いたまま', sourceMsgId: 'locker-a-x-1',
  ...over,
});

/** A raise of the door alarm's key observed at `observedAt` (seen by the cloud at `seenAt`). */
const again = (id: string, observedAt: number, seenAt: number, over: Partial<AlarmRecord> = {}) =>
  alarm(id, { raisedAt: seenAt, lastSeenAt: seenAt, observedAt, lastObservedAt: observedAt, ...over });

describe.each(KINDS)('AlarmStore contract (%s)', (kind) => {
  let t: TestDatabase | null = null;
  let store: AlarmStore;
  afterEach(async () => {
    await store?.close();
    await t?.cleanup();
    t = null;
  });
  const open = async (): Promise<AlarmStore> => {
    if (kind === 'memory') return (store = createMemoryAlarmStore());
    t = await openTestDatabase(kind);
    return (store = await openAlarmStore(t.db));
  };

  it('keeps what was inserted, nulls and Japanese text included', async () => {
    await open();
    await store.insert(alarm('a1'));
    await store.insert(alarm('a2', { device: null, compartment: null, kind: 'hub_offline', severity: 'critical', sourceMsgId: null }));
    expect(await store.get('a1')).toEqual(alarm('a1'));
    expect(await store.get('a2')).toEqual(alarm('a2', { device: null, compartment: null, kind: 'hub_offline', severity: 'critical', sourceMsgId: null }));
    expect(await store.get('nope')).toBeNull();
    await expect(store.insert(alarm('a1', { kind: 'tamper' }))).rejects.toThrow(AlarmConflictError);
  });

  it('holds at most one active alarm per (hub, device, compartment, kind), null parts included', async () => {
    await open();
    await store.insert(alarm('a1'));
    await expect(store.insert(alarm('a2'))).rejects.toThrow(AlarmConflictError);
    await store.insert(alarm('b', { compartment: 'A04' }));
    await store.insert(alarm('c', { kind: 'tamper' }));
    await store.insert(alarm('d', { hub: 'nomi-wake' }));
    await store.insert(alarm('h1', { device: null, compartment: null, kind: 'hub_offline' }));
    await expect(store.insert(alarm('h2', { device: null, compartment: null, kind: 'hub_offline' }))).rejects.toThrow(AlarmConflictError);
    // Once cleared, the key is free again; cleared alarms may share it.
    expect(await store.clear('a1', { at: T + 1, by: null, note: 'door closed' })).not.toBeNull();
    await store.insert(alarm('a2', { raisedAt: T + 2 }));
    await store.insert(alarm('a0', { state: 'cleared', clearedAt: T }));
    expect((await store.active()).map((a) => a.id)).toEqual(['b', 'c', 'd', 'h1', 'a2']); // oldest raised first
  });

  it('raises a new alarm, or counts a repeat on the active one for a newer observation only', async () => {
    await open();
    const first = await store.raise(again('a1', T - 500, T));
    expect(first).toEqual({ change: 'raised', alarm: again('a1', T - 500, T) });
    const repeat = await store.raise(again('x1', T + 9, T + 10, { detail: 'still open', deviceDetail: null }));
    expect(repeat.change).toBe('repeated');
    expect(repeat.alarm).toMatchObject({ id: 'a1', count: 2, lastSeenAt: T + 10, lastObservedAt: T + 9, observedAt: T - 500, raisedAt: T, detail: 'still open', deviceDetail: null });
    // A re-sent message (the same observation) or a late copy (an older one) changes nothing.
    expect(await store.raise(again('x2', T + 9, T + 20, { detail: 'the same again' }))).toEqual({ change: 'none', alarm: repeat.alarm });
    expect(await store.raise(again('x3', T + 5, T + 20, { detail: 'late copy' }))).toEqual({ change: 'none', alarm: repeat.alarm });
    expect(await store.get('a1')).toEqual(repeat.alarm);
    expect(await store.get('x1')).toBeNull();
    // An acknowledged alarm is active too; once cleared, the next raise is a new alarm.
    await store.acknowledge('a1', { at: T + 30, by: '山田', note: null });
    expect(await store.raise(again('x4', T + 40, T + 40))).toMatchObject({ change: 'repeated', alarm: { id: 'a1', state: 'acknowledged', count: 3 } });
    await store.clear('a1', { at: T + 50, by: null, note: null });
    expect(await store.raise(again('a2', T + 60, T + 60))).toMatchObject({ change: 'raised', alarm: { id: 'a2', count: 1, state: 'open' } });
    expect((await store.get('a1'))!.count).toBe(3);
  });

  it('raises many at once: new, repeated and unchanged ones answered in the order given, in chunks', async () => {
    await open();
    await store.raise(again('door', T, T));
    await store.raise(alarm('warm', { kind: 'compartment_too_warm', lastObservedAt: T + 50 }));
    const offline = (i: number) => alarm(`h${i}`, { hub: `hub-${i}`, device: null, compartment: null, kind: 'hub_offline', severity: 'critical' });
    const results = await store.raiseMany([
      offline(0), again('x1', T + 5, T + 5), alarm('x2', { kind: 'compartment_too_warm', lastObservedAt: T + 50 }), ...Array.from({ length: 1199 }, (_, i) => offline(i + 1)),
    ]);
    expect(results.slice(0, 3).map((r) => `${r.change} ${r.alarm?.id} x${r.alarm?.count}`)).toEqual(['raised h0 x1', 'repeated door x2', 'none warm x1']);
    expect(results.slice(3).every((r, i) => r.change === 'raised' && r.alarm?.id === `h${i + 1}`)).toBe(true);
    expect(await store.countActive()).toEqual({ warning: 2, critical: 1200 });
    await expect(store.raiseMany([offline(5000), { ...offline(5000), id: 'twin' }])).rejects.toThrow(/one key/);
  });

  it('clears many at once, each with its own note, answering null for what was not active', async () => {
    await open();
    for (let i = 0; i < 700; i++) await store.insert(alarm(`h${i}`, { hub: `hub-${i}`, device: null, compartment: null, kind: 'hub_offline' }));
    await store.clear('h1', { at: T, by: '山田', note: 'by hand' });
    const clears: Parameters<AlarmStore['clearMany']>[0][number][] = Array.from({ length: 700 }, (_, i) => ({ id: `h${i}`, action: { at: T + i, by: null, note: `online again ${i}` } }));
    const results = await store.clearMany([...clears, { id: 'nope', action: { at: T, by: null, note: null } }]);
    expect(results).toHaveLength(701);
    expect(results[0]).toMatchObject({ id: 'h0', state: 'cleared', clearedAt: T, clearedBy: null, clearNote: 'online again 0' });
    expect(results[1]).toBeNull();
    expect(results[699]).toMatchObject({ id: 'h699', clearedAt: T + 699, clearNote: 'online again 699' });
    expect(results[700]).toBeNull();
    expect(await store.get('h1')).toMatchObject({ clearedBy: '山田', clearNote: 'by hand' });
    expect(await store.countActive()).toEqual({ warning: 0, critical: 0 });
  });

  it('keeps the params and the device\'s own text, and a repeat replaces them with the latest', async () => {
    await open();
    const warm = { tempC: 12.4, limitC: 10, tempClass: 'chilled' as const };
    await store.insert(alarm('w', { kind: 'compartment_too_warm', params: warm, deviceDetail: '庫内 "12.4℃" <高温>' }));
    await store.insert(alarm('o', { device: null, compartment: null, kind: 'hub_offline', params: { offlineSince: '2025-11-24T16:00:00.000Z', offlineS: 61 }, deviceDetail: null }));
    expect(await store.get('w')).toMatchObject({ params: warm, deviceDetail: '庫内 "12.4℃" <高温>' });
    expect(await store.get('o')).toMatchObject({ params: { offlineSince: '2025-11-24T16:00:00.000Z', offlineS: 61 }, deviceDetail: null });
    // What a caller does to an answer does not change what is stored.
    (await store.get('w'))!.params.tempC = 99;
    expect((await store.list({ limit: 10 })).find((a) => a.id === 'w')!.params).toEqual(warm);
    const r = await store.raise(alarm('w2', { kind: 'compartment_too_warm', lastSeenAt: T + 10, lastObservedAt: T + 10, detail: 'warmer', params: { ...warm, tempC: 14 }, deviceDetail: null }));
    expect(r.change).toBe('repeated');
    expect(await store.get('w')).toMatchObject({ params: { ...warm, tempC: 14 }, deviceDetail: null, detail: 'warmer' });
    expect((await store.active()).find((a) => a.id === 'w')!.params.tempC).toBe(14);
  });

  it('acknowledges only an open alarm and clears only an active one (compare-and-set), answering the alarm it changed', async () => {
    await open();
    await store.insert(alarm('a1'));
    expect(await store.acknowledge('a1', { at: T + 1, by: '山田', note: 'on my way' })).toMatchObject({ id: 'a1', state: 'acknowledged', acknowledgedBy: '山田' });
    expect(await store.acknowledge('a1', { at: T + 2, by: 'someone else', note: null })).toBeNull();
    expect(await store.get('a1')).toMatchObject({ state: 'acknowledged', acknowledgedAt: T + 1, acknowledgedBy: '山田', ackNote: 'on my way' });
    expect(await store.clear('a1', { at: T + 3, by: '山田', note: 'closed it' })).toEqual(await store.get('a1'));
    expect(await store.clear('a1', { at: T + 4, by: 'x', note: null })).toBeNull();
    expect(await store.acknowledge('a1', { at: T + 5, by: 'x', note: null })).toBeNull();
    expect(await store.get('a1')).toMatchObject({ state: 'cleared', clearedAt: T + 3, clearedBy: '山田', clearNote: 'closed it', acknowledgedBy: '山田' });
    await store.insert(alarm('a2'));
    expect(await store.clear('a2', { at: T + 6, by: null, note: 'door closed' })).not.toBeNull();
    expect(await store.get('a2')).toMatchObject({ state: 'cleared', clearedBy: null, clearNote: 'door closed', acknowledgedAt: null });
    expect(await store.acknowledge('nope', { at: T, by: 'x', note: null })).toBeNull();
    expect(await store.clear('nope', { at: T, by: 'x', note: null })).toBeNull();
  });

  it('lists newest raised first, filtered by state, hub, hubs, region, severity and kind, up to the limit', async () => {
    await open();
    await store.insert(alarm('old', { raisedAt: T - 100, state: 'cleared', clearedAt: T - 50 }));
    await store.insert(alarm('door', { raisedAt: T }));
    await store.insert(alarm('warm', { raisedAt: T + 1, kind: 'compartment_too_warm', compartment: 'A06' }));
    await store.insert(alarm('tamper', { raisedAt: T + 2, kind: 'tamper', severity: 'critical' }));
    await store.insert(alarm('offline', { raisedAt: T + 3, hub: 'nomi-wake', device: null, compartment: null, kind: 'hub_offline', severity: 'critical' }));
    await store.insert(alarm('tsurugi', { raisedAt: T + 4, region: 'ishikawa-hakusan', hub: 'hakusan-tsurugi', kind: 'tamper', severity: 'critical' }));
    await store.acknowledge('warm', { at: T + 5, by: 'x', note: null });
    const ids = async (q: Partial<AlarmQuery> = {}) => (await store.list({ limit: 50, ...q })).map((a) => a.id);
    expect(await ids()).toEqual(['tsurugi', 'offline', 'tamper', 'warm', 'door', 'old']);
    expect(await ids({ limit: 2 })).toEqual(['tsurugi', 'offline']);
    expect(await ids({ state: 'open' })).toEqual(['tsurugi', 'offline', 'tamper', 'door']);
    expect(await ids({ state: 'acknowledged' })).toEqual(['warm']);
    expect(await ids({ state: 'cleared' })).toEqual(['old']);
    expect(await ids({ state: 'active', regions: ['ishikawa-nomi'] })).toEqual(['offline', 'tamper', 'warm', 'door']);
    expect(await ids({ hub: 'nomi-terai', severity: 'critical' })).toEqual(['tamper']);
    expect(await ids({ kind: 'hub_offline' })).toEqual(['offline']);
    expect(await ids({ hub: 'nowhere' })).toEqual([]);
    expect(await ids({ hubs: ['nomi-wake', 'hakusan-tsurugi'] })).toEqual(['tsurugi', 'offline']);
    expect(await ids({ hubs: [] })).toEqual([]);
    expect(await ids({ regions: ['ishikawa-hakusan', 'elsewhere'] })).toEqual(['tsurugi']);
    expect(await ids({ regions: [] })).toEqual([]);
    expect(await ids({ regions: ['ishikawa-nomi'], hubs: ['nomi-wake', 'hakusan-tsurugi'], severity: 'critical' })).toEqual(['offline']);
  });

  it('counts active alarms by severity', async () => {
    await open();
    expect(await store.countActive()).toEqual({ warning: 0, critical: 0 });
    await store.insert(alarm('a'));
    await store.insert(alarm('b', { kind: 'tamper', severity: 'critical' }));
    await store.insert(alarm('c', { kind: 'drone_failsafe', severity: 'critical', device: 'drone-1', compartment: null }));
    await store.acknowledge('b', { at: T, by: 'x', note: null });
    await store.clear('c', { at: T, by: 'x', note: null });
    expect(await store.countActive()).toEqual({ warning: 1, critical: 1 });
  });

  it('writes a transaction all or nothing', async () => {
    await open();
    await store.insert(alarm('kept'));
    await expect(store.transaction(async (tx) => {
      await tx.raise(alarm('h1', { hub: 'hub-1', device: null, compartment: null, kind: 'hub_offline' }));
      await tx.clear('kept', { at: T + 1, by: null, note: 'x' });
      throw new Error('disk full');
    })).rejects.toThrow('disk full');
    expect((await store.active()).map((a) => a.id)).toEqual(['kept']);
    const n = await store.transaction(async (tx) => {
      await tx.raise(alarm('h1', { hub: 'hub-1', device: null, compartment: null, kind: 'hub_offline' }));
      await tx.raise(alarm('h2', { hub: 'hub-2', device: null, compartment: null, kind: 'hub_offline' }));
      return (await tx.active()).length;
    });
    expect(n).toBe(3);
    expect((await store.active()).map((a) => a.id).sort()).toEqual(['h1', 'h2', 'kept']);
  });

  it('undoes a failed transaction\'s own writes only, not a single write made outside it meanwhile', async () => {
    // An event's alarm is written without a transaction (alarm-service.ts) while a link check's may be
    // open and then refused by its lease fence: the rollback must not take the event's alarm with it.
    await open();
    let entered!: () => void;
    const inside = new Promise<void>((r) => (entered = r));
    const failing = store.transaction(async (tx) => {
      await tx.raise(alarm('h1', { hub: 'hub-1', device: null, compartment: null, kind: 'hub_offline' }));
      entered();
      await new Promise((r) => setTimeout(r, 30));
      throw new Error('lease taken over');
    });
    await inside;
    const outside = store.raise(alarm('event'));
    await expect(failing).rejects.toThrow('lease taken over');
    expect((await outside).change).toBe('raised');
    expect((await store.active()).map((a) => a.id)).toEqual(['event']);
  });
});

describe.each(['sqlite', 'postgres'] as const)('AlarmStore on %s, kept in the database', (kind) => {
  let t: TestDatabase;
  afterEach(async () => t?.cleanup());

  it('keeps alarms across a reopen and migrates once', async () => {
    t = await openTestDatabase(kind);
    await (await openAlarmStore(t.db)).insert(alarm('a1'));
    const again = await t.reopen();
    const store = await openAlarmStore(again);
    expect(await store.get('a1')).toEqual(alarm('a1'));
    const steps = kind === 'sqlite' ? ALARM_MIGRATIONS.sqlite : ALARM_MIGRATIONS.postgres;
    expect(await again.sql.one(`SELECT version FROM schema_migrations WHERE feature = 'alarms'`)).toEqual({ version: steps.length });
  });

  it('reads params it does not know (a newer version\'s field, a wrong type) as the fields it does know, so one row cannot fail the whole list', async () => {
    t = await openTestDatabase(kind);
    const store = await openAlarmStore(t.db);
    await store.insert(alarm('newer', { kind: 'compartment_too_warm', params: { tempC: 12.4, limitC: 10 } }));
    await t.db.sql.run('UPDATE alarms SET params = ? WHERE id = ?', [JSON.stringify({ tempC: 12.4, limitC: '10', tempClass: 'lukewarm', humidityPct: 80, nested: { a: [1] } }), 'newer']);
    // What the API answers must pass its own schema (fastify checks it: a mismatch was a 500 for the whole list).
    expect(AlarmParams.safeParse((await store.get('newer'))!.params).success).toBe(true);
    expect((await store.get('newer'))!.params).toEqual({ tempC: 12.4 });
    expect((await store.list({ state: 'active', limit: 10 })).map((a) => a.params)).toEqual([{ tempC: 12.4 }]);
  });

  it('has the same tables and columns on SQLite and PostgreSQL (the copy command moves them column by column)', async () => {
    t = await openTestDatabase(kind);
    await openAlarmStore(t.db);
    const columns = kind === 'sqlite'
      ? (await t.db.sql.query<{ name: string }>(`SELECT name FROM pragma_table_info('alarms') ORDER BY cid`)).map((r) => r.name)
      : (await t.db.sql.query<{ name: string }>(`SELECT column_name AS name FROM information_schema.columns WHERE table_name = 'alarms' ORDER BY ordinal_position`)).map((r) => r.name);
    expect(columns).toEqual([
      'id', 'region', 'hub', 'device', 'compartment', 'kind', 'severity', 'state', 'raised_at', 'last_seen_at', 'count', 'observed_at', 'last_observed_at',
      'acknowledged_at', 'acknowledged_by', 'ack_note', 'cleared_at', 'cleared_by', 'clear_note', 'detail', 'source_msg_id', 'params', 'device_detail',
    ]);
  });
});

describe('AlarmStore on SQLite: a cloud.db from before', () => {
  let t: TestDatabase;
  afterEach(async () => t?.cleanup());

  it('reads alarms stored before params existed: no params, the device\'s text taken out of the English detail', async () => {
    t = await openTestDatabase('sqlite');
    await t.db.migrate('alarms', { sqlite: ALARM_MIGRATIONS.sqlite.slice(0, 1), postgres: [] });
    const v1 = `INSERT INTO alarms (id, region, hub, device, compartment, kind, severity, state, raised_at, last_seen_at, count, observed_at, last_observed_at, detail, source_msg_id)
       VALUES (?, 'ishikawa-nomi', 'nomi-terai', 'locker-a', 'A03', ?, 'warning', 'open', ${T}, ${T}, 1, ${T}, ${T}, ?, NULL)`;
    await t.db.sql.run(v1, ['quoted', 'door_open_too_long', 'door of compartment A03 open too long; device says: "扉が "開いた" まま; device says: x"']);
    await t.db.sql.run(v1, ['plain', 'compartment_too_warm', 'chilled compartment A03 at 12.4 °C (limit 10 °C)']);
    await t.db.sql.run(v1, ['cut', 'tamper', `tamper detected at compartment A03; device says: "${'x'.repeat(950)}…`]);
    const store = await openAlarmStore(t.db);
    expect(await store.get('quoted')).toMatchObject({ params: {}, deviceDetail: '扉が "開いた" まま; device says: x' });
    expect(await store.get('plain')).toMatchObject({ params: {}, deviceDetail: null, detail: 'chilled compartment A03 at 12.4 °C (limit 10 °C)' });
    expect(await store.get('cut')).toMatchObject({ params: {}, deviceDetail: null });
    expect(await store.active()).toHaveLength(3);
  });
});

/**
 * Several cloud processes on one PostgreSQL (issue 14): two stores on two connection pools racing.
 * A read-then-write store fails these (two active alarms, or a unique-key error; an acknowledgement
 * written over a clear).
 */
describe('AlarmStore on PostgreSQL with concurrent writers', () => {
  let t: TestDatabase;
  afterEach(async () => t?.cleanup());

  const twoProcesses = async (): Promise<[AlarmStore, AlarmStore, Database]> => {
    t = await openTestDatabase('postgres');
    const a = await openAlarmStore(t.db);
    const other = await t.reopen();
    return [a, await openAlarmStore(other), other];
  };

  it('raising one condition at once from two processes gives one active alarm and repeats, never two alarms', async () => {
    const [a, b] = await twoProcesses();
    const N = 20;
    for (let round = 0; round < 5; round++) {
      const hub = `hub-${round}`;
      const results = await Promise.all(Array.from({ length: N }, (_, i) =>
        (i % 2 === 0 ? a : b).raise(alarm(`r${round}-${i}`, { hub, device: null, compartment: null, kind: 'hub_offline', lastObservedAt: T + i, observedAt: T + i }))));
      const active = (await a.list({ state: 'active', hub, limit: 100 }));
      expect(active).toHaveLength(1);
      expect(results.filter((r) => r.change === 'raised')).toHaveLength(1);
      // Every raise was either the new alarm or counted on it — or an observation older than one already counted.
      expect(results.every((r) => r.alarm?.id === active[0]!.id)).toBe(true);
      expect(active[0]!.count).toBe(results.filter((r) => r.change !== 'none').length);
      expect(active[0]!.lastObservedAt).toBe(T + N - 1);
    }
  });

  it('an acknowledgement racing a clear ends in one state that agrees with what each answered', async () => {
    const [a, b] = await twoProcesses();
    const N = 30;
    for (let i = 0; i < N; i++) await a.insert(alarm(`a${i}`, { compartment: `C${i}` }));
    const outcomes = await Promise.all(Array.from({ length: N }, async (_, i) => {
      const [acked, cleared] = await Promise.all([
        (i % 2 ? a : b).acknowledge(`a${i}`, { at: T + 1, by: '山田', note: 'on my way' }),
        (i % 2 ? b : a).clear(`a${i}`, { at: T + 2, by: '佐藤', note: 'checked' }),
      ]);
      return { acked, cleared, stored: (await a.get(`a${i}`))! };
    }));
    for (const { acked, cleared, stored } of outcomes) {
      expect(cleared).not.toBeNull(); // a clear always wins over open or acknowledged
      expect(stored).toEqual(cleared);
      expect(stored).toMatchObject({ state: 'cleared', clearedBy: '佐藤' });
      // Acknowledged first and then cleared, or cleared first and the acknowledgement refused: never both lost or half.
      if (acked) expect(stored).toMatchObject({ acknowledgedBy: '山田', acknowledgedAt: T + 1, ackNote: 'on my way' });
      else expect(stored).toMatchObject({ acknowledgedBy: null, acknowledgedAt: null, ackNote: null });
    }
  });

  it('two acknowledgements or two clears at once: exactly one of each takes effect', async () => {
    const [a, b] = await twoProcesses();
    await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      const id = `x${i}`;
      await a.insert(alarm(id, { compartment: `C${i}` }));
      const acks = await Promise.all([a.acknowledge(id, { at: T + 1, by: 'one', note: null }), b.acknowledge(id, { at: T + 2, by: 'two', note: null })]);
      expect(acks.filter(Boolean)).toHaveLength(1);
      expect((await a.get(id))!.acknowledgedBy).toBe(acks.find(Boolean)!.acknowledgedBy);
      const clears = await Promise.all([a.clear(id, { at: T + 3, by: 'one', note: null }), b.clear(id, { at: T + 4, by: 'two', note: null })]);
      expect(clears.filter(Boolean)).toHaveLength(1);
      expect((await a.get(id))!.clearedBy).toBe(clears.find(Boolean)!.clearedBy);
    }));
  });
});
