import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RegionFile, type FlightState } from '../../contract/index.ts';
import { compartment, droneEvent, droneTelemetry, HUB, lockerEvent, lockerTelemetry, sensorTelemetry, T0 } from './alarm-fixtures.ts';
import type { AlarmKind, HubLinkView } from './alarm-rules.ts';
import { createRegions } from '../hubs/regions.ts';
import { AlarmError, AlarmService, type AlarmChange } from './alarm-service.ts';
import { createMemoryAlarmStore, openAlarmStore, type AlarmStore } from './alarm-store.ts';
import { openTestDatabase, SQL_DATABASES, type TestDatabase } from '../../test/support/test-database.ts';
import { StaleLeaseError, type LeaseGrant, type Leases } from '../cluster/leases.ts';

const REGION = RegionFile.parse({
  id: 'ishikawa-nomi', name: { ja: '能美', en: 'Nomi' },
  hubs: [
    {
      id: HUB, kind: 'community-hall', name: { ja: '寺井', en: 'Terai' }, location: { lat: 36.43, lon: 136.46 },
      drones: [{ id: 'drone-1', model: 'm', windLimitMps: 6, gustLimitMps: 8 }],
      lockers: [{ id: 'locker-a', compartments: [{ id: 'A01', size: 'S', tempClass: 'ambient' }, { id: 'A03', size: 'M', tempClass: 'chilled' }] }],
      sensors: ['wx'],
    },
  ],
});

let now: number;
let store: AlarmStore;
let links: HubLinkView[];
let flight: FlightState | null;
let raisedKinds: AlarmKind[];
let changes: AlarmChange[];
let service: AlarmService;
let ids: number;

function newService(s: AlarmStore = store, leases?: Leases): AlarmService {
  const svc = new AlarmService({
    store: s, regions: createRegions([REGION]), now: () => now, newId: () => `alm-${++ids}`, logger: pino({ level: 'silent' }), leases,
    hubs: { links: () => links, droneFlightState: () => flight },
    metrics: { raised: (kind) => raisedKinds.push(kind) },
    params: { hubOfflineGraceMs: 30_000 },
  });
  svc.onChange((c) => changes.push(c));
  return svc;
}

beforeEach(() => {
  now = T0 + 1000;
  store = createMemoryAlarmStore();
  links = [];
  flight = null;
  raisedKinds = [];
  changes = [];
  ids = 0;
  service = newService();
});

const doorOpen = (ts = T0) => lockerEvent('door_open_too_long', 'A03', { ts });
const doorClosed = (ts: number) => lockerTelemetry([compartment('A03', { door: 'closed', tempClass: 'chilled', tempC: 5 })], { ts });
const changeLog = () => changes.map((c) => `${c.type} ${c.alarm.kind} ${c.alarm.state} x${c.alarm.count}`);

