import type { z } from 'zod';
import { isSlug } from './ids.ts';
import {
  CloudAck,
  Command,
  CommandAck,
  DroneEvent,
  DroneTelemetry,
  HubStatus,
  LockerEvent,
  LockerTelemetry,
  ModeAck,
  RegionMode,
  SensorEvent,
  SensorTelemetry,
} from './messages.ts';

/**
 * Every MQTT topic of contract v1, built and parsed here and nowhere else.
 *
 *   v1/<region>/<hub>/<kind>/<device>/<channel>   hub → cloud   device telemetry and events
 *   v1/<region>/<hub>/status                      hub → cloud   link status (retained, last will "offline")
 *   v1/<region>/<hub>/cmd-ack                     hub → cloud   result of a command
 *   v1/<region>/<hub>/mode-ack                    hub → cloud   mode the hub applied
 *   v1/<region>/<hub>/cmd/<kind>/<device>         cloud → hub   command to a device
 *   v1/<region>/<hub>/ack                         cloud → hub   acknowledgement of a hub message
 *   v1/<region>/mode                              cloud → hubs  desired mode of the region (retained)
 */
export const TOPIC_ROOT = 'v1';
export const DEVICE_KINDS = ['drone', 'locker', 'sensor'] as const;
export const CHANNELS = ['telemetry', 'event'] as const;
export type DeviceKind = (typeof DEVICE_KINDS)[number];
export type Channel = (typeof CHANNELS)[number];

/** Who publishes on a route: `up` = the hub, `down` = the cloud. */
export type Direction = 'up' | 'down';

export type ParsedTopic =
  | { route: 'device'; region: string; hub: string; kind: DeviceKind; device: string; channel: Channel }
  | { route: 'status'; region: string; hub: string }
  | { route: 'cmd-ack'; region: string; hub: string }
  | { route: 'mode-ack'; region: string; hub: string }
  | { route: 'command'; region: string; hub: string; kind: DeviceKind; device: string }
  | { route: 'ack'; region: string; hub: string }
  | { route: 'region-mode'; region: string };

export type Route = ParsedTopic['route'];

export const ROUTE_DIRECTION: Record<Route, Direction> = {
  device: 'up',
  status: 'up',
  'cmd-ack': 'up',
  'mode-ack': 'up',
  command: 'down',
  ack: 'down',
  'region-mode': 'down',
};

export const topics = {
  device: (region: string, hub: string, kind: DeviceKind, device: string, channel: Channel) =>
    `${TOPIC_ROOT}/${region}/${hub}/${kind}/${device}/${channel}`,
  status: (region: string, hub: string) => `${TOPIC_ROOT}/${region}/${hub}/status`,
  commandAck: (region: string, hub: string) => `${TOPIC_ROOT}/${region}/${hub}/cmd-ack`,
  modeAck: (region: string, hub: string) => `${TOPIC_ROOT}/${region}/${hub}/mode-ack`,
  command: (region: string, hub: string, kind: DeviceKind, device: string) =>
    `${TOPIC_ROOT}/${region}/${hub}/cmd/${kind}/${device}`,
  ack: (region: string, hub: string) => `${TOPIC_ROOT}/${region}/${hub}/ack`,
  regionMode: (region: string) => `${TOPIC_ROOT}/${region}/mode`,
  /** Prefix under which a hub publishes everything it sends. */
  hubPrefix: (region: string, hub: string) => `${TOPIC_ROOT}/${region}/${hub}/`,
  /** Subscription filters a hub needs (and is allowed). */
  hubSubscriptions: (region: string, hub: string) => [
    `${TOPIC_ROOT}/${region}/${hub}/cmd/#`,
    `${TOPIC_ROOT}/${region}/${hub}/ack`,
    `${TOPIC_ROOT}/${region}/mode`,
  ],
};

function isKind(s: string): s is DeviceKind {
  return (DEVICE_KINDS as readonly string[]).includes(s);
}
function isChannel(s: string): s is Channel {
  return (CHANNELS as readonly string[]).includes(s);
}

