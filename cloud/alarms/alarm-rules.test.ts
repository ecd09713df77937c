import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RegionFile, type DeviceMessage, type FlightState } from '../../contract/index.ts';
import {
  compartment, droneEvent, droneTelemetry, everyRaisedAlarm, HUB, lockerEvent, lockerTelemetry, sensorEvent, sensorTelemetry, T0,
} from './alarm-fixtures.ts';
import {
  AIRBORNE_STATES,
  ALARM_KINDS,
  AlarmParams,
  DEFAULT_ALARM_RULE_PARAMS,
  evaluateDeviceMessage,
  evaluateHubLink,
  GROUND_STATES,
  slidePickupRejections,
  windLimitsByHub,
  type AlarmDecision,
  type DeviceRuleContext,
} from './alarm-rules.ts';

const REGION = 'ishikawa-nomi';
const ctx = (over: Partial<DeviceRuleContext> = {}): DeviceRuleContext => ({
  windLimits: { windMps: 5, gustMps: 5 }, missionPlanned: () => false, droneFlightState: null, compartmentClass: null, pickupRejections: [], ...over,
});
const run = (msg: DeviceMessage, over: Partial<DeviceRuleContext> = {}) => evaluateDeviceMessage(msg, REGION, ctx(over));
const planned = (yes: boolean) => () => yes;
/** Decisions in a compact form: "raise door_open_too_long locker-a/A03". */
const brief = (ds: AlarmDecision[]) => ds.map((d) => `${d.action} ${d.key.kind} ${d.key.device ?? '-'}/${d.key.compartment ?? '-'}`);
const raises = (ds: AlarmDecision[]) => ds.filter((d) => d.action === 'raise');
const clears = (ds: AlarmDecision[]) => ds.filter((d) => d.action === 'clear');

describe('door_open_too_long', () => {
  it('is raised by the locker event, as a warning for the compartment, quoting the device text', () => {
    const msg = lockerEvent('door_open_too_long', 'A03', { detail: 'open for 180 s <b>' });
    const [d, ...rest] = run(msg);
    expect(rest).toEqual([]);
    expect(d).toEqual({
      action: 'raise', key: { hub: HUB, device: 'locker-a', compartment: 'A03', kind: 'door_open_too_long' }, region: REGION, severity: 'warning',
      detail: 'door of compartment A03 open too long; device says: "open for 180 s <b>"', params: {}, deviceDetail: 'open for 180 s <b>',
      sourceMsgId: msg.id, observedAt: msg.ts,
    });
  });

  it('is cleared by telemetry showing the door closed, or a door_closed event, not by an open door', () => {
    const t = lockerTelemetry([compartment('A01', { door: 'closed' }), compartment('A03', { door: 'open' })], { ts: T0 + 5000 });
    expect(brief(run(t))).toEqual(['clear door_open_too_long locker-a/A01']);
    expect(clears(run(t))[0]!.observedAt).toBe(T0 + 5000);
    expect(brief(run(lockerEvent('door_closed', 'A03')))).toEqual(['clear door_open_too_long locker-a/A03']);
    expect(run(lockerEvent('door_opened', 'A03'))).toEqual([]);
  });

  it('ignores telemetry replayed from a backlog, but raises from a replayed event', () => {
    expect(run(lockerTelemetry([compartment('A03')], { historical: true }))).toEqual([]);
    expect(brief(run(lockerEvent('door_open_too_long', 'A03', { historical: true })))).toEqual(['raise door_open_too_long locker-a/A03']);
  });
});