describe('AlarmService', () => {
  it('raises an alarm from a device message, tells listeners and counts it', async () => {
    const msg = doorOpen();
    await service.onDeviceMessage(msg, 'ishikawa-nomi');
    const [a, ...rest] = (await service.list({ limit: 10 }));
    expect(rest).toEqual([]);
    expect(a).toMatchObject({
      id: 'alm-1', region: 'ishikawa-nomi', hub: HUB, device: 'locker-a', compartment: 'A03', kind: 'door_open_too_long', severity: 'warning',
      state: 'open', raisedAt: now, lastSeenAt: now, count: 1, observedAt: T0, sourceMsgId: msg.id, acknowledgedBy: null, clearedAt: null,
    });
    expect(changeLog()).toEqual(['raised door_open_too_long open x1']);
    expect(raisedKinds).toEqual(['door_open_too_long']);
    expect(await service.countActive()).toEqual({ warning: 1, critical: 0 });
  });

  it('counts a repeat instead of raising another; the same observation twice is no repeat', async () => {
    await service.onDeviceMessage(doorOpen(T0), 'ishikawa-nomi');
    now += 5000;
    await service.onDeviceMessage(doorOpen(T0 + 5000), 'ishikawa-nomi');
    const warm = lockerTelemetry([compartment('A03', { door: 'open', tempClass: 'chilled', tempC: 11 })], { ts: T0 + 6000 });
    await service.onDeviceMessage(warm, 'ishikawa-nomi');
    await service.onDeviceMessage(warm, 'ishikawa-nomi'); // re-sent telemetry: same id and timestamp
    expect((await service.list({ limit: 10 })).map((a) => [a.kind, a.count])).toEqual([['compartment_too_warm', 1], ['door_open_too_long', 2]]);
    expect((await service.list({ limit: 10, kind: 'door_open_too_long' }))[0]).toMatchObject({ raisedAt: T0 + 1000, lastSeenAt: T0 + 6000, lastObservedAt: T0 + 5000 });
    expect(raisedKinds).toEqual(['door_open_too_long', 'compartment_too_warm']);
    expect(changeLog()).toEqual(['raised door_open_too_long open x1', 'repeated door_open_too_long open x2', 'raised compartment_too_warm open x1']);
  });

  it('clears automatically when the condition ends — but not on an observation older than the last report', async () => {
    await service.onDeviceMessage(doorOpen(T0), 'ishikawa-nomi');
    await service.onDeviceMessage(doorClosed(T0 - 1), 'ishikawa-nomi'); // late telemetry from before the event
    expect((await service.list({ limit: 1 }))[0]!.state).toBe('open');
    now += 20_000;
    await service.onDeviceMessage(doorClosed(T0 + 20_000), 'ishikawa-nomi');
    expect((await service.list({ limit: 1 }))[0]).toMatchObject({ state: 'cleared', clearedAt: now, clearedBy: null, clearNote: 'door of A03 closed' });
    expect(changeLog()).toEqual(['raised door_open_too_long open x1', 'cleared door_open_too_long cleared x1']);
    // The key is free again: the next opening raises a new alarm.
    await service.onDeviceMessage(doorOpen(T0 + 60_000), 'ishikawa-nomi');
    expect((await service.list({ limit: 10, state: 'active' })).map((a) => a.id)).toEqual(['alm-2']);
  });

  it('keeps an acknowledged alarm until it is cleared, and records who acknowledged', async () => {
    await service.onDeviceMessage(doorOpen(), 'ishikawa-nomi');
    now += 1000;
    const acked = await service.acknowledge('alm-1', '山田 (寺井)', 'checking');
    expect(acked).toMatchObject({ state: 'acknowledged', acknowledgedAt: now, acknowledgedBy: '山田 (寺井)', ackNote: 'checking' });
    now += 1000;
    expect(await service.acknowledge('alm-1', 'someone else', null)).toMatchObject({ acknowledgedBy: '山田 (寺井)', acknowledgedAt: now - 1000 });
    await service.onDeviceMessage(doorOpen(T0 + 100), 'ishikawa-nomi');
    expect(await service.get('alm-1')).toMatchObject({ state: 'acknowledged', count: 2 });
    await service.onDeviceMessage(doorClosed(T0 + 200), 'ishikawa-nomi');
    expect(await service.get('alm-1')).toMatchObject({ state: 'cleared', acknowledgedBy: '山田 (寺井)', clearedBy: null });
    await expect(service.acknowledge('alm-1', 'x', null)).rejects.toThrow(expect.objectContaining({ code: 'alarm_cleared' }));
    await expect(service.acknowledge('alm-404', 'x', null)).rejects.toThrow(AlarmError);
    expect(changeLog()).toEqual(['raised door_open_too_long open x1', 'acknowledged door_open_too_long acknowledged x1', 'repeated door_open_too_long acknowledged x2', 'cleared door_open_too_long cleared x2']);
  });

  it('clears by hand once; afterwards the condition raises a new alarm', async () => {
    await service.onDeviceMessage(lockerEvent('tamper', 'A01'), 'ishikawa-nomi');
    expect(await service.clear('alm-1', 'staff-7', 'lid checked, no damage')).toMatchObject({ state: 'cleared', clearedBy: 'staff-7', clearNote: 'lid checked, no damage' });
    await expect(service.clear('alm-1', 'staff-7', null)).rejects.toThrow(expect.objectContaining({ code: 'alarm_cleared' }));
    await expect(service.get('nope')).rejects.toThrow(expect.objectContaining({ code: 'alarm_not_found' }));
    await service.onDeviceMessage(lockerEvent('tamper', 'A01', { ts: T0 + 1 }), 'ishikawa-nomi');
    expect((await service.list({ limit: 10 })).map((a) => `${a.id} ${a.state}`)).toEqual(['alm-2 open', 'alm-1 cleared']);
  });

  it('raises repeated_wrong_pickup_codes on the third wrong code at a compartment within 10 minutes', async () => {
    for (const [i, ts] of [T0, T0 + 60_000, T0 + 700_000, T0 + 760_000].entries()) {
      await service.onDeviceMessage(lockerEvent('pickup_code_rejected', i === 1 ? 'A01' : 'A03', { ts, pickupCode: '111111' }), 'ishikawa-nomi');
    }
    expect((await service.list({ limit: 10 }))).toEqual([]); // A03 at 0, 700 s and 760 s: never three within 10 min
    await service.onDeviceMessage(lockerEvent('pickup_code_rejected', 'A03', { ts: T0 + 800_000, pickupCode: '222222' }), 'ishikawa-nomi');
    expect((await service.list({ limit: 10 }))).toMatchObject([{ kind: 'repeated_wrong_pickup_codes', compartment: 'A03', severity: 'critical' }]);
  });

  it('starts counting wrong codes afresh after a successful pickup at the compartment', async () => {
    const code = (event: 'pickup' | 'pickup_code_rejected', ts: number) => service.onDeviceMessage(lockerEvent(event, 'A01', { ts, pickupCode: '333333' }), 'ishikawa-nomi');
    await code('pickup_code_rejected', T0);
    await code('pickup_code_rejected', T0 + 1000);
    await code('pickup', T0 + 2000);
    await code('pickup_code_rejected', T0 + 3000);
    await code('pickup_code_rejected', T0 + 4000);
    expect((await service.list({ limit: 10 }))).toEqual([]);
    await code('pickup_code_rejected', T0 + 5000);
    expect((await service.list({ limit: 10 }))).toMatchObject([{ kind: 'repeated_wrong_pickup_codes', compartment: 'A01' }]);
  });

  it('uses the drone\'s flight state from live state for battery_low events', async () => {
    flight = 'landed';
    await service.onDeviceMessage(droneEvent('battery_low', { missionId: null }), 'ishikawa-nomi');
    expect((await service.list({ limit: 10 }))).toEqual([]);
    flight = 'rtl';
    await service.onDeviceMessage(droneEvent('battery_low', { missionId: null }), 'ishikawa-nomi');
    expect((await service.list({ limit: 10 }))).toMatchObject([{ kind: 'drone_battery_low_in_flight', device: 'drone-1', severity: 'critical' }]);
    await service.onDeviceMessage(droneTelemetry({ ts: T0 + 1, flightState: 'landed', batteryPct: 12 }), 'ishikawa-nomi');
    expect((await service.list({ limit: 10 }))[0]!.state).toBe('cleared');
  });

  it('raises the wind alarm only where the orders feature says a mission is planned, with the hub\'s drone limits', async () => {
    await service.onDeviceMessage(sensorTelemetry(7, 9), 'ishikawa-nomi');
    expect((await service.list({ limit: 10 }))).toEqual([]);
    let planned = true;
    service.setMissionsPlannedAt((hub) => hub === HUB && planned);
    await service.onDeviceMessage(sensorTelemetry(5.9, 7.9, { ts: T0 + 1 }), 'ishikawa-nomi'); // limits 6 / 8
    expect((await service.list({ limit: 10 }))).toEqual([]);
    await service.onDeviceMessage(sensorTelemetry(6, 7, { ts: T0 + 2 }), 'ishikawa-nomi');
    expect((await service.list({ limit: 10 }))).toMatchObject([{ kind: 'wind_over_limit_mission_planned', device: 'wx', state: 'open' }]);
    planned = false;
    await service.onDeviceMessage(sensorTelemetry(9, 9, { ts: T0 + 3 }), 'ishikawa-nomi');
    expect((await service.list({ limit: 10 }))[0]).toMatchObject({ state: 'cleared', clearNote: 'no mission planned at the hub any more' });
  });

  it('raises hub_offline after the grace period once, and clears it when the hub is back', async () => {
    links = [{ hub: HUB, region: 'ishikawa-nomi', online: false, since: now }, { hub: 'nomi-wake', region: 'ishikawa-nomi', online: false, since: null }];
    await service.checkLinks();
    now += 29_999;
    await service.checkLinks();
    expect((await service.list({ limit: 10 }))).toEqual([]);
    now += 1;
    await service.checkLinks();
    now += 5000;
    await service.checkLinks();
    expect((await service.list({ limit: 10 }))).toMatchObject([{ kind: 'hub_offline', hub: HUB, device: null, severity: 'critical', count: 1, state: 'open' }]);
    links = [{ hub: HUB, region: 'ishikawa-nomi', online: true, since: now }];
    now += 1000;
    await service.checkLinks();
    expect((await service.list({ limit: 10 }))[0]).toMatchObject({ state: 'cleared', clearNote: 'hub online again' });
  });

  it('raises the hub_offline alarms of one link check in one store transaction and tells listeners after it', async () => {
    const hubs = ['hub-1', 'hub-2', 'hub-3'];
    let inTransaction = false;
    const seenInTransaction: boolean[] = [];
    const transactions: number[] = [];
    const base = createMemoryAlarmStore();
    const raiseStatements: number[] = [];
    const counting: AlarmStore = {
      ...base,
      raiseMany: (alarms) => (raiseStatements.push(alarms.length), base.raiseMany(alarms)),
      transaction: async (fn) => {
        transactions.push(1);
        inTransaction = true;
        try {
          return await base.transaction(() => fn(counting));
        } finally {
          inTransaction = false;
        }
      },
    };
    const svc = newService(counting);
    svc.onChange(() => seenInTransaction.push(inTransaction));
    links = hubs.map((hub) => ({ hub, region: 'ishikawa-nomi', online: false, since: now - 60_000 }));
    await svc.checkLinks();
    expect(transactions).toHaveLength(1);
    expect(seenInTransaction).toEqual([false, false, false]);
    expect(raiseStatements).toEqual([3]); // one statement for the three
    expect((await counting.list({ state: 'active', limit: 10 }))).toHaveLength(3);
    now += 5000;
    await svc.checkLinks(); // nothing new: no transaction
    links = hubs.map((hub) => ({ hub, region: 'ishikawa-nomi', online: true, since: now }));
    await svc.checkLinks();
    await svc.checkLinks(); // online and nothing active: nothing to do
    expect(transactions).toHaveLength(2);
    expect((await counting.list({ state: 'active', limit: 10 }))).toEqual([]);
  });

  it('a failed link check tells no one and leaves no ghost alarms behind', async () => {
    const db = createMemoryAlarmStore();
    let raises = 0;
    const failingOn = (base: AlarmStore): AlarmStore => ({
      ...base,
      raiseMany: async (alarms) => {
        const results = [];
        for (const a of alarms) {
          if (++raises === 2) throw new Error('disk full');
          results.push(await base.raise(a));
        }
        return results;
      },
      // The memory store's transaction rolls back what the failed batch raised through it.
      transaction: (fn) => base.transaction((tx) => fn(failingOn(tx))),
    });
    const svc = newService(failingOn(db));
    links = ['hub-1', 'hub-2'].map((hub) => ({ hub, region: 'ishikawa-nomi', online: false, since: now - 60_000 }));
    await svc.checkLinks();
    expect(changes).toEqual([]);
    expect(await db.list({ limit: 10 })).toEqual([]);
    now += 5000;
    await svc.checkLinks(); // the next check raises both
    expect(changeLog()).toEqual(['raised hub_offline open x1', 'raised hub_offline open x1']);
  });

  it('checks links periodically once started', async () => {
    const svc = new AlarmService({
      store, regions: createRegions([REGION]), now: Date.now, newId: () => 'alm-timer', logger: pino({ level: 'silent' }),
      hubs: { links: () => [{ hub: HUB, region: 'ishikawa-nomi', online: false, since: Date.now() - 60_000 }], droneFlightState: () => null },
      params: { hubOfflineGraceMs: 30_000 }, linkCheckIntervalMs: 20,
    });
    svc.start();
    await new Promise((r) => setTimeout(r, 100));
    await svc.close();
    expect((await store.list({ limit: 10 }))).toMatchObject([{ id: 'alm-timer', kind: 'hub_offline' }]);
  });

  it('finds the active alarms of an earlier run (restart) and clears them when the condition ends', async () => {
    await service.onDeviceMessage(doorOpen(), 'ishikawa-nomi');
    const restarted = newService(store);
    await restarted.onDeviceMessage(doorOpen(T0 + 1), 'ishikawa-nomi');
    expect((await store.list({ limit: 10 }))).toMatchObject([{ id: 'alm-1', count: 2 }]);
    await restarted.onDeviceMessage(doorClosed(T0 + 2), 'ishikawa-nomi');
    expect((await store.get('alm-1'))!.state).toBe('cleared');
  });

  it('lets other features raise directly, deduplicated like any other', async () => {
    const a = await service.raise({ hub: HUB, device: 'locker-a', compartment: 'A03', kind: 'repeated_wrong_pickup_codes', detail: 'compartment locked after 3 wrong codes' });
    expect(a).toMatchObject({ id: 'alm-1', region: 'ishikawa-nomi', severity: 'critical', state: 'open', observedAt: now, sourceMsgId: null });
    now += 1;
    expect(await service.raise({ hub: HUB, device: 'locker-a', compartment: 'A03', kind: 'repeated_wrong_pickup_codes', detail: 'again' })).toMatchObject({ id: 'alm-1', count: 2, detail: 'again' });
  });

  it('survives a failing store and a failing listener', async () => {
    const memory = createMemoryAlarmStore();
    const broken: AlarmStore = { ...memory, raiseMany: async () => { throw new Error('disk full'); }, transaction: (fn) => memory.transaction(() => fn(broken)) };
    const svc = newService(broken);
    await expect(svc.onDeviceMessage(doorOpen(), 'ishikawa-nomi')).resolves.toBeUndefined();
    service.onChange(() => { throw new Error('listener bug'); });
    await service.onDeviceMessage(doorOpen(), 'ishikawa-nomi');
    expect((await service.list({ limit: 10 }))).toHaveLength(1);
  });
});