/** Parses a concrete topic (no wildcards). Returns null for anything not in the contract. */
export function parseTopic(topic: string): ParsedTopic | null {
  if (topic.length > 256) return null;
  const p = topic.split('/');
  if (p[0] !== TOPIC_ROOT || p.length < 3) return null;
  if (!p.slice(1).every(isSlugOrKeyword)) return null;
  const region = p[1]!;
  if (!isSlug(region)) return null;
  if (p.length === 3) return p[2] === 'mode' ? { route: 'region-mode', region } : null;
  const hub = p[2]!;
  if (!isSlug(hub)) return null;
  if (p.length === 4) {
    switch (p[3]) {
      case 'status':
        return { route: 'status', region, hub };
      case 'cmd-ack':
        return { route: 'cmd-ack', region, hub };
      case 'mode-ack':
        return { route: 'mode-ack', region, hub };
      case 'ack':
        return { route: 'ack', region, hub };
      default:
        return null;
    }
  }
  if (p.length === 6 && p[3] === 'cmd') {
    const [kind, device] = [p[4]!, p[5]!];
    return isKind(kind) && isSlug(device) ? { route: 'command', region, hub, kind, device } : null;
  }
  if (p.length === 6) {
    const [kind, device, channel] = [p[3]!, p[4]!, p[5]!];
    if (isKind(kind) && isSlug(device) && isChannel(channel)) return { route: 'device', region, hub, kind, device, channel };
  }
  return null;
}

function isSlugOrKeyword(level: string): boolean {
  return level.length > 0 && level.length <= 40 && /^[a-z0-9-]+$/.test(level);
}

export function buildTopic(t: ParsedTopic): string {
  switch (t.route) {
    case 'device':
      return topics.device(t.region, t.hub, t.kind, t.device, t.channel);
    case 'status':
      return topics.status(t.region, t.hub);
    case 'cmd-ack':
      return topics.commandAck(t.region, t.hub);
    case 'mode-ack':
      return topics.modeAck(t.region, t.hub);
    case 'command':
      return topics.command(t.region, t.hub, t.kind, t.device);
    case 'ack':
      return topics.ack(t.region, t.hub);
    case 'region-mode':
      return topics.regionMode(t.region);
  }
}

const DEVICE_SCHEMAS = {
  drone: { telemetry: DroneTelemetry, event: DroneEvent },
  locker: { telemetry: LockerTelemetry, event: LockerEvent },
  sensor: { telemetry: SensorTelemetry, event: SensorEvent },
} as const;

/** The payload schema for a parsed topic. */
export function schemaForTopic(t: ParsedTopic): z.ZodType {
  switch (t.route) {
    case 'device':
      return DEVICE_SCHEMAS[t.kind][t.channel];
    case 'status':
      return HubStatus;
    case 'cmd-ack':
      return CommandAck;
    case 'mode-ack':
      return ModeAck;
    case 'command':
      return Command;
    case 'ack':
      return CloudAck;
    case 'region-mode':
      return RegionMode;
  }
}

/**
 * True when an MQTT subscription filter can only ever match topics that `allowed` also matches,
 * i.e. `filter` is a narrowing of `allowed`. `+` in `allowed` admits any single level (including `+`)
 * and a trailing `#` admits anything below [MQTT-4.7.1-2]; a wildcard in `filter` where `allowed`
 * has a literal level is a widening and refused.
 */
export function filterWithin(filter: string, allowed: string): boolean {
  const f = filter.split('/');
  const a = allowed.split('/');
  for (let i = 0; i < a.length; i++) {
    const al = a[i]!;
    if (al === '#') return true;
    const fl = f[i];
    if (fl === undefined) return false;
    if (al === '+') {
      if (fl === '#') return false;
      continue;
    }
    if (fl !== al) return false;
  }
  return f.length === a.length;
}
