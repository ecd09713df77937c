import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import asyncapiSpecs from '@asyncapi/specs';
import { Ajv, type AnySchemaObject, type ErrorObject } from 'ajv';
import ajvFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CONTRACT_DOCS_DIR, listFiles, renderContractDocs } from '../scripts/generate-contract-docs.ts';
import * as messageSchemas from './messages.ts';
import {
  CHANNELS,
  DEVICE_KINDS,
  DeviceId,
  EXAMPLES,
  HubId,
  RegionId,
  ROUTE_DIRECTION,
  buildTopic,
  filterWithin,
  parseTopic,
  schemaForTopic,
  topics,
  type ParsedTopic,
  type Route,
} from './index.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const REGION_FILE = 'config/regions/ishikawa-nomi.json';
const DOCS = renderContractDocs();
const ASYNCAPI = JSON.parse(DOCS[`${CONTRACT_DOCS_DIR}/asyncapi.json`]!) as AsyncApiDoc;

interface AsyncApiDoc {
  channels: Record<string, { address: string; parameters?: Record<string, unknown>; messages: Record<string, { $ref: string }> }>;
  operations: Record<string, { action: 'send' | 'receive'; channel: { $ref: string } }>;
  components: { messages: Record<string, { name: string; payload: AnySchemaObject; examples: { name: string; payload: unknown }[] }> };
}

/** Every message type the contract defines: each zod object in messages.ts with a literal `type`. */
const MESSAGE_TYPES = Object.values(messageSchemas as Record<string, unknown>)
  .flatMap((s) => (s instanceof z.ZodObject && s.shape.type instanceof z.ZodLiteral ? [String(s.shape.type.value)] : []))
  .sort();

const example = (type: string) => {
  const e = EXAMPLES.find((x) => x.payload.type === type);
  if (!e) throw new Error(`no example of ${type}`);
  return e;
};
const schemaOf = (type: string) => schemaForTopic(example(type).topic);

/** draft-07 validator (ajv's default) with formats; a fresh instance, so `$id`s never collide. */
function newAjv(strict = true): Ajv {
  const ajv = new Ajv({ allErrors: true, strict });
  ajvFormats.default(ajv);
  return ajv;
}
const ajvErrors = (errors: ErrorObject[] | null | undefined) => (errors ?? []).map((e) => `${e.instancePath || '(root)'} ${e.message}`);

/** Deterministic PRNG (mulberry32), so a failing property case can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const pick = <T>(rnd: () => number, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;

/** A random id matching the slug rule: 1–40 of [a-z0-9-], not starting or ending with "-". */
function randomSlug(rnd: () => number): string {
  const edge = [...'abcdefghijklmnopqrstuvwxyz0123456789'];
  const inner = [...edge, '-'];
  const length = 1 + Math.floor(rnd() * 40);
  let s = '';
  for (let i = 0; i < length; i++) s += pick(rnd, i === 0 || i === length - 1 ? edge : inner);
  return s;
}

// ------------------------------------------------------------------------------------ examples

describe('examples', () => {
  it.each(EXAMPLES.map((e) => [e.name, e] as const))('%s validates against the schema its topic maps to', (_name, e) => {
    const topic = parseTopic(buildTopic(e.topic));
    expect(topic, `example topic ${buildTopic(e.topic)} does not parse`).not.toBeNull();
    const result = schemaForTopic(topic!).safeParse(e.payload);
    expect(result.error?.issues ?? []).toEqual([]);
  });

  it.each(EXAMPLES.map((e) => [e.name, e] as const))('%s carries the ids of its topic levels', (_name, e) => {
    // The ingest rejects a payload whose hub/device differ from the topic (topic_mismatch); examples must not teach that.
    const t = e.topic;
    const levels: Record<string, string> = t.route === 'region-mode' ? { region: t.region } : { hub: t.hub };
    if ('device' in t) levels.device = t.device;
    expect(Object.fromEntries(Object.keys(levels).map((k) => [k, e.payload[k]]))).toEqual(levels);
  });

  it('there is exactly one example of every message type', () => {
    expect(EXAMPLES.map((e) => String(e.payload.type)).sort()).toEqual(MESSAGE_TYPES);
  });
});

// -------------------------------------------------------------------------------------- topics

