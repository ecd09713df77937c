import fs from 'node:fs';
import { Writable } from 'node:stream';
import type { MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCloud, type Cloud } from '../cloud/cloud.ts';
import { loadCloudConfig } from '../cloud/config.ts';
import { EXAMPLES, topics } from '../contract/index.ts';
import { authedFetch, readCredentials, tempDir, testCloudEnv, type Credentials } from './support/cloud-harness.ts';
import { connect } from './support/mqtt-client.ts';

/**
 * U+0000 (NUL) from the outside, on SQLite and on PostgreSQL (`npm run test:postgres`), which refuses
 * it in TEXT (issue 14, red-team review): it never stops intake, never turns into a 500, and is
 * refused alike on both databases — a dead letter (MQTT) or a 400 (HTTP).
 */
const REGION = 'ishikawa-nomi';
const HUB = 'nomi-terai';
const OTHER = 'nomi-neagari';
const example = (name: string) => EXAMPLES.find((e) => e.name === name)!.payload;

let cloud: Cloud;
let dataDir: string;
let credentials: Credentials;
let token: string;
const clients: MqttClient[] = [];
/** Every log line of the cloud at warn and above. */
const logs: { level: number; msg: string }[] = [];

const api = (path: string, init?: RequestInit) => authedFetch(cloud.urls.http, token, path, init);
const json = (method: string, body: unknown): RequestInit => ({ method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

async function hubClient(hub: string, name: string): Promise<MqttClient> {
  const c = await connect(cloud.urls.mqtt, { username: credentials[hub]!.username, password: credentials[hub]!.password, clientId: `${hub}.${name}` });
  clients.push(c);
  return c;
}

async function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function deadLetters(query: string): Promise<{ topic: string; reason: string; detail: string; payloadText: string | null; clientId: string | null }[]> {
  const res = await api(`/api/v1/dead-letters?${query}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { deadLetters: never[] }).deadLetters;
}

beforeAll(async () => {
  dataDir = tempDir('nul');
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) logs.push(JSON.parse(line) as { level: number; msg: string });
      done();
    },
  });
  cloud = await startCloud(loadCloudConfig(testCloudEnv(dataDir)), pino({ level: 'warn' }, sink));
  credentials = readCredentials(dataDir);
  await cloud.accounts.create({ username: 'nul-admin', role: 'admin', hubs: [], regions: null, password: 'nul-admin-test-password' });
  token = (await cloud.accounts.createApiToken('nul-admin', 'tests')).token;
});

afterAll(async () => {
  for (const c of clients) c.end(true);
  await cloud?.close();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('MQTT: a payload with U+0000', () => {
  it('`{"a":\\u0000}` (QoS 1) is one dead letter; every hub\'s valid messages after it are acknowledged and stored within seconds', async () => {
    const bad = await hubClient(HUB, 'poison');
    const other = await hubClient(OTHER, 'wx');
    const topic = topics.device(REGION, HUB, 'sensor', 'wx', 'telemetry');
    const poison = Buffer.from('{"a":\u0000}', 'utf8');
    const poisonAcked = bad.publishAsync(topic, poison, { qos: 1 });

    const ids = Array.from({ length: 20 }, (_, i) => `after-poison-${i}`);
    const otherTopic = topics.device(REGION, OTHER, 'sensor', 'wx', 'telemetry');
    await within(5000, 'the other hub\'s valid messages acknowledged', Promise.all(ids.map((id) =>
      other.publishAsync(otherTopic, JSON.stringify({ ...example('sensor.telemetry'), id, hub: OTHER, ts: Date.now() }), { qos: 1 }))));
    await within(5000, 'the poison message acknowledged (dead-lettered)', poisonAcked);
    // Telemetry from the same hub after it flows too.
    const mine = await hubClient(HUB, 'wx');
    await within(5000, 'the same hub\'s next valid message acknowledged',
      mine.publishAsync(topic, JSON.stringify({ ...example('sensor.telemetry'), id: 'after-poison-own', hub: HUB, ts: Date.now() }), { qos: 1 }));

    const stored = new Set(await cloud.store.messageIds(OTHER, Date.now() - 600_000, Date.now() + 60_000));
    expect(ids.filter((id) => !stored.has(id))).toEqual([]);
    expect(await cloud.store.messageIds(HUB, Date.now() - 600_000, Date.now() + 60_000)).toContain('after-poison-own');

    const letters = await deadLetters(`hub=${HUB}&reason=malformed_json`);
    expect(letters).toHaveLength(1);
    expect(letters[0]!.topic).toBe(topic);
    expect(letters[0]!.detail).toMatch(/^not JSON: /);
    expect(letters[0]!.detail).not.toContain('\u0000');
    expect(letters[0]!.detail).toContain('\\u0000'); // escaped, still readable
    expect(letters[0]!.payloadText).toBe('{"a":\u0000}'); // the payload is kept as it came

    const health = await fetch(`${cloud.urls.http}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', operationalHealthy: true });
  });

  it('free text with U+0000 (a command acknowledgement\'s detail) is a schema dead letter; another hub\'s acknowledgement in the same moment is applied', async () => {
    const issue = async (hub: string) => {
      const res = await api(`/api/v1/hubs/${hub}/commands`, json('POST', { device: 'locker-a', command: 'locker.unlock', args: { compartment: 'A02' } }));
      expect(res.status).toBe(202);
      return ((await res.json()) as { id: string }).id;
    };
    const mine = await issue(HUB);
    const theirs = await issue(OTHER);
    const bad = await hubClient(HUB, 'agent-ack');
    const good = await hubClient(OTHER, 'agent-ack');
    const ack = (hub: string, commandId: string, detail?: string) =>
      JSON.stringify({ ...example('hub.command-ack'), id: `ack-${commandId}`, hub, commandId, ts: Date.now(), ...(detail === undefined ? {} : { detail }) });
    await within(5000, 'both acknowledgements acknowledged', Promise.all([
      bad.publishAsync(topics.commandAck(REGION, HUB), ack(HUB, mine, 'jammed\u0000'), { qos: 1 }),
      good.publishAsync(topics.commandAck(REGION, OTHER), ack(OTHER, theirs), { qos: 1 }),
    ]));

    expect(((await (await api(`/api/v1/commands/${theirs}`)).json()) as { state: string }).state).toBe('done');
    expect(((await (await api(`/api/v1/commands/${mine}`)).json()) as { state: string }).state).toBe('pending');
    const letters = await deadLetters(`hub=${HUB}&reason=schema`);
    const refused = letters.find((l) => l.topic === topics.commandAck(REGION, HUB))!;
    expect(refused.detail).toMatch(/detail: control characters/);
  });

  it('a locker event with U+0000 in its detail and a mode acknowledgement with U+0000 in its reason are schema dead letters on both databases', async () => {
    const agent = await hubClient(HUB, 'agent-mode');
    const eventTopic = topics.device(REGION, HUB, 'locker', 'locker-a', 'event');
    await within(5000, 'acknowledged', Promise.all([
      agent.publishAsync(eventTopic, JSON.stringify({ ...example('locker.event'), id: 'nul-event', ts: Date.now(), event: 'tamper', severity: 'critical', detail: 'pried\u0000open' }), { qos: 1 }),
      agent.publishAsync(topics.modeAck(REGION, HUB), JSON.stringify({ ...example('hub.mode-ack'), id: 'nul-mode-ack', ts: Date.now(), version: 0, source: 'local', reason: 'staff\u0000' }), { qos: 1 }),
    ]));
    const topicsRefused = (await deadLetters(`hub=${HUB}&reason=schema`)).map((l) => l.topic);
    expect(topicsRefused).toEqual(expect.arrayContaining([eventTopic, topics.modeAck(REGION, HUB)]));
  });
});

