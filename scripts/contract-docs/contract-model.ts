/**
 * What the published contract documents are made of, from contract/*.ts and the cloud's settings:
 * every channel (topic) and message type with its schema and example, the channel parameters, the
 * cloud's default limits and rejection reasons, and the constants the documents share. readme.ts,
 * asyncapi.ts and schema-files.ts render it.
 */
import { z } from 'zod';
import { MAX_TOPIC_LENGTH, MAX_TOPIC_LEVELS } from '../../cloud/broker/access-policy.ts';
import { CloudEnv } from '../../cloud/config.ts';
import { type RejectionReason } from '../../cloud/ingest/classify.ts';
import {
  CHANNELS,
  CLIENT_ID_RULE,
  CONTRACT_VERSION,
  DEVICE_KINDS,
  DeviceId,
  EXAMPLES,
  HubId,
  hubClientId,
  HubStatus,
  RegionId,
  ROUTE_DIRECTION,
  buildTopic,
  parseTopic,
  schemaForTopic,
  topics,
  type DeviceKind,
  type Direction,
  type ParsedTopic,
  type Route,
} from '../../contract/index.ts';
import { type JsonSchema } from './markdown.ts';

/** Contract v1 is published as document version 1.0.0; bump minor/patch for additive/editorial changes. */
export const CONTRACT_DOC_VERSION = `${CONTRACT_VERSION}.0.0`;

/** URNs, not URLs: the schemas are published as files, not served from a host. */
export const DOCUMENT_ID = `urn:chiiki-drone-logistics:contract:v${CONTRACT_VERSION}`;

export const schemaId = (name: string) => `${DOCUMENT_ID}:schema:${name}`;

export const DRAFT_07 = 'http://json-schema.org/draft-07/schema#';

/** MQTT binding version known to the AsyncAPI 3.0.0 JSON Schema. */
export const MQTT_BINDING = '0.2.0';

/** Every contract message is published with QoS 1 (at least once); ids make re-delivery harmless. */
export const QOS = 1;

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Placeholders in channel addresses; AsyncAPI substitutes `{name}` with a channel parameter. */
export const PLACEHOLDER = { region: '{region}', hub: '{hub}', device: '{device}' } as const;

interface ChannelTemplate {
  id: string;
  title: string;
  /** A topic with `{placeholders}` in its variable levels, built by the contract's own buildTopic. */
  topic: ParsedTopic;
}

interface RouteDoc {
  title: string;
  retained: boolean;
  /** One sentence: when and why this is published. */
  summary: string;
  /** The route on which the receiver answers, if any. */
  reply?: Route;
  channels: () => ChannelTemplate[];
}