/** At least one topic of every route; a new route does not compile until it is added here. */
const SAMPLE_TOPICS: Record<Route, ParsedTopic[]> = {
  device: DEVICE_KINDS.flatMap((kind) => CHANNELS.map((channel) => ({ route: 'device' as const, region: 'ishikawa-nomi', hub: 'nomi-terai', kind, device: 'dev-1', channel }))),
  status: [{ route: 'status', region: 'ishikawa-nomi', hub: 'nomi-terai' }],
  'cmd-ack': [{ route: 'cmd-ack', region: 'ishikawa-nomi', hub: 'nomi-terai' }],
  'mode-ack': [{ route: 'mode-ack', region: 'ishikawa-nomi', hub: 'nomi-terai' }],
  command: DEVICE_KINDS.map((kind) => ({ route: 'command' as const, region: 'ishikawa-nomi', hub: 'nomi-terai', kind, device: 'dev-1' })),
  ack: [{ route: 'ack', region: 'ishikawa-nomi', hub: 'nomi-terai' }],
  'region-mode': [{ route: 'region-mode', region: 'ishikawa-nomi' }],
};

function randomTopic(rnd: () => number, route: Route): ParsedTopic {
  const region = randomSlug(rnd);
  const hub = randomSlug(rnd);
  const device = randomSlug(rnd);
  switch (route) {
    case 'device':
      return { route, region, hub, kind: pick(rnd, DEVICE_KINDS), device, channel: pick(rnd, CHANNELS) };
    case 'command':
      return { route, region, hub, kind: pick(rnd, DEVICE_KINDS), device };
    case 'region-mode':
      return { route, region };
    case 'status':
    case 'cmd-ack':
    case 'mode-ack':
    case 'ack':
      return { route, region, hub };
  }
}