describe('compartment_too_warm', () => {
  const at = (tempClass: 'ambient' | 'chilled' | 'frozen', tempC: number | null) => brief(run(lockerTelemetry([compartment('A02', { tempClass, tempC })])))
    .filter((s) => s.includes('compartment_too_warm'));

  it('chilled: 10 °C is fine, 10.1 °C is too warm; clears at or below 9.5 °C', () => {
    expect(at('chilled', 10)).toEqual([]);
    expect(at('chilled', 10.1)).toEqual(['raise compartment_too_warm locker-a/A02']);
    expect(at('chilled', 9.6)).toEqual([]); // inside the hysteresis band: neither
    expect(at('chilled', 9.5)).toEqual(['clear compartment_too_warm locker-a/A02']);
    expect(at('chilled', 2)).toEqual(['clear compartment_too_warm locker-a/A02']);
  });

  it('frozen: −15 °C is fine, −14.9 °C is too warm; clears at or below −15.5 °C', () => {
    expect(at('frozen', -15)).toEqual([]);
    expect(at('frozen', -14.9)).toEqual(['raise compartment_too_warm locker-a/A02']);
    expect(at('frozen', -15.4)).toEqual([]);
    expect(at('frozen', -15.5)).toEqual(['clear compartment_too_warm locker-a/A02']);
  });

  it('never for ambient compartments or without a sensor reading', () => {
    expect(at('ambient', 45)).toEqual([]);
    expect(at('chilled', null)).toEqual([]);
    expect(run(lockerTelemetry([compartment('A02', { tempClass: 'chilled', tempC: 30 })], { historical: true }))).toEqual([]);
  });

  it('says what it measured', () => {
    const [d] = raises(run(lockerTelemetry([compartment('A06', { tempClass: 'chilled', tempC: 12.4 })])));
    expect(d).toMatchObject({ severity: 'warning', detail: 'chilled compartment A06 at 12.4 °C (limit 10 °C)' });
  });

  it('raise iff above the limit, clear iff at or below limit − 0.5, never both (any reading)', () => {
    fc.assert(fc.property(fc.constantFrom('chilled' as const, 'frozen' as const), fc.integer({ min: -500, max: 800 }), (tempClass, tenths) => {
      const tempC = tenths / 10;
      const limit = DEFAULT_ALARM_RULE_PARAMS.tempLimitC[tempClass];
      const got = at(tempClass, tempC);
      expect(got.some((s) => s.startsWith('raise'))).toBe(tempC > limit);
      expect(got.some((s) => s.startsWith('clear'))).toBe(tempC <= limit - 0.5);
    }));
  });

  it('is raised by a temperature_out_of_range event when it is too warm, not too cold', () => {
    const ev = (tempC: number | undefined, compartmentClass: DeviceRuleContext['compartmentClass']) =>
      brief(run(lockerEvent('temperature_out_of_range', 'A03', tempC === undefined ? {} : { tempC }), { compartmentClass }));
    expect(ev(12.3, 'chilled')).toEqual(['raise compartment_too_warm locker-a/A03']);
    expect(ev(1, 'chilled')).toEqual([]);
    expect(ev(-10, 'frozen')).toEqual(['raise compartment_too_warm locker-a/A03']);
    expect(ev(undefined, 'chilled')).toEqual(['raise compartment_too_warm locker-a/A03']); // trust the device
    expect(ev(12.3, null)).toEqual(['raise compartment_too_warm locker-a/A03']);
    expect(ev(40, 'ambient')).toEqual([]);
  });
});

describe('drone_battery_low_in_flight', () => {
  it('is raised (critical) by telemetry in every airborne state below 20 %, not at 20 %', () => {
    for (const flightState of AIRBORNE_STATES) {
      const ds = run(droneTelemetry({ flightState, batteryPct: 19.9 }));
      expect(brief(ds)).toEqual(['raise drone_battery_low_in_flight drone-1/-']);
      expect(ds[0]).toMatchObject({ severity: 'critical' });
      expect(run(droneTelemetry({ flightState, batteryPct: 20 }))).toEqual([]);
    }
  });

  it('is cleared once the drone is on the ground, whatever its battery; not by a fault state', () => {
    for (const flightState of GROUND_STATES) {
      expect(brief(run(droneTelemetry({ flightState, batteryPct: 8 })))).toEqual(['clear drone_battery_low_in_flight drone-1/-']);
    }
    expect(run(droneTelemetry({ flightState: 'fault', batteryPct: 8 }))).toEqual([]);
    expect(run(droneTelemetry({ flightState: 'mission', batteryPct: 8, historical: true }))).toEqual([]);
  });

  it('is raised by a battery_low event while airborne (by telemetry, or a mission id when no telemetry came yet)', () => {
    const ev = (droneFlightState: FlightState | null, missionId: string | null) => brief(run(droneEvent('battery_low', { missionId }), { droneFlightState }));
    expect(ev('rtl', null)).toEqual(['raise drone_battery_low_in_flight drone-1/-']);
    expect(ev('charging', 'mission-1')).toEqual([]);
    expect(ev(null, 'mission-1')).toEqual(['raise drone_battery_low_in_flight drone-1/-']);
    expect(ev(null, null)).toEqual([]);
  });
});

describe('drone_failsafe', () => {
  it('is raised (critical) by a failsafe event; other drone events raise nothing', () => {
    const ds = run(droneEvent('failsafe', { detail: 'rc lost' }));
    expect(ds).toMatchObject([{ action: 'raise', severity: 'critical', key: { kind: 'drone_failsafe', device: 'drone-1', compartment: null }, detail: 'the drone triggered a failsafe; device says: "rc lost"' }]);
    for (const e of ['armed', 'takeoff', 'landed', 'mission_started', 'mission_complete', 'rtl', 'geofence_breach', 'fault'] as const) {
      expect(run(droneEvent(e), { droneFlightState: 'mission' })).toEqual([]);
    }
  });
});

