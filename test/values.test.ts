import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildTopic, EXAMPLES, topics, type ParsedTopic } from '../contract/index.ts';
import { startTestCloud, type TestCloud } from './support/cloud-harness.ts';
import { connect } from './support/mqtt-client.ts';

/**
 * Values checked against reality (issue 11, item 4), over real MQTT connections to a real cloud:
 * what a hub says is compared with what the cloud knows — its clock, the mode versions it issued,
 * the compartments of the region file, sane bounds — and one hub's rejects cannot crowd out the
 * others'. Each refusal is dead-lettered with a reason and counted; real traffic keeps flowing.
 */
const REGION = 'ishikawa-nomi';
const YEAR_2099 = Date.UTC(2099, 0, 1);
const PER_HUB_ROWS = 200;
const PER_HUB_BYTES = 262_144;

let t: TestCloud;
const clients = new Map<string, MqttClient>();

interface DeadLetterView { hub: string | null; topic: string; reason: string; detail: string; size: number; payloadText: string | null }
interface DeviceLive { device: string; telemetry: { id: string } | null; lastEvent: { id: string } | null }
interface HubView { link: { outboxDepth: number | null }; deviceStates: DeviceLive[] }
interface ModeView { desired: { version: number }; hubs: { hub: string; status: string; acknowledged: { version: number; mode: string; source: string } | null }[] }

beforeAll(async () => {
  t = await startTestCloud({
    DEAD_LETTER_MAX_ROWS: '1000', DEAD_LETTER_MAX_ROWS_PER_HUB: String(PER_HUB_ROWS), DEAD_LETTER_MAX_BYTES_PER_HUB: String(PER_HUB_BYTES),
  });
});
afterAll(async () => {
  for (const c of clients.values()) await c.endAsync();
  await t?.stop();
});

/** One connection per hub, with that hub's own login and a client id of its own (`<hub>.<suffix>`, contract/client-id.ts). */
async function hub(id: string): Promise<MqttClient> {
  let c = clients.get(id);
  if (!c) {
    const cred = t.credentials[id]!;
    c = await connect(t.cloud.urls.mqtt, { username: cred.username, password: cred.password, clientId: `${id}.values` });
    clients.set(id, c);
  }
  return c;
}

/** Publishes QoS 1 and resolves on PUBACK, i.e. once the cloud durably stored or dead-lettered the message. */
async function send(hubId: string, topic: string, payload: unknown): Promise<void> {
  await (await hub(hubId)).publishAsync(topic, typeof payload === 'string' || Buffer.isBuffer(payload) ? payload : JSON.stringify(payload), { qos: 1 });
}

/** An example message of the contract, re-addressed to `hubId` (and `device`), with the given fields. */
function example(name: string, hubId: string, over: Record<string, unknown> = {}): { topic: string; payload: Record<string, unknown> } {
  const e = EXAMPLES.find((x) => x.name === name)!;
  const device = (over.device as string | undefined) ?? (e.payload.device as string | undefined);
  const parsed = { ...e.topic, hub: hubId, ...(device && 'device' in e.topic ? { device } : {}) } as ParsedTopic;
  return { topic: buildTopic(parsed), payload: { ...e.payload, hub: hubId, ts: Date.now(), ...over } };
}

async function get<T>(path: string): Promise<T> {
  const res = await t.api(path);
  expect(res.status, path).toBe(200);
  return (await res.json()) as T;
}

const deadLetters = async (q: string) => (await get<{ deadLetters: DeadLetterView[] }>(`/api/v1/dead-letters?${q}`)).deadLetters;
const idsOf = (letters: DeadLetterView[]) => letters.map((l) => (l.payloadText?.startsWith('{') ? (JSON.parse(l.payloadText) as { id?: string }).id : undefined));
const deviceOf = async (hubId: string, device: string) => (await get<HubView>(`/api/v1/hubs/${hubId}`)).deviceStates.find((d) => d.device === device);

