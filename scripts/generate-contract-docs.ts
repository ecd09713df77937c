/**
 * Generates the published message contract for device vendors under docs/contract/ from the zod
 * schemas, topics and examples in contract/*.ts, and from the cloud's limits and rejection reasons:
 *
 *   docs/contract/asyncapi.json                      AsyncAPI 3.0.0, from the hub's point of view
 *   docs/contract/schemas/<type>.schema.json         JSON Schema (draft-07) per message type
 *   docs/contract/schemas/region-file.schema.json    JSON Schema of config/regions/*.json
 *   docs/contract/README.md                          the vendor guide
 *
 * Nothing in docs/contract is written by hand: `npm run docs:generate` rewrites it, and
 * contract/contract.test.ts fails when the committed files differ from `renderContractDocs()`.
 * Output is deterministic (key order follows the schemas' source order, 2-space JSON, final newline).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { MAX_TOPIC_LENGTH, MAX_TOPIC_LEVELS } from '../cloud/broker/access-policy.ts';
import { CloudEnv } from '../cloud/config.ts';
import { REJECTION_REASONS, type RejectionReason } from '../cloud/ingest/classify.ts';
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
  MessageId,
  RegionFile,
  RegionId,
  ROUTE_DIRECTION,
  TOPIC_ROOT,
  buildTopic,
  parseTopic,
  schemaForTopic,
  topics,
  type DeviceKind,
  type Direction,
  type ParsedTopic,
  type Route,
} from '../contract/index.ts';
import { commandAckDescription, commandPayload, commandsSection } from './contract-docs/command-docs.ts';
import { angled, fieldTable, markdownText, primitiveTypes, propertiesOf, requiredOf, shellQuote, table, typeOf, type JsonSchema } from './contract-docs/markdown.ts';

export const CONTRACT_DOCS_DIR = 'docs/contract';
/** Contract v1 is published as document version 1.0.0; bump minor/patch for additive/editorial changes. */
export const CONTRACT_DOC_VERSION = `${CONTRACT_VERSION}.0.0`;
/** URNs, not URLs: the schemas are published as files, not served from a host. */
const DOCUMENT_ID = `urn:chiiki-drone-logistics:contract:v${CONTRACT_VERSION}`;
const schemaId = (name: string) => `${DOCUMENT_ID}:schema:${name}`;
const DRAFT_07 = 'http://json-schema.org/draft-07/schema#';
/** MQTT binding version known to the AsyncAPI 3.0.0 JSON Schema. */
const MQTT_BINDING = '0.2.0';
/** Every contract message is published with QoS 1 (at least once); ids make re-delivery harmless. */
const QOS = 1;

export type { JsonSchema } from './contract-docs/markdown.ts';
type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

// ------------------------------------------------------------------------------------------ routes