/** Counts what reaches the store, to show what the hot path costs. */
function countingStore(base: AlarmStore): AlarmStore & { calls: string[] } {
  const calls: string[] = [];
  const counted: AlarmStore & { calls: string[] } = {
    calls,
    insert: (a) => (calls.push('insert'), base.insert(a)),
    raise: (a) => (calls.push('raise'), base.raise(a)),
    raiseMany: (a) => (calls.push('raiseMany'), base.raiseMany(a)),
    get: (id) => (calls.push('get'), base.get(id)),
    active: () => (calls.push('active'), base.active()),
    list: (q) => (calls.push('list'), base.list(q)),
    acknowledge: (id, x) => (calls.push('acknowledge'), base.acknowledge(id, x)),
    clear: (id, x) => (calls.push('clear'), base.clear(id, x)),
    clearMany: (c) => (calls.push('clearMany'), base.clearMany(c)),
    countActive: () => (calls.push('countActive'), base.countActive()),
    transaction: (fn) => (calls.push('transaction'), base.transaction(() => fn(counted))),
    close: () => base.close(),
  };
  return counted;
}

describe('AlarmService on the hot path (issue 14: no database round trip per message)', () => {
  it('asks the store nothing for messages that change nothing: all-is-well telemetry, a re-sent event, an old observation', async () => {
    const counted = countingStore(store);
    const svc = newService(counted);
    // Loads the active alarms once, raises one: a single statement, atomic on its own, so no transaction
    // (on PostgreSQL one round trip instead of two before the console hears of it).
    await svc.onDeviceMessage(doorOpen(T0), 'ishikawa-nomi');
    expect(counted.calls).toEqual(['active', 'raiseMany']);
    counted.calls.length = 0;
    for (let i = 0; i < 1000; i++) {
      await svc.onDeviceMessage(lockerTelemetry([compartment('A01', { door: 'closed', tempC: 18 })], { ts: T0 + i }), 'ishikawa-nomi');
    }
    await svc.onDeviceMessage(doorOpen(T0), 'ishikawa-nomi'); // re-sent event: the same observation
    await svc.onDeviceMessage(doorClosed(T0 - 1), 'ishikawa-nomi'); // older than the alarm's last report
    expect(counted.calls).toEqual([]);
    expect(await counted.list({ limit: 10 })).toMatchObject([{ kind: 'door_open_too_long', count: 1, state: 'open' }]);
  });

  it('writes what queues up while a write is under way in one transaction, in arrival order', async () => {
    const counted = countingStore(store);
    const svc = newService(counted);
    await svc.onDeviceMessage(doorOpen(T0), 'ishikawa-nomi');
    counted.calls.length = 0;
    // Not awaited one by one: they arrive while the first is being written.
    const all = [
      svc.onDeviceMessage(lockerEvent('tamper', 'A01', { ts: T0 + 1 }), 'ishikawa-nomi'),
      svc.onDeviceMessage(doorOpen(T0 + 2), 'ishikawa-nomi'),
      svc.onDeviceMessage(doorClosed(T0 + 3), 'ishikawa-nomi'), // clears the door alarm queued just before: order kept
      svc.onDeviceMessage(lockerEvent('tamper', 'A01', { ts: T0 + 4 }), 'ishikawa-nomi'),
      svc.onDeviceMessage(doorOpen(T0 + 5), 'ishikawa-nomi'), // a new door alarm after the clear
    ];
    await Promise.all(all);
    expect(counted.calls.filter((c) => c === 'transaction').length).toBeLessThanOrEqual(2);
    // Raises of distinct keys in a row share a statement; the clear splits them, keeping the order.
    expect(counted.calls.filter((c) => c === 'raiseMany').length).toBeLessThanOrEqual(3);
    expect(changeLog().slice(1)).toEqual([
      'raised tamper open x1', 'repeated door_open_too_long open x2', 'cleared door_open_too_long cleared x2', 'repeated tamper open x2', 'raised door_open_too_long open x1',
    ]);
    expect((await svc.list({ state: 'active', limit: 10 })).map((a) => `${a.kind} x${a.count}`)).toEqual(['door_open_too_long x1', 'tamper x2']);
  });

  it('judges a region added while running by its own file (compartment classes, drone wind limits)', async () => {
    const regions = createRegions([REGION]);
    const svc = new AlarmService({
      store, regions, now: () => now, newId: () => `alm-${++ids}`, logger: pino({ level: 'silent' }),
      hubs: { links: () => links, droneFlightState: () => flight }, missionsPlannedAt: () => true,
    });
    const other = RegionFile.parse({
      id: 'ishikawa-hakusan', name: { ja: '白山', en: 'Hakusan' },
      hubs: [{
        id: 'hakusan-tsurugi', kind: 'community-hall', name: { ja: '鶴来', en: 'Tsurugi' }, location: { lat: 36.45, lon: 136.63 },
        drones: [{ id: 'drone-9', model: 'm', windLimitMps: 4, gustLimitMps: 5 }],
        lockers: [{ id: 'locker-a', compartments: [{ id: 'B01', size: 'S', tempClass: 'frozen' }] }], sensors: ['wx'],
      }],
    });
    regions.add(other);
    await svc.onDeviceMessage(sensorTelemetry(4.5, 4.5, { hub: 'hakusan-tsurugi', ts: T0 + 1 }), 'ishikawa-hakusan'); // over 4 m/s there, under 6 at 寺井
    await svc.onDeviceMessage(sensorTelemetry(4.5, 4.5, { ts: T0 + 1 }), 'ishikawa-nomi');
    expect((await svc.list({ limit: 10 })).map((a) => `${a.region} ${a.hub} ${a.kind}`)).toEqual(['ishikawa-hakusan hakusan-tsurugi wind_over_limit_mission_planned']);
    expect(await svc.raise({ hub: 'hakusan-tsurugi', kind: 'tamper', device: 'locker-a', compartment: 'B01', detail: 'x' })).toMatchObject({ region: 'ishikawa-hakusan' });
    expect((await svc.list({ regions: ['ishikawa-nomi'], limit: 10 }))).toEqual([]);
  });
});