describe('topics', () => {
  it.each(Object.entries(SAMPLE_TOPICS).flatMap(([, ts]) => ts.map((t) => [buildTopic(t), t] as const)))('%s round-trips through parseTopic', (topic, t) => {
    expect(parseTopic(topic)).toEqual(t);
  });

  it('every route has a direction, and the samples cover every route', () => {
    expect(Object.keys(SAMPLE_TOPICS).sort()).toEqual(Object.keys(ROUTE_DIRECTION).sort());
  });

  it('buildTopic/parseTopic round-trip for 3 000 random valid ids on every route', () => {
    const rnd = prng(0xc0ffee);
    const routes = Object.keys(ROUTE_DIRECTION) as Route[];
    const failures: string[] = [];
    for (let i = 0; i < 3_000; i++) {
      const t = randomTopic(rnd, routes[i % routes.length]!);
      const back = parseTopic(buildTopic(t));
      if (JSON.stringify(back) !== JSON.stringify(t)) failures.push(`${buildTopic(t)} → ${JSON.stringify(back)}`);
    }
    expect(failures).toEqual([]);
  });

  it('a topic level is accepted exactly when the id schemas accept it (2 000 random levels)', () => {
    const rnd = prng(42);
    const alphabet = 'abcxyz019-_+#$ A.Zé';
    const disagreements: string[] = [];
    for (let i = 0; i < 2_000; i++) {
      const length = Math.floor(rnd() * 44);
      let level = '';
      for (let j = 0; j < length; j++) level += pick(rnd, [...alphabet, 'a', 'b', '0', '-']);
      const asHub = parseTopic(topics.status('ishikawa-nomi', level)) !== null;
      const asRegion = parseTopic(topics.regionMode(level)) !== null;
      const asDevice = parseTopic(topics.device('ishikawa-nomi', 'nomi-terai', 'drone', level, 'telemetry')) !== null;
      if (asHub !== HubId.safeParse(level).success) disagreements.push(`hub ${JSON.stringify(level)}`);
      if (asRegion !== RegionId.safeParse(level).success) disagreements.push(`region ${JSON.stringify(level)}`);
      if (asDevice !== DeviceId.safeParse(level).success) disagreements.push(`device ${JSON.stringify(level)}`);
    }
    expect(disagreements).toEqual([]);
  });

  const long = 'a'.repeat(41);
  it.each([
    ['wrong root', 'v2/ishikawa-nomi/nomi-terai/status'],
    ['upper-case root', 'V1/ishikawa-nomi/nomi-terai/status'],
    ['no root', 'ishikawa-nomi/nomi-terai/status'],
    ['$SYS topic', '$SYS/broker/clients/connected'],
    ['leading "/" (empty first level)', '/v1/ishikawa-nomi/nomi-terai/status'],
    ['trailing "/" (empty last level)', 'v1/ishikawa-nomi/nomi-terai/status/'],
    ['empty hub level', 'v1/ishikawa-nomi//status'],
    ['empty device level', 'v1/ishikawa-nomi/nomi-terai/drone//telemetry'],
    ['only the root', 'v1'],
    ['root and region only', 'v1/ishikawa-nomi'],
    ['empty string', ''],
    ['unknown kind', 'v1/ishikawa-nomi/nomi-terai/robot/robot-1/telemetry'],
    ['unknown channel', 'v1/ishikawa-nomi/nomi-terai/drone/drone-1/log'],
    ['unknown hub-level topic', 'v1/ishikawa-nomi/nomi-terai/state'],
    ['unknown region-level topic', 'v1/ishikawa-nomi/modes'],
    ['command for an unknown kind', 'v1/ishikawa-nomi/nomi-terai/cmd/robot/robot-1'],
    ['command without device', 'v1/ishikawa-nomi/nomi-terai/cmd/drone'],
    ['command with a channel (too deep)', 'v1/ishikawa-nomi/nomi-terai/cmd/drone/drone-1/telemetry'],
    ['device topic without channel', 'v1/ishikawa-nomi/nomi-terai/drone/drone-1'],
    ['device topic one level too deep', 'v1/ishikawa-nomi/nomi-terai/drone/drone-1/telemetry/extra'],
    ['status one level too deep', 'v1/ishikawa-nomi/nomi-terai/status/extra'],
    ['"+" wildcard as hub', 'v1/ishikawa-nomi/+/status'],
    ['"+" wildcard as kind', 'v1/ishikawa-nomi/nomi-terai/+/drone-1/telemetry'],
    ['"#" wildcard as channel', 'v1/ishikawa-nomi/nomi-terai/drone/drone-1/#'],
    ['"#" wildcard after hub', 'v1/ishikawa-nomi/nomi-terai/#'],
    ['wildcard inside a level', 'v1/ishikawa-nomi/nomi+terai/status'],
    ['upper-case hub', 'v1/ishikawa-nomi/Nomi-Terai/status'],
    ['upper-case kind', 'v1/ishikawa-nomi/nomi-terai/Drone/drone-1/telemetry'],
    ['upper-case channel', 'v1/ishikawa-nomi/nomi-terai/drone/drone-1/TELEMETRY'],
    ['underscore in device', 'v1/ishikawa-nomi/nomi-terai/drone/drone_1/telemetry'],
    ['space in hub', 'v1/ishikawa-nomi/nomi terai/status'],
    ['non-ASCII region', 'v1/能美/nomi-terai/status'],
    ['hub starting with "-"', 'v1/ishikawa-nomi/-nomi/status'],
    ['device ending with "-"', 'v1/ishikawa-nomi/nomi-terai/drone/drone-/telemetry'],
    ['41-character hub (too long a level)', `v1/ishikawa-nomi/${long}/status`],
    ['41-character device (too long a level)', `v1/ishikawa-nomi/nomi-terai/drone/${long}/telemetry`],
    ['topic over 256 characters', `v1/ishikawa-nomi/${'a'.repeat(300)}/status`],
  ])('parseTopic rejects %s', (_reason, topic) => {
    expect(parseTopic(topic)).toBeNull();
  });
});

// --------------------------------------------------------------------------------- filterWithin