/** Placeholders in channel addresses; AsyncAPI substitutes `{name}` with a channel parameter. */
const PLACEHOLDER = { region: '{region}', hub: '{hub}', device: '{device}' } as const;

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
const ROUTES: Record<Route, RouteDoc> = {
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

const ROUTE_ORDER = Object.keys(ROUTE_DIRECTION) as Route[];

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

// -------------------------------------------------------------------------------------- parameters

type ParameterName = 'region' | 'hub' | 'kind' | 'device';

function parametersOf(address: string): ParameterName[] {
  return [...address.matchAll(/\{([a-z]+)\}/g)].map((m) => {
    const name = m[1]!;
    if (!(name in PARAMETER_SOURCES)) throw new Error(`unknown channel parameter {${name}} in ${address}`);
    return name as ParameterName;
  });
}

const PARAMETER_SOURCES: Record<ParameterName, { schema: z.ZodType; values: (t: ParsedTopic) => string | undefined; enum?: readonly string[] }> = {
  region: { schema: RegionId, values: (t) => t.region },
  hub: { schema: HubId, values: (t) => ('hub' in t ? t.hub : undefined) },
  kind: { schema: z.enum(DEVICE_KINDS).describe('Device kind'), values: (t) => ('kind' in t ? t.kind : undefined), enum: DEVICE_KINDS },
  device: { schema: DeviceId, values: (t) => ('device' in t ? t.device : undefined) },
};

function parameterObject(name: ParameterName): Json {
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
function patternHint(schema: z.ZodType): string {
  const issue = schema.safeParse('#').error?.issues.find((i) => i.code === 'invalid_format');
  return issue?.message ?? 'see the JSON Schema';
}

// ------------------------------------------------------------------------------------ JSON Schema

/** draft-07 JSON Schema of what a publisher must send (zod "input" view), without `$schema`. */
function toDraft07(schema: z.ZodType): JsonSchema {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { target: 'draft-07', io: 'input' }) as JsonSchema;
  return rest;
}

function messageTypeOf(schema: z.ZodType): string {
  const json = z.toJSONSchema(schema, { target: 'draft-07' }) as JsonSchema;
  const type = (json.properties as Record<string, JsonSchema> | undefined)?.type?.const;
  if (typeof type !== 'string') throw new Error('every contract message has a literal `type` field');
  return type;
}

function standaloneSchema(name: string, title: string, description: string, body: JsonSchema, examples: unknown[]): JsonSchema {
  const { description: _own, ...rest } = body;
  return { $schema: DRAFT_07, $id: schemaId(name), title, description, ...rest, examples };
}

function messageSchemaFile(m: MessageDoc): JsonSchema {
  const where = m.topics.map((t) => `\`${angled(t.address)}\``).join(', ');
  const by = m.topics[0]!.direction === 'up' ? 'the hub' : 'the cloud';
  return standaloneSchema(m.type, m.type, `${m.description}. Published by ${by} on ${where} (QoS ${QOS}${m.topics[0]!.retained ? ', retained' : ''}).`, m.jsonSchema, [m.example.payload]);
}

function regionFileSchema(): JsonSchema {
  return standaloneSchema(
    'region-file',
    'Region file',
    'A region (地域生活圏) file, config/regions/<region>.json: the hubs of one region and their drones, lockers and sensors. Fields with a default may be left out. Hub ids must be unique, and device ids unique within a hub (checked by the cloud, not expressible in JSON Schema). Unknown top-level fields are kept for later use.',
    toDraft07(RegionFile),
    [regionFileExample()],
  );
}

/** A small region file with the examples' ids; parsed here, so a contract change cannot leave it invalid. */
function regionFileExample(): Record<string, unknown> {
  const example = {
    id: 'ishikawa-nomi',
    name: { ja: '石川県能美市', en: 'Nomi, Ishikawa' },
    hubs: [
      {
        id: 'nomi-terai',
        kind: 'community-hall',
        name: { ja: '寺井公民館', en: 'Terai community hall' },
        location: { lat: 36.4439, lon: 136.4555 },
        drones: [{ id: 'drone-1', model: 'generic-5kg', maxPayloadKg: 5, cruiseMps: 10, enduranceS: 1080 }],
        lockers: [
          {
            id: 'locker-a',
            compartments: [
              { id: 'A01', size: 'S', tempClass: 'ambient' },
              { id: 'A02', size: 'M', tempClass: 'chilled' },
              { id: 'A03', size: 'L', tempClass: 'frozen' },
            ],
          },
        ],
        sensors: ['wx'],
      },
    ],
  };
  RegionFile.parse(example);
  return example;
}

// --------------------------------------------------------------------------------------- limits

/** The cloud's defaults (cloud/config.ts); a deployment may change them, the docs say "default". */
function limits() {
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
function rejectionReasons(l: ReturnType<typeof limits>): Record<RejectionReason, string> {
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

function bytes(n: number): string {
  return n % 1024 === 0 ? `${n / 1024} KiB (${n} bytes)` : `${n} bytes`;
}

// ------------------------------------------------------------------------------------- AsyncAPI

/** The status example (hub and time) with `state: "offline"`: what a hub registers as its last will. */
function offlineStatus(): { topic: string; payload: Record<string, unknown> } {
  const status = EXAMPLES.find((e) => e.payload.type === 'hub.status');
  if (!status || status.topic.route !== 'status') throw new Error('contract/examples.ts has no hub.status example');
  const { v, type, hub, ts } = status.payload;
  const payload = HubStatus.parse({ v, type, hub, state: 'offline', ts });
  return { topic: buildTopic(status.topic), payload };
}

function renderAsyncApi(messages: MessageDoc[], channels: TopicDoc[]): Json {
  const l = limits();
  const operations: Record<string, Json> = {};
  for (const t of channels) {
    const action = t.direction === 'up' ? 'send' : 'receive';
    const reply = t.reply ? channels.find((c) => c.route === t.reply) : undefined;
    operations[`${action}${capitalise(t.channelId)}`] = {
      action,
      channel: { $ref: `#/channels/${t.channelId}` },
      title: `${action === 'send' ? 'Publish' : 'Receive'} ${lowerFirst(t.title)}`,
      summary: t.summary,
      bindings: { mqtt: { qos: QOS, retain: t.retained, bindingVersion: MQTT_BINDING } },
      messages: [{ $ref: `#/channels/${t.channelId}/messages/${t.messageType}` }],
      ...(reply
        ? { reply: { channel: { $ref: `#/channels/${reply.channelId}` }, messages: [{ $ref: `#/channels/${reply.channelId}/messages/${reply.messageType}` }] } }
        : {}),
    };
  }

  const server = (host: string, protocol: string, description: string, extra: Record<string, Json> = {}): Json => ({
    host,
    ...extra,
    protocol,
    protocolVersion: '3.1.1',
    description,
    variables: { host: { description: 'Broker host name, given by the operator', default: 'localhost', examples: ['mqtt.example.jp'] } },
    security: [{ $ref: '#/components/securitySchemes/hubCredentials' }],
    bindings: { mqtt: { lastWill: { topic: topics.status(PLACEHOLDER.region, PLACEHOLDER.hub), qos: QOS, message: JSON.stringify(offlineStatus().payload), retain: true }, bindingVersion: MQTT_BINDING } },
  });

  return {
    asyncapi: '3.0.0',
    id: DOCUMENT_ID,
    info: {
      title: 'Chiiki drone logistics — hub ↔ cloud MQTT contract',
      version: CONTRACT_DOC_VERSION,
      description: asyncApiDescription(channels, l),
      tags: [{ name: 'hub', description: 'Edge gateway at a community hall (公民館) or roadside station (道の駅)' }],
    },
    servers: {
      mqtt: server(`{host}:${l.ports.mqtt}`, 'mqtt', 'MQTT over TCP. Use only inside a private network (e.g. a closed LTE APN) or for development.'),
      mqtts: server(`{host}:${l.ports.mqtts}`, 'secure-mqtt', 'MQTT over TLS. The default for hubs on the public internet.'),
      ws: server(`{host}:${l.ports.ws}`, 'ws', 'MQTT over WebSocket, path /mqtt (for gateways that can only speak HTTP(S)).', { pathname: '/mqtt' }),
    },
    defaultContentType: 'application/json',
    channels: Object.fromEntries(
      channels.map((t) => [
        t.channelId,
        {
          address: t.address,
          title: t.title,
          summary: `${t.direction === 'up' ? 'hub → cloud' : 'cloud → hub'}${t.retained ? ', retained' : ''}`,
          description: t.summary,
          parameters: Object.fromEntries(t.parameters.map((p) => [p, { $ref: `#/components/parameters/${p}` }])),
          messages: { [t.messageType]: { $ref: `#/components/messages/${t.messageType}` } },
        },
      ]),
    ),
    operations,
    components: {
      messages: Object.fromEntries(
        messages.map((m) => [
          m.type,
          {
            name: m.type,
            title: m.title,
            summary: m.description,
            contentType: 'application/json',
            ...correlationOf(m),
            ...(m.type === 'hub.command-ack' ? { description: commandAckDescription() } : {}),
            payload: (m.type === 'hub.command' ? commandPayload(m.jsonSchema) : m.jsonSchema) as Json,
            examples: [{ name: m.type, summary: `On ${m.example.topic}`, payload: m.example.payload as Json }],
          },
        ]),
      ),
      parameters: Object.fromEntries((Object.keys(PARAMETER_SOURCES) as ParameterName[]).map((p) => [p, parameterObject(p)])),
      securitySchemes: {
        hubCredentials: {
          type: 'userPassword',
          description: `MQTT user name and password issued for one hub by the operator. The broker maps them to the hub's region and hub id, which the access rules (see info) are built from. ${CLIENT_ID_RULE}`,
        },
      },
    },
  };
}

/** The client-id rule (contract/client-id.ts) with examples and what the broker keeps for a persistent session. */
function clientIdRule(l: ReturnType<typeof limits>): string {
  const hub = 'nomi-terai';
  return `${CLIENT_ID_RULE} For hub \`${hub}\`: \`${hub}\`, \`${hubClientId(hub, 'edge')}\`, \`${hubClientId(hub, 'sim')}\` are accepted; \`${hub}-edge\`, \`edge-${hub}\` and another hub's id are refused ("-" cannot separate a suffix: hub ids contain it). A persistent session (clean session off) and the QoS ${QOS} messages queued for it are kept ${l.sessionExpiryDays} days (default) after its last connection ends, then removed: subscribe again after a CONNACK with session present = 0 (the cloud re-sends commands still pending).`;
}

/** Which payload field ties a request to its answer (AsyncAPI correlation id). */
const CORRELATION: Record<string, { field: string; description: string }> = {
  'hub.command': { field: 'id', description: 'The command id; the `hub.command-ack` that answers it carries it as `commandId`' },
  'hub.command-ack': { field: 'commandId', description: 'The `id` of the `hub.command` this answers' },
  'cloud.ack': { field: 'ackOf', description: 'The `id` of the hub message this acknowledges' },
};

function correlationOf(m: MessageDoc): Record<string, Json> {
  const c = CORRELATION[m.type];
  if (!c) return {};
  if (!(c.field in propertiesOf(m.jsonSchema))) throw new Error(`${m.type} has no field ${c.field} to correlate by`);
  return { correlationId: { description: c.description, location: `$message.payload#/${c.field}` } };
}

function asyncApiDescription(channels: TopicDoc[], l: ReturnType<typeof limits>): string {
  return [
    'The MQTT contract between a hub (the edge gateway at a community hall or roadside station, which speaks for its drones, lockers and sensors) and the cloud.',
    '',
    '**Point of view.** This document describes the *hub*: `send` operations are what the hub publishes, `receive` operations are what it subscribes to. The cloud does the opposite.',
    '',
    `**Topics.** Every topic starts with \`${TOPIC_ROOT}/<region>/\`; the root is the contract major version. Hub → cloud topics live under \`${topics.hubPrefix('<region>', '<hub>')}\`; cloud → hub topics are the hub's \`cmd/…\` and \`ack\` topics and the region's \`mode\` topic. Levels are lower-case slugs (letters, digits, "-"); no wildcards, no empty levels, at most ${l.maxTopicLength} characters and ${l.maxTopicLevels} levels.`,
    '',
    topicTable(channels, false),
    '',
    `**Delivery.** Publish and subscribe with QoS ${QOS} (at least once). Every message carries an \`id\` unique per device of a hub; the cloud deduplicates by (hub, device, id), so a re-sent message must keep its id. Commands are executed at most once per command id.`,
    '',
    '**Backlog.** A message re-sent from the hub\'s store-and-forward backlog carries `"historical": true`: it is stored in history but never overwrites live state.',
    '',
    '**Units.** Timestamps (`ts`, `expiresAt`) are Unix epoch milliseconds, UTC. Other units are in the field names and descriptions (`altM` metres, `groundSpeedMps` metres per second, `batteryPct` percent, `tempC` °C, …).',
    '',
    `**Retained.** Only ${retainedTypes(channels)} are retained. The hub publishes \`{"state":"online"}\` after connecting and registers \`{"state":"offline"}\` on its status topic as retained QoS ${QOS} last will.`,
    '',
    `**Limits and rejections.** Payloads up to ${bytes(l.maxPayloadBytes)} are accepted (default); larger ones, and any payload that is not valid for its topic, are acknowledged and kept in a dead-letter store with a reason (${REJECTION_REASONS.map((r) => `\`${r}\``).join(', ')}). MQTT packets over ${bytes(l.maxPacketBytes)}, and a packet not complete ${l.packetTimeoutS} s after its first byte, make the broker close the connection.`,
    '',
    `**Client id.** ${clientIdRule(l)}`,
  ].join('\n');
}

function retainedTypes(channels: TopicDoc[]): string {
  return channels
    .filter((t) => t.retained)
    .map((t) => `\`${t.messageType}\` (from the ${t.direction === 'up' ? 'hub' : 'cloud'})`)
    .join(' and ');
}