describe('wind_over_limit_mission_planned', () => {
  const wind = (w: number, g: number, missionPlanned = true, limits = { windMps: 5, gustMps: 5 }) =>
    brief(run(sensorTelemetry(w, g), { missionPlanned: planned(missionPlanned), windLimits: limits }));

  it('is raised when wind or gust reaches the limit (exactly at the limit counts as over) with a mission planned', () => {
    expect(wind(5, 4)).toEqual(['raise wind_over_limit_mission_planned wx/-']);
    expect(wind(3, 5)).toEqual(['raise wind_over_limit_mission_planned wx/-']);
    expect(wind(4.9, 4.9)).toEqual([]); // inside the hysteresis band: neither
    expect(wind(7.9, 9.9, true, { windMps: 8, gustMps: 10 })).toEqual([]);
    expect(wind(7, 9, true, { windMps: 8, gustMps: 10 })).toEqual(['clear wind_over_limit_mission_planned wx/-']);
    expect(wind(8, 9, true, { windMps: 8, gustMps: 10 })).toEqual(['raise wind_over_limit_mission_planned wx/-']);
  });

  it('is cleared below the limits − 0.5 m/s, or when no mission is planned any more', () => {
    expect(wind(4.5, 4.4)).toEqual([]);
    expect(wind(4.4, 4.4)).toEqual(['clear wind_over_limit_mission_planned wx/-']);
    expect(wind(12, 15, false)).toEqual(['clear wind_over_limit_mission_planned wx/-']);
    expect(run(sensorTelemetry(9, 9, { historical: true }), { missionPlanned: planned(true) })).toEqual([]);
    expect(wind(4.9, 4.9, false)).toEqual(['clear wind_over_limit_mission_planned wx/-']);
  });

  it('asks whether a mission is planned only when the wind is at or near the limit', () => {
    let asked = 0;
    const ask = () => (asked++, true);
    run(sensorTelemetry(2, 3), { missionPlanned: ask });
    expect(asked).toBe(0);
    run(sensorTelemetry(4.6, 3), { missionPlanned: ask });
    run(sensorTelemetry(5, 3), { missionPlanned: ask });
    expect(asked).toBe(2);
  });

  it('raise iff a mission is planned and wind ≥ limit or gust ≥ limit (any reading)', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 250 }), fc.boolean(), (w10, g10, planned) => {
      const got = wind(w10 / 10, g10 / 10, planned);
      expect(got.some((s) => s.startsWith('raise'))).toBe(planned && (w10 >= 50 || g10 >= 50));
      expect(got.length).toBeLessThanOrEqual(1);
    }));
  });

  it('is raised by a wind_over_limit event whose reading reaches the drones\' limit', () => {
    const ev = (value: number | undefined, missionPlanned = true) => brief(run(sensorEvent('wind_over_limit', value === undefined ? {} : { value }), { missionPlanned: planned(missionPlanned) }));
    expect(ev(5.2)).toEqual(['raise wind_over_limit_mission_planned wx/-']);
    expect(ev(5)).toEqual(['raise wind_over_limit_mission_planned wx/-']);
    expect(ev(4.2)).toEqual([]);
    expect(ev(undefined)).toEqual(['raise wind_over_limit_mission_planned wx/-']);
    expect(ev(9, false)).toEqual([]);
    expect(run(sensorEvent('wind_normal', { value: 2 }), { missionPlanned: planned(true) })).toEqual([]);
  });
});

