import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLES, topics } from '../contract/index.ts';
import { startTestCloud, type TestCloud } from './support/cloud-harness.ts';
import { closed, connect } from './support/mqtt-client.ts';
import { waitFor } from './support/ports.ts';

/**
 * Bad and hostile input over real sockets: each rejection is counted and kept for inspection, the
 * broker refuses what a hub may not do, and valid traffic from the same hub keeps flowing.
 */
const REGION = 'ishikawa-nomi';
const HUB = 'nomi-terai';
const OTHER = 'nomi-neagari';
const run = promisify(execFile);

let t: TestCloud;
let good: MqttClient;
let goodAcked = 0;
let goodTimer: NodeJS.Timeout;
const goodIds: string[] = [];

const example = (name: string) => EXAMPLES.find((e) => e.name === name)!.payload;
const sensorExample = example('sensor.telemetry');
const sensorTopic = topics.device(REGION, HUB, 'sensor', 'wx', 'telemetry');
const sensor = (id: string, hub = HUB) => JSON.stringify({ ...sensorExample, id, hub, ts: Date.now() });

async function metric(name: string, labels = ''): Promise<number> {
  const text = await (await t.api(`/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.split(' ').pop()) : 0;
}

async function publishAcked(client: MqttClient, topic: string, payload: string | Buffer): Promise<void> {
  await client.publishAsync(topic, payload, { qos: 1 });
}

beforeAll(async () => {
  t = await startTestCloud();
  const cred = t.credentials[HUB]!;
  good = await connect(t.cloud.urls.mqtt, { username: cred.username, password: cred.password, clientId: `${HUB}.good-wx` });
  let seq = 0;
  goodTimer = setInterval(() => {
    const id = `good-${seq++}`;
    goodIds.push(id);
    good.publish(sensorTopic, sensor(id), { qos: 1 }, (err) => {
      if (!err) goodAcked++;
    });
  }, 20);
});

afterAll(async () => {
  clearInterval(goodTimer);
  await good?.endAsync();
  await t?.stop();
});

describe('rejected payloads', () => {
  const cases: { reason: string; topic: string; payload: () => string | Buffer }[] = [
    { reason: 'malformed_json', topic: sensorTopic, payload: () => '{"v":1,"type":' },
    { reason: 'schema', topic: sensorTopic, payload: () => JSON.stringify({ ...JSON.parse(sensor('bad-types')), windSpeedMps: 'strong', gridPowerUp: 'yes' }) },
    { reason: 'unknown_topic', topic: `v1/${REGION}/${HUB}/toaster/t1/telemetry`, payload: () => sensor('bad-topic') },
    { reason: 'topic_mismatch', topic: sensorTopic, payload: () => sensor('bad-hub', OTHER) },
    { reason: 'too_large', topic: sensorTopic, payload: () => Buffer.alloc(70_000, 0x41) },
    // Values checked against what the cloud knows (issue 11; more in test/values.test.ts):
    { reason: 'future_timestamp', topic: sensorTopic, payload: () => JSON.stringify({ ...JSON.parse(sensor('bad-future')), ts: Date.UTC(2099, 0, 1) }) },
    { reason: 'unknown_compartment', topic: topics.device(REGION, HUB, 'locker', 'locker-a', 'event'), payload: () => JSON.stringify({ ...example('locker.event'), id: 'bad-compartment', hub: HUB, ts: Date.now(), compartment: 'Z99' }) },
    { reason: 'unknown_mode_version', topic: topics.modeAck(REGION, HUB), payload: () => JSON.stringify({ ...example('hub.mode-ack'), id: 'bad-mode-version', hub: HUB, ts: Date.now(), version: 1e15 }) },
  ];

  it.each(cases)('$reason: acknowledged, counted, kept for inspection; valid traffic flows on', async ({ reason, topic, payload }) => {
    const cred = t.credentials[HUB]!;
    const bad = await connect(t.cloud.urls.mqtt, { username: cred.username, password: cred.password, clientId: `${HUB}.bad-${reason}` });
    const before = await metric('ingest_messages_rejected_total', `reason="${reason}"`);
    const ackedBefore = goodAcked;
    const sent = payload();
    await publishAcked(bad, topic, sent);
    expect(await metric('ingest_messages_rejected_total', `reason="${reason}"`)).toBe(before + 1);

    const res = await t.api(`/api/v1/dead-letters?reason=${reason}&hub=${HUB}`);
    const body = (await res.json()) as { deadLetters: { topic: string; reason: string; detail: string; size: number; truncated: boolean; payloadText: string | null }[] };
    expect(res.status).toBe(200);
    const entry = body.deadLetters[0]!;
    expect(entry.topic).toBe(topic);
    expect(entry.detail.length).toBeGreaterThan(5);
    expect(entry.size).toBe(Buffer.from(sent).length);
    if (reason === 'too_large') expect(entry.truncated).toBe(true);
    else expect(entry.payloadText).toBe(sent.toString());

    expect(bad.connected).toBe(true); // a bad payload is not a reason to drop the device
    await bad.endAsync();
    await waitFor('valid traffic to keep being acknowledged', () => goodAcked > ackedBefore + 5);
  });

  it('stored every acknowledged valid message and none of the rejected ones', async () => {
    const acked = goodAcked;
    await waitFor('some valid messages', () => acked > 20);
    const from = Date.now() - 600_000;
    const ids = new Set(await t.cloud.store.messageIds(HUB, from, Date.now() + 60_000));
    const ackedIds = goodIds.slice(0, acked);
    expect(ackedIds.filter((id) => !ids.has(id))).toEqual([]);
    expect([...ids].filter((id) => id.startsWith('bad-'))).toEqual([]);
    const live = (await (await t.api(`/api/v1/hubs/${HUB}`)).json()) as { deviceStates: { device: string; telemetry: { id: string } | null }[] };
    expect(live.deviceStates.find((d) => d.device === 'wx')!.telemetry!.id).toMatch(/^good-/);
  });
});

describe('broker access control', () => {
  it('refuses a wrong password and counts it', async () => {
    const before = await metric('mqtt_auth_failures_total', 'reason="bad_credentials"');
    await expect(connect(t.cloud.urls.mqtt, { username: HUB, password: 'not-the-password' })).rejects.toThrow(/Bad username or password/i);
    expect(await metric('mqtt_auth_failures_total', 'reason="bad_credentials"')).toBe(before + 1);
    await expect(connect(t.cloud.urls.mqtt, {})).rejects.toThrow();
  });

  it("closes the connection of a hub publishing under another hub's prefix, and stores nothing of it", async () => {
    const cred = t.credentials[HUB]!;
    const intruder = await connect(t.cloud.urls.mqtt, { username: cred.username, password: cred.password, clientId: `${HUB}.intruder-pub` });
    const before = await metric('mqtt_publish_denied_total', 'reason="foreign_prefix"');
    intruder.publish(topics.device(REGION, OTHER, 'sensor', 'wx', 'telemetry'), sensor('forged-1', OTHER), { qos: 1 });
    expect(await closed(intruder)).toBe(true);
    intruder.end(true);
    expect(await metric('mqtt_publish_denied_total', 'reason="foreign_prefix"')).toBe(before + 1);
    const ids = await t.cloud.store.messageIds(OTHER, 0, Date.now() + 60_000);
    expect(ids).not.toContain('forged-1');
  });

  it('refuses a hub publishing commands to itself (down-link topics are the cloud’s)', async () => {
    const cred = t.credentials[HUB]!;
    const c = await connect(t.cloud.urls.mqtt, { username: cred.username, password: cred.password, clientId: `${HUB}.self-cmd` });
    c.publish(topics.command(REGION, HUB, 'locker', 'locker-a'), JSON.stringify(EXAMPLES.find((e) => e.name === 'hub.command')!.payload), { qos: 1 });
    expect(await closed(c)).toBe(true);
    c.end(true);
    expect(await metric('mqtt_publish_denied_total', 'reason="downlink_topic"')).toBeGreaterThanOrEqual(1);
  });

  it("refuses subscriptions to other hubs' commands and wildcards, allows its own", async () => {
    const cred = t.credentials[HUB]!;
    const c = await connect(t.cloud.urls.mqtt, { username: cred.username, password: cred.password, clientId: `${HUB}.subscriber` });
    const before = await metric('mqtt_subscribe_denied_total');
    // mqtt.js reports a SUBACK failure code (0x80) as an error on the subscribe call
    await expect(c.subscribeAsync(`v1/${REGION}/${OTHER}/cmd/#`, { qos: 1 })).rejects.toThrow(/Subscribe error/);
    await expect(c.subscribeAsync('#', { qos: 1 })).rejects.toThrow(/Subscribe error/);
    const granted = await c.subscribeAsync({ [`v1/${REGION}/${HUB}/cmd/#`]: { qos: 1 }, [`v1/${REGION}/mode`]: { qos: 1 } });
    expect(granted.map((g) => g.qos)).toEqual([1, 1]);
    expect(await metric('mqtt_subscribe_denied_total')).toBe(before + 2);
    await c.endAsync();
  });

  it('closes a connection that sends a packet over MQTT_MAX_PACKET_BYTES', async () => {
    const cred = t.credentials[HUB]!;
    const c = await connect(t.cloud.urls.mqtt, { username: cred.username, password: cred.password, clientId: `${HUB}.huge` });
    const before = await metric('mqtt_oversized_packets_total');
    c.publish(sensorTopic, Buffer.alloc(300_000, 0x41), { qos: 1 });
    expect(await closed(c)).toBe(true);
    c.end(true);
    expect(await metric('mqtt_oversized_packets_total')).toBe(before + 1);
    expect(good.connected).toBe(true);
  });
});