/** Every route of the contract; a route added to topics.ts does not compile until it is documented here. */
export const ROUTES: Record<Route, RouteDoc> = {
  device: {
    title: 'Device telemetry and events',
    retained: false,
    summary: 'Telemetry (periodically) and events (when they happen) of one device at the hub.',
    channels: () =>
      DEVICE_KINDS.flatMap((kind) =>
        CHANNELS.map((channel) => ({
          id: `${kind}${capitalise(channel)}`,
          title: `${capitalise(kind)} ${channel}`,
          topic: { route: 'device', region: PLACEHOLDER.region, hub: PLACEHOLDER.hub, kind, device: PLACEHOLDER.device, channel },
        })),
      ),
  },
  status: {
    title: 'Hub status',
    retained: true,
    summary:
      'Link status of the hub. Publish `online` (retained) right after connecting, and register `offline` (retained, QoS 1) as the MQTT last will, so the broker announces a dead link.',
    channels: () => [{ id: 'hubStatus', title: 'Hub status', topic: { route: 'status', region: PLACEHOLDER.region, hub: PLACEHOLDER.hub } }],
  },
  'cmd-ack': {
    title: 'Command results',
    retained: false,
    summary: 'Result of every command the hub received, including rejected, expired and duplicate ones.',
    channels: () => [{ id: 'commandAck', title: 'Command result', topic: { route: 'cmd-ack', region: PLACEHOLDER.region, hub: PLACEHOLDER.hub } }],
  },
  'mode-ack': {
    title: 'Mode acknowledgements',
    retained: false,
    summary:
      'The mode the hub applied: after a region mode from the cloud (`source: "cloud"`), or after hub staff switched it locally while cut off (`source: "local"`).',
    channels: () => [{ id: 'modeAck', title: 'Mode acknowledgement', topic: { route: 'mode-ack', region: PLACEHOLDER.region, hub: PLACEHOLDER.hub } }],
  },
  command: {
    title: 'Commands',
    retained: false,
    summary: 'A command to one device. Execute a command id at most once and never after `expiresAt`; answer on `cmd-ack`.',
    reply: 'cmd-ack',
    channels: () => [
      {
        id: 'command',
        title: 'Command',
        // One channel for every kind: `{kind}` is a channel parameter (the payload schema is the same).
        topic: { route: 'command', region: PLACEHOLDER.region, hub: PLACEHOLDER.hub, kind: '{kind}' as DeviceKind, device: PLACEHOLDER.device },
      },
    ],
  },
  ack: {
    title: 'Cloud acknowledgements',
    retained: false,
    summary: 'The cloud acknowledges a particular hub message, e.g. a local mode switch it has reconciled.',
    channels: () => [{ id: 'cloudAck', title: 'Cloud acknowledgement', topic: { route: 'ack', region: PLACEHOLDER.region, hub: PLACEHOLDER.hub } }],
  },
  'region-mode': {
    title: 'Region mode',
    retained: true,
    summary:
      'Desired operating mode of every hub in the region (retained, so a hub gets it on subscribing). Apply it when `version` is higher than the one applied, then answer on `mode-ack`.',
    reply: 'mode-ack',
    channels: () => [{ id: 'regionMode', title: 'Region mode', topic: { route: 'region-mode', region: PLACEHOLDER.region } }],
  },
};

export interface TopicDoc {
  channelId: string;
  title: string;
  route: Route;
  direction: Direction;
  retained: boolean;
  summary: string;
  /** e.g. `v1/{region}/{hub}/drone/{device}/telemetry` */
  address: string;
  parameters: ParameterName[];
  messageType: string;
  schema: z.ZodType;
  reply?: Route;
}

export interface MessageDoc {
  type: string;
  title: string;
  description: string;
  schema: z.ZodType;
  /** draft-07 JSON Schema of the payload, without `$schema`/`$id`. */
  jsonSchema: JsonSchema;
  topics: TopicDoc[];
  example: { topic: string; payload: Record<string, unknown> };
  schemaFile: string;
}

export const ROUTE_ORDER = Object.keys(ROUTE_DIRECTION) as Route[];

/** Every channel of the contract, hub → cloud first, in the order topics.ts lists the routes. */
export function topicDocs(): TopicDoc[] {
  const byDirection = (d: Direction) => ROUTE_ORDER.filter((r) => ROUTE_DIRECTION[r] === d);
  return [...byDirection('up'), ...byDirection('down')].flatMap((route) => {
    const doc = ROUTES[route];
    return doc.channels().map((c): TopicDoc => {
      if (c.topic.route !== route) throw new Error(`channel ${c.id} is listed under route ${route} but is a ${c.topic.route} topic`);
      const address = buildTopic(c.topic);
      const schema = schemaForTopic(c.topic);
      return {
        channelId: c.id,
        title: c.title,
        route,
        direction: ROUTE_DIRECTION[route],
        retained: doc.retained,
        summary: doc.summary,
        address,
        parameters: parametersOf(address),
        messageType: messageTypeOf(schema),
        schema,
        ...(doc.reply ? { reply: doc.reply } : {}),
      };
    });
  });
}