describe('repeated_wrong_pickup_codes', () => {
  /** Feeds rejections at these device times through the window, as the service does; the decisions of each. */
  function feed(times: number[]): string[][] {
    let window: number[] = [];
    return times.map((ts) => {
      window = slidePickupRejections(window, ts, DEFAULT_ALARM_RULE_PARAMS.pickupRejectWindowMs);
      return brief(run(lockerEvent('pickup_code_rejected', 'A02', { ts, pickupCode: '123456' }), { pickupRejections: window }));
    });
  }

  it('is raised (critical) by the third wrong code at a compartment within 10 minutes', () => {
    expect(feed([T0, T0 + 60_000, T0 + 120_000])).toEqual([[], [], ['raise repeated_wrong_pickup_codes locker-a/A02']]);
    const window = slidePickupRejections([T0, T0 + 1], T0 + 2, 600_000);
    const [d] = run(lockerEvent('pickup_code_rejected', 'A02', { ts: T0 + 2, pickupCode: '987654' }), { pickupRejections: window });
    expect(d).toMatchObject({ severity: 'critical', detail: '3 wrong pickup codes at compartment A02 within 10 min' });
    expect(JSON.stringify(d)).not.toContain('987654'); // codes are never stored
  });

  it('is not raised when the three are spread over more than 10 minutes', () => {
    expect(feed([T0, T0 + 300_000, T0 + 600_000, T0 + 1_000_000])).toEqual([[], [], [], []]);
    expect(feed([T0, T0 + 300_000, T0 + 599_999])).toEqual([[], [], ['raise repeated_wrong_pickup_codes locker-a/A02']]);
  });

  it('keeps the window in device time, in order, even for events that arrive late', () => {
    expect(slidePickupRejections([T0 + 5000, T0], T0 + 1000, 600_000)).toEqual([T0, T0 + 1000]);
    expect(slidePickupRejections([T0 - 600_000, T0 - 599_999], T0, 600_000)).toEqual([T0 - 599_999, T0]);
  });
});

describe('tamper', () => {
  it('is raised (critical) by the locker event and by a compartment reporting a tamper fault', () => {
    expect(run(lockerEvent('tamper', 'A05'))).toMatchObject([{ action: 'raise', severity: 'critical', key: { kind: 'tamper', compartment: 'A05' } }]);
    expect(brief(run(lockerTelemetry([compartment('A05', { fault: 'tamper' }), compartment('A06', { fault: 'jammed' })]))))
      .toEqual(['clear door_open_too_long locker-a/A05', 'raise tamper locker-a/A05', 'clear door_open_too_long locker-a/A06']);
  });
});

describe('hub_offline', () => {
  const link = (online: boolean, since: number | null) => ({ hub: HUB, region: REGION, online, since });
  const p = { hubOfflineGraceMs: 60_000 };

  it('is raised once the hub has been offline for the grace period, observed when it went offline', () => {
    expect(evaluateHubLink(link(false, T0), T0 + 59_999, p)).toBeNull();
    expect(evaluateHubLink(link(false, T0), T0 + 60_000, p)).toMatchObject({
      action: 'raise', region: REGION, severity: 'critical', key: { hub: HUB, device: null, compartment: null, kind: 'hub_offline' }, observedAt: T0, sourceMsgId: null,
    });
  });

  it('is cleared when the hub is online; a hub never seen since start is not judged', () => {
    expect(evaluateHubLink(link(true, T0), T0 + 1, p)).toMatchObject({ action: 'clear', key: { kind: 'hub_offline' }, observedAt: T0 + 1 });
    expect(evaluateHubLink(link(false, null), T0 + 3_600_000, p)).toBeNull();
  });
});

describe('windLimitsByHub', () => {
  const region = (hubs: { id: string; drones: { id: string; windLimitMps?: number; gustLimitMps?: number }[] }[]) => RegionFile.parse({
    id: REGION, name: { ja: 'x', en: 'x' },
    hubs: hubs.map((h) => ({ id: h.id, kind: 'community-hall', name: { ja: h.id, en: h.id }, location: { lat: 36, lon: 136 }, drones: h.drones.map((d) => ({ model: 'm', ...d })) })),
  });

  it('takes the strictest limits of the hub\'s drones; a hub without drones gets the region\'s strictest', () => {
    const w = windLimitsByHub(region([
      { id: 'a', drones: [{ id: 'd1', windLimitMps: 8, gustLimitMps: 12 }, { id: 'd2', windLimitMps: 10, gustLimitMps: 11 }] },
      { id: 'b', drones: [{ id: 'd1', windLimitMps: 7, gustLimitMps: 15 }] },
      { id: 'c', drones: [] },
    ]));
    expect(w.byHub.get('a')).toEqual({ windMps: 8, gustMps: 11 });
    expect(w.byHub.get('c')).toEqual({ windMps: 7, gustMps: 11 });
    expect(w.fallback).toEqual({ windMps: 7, gustMps: 11 });
  });

  it('falls back to the MLIT default of 5 m/s when the region has no drones', () => {
    expect(windLimitsByHub(region([{ id: 'a', drones: [] }])).byHub.get('a')).toEqual({ windMps: 5, gustMps: 5 });
  });
});

