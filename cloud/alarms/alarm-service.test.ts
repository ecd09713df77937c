import { pino } from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import { RegionFile, type FlightState } from '../../contract/index.ts';
import { compartment, droneEvent, droneTelemetry, HUB, lockerEvent, lockerTelemetry, sensorTelemetry, T0 } from './alarm-fixtures.ts';
import type { AlarmKind, HubLinkView } from './alarm-rules.ts';
import { AlarmError, AlarmService, type AlarmChange } from './alarm-service.ts';
import { createMemoryAlarmStore, type AlarmStore } from './alarm-store.ts';

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

function newService(s: AlarmStore = store): AlarmService {
  const svc = new AlarmService({
    store: s, region: REGION, now: () => now, newId: () => `alm-${++ids}`, logger: pino({ level: 'silent' }),
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
  it('raises an alarm from a device message, tells listeners and counts it', () => {
    const msg = doorOpen();
    service.onDeviceMessage(msg, 'ishikawa-nomi');
    const [a, ...rest] = service.list({ limit: 10 });
    expect(rest).toEqual([]);
    expect(a).toMatchObject({
      id: 'alm-1', region: 'ishikawa-nomi', hub: HUB, device: 'locker-a', compartment: 'A03', kind: 'door_open_too_long', severity: 'warning',
      state: 'open', raisedAt: now, lastSeenAt: now, count: 1, observedAt: T0, sourceMsgId: msg.id, acknowledgedBy: null, clearedAt: null,
    });
    expect(changeLog()).toEqual(['raised door_open_too_long open x1']);
    expect(raisedKinds).toEqual(['door_open_too_long']);
    expect(service.countActive()).toEqual({ warning: 1, critical: 0 });
  });

  it('counts a repeat instead of raising another; the same observation twice is no repeat', () => {
    service.onDeviceMessage(doorOpen(T0), 'ishikawa-nomi');
    now += 5000;
    service.onDeviceMessage(doorOpen(T0 + 5000), 'ishikawa-nomi');
    const warm = lockerTelemetry([compartment('A03', { door: 'open', tempClass: 'chilled', tempC: 11 })], { ts: T0 + 6000 });
    service.onDeviceMessage(warm, 'ishikawa-nomi');
    service.onDeviceMessage(warm, 'ishikawa-nomi'); // re-sent telemetry: same id and timestamp
    expect(service.list({ limit: 10 }).map((a) => [a.kind, a.count])).toEqual([['compartment_too_warm', 1], ['door_open_too_long', 2]]);
    expect(service.list({ limit: 10, kind: 'door_open_too_long' })[0]).toMatchObject({ raisedAt: T0 + 1000, lastSeenAt: T0 + 6000, lastObservedAt: T0 + 5000 });
    expect(raisedKinds).toEqual(['door_open_too_long', 'compartment_too_warm']);
    expect(changeLog()).toEqual(['raised door_open_too_long open x1', 'repeated door_open_too_long open x2', 'raised compartment_too_warm open x1']);
  });

  it('clears automatically when the condition ends — but not on an observation older than the last report', () => {
    service.onDeviceMessage(doorOpen(T0), 'ishikawa-nomi');
    service.onDeviceMessage(doorClosed(T0 - 1), 'ishikawa-nomi'); // late telemetry from before the event
    expect(service.list({ limit: 1 })[0]!.state).toBe('open');
    now += 20_000;
    service.onDeviceMessage(doorClosed(T0 + 20_000), 'ishikawa-nomi');
    expect(service.list({ limit: 1 })[0]).toMatchObject({ state: 'cleared', clearedAt: now, clearedBy: null, clearNote: 'door of A03 closed' });
    expect(changeLog()).toEqual(['raised door_open_too_long open x1', 'cleared door_open_too_long cleared x1']);
    // The key is free again: the next opening raises a new alarm.
    service.onDeviceMessage(doorOpen(T0 + 60_000), 'ishikawa-nomi');
    expect(service.list({ limit: 10, state: 'active' }).map((a) => a.id)).toEqual(['alm-2']);
  });

  it('keeps an acknowledged alarm until it is cleared, and records who acknowledged', () => {
    service.onDeviceMessage(doorOpen(), 'ishikawa-nomi');
    now += 1000;
    const acked = service.acknowledge('alm-1', '山田 (寺井)', 'checking');
    expect(acked).toMatchObject({ state: 'acknowledged', acknowledgedAt: now, acknowledgedBy: '山田 (寺井)', ackNote: 'checking' });
    now += 1000;
    expect(service.acknowledge('alm-1', 'someone else', null)).toMatchObject({ acknowledgedBy: '山田 (寺井)', acknowledgedAt: now - 1000 });
    service.onDeviceMessage(doorOpen(T0 + 100), 'ishikawa-nomi');
    expect(service.get('alm-1')).toMatchObject({ state: 'acknowledged', count: 2 });
    service.onDeviceMessage(doorClosed(T0 + 200), 'ishikawa-nomi');
    expect(service.get('alm-1')).toMatchObject({ state: 'cleared', acknowledgedBy: '山田 (寺井)', clearedBy: null });
    expect(() => service.acknowledge('alm-1', 'x', null)).toThrow(expect.objectContaining({ code: 'alarm_cleared' }));
    expect(() => service.acknowledge('alm-404', 'x', null)).toThrow(AlarmError);
    expect(changeLog()).toEqual(['raised door_open_too_long open x1', 'acknowledged door_open_too_long acknowledged x1', 'repeated door_open_too_long acknowledged x2', 'cleared door_open_too_long cleared x2']);
  });

  it('clears by hand once; afterwards the condition raises a new alarm', () => {
    service.onDeviceMessage(lockerEvent('tamper', 'A01'), 'ishikawa-nomi');
    expect(service.clear('alm-1', 'staff-7', 'lid checked, no damage')).toMatchObject({ state: 'cleared', clearedBy: 'staff-7', clearNote: 'lid checked, no damage' });
    expect(() => service.clear('alm-1', 'staff-7', null)).toThrow(expect.objectContaining({ code: 'alarm_cleared' }));
    expect(() => service.get('nope')).toThrow(expect.objectContaining({ code: 'alarm_not_found' }));
    service.onDeviceMessage(lockerEvent('tamper', 'A01', { ts: T0 + 1 }), 'ishikawa-nomi');
    expect(service.list({ limit: 10 }).map((a) => `${a.id} ${a.state}`)).toEqual(['alm-2 open', 'alm-1 cleared']);
  });

  it('raises repeated_wrong_pickup_codes on the third wrong code at a compartment within 10 minutes', () => {
    for (const [i, ts] of [T0, T0 + 60_000, T0 + 700_000, T0 + 760_000].entries()) {
      service.onDeviceMessage(lockerEvent('pickup_code_rejected', i === 1 ? 'A01' : 'A03', { ts, pickupCode: '111111' }), 'ishikawa-nomi');
    }
    expect(service.list({ limit: 10 })).toEqual([]); // A03 at 0, 700 s and 760 s: never three within 10 min
    service.onDeviceMessage(lockerEvent('pickup_code_rejected', 'A03', { ts: T0 + 800_000, pickupCode: '222222' }), 'ishikawa-nomi');
    expect(service.list({ limit: 10 })).toMatchObject([{ kind: 'repeated_wrong_pickup_codes', compartment: 'A03', severity: 'critical' }]);
  });

  it('starts counting wrong codes afresh after a successful pickup at the compartment', () => {
    const code = (event: 'pickup' | 'pickup_code_rejected', ts: number) => service.onDeviceMessage(lockerEvent(event, 'A01', { ts, pickupCode: '333333' }), 'ishikawa-nomi');
    code('pickup_code_rejected', T0);
    code('pickup_code_rejected', T0 + 1000);
    code('pickup', T0 + 2000);
    code('pickup_code_rejected', T0 + 3000);
    code('pickup_code_rejected', T0 + 4000);
    expect(service.list({ limit: 10 })).toEqual([]);
    code('pickup_code_rejected', T0 + 5000);
    expect(service.list({ limit: 10 })).toMatchObject([{ kind: 'repeated_wrong_pickup_codes', compartment: 'A01' }]);
  });

  it('uses the drone\'s flight state from live state for battery_low events', () => {
    flight = 'landed';
    service.onDeviceMessage(droneEvent('battery_low', { missionId: null }), 'ishikawa-nomi');
    expect(service.list({ limit: 10 })).toEqual([]);
    flight = 'rtl';
    service.onDeviceMessage(droneEvent('battery_low', { missionId: null }), 'ishikawa-nomi');
    expect(service.list({ limit: 10 })).toMatchObject([{ kind: 'drone_battery_low_in_flight', device: 'drone-1', severity: 'critical' }]);
    service.onDeviceMessage(droneTelemetry({ ts: T0 + 1, flightState: 'landed', batteryPct: 12 }), 'ishikawa-nomi');
    expect(service.list({ limit: 10 })[0]!.state).toBe('cleared');
  });

  it('raises the wind alarm only where the orders feature says a mission is planned, with the hub\'s drone limits', () => {
    service.onDeviceMessage(sensorTelemetry(7, 9), 'ishikawa-nomi');
    expect(service.list({ limit: 10 })).toEqual([]);
    let planned = true;
    service.setMissionsPlannedAt((hub) => hub === HUB && planned);
    service.onDeviceMessage(sensorTelemetry(5.9, 7.9, { ts: T0 + 1 }), 'ishikawa-nomi'); // limits 6 / 8
    expect(service.list({ limit: 10 })).toEqual([]);
    service.onDeviceMessage(sensorTelemetry(6, 7, { ts: T0 + 2 }), 'ishikawa-nomi');
    expect(service.list({ limit: 10 })).toMatchObject([{ kind: 'wind_over_limit_mission_planned', device: 'wx', state: 'open' }]);
    planned = false;
    service.onDeviceMessage(sensorTelemetry(9, 9, { ts: T0 + 3 }), 'ishikawa-nomi');
    expect(service.list({ limit: 10 })[0]).toMatchObject({ state: 'cleared', clearNote: 'no mission planned at the hub any more' });
  });

  it('raises hub_offline after the grace period once, and clears it when the hub is back', () => {
    links = [{ hub: HUB, region: 'ishikawa-nomi', online: false, since: now }, { hub: 'nomi-wake', region: 'ishikawa-nomi', online: false, since: null }];
    service.checkLinks();
    now += 29_999;
    service.checkLinks();
    expect(service.list({ limit: 10 })).toEqual([]);
    now += 1;
    service.checkLinks();
    now += 5000;
    service.checkLinks();
    expect(service.list({ limit: 10 })).toMatchObject([{ kind: 'hub_offline', hub: HUB, device: null, severity: 'critical', count: 1, state: 'open' }]);
    links = [{ hub: HUB, region: 'ishikawa-nomi', online: true, since: now }];
    now += 1000;
    service.checkLinks();
    expect(service.list({ limit: 10 })[0]).toMatchObject({ state: 'cleared', clearNote: 'hub online again' });
  });

  it('raises the hub_offline alarms of one link check in one store transaction and tells listeners after it', () => {
    const hubs = ['hub-1', 'hub-2', 'hub-3'];
    let inTransaction = false;
    const seenInTransaction: boolean[] = [];
    const transactions: number[] = [];
    const base = createMemoryAlarmStore();
    const counting: AlarmStore = {
      ...base,
      transaction: (fn) => {
        transactions.push(1);
        inTransaction = true;
        try {
          return base.transaction(fn);
        } finally {
          inTransaction = false;
        }
      },
    };
    const svc = newService(counting);
    svc.onChange(() => seenInTransaction.push(inTransaction));
    links = hubs.map((hub) => ({ hub, region: 'ishikawa-nomi', online: false, since: now - 60_000 }));
    svc.checkLinks();
    expect(transactions).toHaveLength(1);
    expect(seenInTransaction).toEqual([false, false, false]);
    expect(counting.list({ state: 'active', limit: 10 })).toHaveLength(3);
    now += 5000;
    svc.checkLinks(); // nothing new: no transaction
    links = hubs.map((hub) => ({ hub, region: 'ishikawa-nomi', online: true, since: now }));
    svc.checkLinks();
    svc.checkLinks(); // online and nothing active: nothing to do
    expect(transactions).toHaveLength(2);
    expect(counting.list({ state: 'active', limit: 10 })).toEqual([]);
  });

  it('a failed link check tells no one and leaves no ghost alarms behind', () => {
    const db = createMemoryAlarmStore();
    let inserts = 0;
    const failing: AlarmStore = {
      ...db,
      insert: (a) => {
        if (++inserts === 2) throw new Error('disk full');
        db.insert(a);
      },
      // A rollback: forget what the failed batch inserted.
      transaction: (fn) => {
        const before = new Set(db.list({ limit: 1000 }).map((a) => a.id));
        try {
          return fn();
        } catch (err) {
          for (const a of db.list({ limit: 1000 })) if (!before.has(a.id)) db.clear(a.id, { at: 0, by: null, note: 'rolled back' });
          throw err;
        }
      },
    };
    const svc = newService(failing);
    links = ['hub-1', 'hub-2'].map((hub) => ({ hub, region: 'ishikawa-nomi', online: false, since: now - 60_000 }));
    svc.checkLinks();
    expect(changes).toEqual([]);
    now += 5000;
    svc.checkLinks(); // the next check raises both
    expect(changeLog()).toEqual(['raised hub_offline open x1', 'raised hub_offline open x1']);
  });

  it('checks links periodically once started', async () => {
    const svc = new AlarmService({
      store, region: REGION, now: Date.now, newId: () => 'alm-timer', logger: pino({ level: 'silent' }),
      hubs: { links: () => [{ hub: HUB, region: 'ishikawa-nomi', online: false, since: Date.now() - 60_000 }], droneFlightState: () => null },
      params: { hubOfflineGraceMs: 30_000 }, linkCheckIntervalMs: 20,
    });
    svc.start();
    await new Promise((r) => setTimeout(r, 100));
    svc.close();
    expect(store.list({ limit: 10 })).toMatchObject([{ id: 'alm-timer', kind: 'hub_offline' }]);
  });

  it('finds the active alarms of an earlier run (restart) and clears them when the condition ends', () => {
    service.onDeviceMessage(doorOpen(), 'ishikawa-nomi');
    const restarted = newService(store);
    restarted.onDeviceMessage(doorOpen(T0 + 1), 'ishikawa-nomi');
    expect(store.list({ limit: 10 })).toMatchObject([{ id: 'alm-1', count: 2 }]);
    restarted.onDeviceMessage(doorClosed(T0 + 2), 'ishikawa-nomi');
    expect(store.get('alm-1')!.state).toBe('cleared');
  });

  it('lets other features raise directly, deduplicated like any other', () => {
    const a = service.raise({ hub: HUB, device: 'locker-a', compartment: 'A03', kind: 'repeated_wrong_pickup_codes', detail: 'compartment locked after 3 wrong codes' });
    expect(a).toMatchObject({ id: 'alm-1', region: 'ishikawa-nomi', severity: 'critical', state: 'open', observedAt: now, sourceMsgId: null });
    now += 1;
    expect(service.raise({ hub: HUB, device: 'locker-a', compartment: 'A03', kind: 'repeated_wrong_pickup_codes', detail: 'again' })).toMatchObject({ id: 'alm-1', count: 2, detail: 'again' });
  });

  it('survives a failing store and a failing listener', () => {
    const broken: AlarmStore = { ...createMemoryAlarmStore(), insert: () => { throw new Error('disk full'); } };
    const svc = newService(broken);
    expect(() => svc.onDeviceMessage(doorOpen(), 'ishikawa-nomi')).not.toThrow();
    service.onChange(() => { throw new Error('listener bug'); });
    service.onDeviceMessage(doorOpen(), 'ishikawa-nomi');
    expect(service.list({ limit: 10 })).toHaveLength(1);
  });
});