describe('filterWithin (the subscribe ACL)', () => {
  const allowed = topics.hubSubscriptions('ishikawa-nomi', 'nomi-terai');
  const permitted = (filter: string) => allowed.some((a) => filterWithin(filter, a));

  it.each([
    ['the hub\'s command filter itself', 'v1/ishikawa-nomi/nomi-terai/cmd/#'],
    ['the hub\'s ack topic', 'v1/ishikawa-nomi/nomi-terai/ack'],
    ['the region mode topic', 'v1/ishikawa-nomi/mode'],
    ['commands to one kind', 'v1/ishikawa-nomi/nomi-terai/cmd/locker/+'],
    ['commands to one device of any kind', 'v1/ishikawa-nomi/nomi-terai/cmd/+/drone-1'],
    ['commands to one device', 'v1/ishikawa-nomi/nomi-terai/cmd/drone/drone-1'],
    ['everything below one kind', 'v1/ishikawa-nomi/nomi-terai/cmd/drone/#'],
    ['the parent level, which cmd/# also matches [MQTT-4.7.1-2]', 'v1/ishikawa-nomi/nomi-terai/cmd'],
  ])('allows a narrowing filter: %s', (_why, filter) => {
    expect(permitted(filter)).toBe(true);
  });

  it.each([
    ['everything', '#'],
    ['every root', '+/#'],
    ['all of v1', 'v1/#'],
    ['every region', 'v1/+/nomi-terai/cmd/#'],
    ['every region\'s mode', 'v1/+/mode'],
    ['every hub of the region', 'v1/ishikawa-nomi/+/cmd/#'],
    ['the whole region', 'v1/ishikawa-nomi/#'],
    ['another hub\'s commands', 'v1/ishikawa-nomi/rs-komatsu-kibagata/cmd/#'],
    ['another hub\'s ack', 'v1/ishikawa-nomi/rs-komatsu-kibagata/ack'],
    ['another region\'s mode', 'v1/toyama-nanto/mode'],
    ['all of the hub\'s own topics', 'v1/ishikawa-nomi/nomi-terai/#'],
    ['any hub-level topic', 'v1/ishikawa-nomi/nomi-terai/+'],
    ['the hub\'s own up-link (telemetry of others is not its business)', 'v1/ishikawa-nomi/nomi-terai/drone/drone-1/telemetry'],
    ['the hub\'s own status', 'v1/ishikawa-nomi/nomi-terai/status'],
    ['below the ack topic', 'v1/ishikawa-nomi/nomi-terai/ack/#'],
    ['below the mode topic', 'v1/ishikawa-nomi/mode/#'],
    ['a shared subscription', '$share/g/v1/ishikawa-nomi/nomi-terai/cmd/#'],
    ['$SYS', '$SYS/#'],
  ])('refuses a widening or foreign filter: %s', (_why, filter) => {
    expect(permitted(filter)).toBe(false);
  });

  /** MQTT topic matching [MQTT-4.7.1]: "+" one level, a final "#" this level and everything below. */
  function matches(filter: string, topic: string): boolean {
    const f = filter.split('/');
    const t = topic.split('/');
    for (let i = 0; i < f.length; i++) {
      if (f[i] === '#') return true;
      if (i >= t.length) return false;
      if (f[i] !== '+' && f[i] !== t[i]) return false;
    }
    return f.length === t.length;
  }

  it('is sound: a filter it admits never matches a topic the allowed filter does not (random filters)', () => {
    const rnd = prng(7);
    const levels = ['v1', 'ishikawa-nomi', 'nomi-terai', 'other', 'cmd', 'ack', 'mode', 'drone', 'drone-1'];
    const randomFilter = (wild: number) => {
      const n = 1 + Math.floor(rnd() * 6);
      const parts = Array.from({ length: n }, () => (rnd() < wild ? '+' : pick(rnd, levels)));
      if (rnd() < 0.3) parts[n - 1] = '#';
      return parts.join('/');
    };
    const concrete = Array.from({ length: 400 }, () => Array.from({ length: 1 + Math.floor(rnd() * 6) }, () => pick(rnd, levels)).join('/'));
    concrete.push(...allowed.map((a) => a.replace('/#', '')), 'v1/ishikawa-nomi/nomi-terai/cmd/drone/drone-1');
    // The hub's real filters, plus random ones, so the "+" branch of filterWithin is exercised as well.
    const allowedFilters = [...allowed, ...Array.from({ length: 40 }, () => randomFilter(0.2))];
    const unsound: string[] = [];
    for (let i = 0; i < 2_000; i++) {
      const filter = randomFilter(0.15);
      for (const a of allowedFilters) {
        if (!filterWithin(filter, a)) continue;
        const leak = concrete.find((t) => matches(filter, t) && !matches(a, t));
        if (leak) unsound.push(`${filter} within ${a}, but it matches ${leak}`);
      }
    }
    expect(unsound).toEqual([]);
  });
});

// ------------------------------------------------------------------------------------ schemas

type Issue = { code: string; path: PropertyKey[] };
const issuesOf = (schema: z.ZodType, payload: unknown): Issue[] =>
  schema.safeParse(payload).error?.issues.map((i) => ({ code: i.code, path: i.path })) ?? [];