async function metric(name: string, labels = ''): Promise<number> {
  const text = await (await t.api('/metrics')).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.split(' ').pop()) : 0;
}

describe('device clocks', () => {
  it('refuses a reading stamped in 2099, so the live state keeps showing real readings', async () => {
    const HUB = 'nomi-terai';
    const before = await metric('ingest_messages_rejected_total', 'reason="future_timestamp"');
    const future = example('sensor.telemetry', HUB, { id: 'clock-2099', ts: YEAR_2099 });
    await send(HUB, future.topic, future.payload);
    const now = example('sensor.telemetry', HUB, { id: 'clock-now' });
    await send(HUB, now.topic, now.payload);

    expect((await deviceOf(HUB, 'wx'))!.telemetry!.id).toBe('clock-now');
    const [letter] = await deadLetters(`hub=${HUB}&reason=future_timestamp`);
    expect(letter).toMatchObject({ hub: HUB, topic: future.topic, reason: 'future_timestamp' });
    expect(letter!.detail).toMatch(/ahead of the cloud's clock/);
    expect(await metric('ingest_messages_rejected_total', 'reason="future_timestamp"')).toBe(before + 1);
    expect(await t.cloud.store.messageIds(HUB, 0, YEAR_2099 + 1)).not.toContain('clock-2099');
  });

  it.each(['drone.event', 'locker.telemetry', 'hub.status', 'hub.command-ack', 'hub.mode-ack'])('refuses a %s stamped in 2099', async (name) => {
    const HUB = 'rs-komatsu-kibagata';
    const id = `future-${name.replace('.', '-')}`;
    const m = example(name, HUB, { ...(name === 'hub.status' ? {} : { id }), ts: YEAR_2099, ...(name === 'locker.telemetry' ? { device: 'locker-a' } : {}) });
    await send(HUB, m.topic, m.payload);
    if ('id' in m.payload) expect(await t.cloud.store.messageIds(HUB, 0, YEAR_2099 + 1)).not.toContain(id);
    const letters = await deadLetters(`hub=${HUB}&reason=future_timestamp`);
    expect(letters.map((l) => l.topic)).toContain(m.topic);
  });
});

describe('mode acknowledgements', () => {
  it('refuses one for a version the cloud never issued, and still takes real and local ones', async () => {
    const HUB = 'nomi-tatsunokuchi';
    const modeAck = (id: string, over: Record<string, unknown>) => example('hub.mode-ack', HUB, { id, ...over });
    const hubOf = async () => (await get<ModeView>(`/api/v1/regions/${REGION}/mode`)).hubs.find((h) => h.hub === HUB)!;
    const pin = modeAck('pin-1e15', { version: 1e15, mode: 'emergency', source: 'cloud' });
    await send(HUB, pin.topic, pin.payload);
    expect((await hubOf()).acknowledged).toBeNull(); // not taken as the hub's newest acknowledgement
    const [letter] = await deadLetters(`hub=${HUB}&reason=unknown_mode_version`);
    expect(letter).toMatchObject({ reason: 'unknown_mode_version', topic: pin.topic });
    expect(letter!.detail).toContain('never issued');

    const coordinator = await t.tokenFor('values-coordinator', 'coordinator');
    const res = await t.api(`/api/v1/regions/${REGION}/mode`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${coordinator}` },
      body: JSON.stringify({ mode: 'emergency', hubs: [HUB], reason: 'values test' }),
    });
    expect(res.status).toBe(202);
    const { version } = (await res.json()) as { version: number };

    const real = modeAck('ack-real', { version, mode: 'emergency', source: 'cloud' });
    await send(HUB, real.topic, real.payload);
    expect(await hubOf()).toMatchObject({ status: 'acknowledged', acknowledged: { version, mode: 'emergency', source: 'cloud' } });

    // Hub staff switch locally (edge/agent.ts switchModeLocally): the hub's current version, source "local".
    const local = modeAck('ack-local', { version, mode: 'normal', source: 'local', reason: 'staff switched at the hub', ts: Date.now() + 1 });
    await send(HUB, local.topic, local.payload);
    expect(await hubOf()).toMatchObject({ status: 'diverged', acknowledged: { version, mode: 'normal', source: 'local' } });
    const history = await get<{ entries: { kind: string; hubs: string[] | null }[] }>(`/api/v1/regions/${REGION}/mode/history`);
    expect(history.entries.filter((e) => e.kind === 'local_switch' && e.hubs?.includes(HUB))).toHaveLength(1);
  });
});

describe('compartments', () => {
  it('dead-letters made-up compartments and locker banks: nothing stored, shown or alarmed', async () => {
    const HUB = 'nomi-neagari';
    const compartment = (id: string) => ({ id, size: 'S', tempClass: 'ambient', door: 'closed', occupied: false, reservedFor: null, tempC: 18, fault: 'tamper' });
    const madeUp = example('locker.telemetry', HUB, {
      id: 'made-up-64', device: 'locker-a', compartments: Array.from({ length: 64 }, (_, i) => compartment(`X${String(i).padStart(2, '0')}`)),
    });
    await send(HUB, madeUp.topic, madeUp.payload);
    const event = example('locker.event', HUB, { id: 'made-up-event', device: 'locker-a', event: 'tamper', severity: 'critical', compartment: 'Z99' });
    await send(HUB, event.topic, event.payload);
    const bank = example('locker.telemetry', HUB, { id: 'made-up-bank', device: 'locker-zz', compartments: [compartment('A01')] });
    await send(HUB, bank.topic, bank.payload);
    // A real compartment with a tamper fault: stored, shown and alarmed (and acknowledged after the ones above).
    const real = example('locker.telemetry', HUB, { id: 'real-a05', device: 'locker-a', compartments: [compartment('A05')] });
    await send(HUB, real.topic, real.payload);

    // The alarm service writes through a queue (in order): once the real compartment's alarm is there and
    // the queue has settled, every alarm the made-up ones could have raised would be there too.
    const alarmsNow = async () => (await get<{ alarms: { compartment: string | null; kind: string }[] }>(`/api/v1/alarms?hub=${HUB}&limit=500`)).alarms.map((a) => `${a.kind}/${a.compartment}`);
    await expect.poll(alarmsNow, { timeout: 10_000 }).toContain('tamper/A05');
    await t.cloud.alarms.settled();
    expect(await alarmsNow()).toEqual(['tamper/A05']);
    expect((await deviceOf(HUB, 'locker-a'))!.telemetry!.id).toBe('real-a05');
    expect(await deviceOf(HUB, 'locker-zz')).toBeUndefined();
    const stored = await t.cloud.store.messageIds(HUB, 0, Date.now() + 60_000);
    expect(stored.filter((id) => id.startsWith('made-up'))).toEqual([]);
    const letters = await deadLetters(`hub=${HUB}&reason=unknown_compartment`);
    expect(idsOf(letters).sort()).toEqual(['made-up-64', 'made-up-bank', 'made-up-event']);
    expect(letters.find((l) => idsOf([l])[0] === 'made-up-bank')!.detail).toContain('not in the region file');
  });
});

describe('status figures', () => {
  it('refuses absurd figures as schema errors, so dashboards and gauges never show them', async () => {
    const HUB = 'nomi-wake';
    const status = example('hub.status', HUB, { state: 'online', outboxDepth: 1e15, oldestUnsentAgeS: 1e300 });
    await send(HUB, status.topic, status.payload);
    const value = example('sensor.event', HUB, { id: 'huge-value', device: 'wx', value: 1e300 });
    await send(HUB, value.topic, value.payload);
    const letters = await deadLetters(`hub=${HUB}&reason=schema`);
    expect(letters.map((l) => l.topic).sort()).toEqual([status.topic, value.topic].sort());
    expect(letters.find((l) => l.topic === status.topic)!.detail).toMatch(/outboxDepth/);
    expect((await get<HubView>(`/api/v1/hubs/${HUB}`)).link.outboxDepth).toBeNull();

    const sane = example('hub.status', HUB, { state: 'online', outboxDepth: 12, oldestUnsentAgeS: 30 });
    await send(HUB, sane.topic, sane.payload);
    expect((await get<HubView>(`/api/v1/hubs/${HUB}`)).link.outboxDepth).toBe(12);
  });
});

describe('message ids', () => {
  it('keeps the same id from two devices of one hub apart: both are stored and shown', async () => {
    const HUB = 'kawakita-chuo';
    const ts = Date.now();
    const duplicatesBefore = await metric('ingest_duplicates_total', 'type="drone.event"');
    // wx sends first, using the id drone-1 is about to use (a device on the hub LAN squatting ids).
    const squat = example('sensor.event', HUB, { id: 'drone-1-boot-000007', device: 'wx', ts });
    await send(HUB, squat.topic, squat.payload);
    const genuine = example('drone.event', HUB, { id: 'drone-1-boot-000007', device: 'drone-1', ts });
    await send(HUB, genuine.topic, genuine.payload);

    expect((await deviceOf(HUB, 'drone-1'))!.lastEvent!.id).toBe('drone-1-boot-000007');
    expect((await deviceOf(HUB, 'wx'))!.lastEvent!.id).toBe('drone-1-boot-000007');
    expect(await t.cloud.store.countPoints('event', HUB, ts, ts + 1)).toBe(2);
    expect(await metric('ingest_duplicates_total', 'type="drone.event"')).toBe(duplicatesBefore);

    // A re-sent copy is still a copy.
    await send(HUB, genuine.topic, genuine.payload);
    expect(await metric('ingest_duplicates_total', 'type="drone.event"')).toBe(duplicatesBefore + 1);
    expect(await t.cloud.store.countPoints('event', HUB, ts, ts + 1)).toBe(2);
  });
});

describe('dead-letter quota per hub', () => {
  it("a hub flooding rejects evicts only its own oldest dead letters, never another hub's", async () => {
    const [A, B] = ['hakusan-tsurugi', 'hakusan-chiyono'];
    const topic = topics.device(REGION, A, 'sensor', 'wx', 'telemetry');
    await send(B, topics.device(REGION, B, 'sensor', 'wx', 'telemetry'), '{"evidence": "hub B\'s dead letter"');
    expect(await deadLetters(`hub=${B}&reason=malformed_json`)).toHaveLength(1);

    const evictedBefore = await metric('ingest_dead_letters_evicted_total');
    const junk = `{${'x'.repeat(4_000)}`; // malformed JSON, ~4 KB
    const flood = await hub(A);
    const started = performance.now();
    const N = 3_000;
    for (let sent = 0; sent < N; sent += 500) {
      await Promise.all(Array.from({ length: Math.min(500, N - sent) }, () => flood.publishAsync(topic, junk, { qos: 1 })));
    }
    const floodMs = performance.now() - started;

    expect(await deadLetters(`hub=${B}&reason=malformed_json`)).toHaveLength(1); // B's evidence survived
    const usage = await t.cloud.deadLetters.usage(A);
    expect(usage.rows).toBeLessThanOrEqual(PER_HUB_ROWS);
    expect(usage.bytes).toBeLessThanOrEqual(PER_HUB_BYTES);
    const kept = await deadLetters(`hub=${A}&limit=500`);
    expect(kept.length).toBe(usage.rows);
    expect(kept.reduce((n, l) => n + l.size, 0)).toBeLessThanOrEqual(PER_HUB_BYTES);
    expect(await metric('ingest_messages_rejected_total', 'reason="malformed_json"')).toBeGreaterThanOrEqual(N + 1);
    expect(await metric('ingest_dead_letters_evicted_total')).toBeGreaterThanOrEqual(evictedBefore + N - PER_HUB_ROWS);
    console.log(`flood: ${N} dead letters of ${junk.length} B from one hub in ${Math.round(floodMs)} ms; kept for it: ${usage.rows} rows, ${usage.bytes} B`);
  });
});