describe('params: every alarm carries its condition as data (issue 13, item 4)', () => {
  const byHow = new Map(everyRaisedAlarm().map((a) => [a.how, a]));
  const sample = (how: string) => {
    const a = byHow.get(how);
    if (!a) throw new Error(`no sample "${how}"`);
    return { kind: a.kind, params: a.params, deviceDetail: a.deviceDetail };
  };

  it('every kind is raised somewhere, and every params object is valid for the API', () => {
    expect(new Set([...byHow.values()].map((a) => a.kind))).toEqual(new Set(ALARM_KINDS));
    for (const a of byHow.values()) expect(() => AlarmParams.parse(a.params), a.how).not.toThrow();
  });

  it('door_open_too_long: the device\'s own text apart, no reading to give', () => {
    expect(sample('locker event door_open_too_long')).toEqual({ kind: 'door_open_too_long', params: {}, deviceDetail: 'Door open for 180 s' });
  });

  it('compartment_too_warm: the temperature, the limit of its class, the class', () => {
    expect(sample('locker telemetry too warm (chilled)')).toEqual({ kind: 'compartment_too_warm', params: { tempC: 12.4, limitC: 10, tempClass: 'chilled' }, deviceDetail: null });
    expect(sample('locker telemetry too warm (frozen)')).toEqual({ kind: 'compartment_too_warm', params: { tempC: -11, limitC: -15, tempClass: 'frozen' }, deviceDetail: null });
    expect(sample('locker event temperature_out_of_range with a reading'))
      .toEqual({ kind: 'compartment_too_warm', params: { tempC: 13.1, limitC: 10, tempClass: 'chilled' }, deviceDetail: 'TEMP HIGH' });
    expect(sample('locker event temperature_out_of_range without a reading')).toEqual({ kind: 'compartment_too_warm', params: {}, deviceDetail: null });
  });

  it('drone_battery_low_in_flight: charge, the low limit, flight time left, flight state, mission', () => {
    expect(sample('drone telemetry battery low in flight')).toEqual({
      kind: 'drone_battery_low_in_flight', params: { batteryPct: 17, limitPct: 20, flightTimeLeftS: 240, flightState: 'rtl', missionId: 'm-42' }, deviceDetail: null,
    });
    expect(sample('drone event battery_low in flight')).toEqual({
      kind: 'drone_battery_low_in_flight', params: { flightState: 'mission', missionId: 'm-42', limitPct: 20 }, deviceDetail: 'Battery 18%, RTL',
    });
  });

  it('drone_failsafe: flight state (and mission when flying one), the device\'s text apart', () => {
    expect(sample('drone event failsafe')).toEqual({ kind: 'drone_failsafe', params: { flightState: 'hover' }, deviceDetail: 'RC link lost' });
  });

  it('wind_over_limit_mission_planned: wind and gust with the hub\'s limits (the strictest drone\'s)', () => {
    expect(sample('sensor telemetry wind over the limit'))
      .toEqual({ kind: 'wind_over_limit_mission_planned', params: { windMps: 6.2, gustMps: 9.8, windLimitMps: 5, gustLimitMps: 6 }, deviceDetail: null });
    expect(sample('sensor event wind_over_limit with a reading'))
      .toEqual({ kind: 'wind_over_limit_mission_planned', params: { windMps: 7.5, windLimitMps: 5 }, deviceDetail: 'Wind over threshold' });
    expect(sample('sensor event wind_over_limit without a reading')).toEqual({ kind: 'wind_over_limit_mission_planned', params: { windLimitMps: 5 }, deviceDetail: null });
  });

  it('hub_offline: since when (ISO 8601) and for how long when raised', () => {
    expect(sample('hub link lost')).toEqual({ kind: 'hub_offline', params: { offlineSince: new Date(T0).toISOString(), offlineS: 75 }, deviceDetail: null });
  });

  it('repeated_wrong_pickup_codes: how many within how many minutes — never the codes', () => {
    expect(sample('pickup codes rejected at the locker')).toEqual({ kind: 'repeated_wrong_pickup_codes', params: { wrongCodes: 3, windowMin: 10 }, deviceDetail: null });
  });

  it('tamper: no reading; the device\'s text apart when it sent one', () => {
    expect(sample('locker event tamper')).toEqual({ kind: 'tamper', params: {}, deviceDetail: 'Vibration sensor' });
    expect(sample('locker telemetry tamper fault')).toEqual({ kind: 'tamper', params: {}, deviceDetail: null });
  });

  it('keeps the English detail for older clients, and bounds the device\'s own text', () => {
    const [d] = raises(run(lockerEvent('tamper', 'A05', { detail: 'x'.repeat(500) })));
    expect(d).toMatchObject({ detail: `tamper detected at compartment A05; device says: "${'x'.repeat(500)}"`, deviceDetail: 'x'.repeat(500) });
    expect(raises(run(lockerEvent('tamper', 'A05', { detail: '   ' })))[0]).toMatchObject({ detail: 'tamper detected at compartment A05', deviceDetail: null });
  });
});