const with_ = (type: string, patch: Record<string, unknown>) => ({ ...example(type).payload, ...patch });
const withoutKey = (o: Record<string, unknown>, field: string) => {
  const { [field]: _gone, ...rest } = o;
  return rest;
};
const without = (type: string, field: string) => withoutKey(example(type).payload, field);
const lockerTelemetry = example('locker.telemetry').payload as { compartments: Record<string, unknown>[] };
const compartment = lockerTelemetry.compartments[0]!;

/** Hand-picked rejections, each with the reason the cloud gives (zod issue code and path). */
const REJECTIONS: [reason: string, type: string, payload: unknown, expected: Issue][] = [
  // wrong types
  ['lat is a string', 'drone.telemetry', with_('drone.telemetry', { lat: '36.39' }), { code: 'invalid_type', path: ['lat'] }],
  ['remoteIdActive is "true" (a string)', 'drone.telemetry', with_('drone.telemetry', { remoteIdActive: 'true' }), { code: 'invalid_type', path: ['remoteIdActive'] }],
  ['ts is an ISO string, not epoch ms', 'sensor.telemetry', with_('sensor.telemetry', { ts: '2025-11-24T16:00:00Z' }), { code: 'invalid_type', path: ['ts'] }],
  ['ts has a fraction (epoch ms are integers)', 'sensor.telemetry', with_('sensor.telemetry', { ts: 1_764_000_000_000.5 }), { code: 'invalid_type', path: ['ts'] }],
  ['compartments is an object, not an array', 'locker.telemetry', with_('locker.telemetry', { compartments: { A01: compartment } }), { code: 'invalid_type', path: ['compartments'] }],
  ['command args value is an object', 'hub.command', with_('hub.command', { args: { compartment: { id: 'A02' } } }), { code: 'invalid_union', path: ['args', 'compartment'] }],
  ['v is 2 (another contract version)', 'drone.event', with_('drone.event', { v: 2 }), { code: 'invalid_value', path: ['v'] }],
  ['type names another message', 'drone.event', with_('drone.event', { type: 'drone.telemetry' }), { code: 'invalid_value', path: ['type'] }],
  ['unknown flight state', 'drone.telemetry', with_('drone.telemetry', { flightState: 'flying' }), { code: 'invalid_value', path: ['flightState'] }],
  ['unknown locker event', 'locker.event', with_('locker.event', { event: 'door_slammed' }), { code: 'invalid_value', path: ['event'] }],
  ['unknown hub state', 'hub.status', with_('hub.status', { state: 'sleeping' }), { code: 'invalid_value', path: ['state'] }],
  ['unknown command', 'hub.command', with_('hub.command', { command: 'locker.explode' }), { code: 'invalid_value', path: ['command'] }],
  ['unknown mode', 'region.mode', with_('region.mode', { mode: 'panic' }), { code: 'invalid_value', path: ['mode'] }],
  // missing fields
  ['id is missing', 'drone.telemetry', without('drone.telemetry', 'id'), { code: 'invalid_type', path: ['id'] }],
  ['ts is missing', 'hub.status', without('hub.status', 'ts'), { code: 'invalid_type', path: ['ts'] }],
  ['compartment is missing', 'locker.event', without('locker.event', 'compartment'), { code: 'invalid_type', path: ['compartment'] }],
  ['commandId is missing', 'hub.command-ack', without('hub.command-ack', 'commandId'), { code: 'invalid_type', path: ['commandId'] }],
  ['expiresAt is missing', 'hub.command', without('hub.command', 'expiresAt'), { code: 'invalid_type', path: ['expiresAt'] }],
  ['ackOf is missing', 'cloud.ack', without('cloud.ack', 'ackOf'), { code: 'invalid_type', path: ['ackOf'] }],
  ['a compartment without door state', 'locker.telemetry', with_('locker.telemetry', { compartments: [withoutKey(compartment, 'door')] }), { code: 'invalid_value', path: ['compartments', 0, 'door'] }],
  // unknown fields
  ['an unknown top-level field', 'sensor.telemetry', with_('sensor.telemetry', { humidityPct: 60 }), { code: 'unrecognized_keys', path: [] }],
  ['a misspelt field (batteryPercent)', 'drone.telemetry', with_('drone.telemetry', { batteryPercent: 71 }), { code: 'unrecognized_keys', path: [] }],
  ['an unknown compartment field', 'locker.telemetry', with_('locker.telemetry', { compartments: [{ ...compartment, colour: 'red' }] }), { code: 'unrecognized_keys', path: ['compartments', 0] }],
  // out of range
  ['lat above 90', 'drone.telemetry', with_('drone.telemetry', { lat: 90.1 }), { code: 'too_big', path: ['lat'] }],
  ['lon below -180', 'drone.telemetry', with_('drone.telemetry', { lon: -180.5 }), { code: 'too_small', path: ['lon'] }],
  ['batteryPct above 100', 'drone.telemetry', with_('drone.telemetry', { batteryPct: 101 }), { code: 'too_big', path: ['batteryPct'] }],
  ['negative ground speed', 'drone.telemetry', with_('drone.telemetry', { groundSpeedMps: -0.1 }), { code: 'too_small', path: ['groundSpeedMps'] }],
  ['more than 8 failsafe flags', 'drone.telemetry', with_('drone.telemetry', { failsafe: Array(9).fill('x') }), { code: 'too_big', path: ['failsafe'] }],
  ['ts before 2020 (clock never set)', 'drone.telemetry', with_('drone.telemetry', { ts: 0 }), { code: 'too_small', path: ['ts'] }],
  ['ts after 2100', 'drone.event', with_('drone.event', { ts: 4_102_444_800_001 }), { code: 'too_big', path: ['ts'] }],
  ['wind direction 361°', 'sensor.telemetry', with_('sensor.telemetry', { windDirDeg: 361 }), { code: 'too_big', path: ['windDirDeg'] }],
  ['backup battery below 0 %', 'sensor.telemetry', with_('sensor.telemetry', { backupBatteryPct: -1 }), { code: 'too_small', path: ['backupBatteryPct'] }],
  ['compartment colder than -50 °C', 'locker.telemetry', with_('locker.telemetry', { compartments: [{ ...compartment, tempC: -51 }] }), { code: 'too_small', path: ['compartments', 0, 'tempC'] }],
  ['no compartments', 'locker.telemetry', with_('locker.telemetry', { compartments: [] }), { code: 'too_small', path: ['compartments'] }],
  ['65 compartments', 'locker.telemetry', with_('locker.telemetry', { compartments: Array.from({ length: 65 }, (_, i) => ({ ...compartment, id: `B${i}` })) }), { code: 'too_big', path: ['compartments'] }],
  ['outboxDepth with a fraction', 'hub.status', with_('hub.status', { outboxDepth: 1.5 }), { code: 'invalid_type', path: ['outboxDepth'] }],
  ['region mode version 0', 'region.mode', with_('region.mode', { version: 0 }), { code: 'too_small', path: ['version'] }],
  ['mode-ack version -1', 'hub.mode-ack', with_('hub.mode-ack', { version: -1 }), { code: 'too_small', path: ['version'] }],
  ['detail longer than 500 characters', 'sensor.event', with_('sensor.event', { detail: 'x'.repeat(501) }), { code: 'too_big', path: ['detail'] }],
  ['id longer than 64 characters', 'locker.event', with_('locker.event', { id: 'x'.repeat(65) }), { code: 'too_big', path: ['id'] }],
  // formats
  ['id with a space', 'locker.event', with_('locker.event', { id: 'locker a 1' }), { code: 'invalid_format', path: ['id'] }],
  ['empty id', 'locker.event', with_('locker.event', { id: '' }), { code: 'too_small', path: ['id'] }],
  ['upper-case hub id', 'locker.event', with_('locker.event', { hub: 'Nomi-Terai' }), { code: 'invalid_format', path: ['hub'] }],
  ['lower-case compartment label', 'locker.event', with_('locker.event', { compartment: 'a03' }), { code: 'invalid_format', path: ['compartment'] }],
  ['pickup code with letters', 'locker.event', with_('locker.event', { event: 'pickup', pickupCode: '12ab' }), { code: 'invalid_format', path: ['pickupCode'] }],
  ['per-hub mode override for an invalid hub id', 'region.mode', with_('region.mode', { hubs: { 'Nomi Terai': 'normal' } }), { code: 'invalid_key', path: ['hubs', 'Nomi Terai'] }],
  // rules JSON Schema cannot express (the README lists them)
  ['duplicate compartment ids', 'locker.telemetry', with_('locker.telemetry', { compartments: [compartment, compartment] }), { code: 'custom', path: ['compartments', 1, 'id'] }],
];