/** Every message type with its schema, topics and example; throws when an example is missing or invalid. */
export function messageDocs(): MessageDoc[] {
  const docs = new Map<string, MessageDoc>();
  for (const t of topicDocs()) {
    const existing = docs.get(t.messageType);
    if (existing) {
      existing.topics.push(t);
      continue;
    }
    const example = EXAMPLES.find((e) => e.payload.type === t.messageType);
    if (!example) throw new Error(`contract/examples.ts has no example of ${t.messageType}; add one`);
    const parsedTopic = parseTopic(buildTopic(example.topic));
    if (!parsedTopic) throw new Error(`the example of ${t.messageType} has a topic outside the contract: ${buildTopic(example.topic)}`);
    const check = schemaForTopic(parsedTopic).safeParse(example.payload);
    if (!check.success) throw new Error(`the example of ${t.messageType} is invalid on its topic: ${check.error.message}`);
    docs.set(t.messageType, {
      type: t.messageType,
      title: titleOf(t.messageType),
      description: t.schema.description ?? t.title,
      schema: t.schema,
      jsonSchema: toDraft07(t.schema),
      topics: [t],
      example: { topic: buildTopic(example.topic), payload: example.payload },
      schemaFile: `schemas/${t.messageType}.schema.json`,
    });
  }
  return [...docs.values()];
}

export type ParameterName = 'region' | 'hub' | 'kind' | 'device';

function parametersOf(address: string): ParameterName[] {
  return [...address.matchAll(/\{([a-z]+)\}/g)].map((m) => {
    const name = m[1]!;
    if (!(name in PARAMETER_SOURCES)) throw new Error(`unknown channel parameter {${name}} in ${address}`);
    return name as ParameterName;
  });
}

export const PARAMETER_SOURCES: Record<ParameterName, { schema: z.ZodType; values: (t: ParsedTopic) => string | undefined; enum?: readonly string[] }> = {
  region: { schema: RegionId, values: (t) => t.region },
  hub: { schema: HubId, values: (t) => ('hub' in t ? t.hub : undefined) },
  kind: { schema: z.enum(DEVICE_KINDS).describe('Device kind'), values: (t) => ('kind' in t ? t.kind : undefined), enum: DEVICE_KINDS },
  device: { schema: DeviceId, values: (t) => ('device' in t ? t.device : undefined) },
};

export function parameterObject(name: ParameterName): Json {
  const source = PARAMETER_SOURCES[name];
  const json = z.toJSONSchema(source.schema, { target: 'draft-07' }) as JsonSchema;
  const examples = [...new Set(EXAMPLES.map((e) => source.values(e.topic)).filter((v): v is string => v !== undefined))];
  const pattern = typeof json.pattern === 'string' ? ` Pattern: \`${json.pattern}\` (${patternHint(source.schema)}).` : '';
  return {
    description: `${source.schema.description ?? name}.${pattern}`,
    ...(source.enum ? { enum: [...source.enum] } : {}),
    examples,
  };
}

/** The human wording of an id's pattern, e.g. 'lower-case letters, digits and "-", 1–40 characters'. */
export function patternHint(schema: z.ZodType): string {
  const issue = schema.safeParse('#').error?.issues.find((i) => i.code === 'invalid_format');
  return issue?.message ?? 'see the JSON Schema';
}

/** draft-07 JSON Schema of what a publisher must send (zod "input" view), without `$schema`. */
export function toDraft07(schema: z.ZodType): JsonSchema {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { target: 'draft-07', io: 'input' }) as JsonSchema;
  return rest;
}

function messageTypeOf(schema: z.ZodType): string {
  const json = z.toJSONSchema(schema, { target: 'draft-07' }) as JsonSchema;
  const type = (json.properties as Record<string, JsonSchema> | undefined)?.type?.const;
  if (typeof type !== 'string') throw new Error('every contract message has a literal `type` field');
  return type;
}