describe.each(SQL_DATABASES)('AlarmService on %s', (kind) => {
  let t: TestDatabase | null = null;
  afterEach(async () => {
    await t?.cleanup();
    t = null;
  });

  it('raises, repeats, acknowledges and clears as with the memory store, and a restart finds the active alarms', async () => {
    t = await openTestDatabase(kind);
    const svc = newService(await openAlarmStore(t.db));
    await svc.onDeviceMessage(doorOpen(T0), 'ishikawa-nomi');
    await svc.onDeviceMessage(doorOpen(T0), 'ishikawa-nomi'); // re-sent: raised once
    await svc.onDeviceMessage(doorOpen(T0 + 5), 'ishikawa-nomi');
    expect(await svc.acknowledge('alm-1', '山田', null)).toMatchObject({ state: 'acknowledged', count: 2 });
    const restarted = newService(await openAlarmStore(await t.reopen()));
    await restarted.onDeviceMessage(doorClosed(T0 + 10), 'ishikawa-nomi');
    expect(await svc.get('alm-1')).toMatchObject({ state: 'cleared', acknowledgedBy: '山田', clearNote: 'door of A03 closed', count: 2 });
    expect(changeLog()).toEqual(['raised door_open_too_long open x1', 'repeated door_open_too_long open x2', 'acknowledged door_open_too_long acknowledged x2', 'cleared door_open_too_long cleared x2']);
  });
});