// --------------------------------------------------------------------------------------- README

function topicTable(channels: TopicDoc[], withSchema: boolean): string {
  const header = ['Topic', 'Direction', 'Retained', 'Payload `type`', ...(withSchema ? ['Schema'] : [])];
  const rows = channels.map((t) => [
    `\`${angled(t.address)}\``,
    t.direction === 'up' ? 'hub → cloud' : 'cloud → hub',
    t.retained ? 'yes' : 'no',
    `\`${t.messageType}\``,
    ...(withSchema ? [`[${t.messageType}.schema.json](schemas/${t.messageType}.schema.json)`] : []),
  ]);
  return table(header, rows);
}

const ENVELOPE_FIELDS = ['v', 'type', 'id', 'ts', 'hub', 'device', 'historical'] as const;

function envelopeTable(messages: MessageDoc[]): string {
  const rows = ENVELOPE_FIELDS.map((field) => {
    const carriers = messages.filter((m) => field in propertiesOf(m.jsonSchema));
    const first = carriers[0];
    if (!first) throw new Error(`no message carries the envelope field ${field}`);
    const prop = propertiesOf(first.jsonSchema)[field]!;
    const required = carriers.filter((m) => requiredOf(m.jsonSchema).includes(field));
    const missing = messages.filter((m) => !carriers.includes(m)).map((m) => `\`${m.type}\``);
    const usage =
      (required.length === carriers.length ? 'required' : required.length === 0 ? 'optional' : 'required in some') +
      (missing.length ? `; not in ${missing.join(', ')}` : '; in every message');
    return [`\`${field}\``, field === 'type' ? 'string' : typeOf(prop), usage, descriptionOf(field, prop)];
  });
  return table(['Field', 'Type', 'Where', 'Meaning'], rows);
}

