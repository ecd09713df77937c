import {
  DroneEvent,
  DroneTelemetry,
  LockerEvent,
  LockerTelemetry,
  SensorEvent,
  SensorTelemetry,
  type Compartment,
} from '../../contract/index.ts';

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
