/** docs/contract/asyncapi.json: the contract as an AsyncAPI 3.0.0 document, written from the hub's point of view. */
import { REJECTION_REASONS } from '../../cloud/ingest/classify.ts';
import {
  CLIENT_ID_RULE,
  TOPIC_ROOT,
  topics,
} from '../../contract/index.ts';
import { commandAckDescription, commandPayload } from './command-docs.ts';
import { CONTRACT_DOC_VERSION, DOCUMENT_ID, MQTT_BINDING, QOS, type Json, PLACEHOLDER, type TopicDoc, type MessageDoc, type ParameterName, PARAMETER_SOURCES, parameterObject, limits, bytes, offlineStatus, clientIdRule, WILL_RULE, capitalise, lowerFirst } from './contract-model.ts';
import { propertiesOf } from './markdown.ts';
import { topicTable } from './readme.ts';

export function renderAsyncApi(messages: MessageDoc[], channels: TopicDoc[]): Json {
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
    `**Retained.** Only ${retainedTypes(channels)} are retained. The hub publishes \`{"state":"online"}\` after connecting and registers \`{"state":"offline"}\` on its status topic as retained QoS ${QOS} last will. ${WILL_RULE}`,
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