describe('AlarmService: two cloud processes on one PostgreSQL', () => {
  let t: TestDatabase;
  afterEach(async () => t?.cleanup());

  it('the same condition reported to both at once is one alarm with a repeat, the same event to both is one alarm', async () => {
    t = await openTestDatabase('postgres');
    const one = newService(await openAlarmStore(t.db));
    const two = newService(await openAlarmStore(await t.reopen()));
    await Promise.all([one.onDeviceMessage(doorOpen(T0), 'ishikawa-nomi'), two.onDeviceMessage(doorOpen(T0 + 1), 'ishikawa-nomi')]);
    const tamper = lockerEvent('tamper', 'A01', { ts: T0 + 2 });
    await Promise.all([one.onDeviceMessage(tamper, 'ishikawa-nomi'), two.onDeviceMessage(tamper, 'ishikawa-nomi')]);
    const active = await one.list({ state: 'active', limit: 10 });
    expect(active.map((a) => `${a.kind} x${a.kind === 'tamper' ? a.count : '?'}`)).toEqual(['tamper x1', 'door_open_too_long x?']);
    // The door: whichever came first raised it; the later observation (T0 + 1) counts as a repeat, the
    // earlier one arriving second is older than what is known and counts as nothing.
    const door = active[1]!;
    expect(door.lastObservedAt).toBe(T0 + 1);
    expect(changes.filter((c) => c.type === 'raised').map((c) => c.alarm.kind).sort()).toEqual(['door_open_too_long', 'tamper']);
    expect(door.count).toBe(1 + changes.filter((c) => c.type === 'repeated').length);
    // Either process clears what the other raised once the condition ends there.
    await one.onDeviceMessage(doorClosed(T0 + 10), 'ishikawa-nomi');
    expect((await two.list({ state: 'active', limit: 10 })).map((a) => a.kind)).toEqual(['tamper']);
  });
});