describe('an independent MQTT client (mosquitto_pub / mosquitto_sub)', () => {
  it('publishes a valid reading that shows up in the API', async () => {
    const cred = t.credentials[HUB]!;
    const port = new URL(t.cloud.urls.mqtt).port;
    const payload = JSON.stringify({ ...JSON.parse(sensor('mosquitto-1')), windSpeedMps: 7.25 });
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', port, '-V', 'mqttv311', '-q', '1', '-i', `${HUB}.mosquitto-pub`, '-u', cred.username, '-P', cred.password, '-t', sensorTopic, '-m', payload]);
    const ids = await t.cloud.store.messageIds(HUB, 0, Date.now() + 60_000);
    expect(ids).toContain('mosquitto-1');
  });

  it('receives a command the cloud sends to its hub, and is refused with a wrong password', async () => {
    const cred = t.credentials[HUB]!;
    const port = new URL(t.cloud.urls.mqtt).port;
    const cmd = JSON.stringify({ ...EXAMPLES.find((e) => e.name === 'hub.command')!.payload, hub: HUB });
    const sub = run('mosquitto_sub', ['-h', '127.0.0.1', '-p', port, '-V', 'mqttv311', '-q', '1', '-i', `${HUB}.mosquitto-sub`, '-u', cred.username, '-P', cred.password, '-t', `v1/${REGION}/${HUB}/cmd/#`, '-C', '1', '-W', '10', '-v']);
    await new Promise((r) => setTimeout(r, 500));
    await t.cloud.broker.publish(topics.command(REGION, HUB, 'locker', 'locker-a'), cmd, { qos: 1 });
    const { stdout } = await sub;
    expect(stdout.trim()).toBe(`${topics.command(REGION, HUB, 'locker', 'locker-a')} ${cmd}`);

    await expect(run('mosquitto_sub', ['-h', '127.0.0.1', '-p', port, '-u', cred.username, '-P', 'wrong', '-t', `v1/${REGION}/mode`, '-C', '1', '-W', '3'])).rejects.toMatchObject({ code: expect.any(Number) });
  });
});
