import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { migrateFeature, openOperationalDb, type OperationalDb } from '../db/operational-db.ts';
import { AlarmParams } from './alarm-rules.ts';
import { ALARM_MIGRATIONS, AlarmConflictError, createMemoryAlarmStore, createSqliteAlarmStore, type AlarmRecord, type AlarmStore } from './alarm-store.ts';

/** One suite, both implementations: the in-memory store used by unit tests cannot drift from the real one. */
const T = 1_764_000_000_000;
const dirs: string[] = [];
const dbs: OperationalDb[] = [];
afterAll(() => {
  for (const db of dbs) db.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

function sqliteDb(): { db: OperationalDb; dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chiiki-alarms-'));
  dirs.push(dir);
  const db = openOperationalDb(dir, 'normal');
  dbs.push(db);
  return { db, dir };
}

const implementations: [string, () => AlarmStore][] = [
  ['sqlite', () => createSqliteAlarmStore(sqliteDb().db)],
  ['memory', createMemoryAlarmStore],
];

const alarm = (id: string, over: Partial<AlarmRecord> = {}): AlarmRecord => ({
  id, region: 'ishikawa-nomi', hub: 'nomi-terai', device: 'locker-a', compartment: 'A03', kind: 'door_open_too_long', severity: 'warning', state: 'open',
  raisedAt: T, lastSeenAt: T, count: 1, observedAt: T - 500, lastObservedAt: T - 500,
  acknowledgedAt: null, acknowledgedBy: null, ackNote: null, clearedAt: null, clearedBy: null, clearNote: null,
  detail: 'door of compartment A03 open too long; device says: "開いたまま"', params: {}, deviceDetail: '開いたまま', sourceMsgId: 'locker-a-x-1',
  ...over,
});

describe.each(implementations)('AlarmStore (%s)', (_name, create) => {
  let store: AlarmStore;
  beforeEach(() => {
    store = create();
  });

  it('keeps what was inserted, nulls and Japanese text included', () => {
    store.insert(alarm('a1'));
    store.insert(alarm('a2', { device: null, compartment: null, kind: 'hub_offline', severity: 'critical', sourceMsgId: null }));
    expect(store.get('a1')).toEqual(alarm('a1'));
    expect(store.get('a2')).toEqual(alarm('a2', { device: null, compartment: null, kind: 'hub_offline', severity: 'critical', sourceMsgId: null }));
    expect(store.get('nope')).toBeNull();
    expect(() => store.insert(alarm('a1', { kind: 'tamper' }))).toThrow(AlarmConflictError);
  });

  it('holds at most one active alarm per (hub, device, compartment, kind), null parts included', () => {
    store.insert(alarm('a1'));
    expect(() => store.insert(alarm('a2'))).toThrow(AlarmConflictError);
    store.insert(alarm('b', { compartment: 'A04' }));
    store.insert(alarm('c', { kind: 'tamper' }));
    store.insert(alarm('d', { hub: 'nomi-wake' }));
    store.insert(alarm('h1', { device: null, compartment: null, kind: 'hub_offline' }));
    expect(() => store.insert(alarm('h2', { device: null, compartment: null, kind: 'hub_offline' }))).toThrow(AlarmConflictError);
    // Once cleared, the key is free again; cleared alarms may share it.
    expect(store.clear('a1', { at: T + 1, by: null, note: 'door closed' })).toBe(true);
    store.insert(alarm('a2', { raisedAt: T + 2 }));
    store.insert(alarm('a0', { state: 'cleared', clearedAt: T }));
    expect(store.active().map((a) => a.id)).toEqual(['b', 'c', 'd', 'h1', 'a2']); // oldest raised first
  });

  it('counts a repeat while active, keeping the newest observation and detail', () => {
    store.insert(alarm('a1'));
    const again = (detail: string) => ({ detail, params: {}, deviceDetail: null });
    expect(store.recordRepeat('a1', { lastSeenAt: T + 10, lastObservedAt: T + 9, ...again('still open') })).toBe(true);
    expect(store.recordRepeat('a1', { lastSeenAt: T + 20, lastObservedAt: T + 5, ...again('late copy') })).toBe(true);
    expect(store.get('a1')).toMatchObject({ count: 3, lastSeenAt: T + 20, lastObservedAt: T + 9, observedAt: T - 500, detail: 'late copy', raisedAt: T });
    store.clear('a1', { at: T + 30, by: null, note: null });
    expect(store.recordRepeat('a1', { lastSeenAt: T + 40, lastObservedAt: T + 40, ...again('x') })).toBe(false);
    expect(store.get('a1')!.count).toBe(3);
    expect(store.recordRepeat('nope', { lastSeenAt: T, lastObservedAt: T, ...again('x') })).toBe(false);
  });

  it('keeps the params and the device\'s own text, and a repeat replaces them with the latest', () => {
    const warm = { tempC: 12.4, limitC: 10, tempClass: 'chilled' as const };
    store.insert(alarm('w', { kind: 'compartment_too_warm', params: warm, deviceDetail: '庫内 "12.4℃" <高温>' }));
    store.insert(alarm('o', { device: null, compartment: null, kind: 'hub_offline', params: { offlineSince: '2025-11-24T16:00:00.000Z', offlineS: 61 }, deviceDetail: null }));
    expect(store.get('w')).toMatchObject({ params: warm, deviceDetail: '庫内 "12.4℃" <高温>' });
    expect(store.get('o')).toMatchObject({ params: { offlineSince: '2025-11-24T16:00:00.000Z', offlineS: 61 }, deviceDetail: null });
    // What a caller does to an answer does not change what is stored.
    store.get('w')!.params.tempC = 99;
    expect(store.list({ limit: 10 }).find((a) => a.id === 'w')!.params).toEqual(warm);
    expect(store.recordRepeat('w', { lastSeenAt: T + 10, lastObservedAt: T + 10, detail: 'warmer', params: { ...warm, tempC: 14 }, deviceDetail: null })).toBe(true);
    expect(store.get('w')).toMatchObject({ params: { ...warm, tempC: 14 }, deviceDetail: null, detail: 'warmer' });
    expect(store.active().find((a) => a.id === 'w')!.params.tempC).toBe(14);
  });

  it('acknowledges only an open alarm and clears only an active one (compare-and-set)', () => {
    store.insert(alarm('a1'));
    expect(store.acknowledge('a1', { at: T + 1, by: '山田', note: 'on my way' })).toBe(true);
    expect(store.acknowledge('a1', { at: T + 2, by: 'someone else', note: null })).toBe(false);
    expect(store.get('a1')).toMatchObject({ state: 'acknowledged', acknowledgedAt: T + 1, acknowledgedBy: '山田', ackNote: 'on my way' });
    expect(store.clear('a1', { at: T + 3, by: '山田', note: 'closed it' })).toBe(true);
    expect(store.clear('a1', { at: T + 4, by: 'x', note: null })).toBe(false);
    expect(store.acknowledge('a1', { at: T + 5, by: 'x', note: null })).toBe(false);
    expect(store.get('a1')).toMatchObject({ state: 'cleared', clearedAt: T + 3, clearedBy: '山田', clearNote: 'closed it', acknowledgedBy: '山田' });
    store.insert(alarm('a2'));
    expect(store.clear('a2', { at: T + 6, by: null, note: 'door closed' })).toBe(true);
    expect(store.get('a2')).toMatchObject({ state: 'cleared', clearedBy: null, clearNote: 'door closed', acknowledgedAt: null });
    expect(store.acknowledge('nope', { at: T, by: 'x', note: null })).toBe(false);
    expect(store.clear('nope', { at: T, by: 'x', note: null })).toBe(false);
  });

  it('lists newest raised first, filtered by state, hub, severity and kind, up to the limit', () => {
    store.insert(alarm('old', { raisedAt: T - 100, state: 'cleared', clearedAt: T - 50 }));
    store.insert(alarm('door', { raisedAt: T }));
    store.insert(alarm('warm', { raisedAt: T + 1, kind: 'compartment_too_warm', compartment: 'A06' }));
    store.insert(alarm('tamper', { raisedAt: T + 2, kind: 'tamper', severity: 'critical' }));
    store.insert(alarm('offline', { raisedAt: T + 3, hub: 'nomi-wake', device: null, compartment: null, kind: 'hub_offline', severity: 'critical' }));
    store.acknowledge('warm', { at: T + 5, by: 'x', note: null });
    const ids = (q: Partial<Parameters<AlarmStore['list']>[0]> = {}) => store.list({ limit: 50, ...q }).map((a) => a.id);
    expect(ids()).toEqual(['offline', 'tamper', 'warm', 'door', 'old']);
    expect(ids({ limit: 2 })).toEqual(['offline', 'tamper']);
    expect(ids({ state: 'open' })).toEqual(['offline', 'tamper', 'door']);
    expect(ids({ state: 'acknowledged' })).toEqual(['warm']);
    expect(ids({ state: 'cleared' })).toEqual(['old']);
    expect(ids({ state: 'active' })).toEqual(['offline', 'tamper', 'warm', 'door']);
    expect(ids({ hub: 'nomi-terai', severity: 'critical' })).toEqual(['tamper']);
    expect(ids({ kind: 'hub_offline' })).toEqual(['offline']);
    expect(ids({ hub: 'nowhere' })).toEqual([]);
  });

  it('counts active alarms by severity', () => {
    expect(store.countActive()).toEqual({ warning: 0, critical: 0 });
    store.insert(alarm('a'));
    store.insert(alarm('b', { kind: 'tamper', severity: 'critical' }));
    store.insert(alarm('c', { kind: 'drone_failsafe', severity: 'critical', device: 'drone-1', compartment: null }));
    store.acknowledge('b', { at: T, by: 'x', note: null });
    store.clear('c', { at: T, by: 'x', note: null });
    expect(store.countActive()).toEqual({ warning: 1, critical: 1 });
  });
});

describe('AlarmStore (sqlite) on disk', () => {
  it('keeps alarms across a reopen and migrates once', () => {
    const { db, dir } = sqliteDb();
    createSqliteAlarmStore(db).insert(alarm('a1'));
    db.close(); // closing again in afterAll is harmless
    const again = openOperationalDb(dir, 'normal');
    dbs.push(again);
    const store = createSqliteAlarmStore(again);
    expect(store.get('a1')).toEqual(alarm('a1'));
    expect(again.prepare(`SELECT version FROM schema_migrations WHERE feature = 'alarms'`).get()).toEqual({ version: ALARM_MIGRATIONS.length });
  });

  it('reads alarms stored before params existed: no params, the device\'s text taken out of the English detail', () => {
    const { db } = sqliteDb();
    migrateFeature(db, 'alarms', ALARM_MIGRATIONS.slice(0, 1));
    const v1 = db.prepare(
      `INSERT INTO alarms (id, region, hub, device, compartment, kind, severity, state, raised_at, last_seen_at, count, observed_at, last_observed_at, detail, source_msg_id)
       VALUES (?, 'ishikawa-nomi', 'nomi-terai', 'locker-a', 'A03', ?, 'warning', 'open', ${T}, ${T}, 1, ${T}, ${T}, ?, NULL)`,
    );
    v1.run('quoted', 'door_open_too_long', 'door of compartment A03 open too long; device says: "扉が "開いた" まま; device says: x"');
    v1.run('plain', 'compartment_too_warm', 'chilled compartment A03 at 12.4 °C (limit 10 °C)');
    v1.run('cut', 'tamper', `tamper detected at compartment A03; device says: "${'x'.repeat(950)}…`);
    const store = createSqliteAlarmStore(db);
    expect(store.get('quoted')).toMatchObject({ params: {}, deviceDetail: '扉が "開いた" まま; device says: x' });
    expect(store.get('plain')).toMatchObject({ params: {}, deviceDetail: null, detail: 'chilled compartment A03 at 12.4 °C (limit 10 °C)' });
    expect(store.get('cut')).toMatchObject({ params: {}, deviceDetail: null });
    expect(store.active()).toHaveLength(3);
  });

  it('reads params it does not know (a newer version\'s field, a wrong type) as the fields it does know, so one row cannot fail the whole list', () => {
    const { db } = sqliteDb();
    const store = createSqliteAlarmStore(db);
    store.insert(alarm('newer', { kind: 'compartment_too_warm', params: { tempC: 12.4, limitC: 10 } }));
    db.prepare('UPDATE alarms SET params = ? WHERE id = ?').run(JSON.stringify({ tempC: 12.4, limitC: '10', tempClass: 'lukewarm', humidityPct: 80, nested: { a: [1] } }), 'newer');
    // What the API answers must pass its own schema (fastify checks it: a mismatch was a 500 for the whole list).
    expect(AlarmParams.safeParse(store.get('newer')!.params).success).toBe(true);
    expect(store.get('newer')!.params).toEqual({ tempC: 12.4 });
    expect(store.list({ state: 'active', limit: 10 }).map((a) => a.params)).toEqual([{ tempC: 12.4 }]);
  });
});