describe('schemas reject bad payloads', () => {
  it.each(REJECTIONS)('%s (%s)', (_reason, type, payload, expected) => {
    expect(issuesOf(schemaOf(type), payload)).toContainEqual(expected);
  });

  const required = (type: string) => (z.toJSONSchema(schemaOf(type), { io: 'input' }).required ?? []) as string[];
  it.each(MESSAGE_TYPES.flatMap((type) => required(type).map((field) => [type, field] as const)))('%s without required field %s', (type, field) => {
    // zod reports a missing literal or enum as invalid_value ("expected one of …"), anything else as invalid_type.
    const codes = issuesOf(schemaOf(type), without(type, field)).filter((i) => i.path.join('.') === field).map((i) => i.code);
    expect(codes).toEqual([expect.stringMatching(/^invalid_(type|value)$/)]);
  });

  it.each(MESSAGE_TYPES)('%s with an unknown extra field', (type) => {
    expect(issuesOf(schemaOf(type), with_(type, { vendorExtra: 1 }))).toContainEqual({ code: 'unrecognized_keys', path: [] });
  });

  /** A JSON value of another type than `value`. */
  const wrongType = (value: unknown): unknown => (typeof value === 'string' ? 42 : typeof value === 'number' ? String(value) : typeof value === 'boolean' ? 1 : Array.isArray(value) ? 'list' : value === null ? [] : 'object');
  it.each(
    MESSAGE_TYPES.flatMap((type) => Object.entries(example(type).payload).map(([field, value]) => [type, field, JSON.stringify(wrongType(value))] as const)),
  )('%s with %s = %s (wrong type)', (type, field, bad) => {
    const issues = issuesOf(schemaOf(type), with_(type, { [field]: JSON.parse(bad) }));
    expect(issues.filter((i) => i.path[0] === field).map((i) => i.code)).not.toEqual([]);
  });

  // Vendors validate with the published JSON Schema, the cloud with zod: they must agree.
  const jsonSchemas = new Map(MESSAGE_TYPES.map((type) => [type, newAjv().compile(JSON.parse(DOCS[`${CONTRACT_DOCS_DIR}/schemas/${type}.schema.json`]!))]));
  it.each(REJECTIONS.filter(([, , , e]) => e.code !== 'custom'))('the published JSON Schema also rejects: %s (%s)', (_reason, type, payload) => {
    expect(jsonSchemas.get(type)!(payload)).toBe(false);
  });
  it.each(EXAMPLES.map((e) => [e.name, e] as const))('the published JSON Schema accepts the %s example', (name, e) => {
    const validate = jsonSchemas.get(name)!;
    expect(validate(e.payload), ajvErrors(validate.errors).join('; ')).toBe(true);
  });
});