/** The cloud's defaults (cloud/config.ts); a deployment may change them, the docs say "default". */
export function limits() {
  const env = CloudEnv.parse({});
  return {
    maxPayloadBytes: env.INGEST_MAX_PAYLOAD_BYTES,
    maxPacketBytes: env.MQTT_MAX_PACKET_BYTES,
    packetTimeoutS: env.MQTT_PACKET_TIMEOUT_S,
    sessionExpiryDays: env.MQTT_SESSION_EXPIRY_S / 86_400,
    maxDevicesPerHub: env.INGEST_MAX_DEVICES_PER_HUB,
    maxFutureSkewS: env.INGEST_MAX_FUTURE_SKEW_S,
    ports: { mqtt: env.MQTT_PORT, mqtts: env.MQTTS_PORT, ws: env.MQTT_WS_PORT },
    maxTopicLength: MAX_TOPIC_LENGTH,
    maxTopicLevels: MAX_TOPIC_LEVELS,
  };
}

/** What each rejection reason means for the vendor; a reason added to the ingest must be described here. */
export function rejectionReasons(l: ReturnType<typeof limits>): Record<RejectionReason, string> {
  return {
    too_large: `The payload is larger than ${bytes(l.maxPayloadBytes)}.`,
    unknown_topic: `The topic is under the hub's prefix but is not a hub → cloud topic of this contract (a typo, an unknown kind or channel, upper case, an extra level).`,
    malformed_json: 'The payload is not JSON, or not a JSON object.',
    schema: 'The payload does not match the JSON Schema of its topic: a missing or unknown field, a wrong type, a value out of range. The detail names the field.',
    topic_mismatch: 'The payload is valid but does not belong on its topic: `hub` or `device` differs from the topic level, or the `type` is not the one of the topic.',
    too_many_devices: `The hub already reports ${l.maxDevicesPerHub} devices (default limit) and the message is about another one.`,
    store_rejected: 'The telemetry store refused the message permanently (rare; an operator is alerted).',
    future_timestamp: `\`ts\` is more than ${l.maxFutureSkewS} s (default) ahead of the cloud's clock: set the device's clock (NTP). A reading from the future would otherwise stay "newest" and hide every real one.`,
    unknown_mode_version: 'A `hub.mode-ack` names a `version` the cloud never published for the region. Acknowledge the version you applied; a local switch keeps the current version.',
    unknown_compartment: 'A `locker.telemetry` or `locker.event` names a compartment that the region file does not give this locker bank (or the bank is not in the region file). Compartments are registered with the operator.',
  };
}

export function bytes(n: number): string {
  return n % 1024 === 0 ? `${n / 1024} KiB (${n} bytes)` : `${n} bytes`;
}

/** The status example (hub and time) with `state: "offline"`: what a hub registers as its last will. */
export function offlineStatus(): { topic: string; payload: Record<string, unknown> } {
  const status = EXAMPLES.find((e) => e.payload.type === 'hub.status');
  if (!status || status.topic.route !== 'status') throw new Error('contract/examples.ts has no hub.status example');
  const { v, type, hub, ts } = status.payload;
  const payload = HubStatus.parse({ v, type, hub, state: 'offline', ts });
  return { topic: buildTopic(status.topic), payload };
}

/** Which last wills the broker accepts (cloud/broker/access-policy.ts decideWill). */
export const WILL_RULE =
  'The will must be on your own status topic: a will on any other topic (another hub\'s or another region\'s status, or another of your topics) is refused with the connection, CONNACK return code 5 (not authorized), because the broker would publish it as a message from your hub.';

/** The client-id rule (contract/client-id.ts) with examples and what the broker keeps for a persistent session. */
export function clientIdRule(l: ReturnType<typeof limits>): string {
  const hub = 'nomi-terai';
  return `${CLIENT_ID_RULE} For hub \`${hub}\`: \`${hub}\`, \`${hubClientId(hub, 'edge')}\`, \`${hubClientId(hub, 'sim')}\` are accepted; \`${hub}-edge\`, \`edge-${hub}\` and another hub's id are refused ("-" cannot separate a suffix: hub ids contain it). A persistent session (clean session off) and the QoS ${QOS} messages queued for it are kept ${l.sessionExpiryDays} days (default) after its last connection ends, then removed: subscribe again after a CONNACK with session present = 0 (the cloud re-sends commands still pending).`;
}

export function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}

function titleOf(type: string): string {
  return capitalise(type.replace(/[.-]/g, ' '));
}
