import type { ParsedTopic } from './topics.ts';

/**
 * One valid example of every message, with the topic it travels on. Used in the generated
 * AsyncAPI/JSON Schema documents for device vendors, and checked by the contract tests.
 */
const ts = 1_764_000_000_000; // 2025-11-24T16:00:00Z

export const EXAMPLES: { name: string; topic: ParsedTopic; payload: Record<string, unknown> }[] = [
  {
    name: 'drone.telemetry',
    topic: { route: 'device', region: 'ishikawa-nomi', hub: 'rs-komatsu-kibagata', kind: 'drone', device: 'drone-1', channel: 'telemetry' },
    payload: {
      v: 1, type: 'drone.telemetry', id: 'drone-1-m3x2k-000042', ts, hub: 'rs-komatsu-kibagata', device: 'drone-1',
      lat: 36.3921, lon: 136.4611, altM: 62.5, groundSpeedMps: 9.8, headingDeg: 34, batteryPct: 71.5,
      batteryTimeRemainingS: 840, batteryVoltageV: 47.1, batteryTempC: 31, flightState: 'mission', payloadKg: 2.4,
      remoteIdActive: true, geofence: 'ok', failsafe: [], missionId: 'mission-0007',
    },
  },
  {
    name: 'drone.event',
    topic: { route: 'device', region: 'ishikawa-nomi', hub: 'rs-komatsu-kibagata', kind: 'drone', device: 'drone-1', channel: 'event' },
    payload: {
      v: 1, type: 'drone.event', id: 'drone-1-m3x2k-000043', ts, hub: 'rs-komatsu-kibagata', device: 'drone-1',
      event: 'battery_low', severity: 'warning', missionId: 'mission-0007', detail: 'battery 24 % with 3.1 km to go',
    },
  },
  {
    name: 'locker.telemetry',
    topic: { route: 'device', region: 'ishikawa-nomi', hub: 'nomi-terai', kind: 'locker', device: 'locker-a', channel: 'telemetry' },
    payload: {
      v: 1, type: 'locker.telemetry', id: 'locker-a-m3x2k-000120', ts, hub: 'nomi-terai', device: 'locker-a',
      compartments: [
        { id: 'A01', size: 'S', tempClass: 'ambient', door: 'closed', occupied: false, reservedFor: null, tempC: 18.2, fault: 'none' },
        { id: 'A02', size: 'M', tempClass: 'chilled', door: 'closed', occupied: true, reservedFor: 'order-8f2a', tempC: 5.9, fault: 'none' },
        { id: 'A03', size: 'L', tempClass: 'frozen', door: 'open', occupied: false, reservedFor: null, tempC: -17.5, fault: 'none' },
      ],
    },
  },
  {
    name: 'locker.event',
    topic: { route: 'device', region: 'ishikawa-nomi', hub: 'nomi-terai', kind: 'locker', device: 'locker-a', channel: 'event' },
    payload: {
      v: 1, type: 'locker.event', id: 'locker-a-m3x2k-000121', ts, hub: 'nomi-terai', device: 'locker-a',
      event: 'door_open_too_long', severity: 'warning', compartment: 'A03', detail: 'open for 180 s',
    },
  },
  {
    name: 'sensor.telemetry',
    topic: { route: 'device', region: 'ishikawa-nomi', hub: 'nomi-terai', kind: 'sensor', device: 'wx', channel: 'telemetry' },
    payload: {
      v: 1, type: 'sensor.telemetry', id: 'wx-m3x2k-000510', ts, hub: 'nomi-terai', device: 'wx',
      windSpeedMps: 3.4, windGustMps: 5.1, windDirDeg: 270, rainMmPerH: 0.5, airTempC: 11.8,
      gridPowerUp: true, backupBatteryPct: 100, linkQualityPct: 82,
    },
  },
  {
    name: 'sensor.event',
    topic: { route: 'device', region: 'ishikawa-nomi', hub: 'nomi-terai', kind: 'sensor', device: 'wx', channel: 'event' },
    payload: {
      v: 1, type: 'sensor.event', id: 'wx-m3x2k-000511', ts, hub: 'nomi-terai', device: 'wx',
      event: 'wind_over_limit', severity: 'warning', value: 5.6,
    },
  },
  {
    name: 'hub.status',
    topic: { route: 'status', region: 'ishikawa-nomi', hub: 'nomi-terai' },
    payload: { v: 1, type: 'hub.status', hub: 'nomi-terai', state: 'online', ts, agent: 'chiiki-edge/0.1.0', outboxDepth: 0, oldestUnsentAgeS: 0 },
  },
  {
    name: 'hub.command',
    topic: { route: 'command', region: 'ishikawa-nomi', hub: 'nomi-terai', kind: 'locker', device: 'locker-a' },
    payload: {
      v: 1, type: 'hub.command', id: 'cmd-000381', ts, hub: 'nomi-terai', device: 'locker-a',
      command: 'locker.unlock', expiresAt: ts + 60_000, args: { compartment: 'A02' },
    },
  },
  {
    name: 'hub.command-ack',
    topic: { route: 'cmd-ack', region: 'ishikawa-nomi', hub: 'nomi-terai' },
    payload: {
      v: 1, type: 'hub.command-ack', id: 'agent-m3x2k-000007', ts: ts + 800, hub: 'nomi-terai', device: 'locker-a',
      commandId: 'cmd-000381', result: 'done',
    },
  },
  {
    name: 'region.mode',
    topic: { route: 'region-mode', region: 'ishikawa-nomi' },
    payload: {
      v: 1, type: 'region.mode', region: 'ishikawa-nomi', version: 3, ts, mode: 'emergency',
      hubs: { 'rs-megumi-hakusan': 'normal' }, reason: '能登半島沖地震 震度6強: relief operations',
    },
  },
  {
    name: 'hub.mode-ack',
    topic: { route: 'mode-ack', region: 'ishikawa-nomi', hub: 'nomi-terai' },
    payload: { v: 1, type: 'hub.mode-ack', id: 'agent-m3x2k-000008', ts: ts + 1200, hub: 'nomi-terai', version: 3, mode: 'emergency', source: 'cloud' },
  },
  {
    name: 'cloud.ack',
    topic: { route: 'ack', region: 'ishikawa-nomi', hub: 'nomi-terai' },
    payload: { v: 1, type: 'cloud.ack', ts, hub: 'nomi-terai', ackOf: 'agent-m3x2k-000009', detail: 'local mode switch reconciled as version 4' },
  },
];