// ------------------------------------------------------------------------------- published docs

describe('docs/contract (generated by npm run docs:generate)', () => {
  it.each(Object.keys(DOCS))('%s is up to date', (rel) => {
    const file = path.join(ROOT, rel);
    const committed = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
    expect(committed === DOCS[rel], `${rel} is stale or missing — run npm run docs:generate`).toBe(true);
  });

  it('holds no file the generator does not write', () => {
    expect(listFiles(ROOT, CONTRACT_DOCS_DIR), 'docs/contract has files the generator does not write — run npm run docs:generate').toEqual(Object.keys(DOCS).sort());
  });

  it('is deterministic: 2-space JSON with a final newline, identical on every run', () => {
    expect(renderContractDocs()).toEqual(DOCS);
    for (const [rel, content] of Object.entries(DOCS)) {
      expect(content.endsWith('\n') && !content.endsWith('\n\n'), `${rel} must end with exactly one newline`).toBe(true);
      if (rel.endsWith('.json')) expect(content, rel).toBe(`${JSON.stringify(JSON.parse(content), null, 2)}\n`);
    }
  });

  it.each(Object.keys(DOCS).filter((f) => f.endsWith('.schema.json')))('%s is a JSON Schema with $id, title, description and valid examples', (rel) => {
    const schema = JSON.parse(DOCS[rel]!) as AnySchemaObject;
    expect({ $id: typeof schema.$id, title: typeof schema.title, description: typeof schema.description, examples: Array.isArray(schema.examples) && schema.examples.length > 0 }).toEqual({
      $id: 'string',
      title: 'string',
      description: 'string',
      examples: true,
    });
    const validate = newAjv().compile(schema);
    const failures = (schema.examples as unknown[]).flatMap((x) => (validate(x) ? [] : ajvErrors(validate.errors)));
    expect(failures).toEqual([]);
  });

  it(`${REGION_FILE} validates against region-file.schema.json`, (ctx) => {
    const file = path.join(ROOT, REGION_FILE);
    // Written by another part of the project; until it exists there is nothing to check.
    if (!fs.existsSync(file)) ctx.skip(`${REGION_FILE} does not exist yet`);
    const validate = newAjv().compile(JSON.parse(DOCS[`${CONTRACT_DOCS_DIR}/schemas/region-file.schema.json`]!));
    expect(validate(JSON.parse(fs.readFileSync(file, 'utf8'))), ajvErrors(validate.errors).join('; ')).toBe(true);
  });
});