function descriptionOf(field: string, prop: JsonSchema): string {
  if (field === 'type') return 'The message type, a literal per topic (see the topic table)';
  return typeof prop.description === 'string' ? prop.description : '';
}

/** Unit suffixes of field names. Each row lists the fields that use it, found in the schemas. */
const UNIT_SUFFIXES: [suffix: string, unit: string][] = [
  ['MmPerH', 'millimetres per hour'],
  ['Mps', 'metres per second'],
  ['Deg', 'degrees (0–360, clockwise from true north)'],
  ['Pct', 'percent, 0–100'],
  ['Kg', 'kilograms'],
  ['C', 'degrees Celsius'],
  ['V', 'volts'],
  ['S', 'seconds'],
  ['M', 'metres'],
];

function unitTable(messages: MessageDoc[]): string {
  const numeric = new Map<string, string>();
  for (const m of messages) collectNumericFields(m.jsonSchema, '', numeric);
  const used = new Set<string>();
  const rows: string[][] = [];
  for (const [suffix, unit] of UNIT_SUFFIXES) {
    const fields = [...numeric.keys()].filter((f) => !used.has(f) && leafName(f).endsWith(suffix));
    fields.forEach((f) => used.add(f));
    if (fields.length) rows.push([`\`…${suffix}\``, unit, fields.map((f) => `\`${f}\``).join(', ')]);
  }
  const others = [...numeric.entries()].filter(([f]) => !used.has(f));
  for (const [field, description] of others) rows.push(['—', description || '(see the schema)', `\`${field}\``]);
  return table(['Suffix', 'Unit', 'Fields'], rows);
}

