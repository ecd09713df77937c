import {
  DroneEvent,
  DroneTelemetry,
  LockerEvent,
  LockerTelemetry,
  SensorEvent,
  SensorTelemetry,
  type Compartment,
  type DeviceMessage,
} from '../../contract/index.ts';
import { evaluateDeviceMessage, evaluateHubLink, type AlarmDecision, type AlarmKind, type AlarmParams, type DeviceRuleContext } from './alarm-rules.ts';

/**
 * Contract-valid device messages for alarm tests (every builder parses with the contract schema, so
 * a test cannot feed the rules a message no hub could send).
 */
export const T0 = 1_764_000_000_000;
export const HUB = 'nomi-terai';
let seq = 0;
const envelope = (device: string, ts: number) => ({ v: 1 as const, id: `${device}-test-${++seq}`, ts, hub: HUB, device });

export function droneTelemetry(over: Partial<DroneTelemetry> = {}): DroneTelemetry {
  return DroneTelemetry.parse({
    ...envelope('drone-1', T0), type: 'drone.telemetry', lat: 36.43, lon: 136.46, altM: 60, groundSpeedMps: 10, headingDeg: 90,
    batteryPct: 60, batteryTimeRemainingS: 600, flightState: 'mission', payloadKg: 2, remoteIdActive: true, missionId: 'mission-1', ...over,
  });
}

export function droneEvent(event: DroneEvent['event'], over: Partial<DroneEvent> = {}): DroneEvent {
  return DroneEvent.parse({ ...envelope('drone-1', T0), type: 'drone.event', event, severity: 'warning', ...over });
}

export function compartment(id: string, over: Partial<Compartment> = {}): Compartment {
  return { id, size: 'M', tempClass: 'ambient', door: 'closed', occupied: false, reservedFor: null, tempC: 18, fault: 'none', ...over };
}

export function lockerTelemetry(compartments: Compartment[], over: Partial<LockerTelemetry> = {}): LockerTelemetry {
  return LockerTelemetry.parse({ ...envelope('locker-a', T0), type: 'locker.telemetry', compartments, ...over });
}

export function lockerEvent(event: LockerEvent['event'], compartmentId: string, over: Partial<LockerEvent> = {}): LockerEvent {
  return LockerEvent.parse({ ...envelope('locker-a', T0), type: 'locker.event', event, severity: 'warning', compartment: compartmentId, ...over });
}

export function sensorTelemetry(windSpeedMps: number, windGustMps: number, over: Partial<SensorTelemetry> = {}): SensorTelemetry {
  return SensorTelemetry.parse({
    ...envelope('wx', T0), type: 'sensor.telemetry', windSpeedMps, windGustMps, windDirDeg: 270, rainMmPerH: 0, airTempC: 12,
    gridPowerUp: true, backupBatteryPct: 100, linkQualityPct: 80, ...over,
  });
}

export function sensorEvent(event: SensorEvent['event'], over: Partial<SensorEvent> = {}): SensorEvent {
  return SensorEvent.parse({ ...envelope('wx', T0), type: 'sensor.event', event, severity: 'warning', ...over });
}

/** One alarm as the consoles get it: what it is about and its params (no ids, times or states). */
export interface RaisedAlarmSample {
  /** How it was raised, for test names. */
  how: string;
  kind: AlarmKind;
  device: string | null;
  compartment: string | null;
  params: AlarmParams;
  deviceDetail: string | null;
}

/**
 * Every way an alarm is raised, each through the real rule (or, for the orders' lock, with the params
 * the orders feature passes): the rule tests check each one's params, the console tests that each
 * renders in every language with nothing left unfilled.
 */
export function everyRaisedAlarm(): RaisedAlarmSample[] {
  const region = 'ishikawa-nomi';
  const ctx = (over: Partial<DeviceRuleContext> = {}): DeviceRuleContext => ({
    windLimits: { windMps: 5, gustMps: 6 }, missionPlanned: () => true, droneFlightState: null, compartmentClass: null, pickupRejections: [], ...over,
  });
  const samples: RaisedAlarmSample[] = [];
  const add = (how: string, ds: AlarmDecision[] | AlarmDecision | null) => {
    const raised = [ds ?? []].flat().filter((d) => d.action === 'raise');
    if (raised.length !== 1) throw new Error(`${how}: expected one raise, got ${raised.length}`);
    const d = raised[0]!;
    samples.push({ how, kind: d.key.kind, device: d.key.device, compartment: d.key.compartment, params: d.params, deviceDetail: d.deviceDetail });
  };
  const run = (msg: DeviceMessage, over: Partial<DeviceRuleContext> = {}) => evaluateDeviceMessage(msg, region, ctx(over));
  add('locker event door_open_too_long', run(lockerEvent('door_open_too_long', 'A03', { detail: 'Door open for 180 s' })));
  add('locker telemetry too warm (chilled)', run(lockerTelemetry([compartment('A06', { tempClass: 'chilled', tempC: 12.4, door: 'open' })])));
  add('locker telemetry too warm (frozen)', run(lockerTelemetry([compartment('A07', { tempClass: 'frozen', tempC: -11, door: 'open' })])));
  add('locker event temperature_out_of_range with a reading', run(lockerEvent('temperature_out_of_range', 'A06', { tempC: 13.1, detail: 'TEMP HIGH' }), { compartmentClass: 'chilled' }));
  add('locker event temperature_out_of_range without a reading', run(lockerEvent('temperature_out_of_range', 'A06'), { compartmentClass: null }));
  add('drone telemetry battery low in flight', run(droneTelemetry({ batteryPct: 17, batteryTimeRemainingS: 240, flightState: 'rtl', missionId: 'm-42' })));
  add('drone event battery_low in flight', run(droneEvent('battery_low', { missionId: 'm-42', detail: 'Battery 18%, RTL' }), { droneFlightState: 'mission' }));
  add('drone event failsafe', run(droneEvent('failsafe', { detail: 'RC link lost' }), { droneFlightState: 'hover' }));
  add('sensor telemetry wind over the limit', run(sensorTelemetry(6.2, 9.8)));
  add('sensor event wind_over_limit with a reading', run(sensorEvent('wind_over_limit', { value: 7.5, detail: 'Wind over threshold' })));
  add('sensor event wind_over_limit without a reading', run(sensorEvent('wind_over_limit')));
  add('hub link lost', evaluateHubLink({ hub: HUB, region, online: false, since: T0 }, T0 + 75_000));
  add('pickup codes rejected at the locker', run(lockerEvent('pickup_code_rejected', 'A02', { ts: T0 + 2 }), { pickupRejections: [T0, T0 + 1, T0 + 2] }));
  samples.push({ how: 'orders: compartment locked after wrong codes', kind: 'repeated_wrong_pickup_codes', device: 'locker-a', compartment: 'A02', params: { wrongCodes: 3, orderId: 'ord-7', locked: true }, deviceDetail: null });
  add('locker event tamper', run(lockerEvent('tamper', 'A05', { detail: 'Vibration sensor' })));
  add('locker telemetry tamper fault', run(lockerTelemetry([compartment('A05', { fault: 'tamper', door: 'open' })])));
  return samples;
}