describe('asyncapi.json', () => {
  it('validates against the official AsyncAPI 3.0.0 JSON Schema', () => {
    // The official schema uses keywords ajv's strict mode does not know (e.g. "example"), so strict is off for it.
    // It also bundles a copy of the draft-07 meta-schema, which ajv already has built in: drop the copy, or the
    // reference would resolve to two schemas.
    const spec = structuredClone(asyncapiSpecs.schemas['3.0.0']) as AnySchemaObject & { definitions: Record<string, unknown> };
    delete spec.definitions['http://json-schema.org/draft-07/schema'];
    const validate = newAjv(false).compile(spec);
    expect(validate(ASYNCAPI), ajvErrors(validate.errors).join('\n')).toBe(true);
  });

  it('holds every message type of the contract', () => {
    expect(Object.values(ASYNCAPI.components.messages).map((m) => m.name).sort()).toEqual(MESSAGE_TYPES);
  });

  it.each(Object.keys(ASYNCAPI.components.messages))('the examples of %s validate against its payload schema', (name) => {
    const message = ASYNCAPI.components.messages[name]!;
    const validate = newAjv().compile(message.payload);
    expect(message.examples.length).toBeGreaterThan(0);
    const failures = message.examples.flatMap((x) => (validate(x.payload) ? [] : ajvErrors(validate.errors)));
    expect(failures).toEqual([]);
  });

  it('every $ref resolves inside the document', () => {
    const unresolved: string[] = [];
    const visit = (node: unknown): void => {
      if (Array.isArray(node)) return node.forEach(visit);
      if (!node || typeof node !== 'object') return;
      for (const [k, v] of Object.entries(node)) {
        if (k === '$ref' && typeof v === 'string') {
          const target = v
            .replace(/^#\//, '')
            .split('/')
            .reduce<unknown>((at, key) => (at && typeof at === 'object' ? (at as Record<string, unknown>)[key.replaceAll('~1', '/').replaceAll('~0', '~')] : undefined), ASYNCAPI);
          if (target === undefined) unresolved.push(v);
        } else visit(v);
      }
    };
    visit(ASYNCAPI);
    expect(unresolved).toEqual([]);
  });

  it.each(Object.entries(ASYNCAPI.channels))('channel %s: its address, filled in, is a contract topic carrying its message', (_id, channel) => {
    const values: Record<string, string> = { region: 'ishikawa-nomi', hub: 'nomi-terai', device: 'dev-1', kind: 'locker' };
    const topic = parseTopic(channel.address.replace(/\{(\w+)\}/g, (_, p: string) => values[p] ?? `{${p}}`));
    expect(topic, channel.address).not.toBeNull();
    const type = (z.toJSONSchema(schemaForTopic(topic!)).properties?.type as { const?: unknown } | undefined)?.const;
    expect({ messages: Object.keys(channel.messages), parameters: Object.keys(channel.parameters ?? {}) }).toEqual({
      messages: [type],
      parameters: [...channel.address.matchAll(/\{(\w+)\}/g)].map((m) => m[1]),
    });
  });

  it('operations are written from the hub\'s point of view: it sends up-link and receives down-link topics', () => {
    const actions = Object.values(ASYNCAPI.operations).map((op) => {
      const channel = ASYNCAPI.channels[op.channel.$ref.replace('#/channels/', '')]!;
      const route = parseTopic(channel.address.replace(/\{(\w+)\}/g, (_, p: string) => (p === 'kind' ? 'drone' : 'x')))!.route;
      return [route, op.action];
    });
    expect(actions).toEqual(actions.map(([route]) => [route, ROUTE_DIRECTION[route as Route] === 'up' ? 'send' : 'receive']));
    expect(new Set(actions.map(([route]) => route))).toEqual(new Set(Object.keys(ROUTE_DIRECTION)));
  });
});