function leafName(field: string): string {
  return field.slice(field.lastIndexOf('.') + 1).replace('[]', '');
}

function collectNumericFields(schema: JsonSchema, prefix: string, out: Map<string, string>): void {
  for (const [name, prop] of Object.entries(propertiesOf(schema))) {
    const field = prefix + name;
    const types = primitiveTypes(prop);
    if ((types.includes('number') || types.includes('integer')) && prop.const === undefined && !out.has(field)) {
      out.set(field, typeof prop.description === 'string' ? prop.description : '');
    }
    const items = prop.items as JsonSchema | undefined;
    if (items && typeof items === 'object' && items.properties) collectNumericFields(items, `${field}[].`, out);
  }
}

function renderReadme(messages: MessageDoc[], channels: TopicDoc[]): string {
  const l = limits();
  const reasons = rejectionReasons(l);
  const prefix = topics.hubPrefix('<region>', '<hub>');
  const downUnderPrefix = channels.filter((t) => t.direction === 'down' && t.address.startsWith(topics.hubPrefix(PLACEHOLDER.region, PLACEHOLDER.hub)));
  const sensor = messages.find((m) => m.type === 'sensor.telemetry') ?? messages[0]!;
  const will = offlineStatus();
  const { hub } = will.payload as { hub: string };
  const region = parseTopic(will.topic)!.region;
  const online = HubStatus.parse({ ...will.payload, state: 'online', agent: 'vendor-gateway/2.3.1' });
  const idRule = patternHint(RegionId);
  const messageId = z.toJSONSchema(MessageId) as JsonSchema;
  const oldest = new Date((propertiesOf(sensor.jsonSchema).ts?.minimum as number)).toISOString().slice(0, 10);
  const auth = `-h mqtt.example.jp -p ${l.ports.mqtts} --cafile ca.pem -u "$HUB_USER" -P "$HUB_PASSWORD"`;

  const lines: string[] = [
    '<!-- Generated by `npm run docs:generate` (scripts/generate-contract-docs.ts) from contract/*.ts. Do not edit. -->',
    '',
    `# Hub ↔ cloud MQTT contract v${CONTRACT_VERSION}`,
    '',
    'How a hub — the edge gateway at a community hall (公民館) or roadside station (道の駅) that speaks for its drones, lockers and sensors — talks to the cloud over MQTT. This folder is generated from the schemas the cloud itself validates with, so it cannot drift from what the cloud accepts.',
    '',
    '| File | What |',
    '| --- | --- |',
    `| [asyncapi.json](asyncapi.json) | AsyncAPI 3.0.0 document (document version ${CONTRACT_DOC_VERSION}), written from the hub's point of view: \`send\` = the hub publishes, \`receive\` = the hub subscribes |`,
    ...messages.map((m) => `| [${m.schemaFile}](${m.schemaFile}) | JSON Schema (draft-07) of \`${m.type}\` |`),
    '| [schemas/region-file.schema.json](schemas/region-file.schema.json) | JSON Schema of a region file (config/regions/*.json) |',
    '',
    '## Connecting',
    '',
    `- MQTT 3.1.1. Ports (defaults): ${l.ports.mqtts} MQTT over TLS, ${l.ports.mqtt} plain MQTT (private networks and development only), ${l.ports.ws} MQTT over WebSocket at path \`/mqtt\`.`,
    '- Authenticate with the user name and password the operator issued for your hub. They decide your `<region>` and `<hub>` and so which topics you may use (see [Access rules](#access-rules)).',
    `- **Client id.** ${clientIdRule(l)}`,
    `- Send every MQTT packet whole: one that is not complete ${l.packetTimeoutS} s (default) after its first byte closes the connection. Between packets, keep-alive (at most 1200 s) governs.`,
    `- Register a last will on \`${topics.status('<region>', '<hub>')}\`: a \`hub.status\` with \`"state":"offline"\` and the connect time in \`ts\`, for example \`${JSON.stringify(will.payload)}\`, QoS ${QOS}, retained. Right after connecting, publish the same with \`"state":"online"\`, retained.`,
    `- Subscribe with QoS ${QOS} to ${topics.hubSubscriptions('<region>', '<hub>').map((f) => `\`${f}\``).join(', ')}.`,
    '',
    '## Topics',
    '',
    `All topics start with \`${TOPIC_ROOT}/\` (the contract major version). \`<region>\`, \`<hub>\` and \`<device>\` are ids: ${idRule}, not starting or ending with "-". \`<kind>\` is one of ${DEVICE_KINDS.map((k) => `\`${k}\``).join(', ')}. Topics are at most ${l.maxTopicLength} characters and ${l.maxTopicLevels} levels; no wildcards and no empty levels. Every message is published with QoS ${QOS}.`,
    '',
    topicTable(channels, true),
    '',
    ...ROUTE_ORDER.map((r) => {
      const of = channels.filter((t) => t.route === r);
      const where = of.length > 2 ? `${of.length} topics, see the table` : of.map((t) => `\`${angled(t.address)}\``).join(', ');
      return `- **${ROUTES[r].title}** (${where}): ${ROUTES[r].summary}`;
    }),
    '',
    '## Envelope',
    '',
    'Every payload is one UTF-8 JSON object. Fields that are not in the schema of the topic are rejected. These fields are shared by (most) messages:',
    '',
    envelopeTable(messages),
    '',
    '## Units',
    '',
    'Timestamps (`ts`, `expiresAt`) are Unix epoch **milliseconds, UTC**, integers. Other numbers carry their unit in the field name:',
    '',
    unitTable(messages),
    '',
    '## Rules',
    '',
    `1. **QoS ${QOS}.** Publish every message with QoS ${QOS} and keep it in your outbox until the broker acknowledges it (PUBACK). Delivery is at least once; duplicates are expected and harmless.`,
    `2. **Message ids.** \`id\` is unique per device of a hub (for example \`<device>-<boot>-<sequence>\` or a UUID; ${messageId.minLength}–${messageId.maxLength} characters, ${patternHint(MessageId)}). The cloud deduplicates by (hub, device, id); hub-level messages (\`hub.mode-ack\`) share one device part. **A re-sent message keeps its id** — never mint a new id for a retry.`,
    `3. **Timestamps.** \`ts\` is when the reading was taken or the event happened, from a clock synchronised by NTP/GNSS, in epoch milliseconds UTC. Values before ${oldest} are rejected (a clock that was never set), and so are values more than ${limits().maxFutureSkewS} s (default) ahead of the cloud's clock (\`future_timestamp\`).`,
    '4. **Backlog.** After a link outage, send the live state first and replay the backlog in the background with `"historical": true`. Historical messages go to history only; they never overwrite live state (a locker that was open an hour ago is not open now).',
    `5. **Size.** Payloads up to ${bytes(l.maxPayloadBytes)} are accepted for ingest (default); anything larger is acknowledged and dead-lettered as \`too_large\`. MQTT packets larger than ${bytes(l.maxPacketBytes)} are refused by the broker, which closes the connection — a hub that retries such a packet will never get through, so never build one.`,
    `6. **Retained.** Only \`hub.status\` is published retained by a hub (its last will \`offline\` must replace the birth \`online\`); the broker clears the retain flag on every other topic. \`region.mode\` is retained by the cloud, so a hub receives the current mode as soon as it subscribes.`,
    '7. **Commands.** Execute a command `id` at most once and never after `expiresAt`; always answer on `cmd-ack` with `done`, `rejected`, `expired`, `failed` or `duplicate`. What each command asks and what its answer means: [Commands](#commands).',
    '8. **Region mode.** Apply a `region.mode` only when its `version` is higher than the one you applied; a hub listed in `hubs` takes its own mode. Answer on `mode-ack`. If staff switch the mode locally while the hub is cut off, publish a `mode-ack` with `"source": "local"` when the link is back.',
    '',
    '### Checks beyond the JSON Schema',
    '',
    'The cloud also checks, and rejects as `topic_mismatch` or `schema`:',
    '',
    '- `hub` in the payload equals the `<hub>` level of the topic, and `device` equals the `<device>` level.',
    '- the payload `type` is the one of its topic (for example `drone.telemetry` only on `…/drone/<device>/telemetry`).',
    '- compartment ids in one `locker.telemetry` are unique.',
    '',
    'and against what it knows, rejecting as the reason named:',
    '',
    '- `ts` is not too far ahead of the cloud\'s clock (`future_timestamp`).',
    '- every compartment a `locker.telemetry` or `locker.event` names is one the region file gives that locker bank (`unknown_compartment`).',
    '- a `hub.mode-ack` names a `version` the cloud issued for the region; a local switch keeps the current version (`unknown_mode_version`).',
    '',
    '## Rejections',
    '',
    'A message the cloud cannot accept is still acknowledged at the MQTT level (PUBACK — MQTT 3.1.1 has no negative acknowledgement), so it never blocks your outbox. It is kept in a dead-letter store with the topic, your client id, a reason and a detail, where the operator can show it to you. Re-sending the same payload gives the same result: fix the cause instead.',
    '',
    table(['Reason', 'When'], REJECTION_REASONS.map((r) => [`\`${r}\``, reasons[r]])),
    '',
    '## Access rules',
    '',
    `- A hub publishes only under \`${prefix}\` — and not on the down-link topics under it (${downUnderPrefix.map((t) => `\`${angled(t.address)}\``).join(', ')}), which only the cloud publishes. Anything else is refused by the broker. Topics under the prefix that the contract does not know are let through and dead-lettered as \`unknown_topic\`, so you can see what you sent.`,
    `- A hub subscribes only to ${topics.hubSubscriptions('<region>', '<hub>').map((f) => `\`${f}\``).join(', ')}, or to narrower filters inside them (such as \`${topics.command('<region>', '<hub>', 'locker', '+')}\`). Wider filters (\`#\`, \`${TOPIC_ROOT}/+/…\`, another hub's topics) are refused.`,
    '',
    '## Trying it with mosquitto',
    '',
    'Listen for commands, acknowledgements and the region mode, with the last will set:',
    '',
    '```sh',
    `mosquitto_sub ${auth} -q ${QOS} -v \\`,
    `  --will-topic ${shellQuote(topics.status(region, hub))} --will-payload ${shellQuote(JSON.stringify(will.payload))} --will-qos ${QOS} --will-retain \\`,
    `  ${topics.hubSubscriptions(region, hub).map((f) => `-t ${shellQuote(f)}`).join(' ')}`,
    '```',
    '',
    'Announce the hub, then publish one sensor reading:',
    '',
    '```sh',
    `mosquitto_pub ${auth} -q ${QOS} -r -t ${shellQuote(topics.status(region, hub))} -m ${shellQuote(JSON.stringify(online))}`,
    `mosquitto_pub ${auth} -q ${QOS} -t ${shellQuote(sensor.example.topic)} -m ${shellQuote(JSON.stringify(sensor.example.payload))}`,
    '```',
    '',
    ...commandsSection(),
    '## Messages',
    '',
  ];
  for (const m of messages) {
    lines.push(
      `### \`${m.type}\``,
      '',
      `${markdownText(m.description)}.`,
      '',
      `Topic: ${m.topics.map((t) => `\`${angled(t.address)}\``).join(', ')} (${m.topics[0]!.direction === 'up' ? 'hub → cloud' : 'cloud → hub'}${m.topics[0]!.retained ? ', retained' : ''}). Schema: [${m.schemaFile}](${m.schemaFile}).`,
      '',
      fieldTable(m.jsonSchema),
      '',
      'Example:',
      '',
      '```json',
      JSON.stringify(m.example.payload, null, 2),
      '```',
      '',
    );
  }
  lines.push(
    '## Region file',
    '',
    'The operator describes each region in `config/regions/<region>.json` (hubs, their drones, lockers and sensors); [schemas/region-file.schema.json](schemas/region-file.schema.json) validates it. Fields with a default may be left out.',
    '',
  );
  return lines.join('\n');
}