describe('/healthz', () => {
  it('is degraded (503, operationalHealthy: false) while the group commits\' operational transactions keep failing', async () => {
    // Ingest's own tracking is covered in cloud/ingest/ingest-data-errors.test.ts; here: what /healthz makes of it.
    Object.defineProperty(cloud.ingest, 'operationalHealthy', { get: () => false, configurable: true });
    try {
      const res = await fetch(`${cloud.urls.http}/healthz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ status: 'degraded', operationalHealthy: false, reason: expect.stringMatching(/operational database writes .* are failing/) });
    } finally {
      delete (cloud.ingest as unknown as Record<string, unknown>).operationalHealthy;
    }
    expect((await fetch(`${cloud.urls.http}/healthz`)).status).toBe(200);
  });
});

describe('MQTT: a login with U+0000', () => {
  it('a username with U+0000 is refused as a wrong login, without an error log', async () => {
    const before = logs.length;
    await expect(connect(cloud.urls.mqtt, { username: `${HUB}\u0000`, password: 'whatever-password', clientId: `${HUB}.nul-login` })).rejects.toThrow(/bad username or password|Not authorized|Bad username/i);
    expect(logs.slice(before).filter((l) => l.level >= 50)).toEqual([]);
  });
});

describe('HTTP: U+0000 in a path, query string or JSON body', () => {
  const requests: { name: string; path: string; init?: RequestInit; anonymous?: boolean }[] = [
    { name: 'orders ?hub', path: '/api/v1/orders?hub=%00' },
    { name: 'alarms ?hub', path: '/api/v1/alarms?hub=%00' },
    { name: 'dead letters ?hub', path: '/api/v1/dead-letters?hub=%00' },
    { name: 'an order id', path: '/api/v1/orders/%00' },
    { name: 'an alarm id', path: '/api/v1/alarms/%00' },
    { name: 'a mode switch\'s reason', path: `/api/v1/regions/${REGION}/mode`, init: json('POST', { mode: 'emergency', reason: 'quake\u0000' }) },
    { name: 'a mode proposal\'s source', path: `/api/v1/regions/${REGION}/mode-proposals`, init: json('POST', { source: 's\u0000', mode: 'emergency', reason: 'quake' }) },
    { name: 'an account\'s display name', path: '/api/v1/accounts', init: json('POST', { username: 'nul-staff', displayName: 'a\u0000b', role: 'staff', hubs: [HUB] }) },
    { name: 'a sign-in (open route)', path: '/api/v1/auth/login', init: json('POST', { username: 'a\u0000', password: 'whatever-password' }), anonymous: true },
  ];

  it.each(requests)('$name: 400, no error log', async ({ path, init, anonymous }) => {
    const before = logs.length;
    const res = anonymous ? await fetch(`${cloud.urls.http}${path}`, init) : await api(path, init);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'validation', message: expect.stringMatching(/U\+0000/) });
    expect(logs.slice(before).filter((l) => l.level >= 50)).toEqual([]);
  });

  it('changed nothing: the region is still in normal mode, no account was created', async () => {
    expect(cloud.modes.modeOf(HUB)).toBe('normal');
    expect(await cloud.accounts.get('nul-staff')).toBeFalsy();
  });
});
