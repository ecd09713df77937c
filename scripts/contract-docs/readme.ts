/** docs/contract/README.md: the vendors' guide. */
import { z } from 'zod';
import { REJECTION_REASONS } from '../../cloud/ingest/classify.ts';
import {
  CONTRACT_VERSION,
  DEVICE_KINDS,
  HubStatus,
  MessageId,
  RegionId,
  TOPIC_ROOT,
  parseTopic,
  topics,
} from '../../contract/index.ts';
import { commandsSection } from './command-docs.ts';
import { CONTRACT_DOC_VERSION, QOS, PLACEHOLDER, ROUTES, type TopicDoc, type MessageDoc, ROUTE_ORDER, patternHint, limits, rejectionReasons, bytes, offlineStatus, clientIdRule, WILL_RULE } from './contract-model.ts';
import { angled, fieldTable, markdownText, primitiveTypes, propertiesOf, requiredOf, shellQuote, table, typeOf, type JsonSchema } from './markdown.ts';

export function topicTable(channels: TopicDoc[], withSchema: boolean): string {
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

export function renderReadme(messages: MessageDoc[], channels: TopicDoc[]): string {
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
    `- Register a last will on \`${topics.status('<region>', '<hub>')}\`: a \`hub.status\` with \`"state":"offline"\` and the connect time in \`ts\`, for example \`${JSON.stringify(will.payload)}\`, QoS ${QOS}, retained. ${WILL_RULE} Right after connecting, publish the same with \`"state":"online"\`, retained.`,
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
    `1. **QoS ${QOS}.** Publish every message with QoS ${QOS} and keep it in your outbox until the broker acknowledges it (PUBACK). Delivery is at least once; duplicates are expected and harmless. A QoS 2 publish is refused: the broker closes the connection.`,
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