/** Leases a test hands out and takes back (issue 15); `stale` makes a lease's fence refuse. */
function testLeases(held: string[] = []) {
  const holding = new Set(held);
  const stale = new Set<string>();
  const listeners = new Set<(name: string, token: number) => void>();
  let token = 1;
  const grant = (name: string): LeaseGrant | null => holding.has(name) ? {
    name, token, valid: () => true, fenced: (fn) => fn(undefined),
    fence: async () => {
      if (stale.has(name)) throw new StaleLeaseError(name, token, 'taken over (test)');
    },
  } : null;
  const leases: Leases & { acquire(name: string): void; stale: Set<string> } = {
    clustered: true, holder: 'test', grant, holds: (n) => holding.has(n), held: () => [...holding], close: async () => {},
    onAcquired: (fn) => {
      listeners.add(fn);
      return () => void listeners.delete(fn);
    },
    acquire(name) {
      holding.add(name);
      token++;
      for (const fn of listeners) fn(name, token);
    },
    stale,
  };
  return leases;
}

describe('AlarmService in a cluster (issue 15)', () => {
  const offline = () => [{ hub: HUB, region: 'ishikawa-nomi', online: false, since: now }];

  it('checks links only for regions whose lease it holds; a node taking a region over clears the hub_offline alarm the previous holder raised', async () => {
    const holderLeases = testLeases(['region:ishikawa-nomi']);
    const otherLeases = testLeases();
    const holder = newService(store, holderLeases);
    const other = newService(store, otherLeases);
    // The other node's memory of active alarms is loaded before the holder raises anything.
    await other.onDeviceMessage(doorOpen(), 'ishikawa-nomi');
    links = offline();
    now += 31_000;
    await other.checkLinks();
    expect((await store.active()).map((a) => a.kind)).toEqual(['door_open_too_long']);
    await holder.checkLinks();
    expect((await store.active()).map((a) => a.kind)).toEqual(['door_open_too_long', 'hub_offline']);
    // The holder goes away; the other node takes the region over, and the hub is back.
    otherLeases.acquire('region:ishikawa-nomi');
    links = [{ hub: HUB, region: 'ishikawa-nomi', online: true, since: now }];
    now += 1000;
    await other.checkLinks();
    expect((await store.active()).map((a) => a.kind)).toEqual(['door_open_too_long']);
  });

  it('a link check whose lease was taken over meanwhile is not applied; device alarms written with it are', async () => {
    const leases = testLeases(['region:ishikawa-nomi']);
    const svc = newService(store, leases);
    links = offline();
    now += 31_000;
    leases.stale.add('region:ishikawa-nomi');
    await Promise.all([svc.checkLinks(), svc.onDeviceMessage(doorOpen(), 'ishikawa-nomi')]);
    expect((await store.active()).map((a) => a.kind)).toEqual(['door_open_too_long']);
    expect(changeLog()).toEqual(['raised door_open_too_long open x1']);
  });

  it('an alarm another node raised (told by the cluster bus) is cleared here when the condition ends here', async () => {
    const here = newService(store, testLeases());
    const there = newService(store, testLeases());
    await here.onDeviceMessage(lockerEvent('tamper', 'A01', { ts: T0 }), 'ishikawa-nomi'); // loads here's memory
    const remote: AlarmChange[] = [];
    there.onChange((c) => remote.push(c));
    await there.onDeviceMessage(doorOpen(), 'ishikawa-nomi');
    for (const c of remote) here.applyRemoteChange(c);
    await here.onDeviceMessage(doorClosed(T0 + 10), 'ishikawa-nomi');
    expect((await store.active()).map((a) => a.kind)).toEqual(['tamper']);
  });
});