// ------------------------------------------------------------------------------------- output

/** Every generated file, keyed by its path relative to the repository root. Pure: no I/O. */
export function renderContractDocs(): Record<string, string> {
  const channels = topicDocs();
  const messages = messageDocs();
  const files: Record<string, string> = {};
  const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
  files[`${CONTRACT_DOCS_DIR}/README.md`] = renderReadme(messages, channels);
  files[`${CONTRACT_DOCS_DIR}/asyncapi.json`] = json(renderAsyncApi(messages, channels));
  for (const m of messages) files[`${CONTRACT_DOCS_DIR}/${m.schemaFile}`] = json(messageSchemaFile(m));
  files[`${CONTRACT_DOCS_DIR}/schemas/region-file.schema.json`] = json(regionFileSchema());
  return files;
}

/** Writes the files and removes files in docs/contract that are no longer generated. */
export function writeContractDocs(repoRoot: string): { written: string[]; removed: string[] } {
  const files = renderContractDocs();
  const written: string[] = [];
  for (const [rel, content] of Object.entries(files)) {
    const abs = path.join(repoRoot, rel);
    if (fs.existsSync(abs) && fs.readFileSync(abs, 'utf8') === content) continue;
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    fs.writeFileSync(abs, content);
    written.push(rel);
  }
  const removed = listFiles(repoRoot, CONTRACT_DOCS_DIR).filter((rel) => !(rel in files));
  for (const rel of removed) fs.rmSync(path.join(repoRoot, rel));
  return { written, removed };
}

/** Files under `dir` (relative to `root`), as root-relative paths with "/" separators. */
export function listFiles(root: string, dir: string): string[] {
  const abs = path.join(root, dir);
  if (!fs.existsSync(abs)) return [];
  return fs
    .readdirSync(abs, { recursive: true, encoding: 'utf8' })
    .filter((rel) => fs.statSync(path.join(abs, rel)).isFile())
    .map((rel) => path.join(dir, rel).split(path.sep).join('/'))
    .sort();
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
function lowerFirst(s: string): string {
  return s.charAt(0).toLowerCase() + s.slice(1);
}
function titleOf(type: string): string {
  return capitalise(type.replace(/[.-]/g, ' '));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const { written, removed } = writeContractDocs(root);
  const total = Object.keys(renderContractDocs()).length;
  console.log(`${CONTRACT_DOCS_DIR}: ${total} files, ${written.length} written, ${removed.length} removed`);
  for (const f of written) console.log(`  wrote   ${f}`);
  for (const f of removed) console.log(`  removed ${f}`);
}
