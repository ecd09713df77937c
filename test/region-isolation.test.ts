import http from 'node:http';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { EXAMPLES, topics } from '../contract/index.ts';
import { ROOT, startTestCloud, type TestCloud } from './support/cloud-harness.ts';
import { closed, connect } from './support/mqtt-client.ts';

/**
 * Region isolation on a two-region cloud (issue 14, red-team review of region scoping): what a
 * coordinator scoped to one region must never see or touch of another — the live feed, dead letters,
 * the audit log, hubs that have credentials but no region file — and hub credentials naming a region
 * other than the one the region files place the hub in. Each test failed before its fix.
 *
 * Accounts: coord-nomi (coordinator of A), coord-kanazawa (coordinator of B), staff-nomi (staff of
 * nomi-terai, in A), coord-ghost (a coordinator whose only region does not exist), and the admin.
 */
const A = 'ishikawa-nomi';
const B = 'ishikawa-kanazawa';
const HUB_A = 'nomi-terai';
const HUB_B = 'kanazawa-nonoichi';

let t: TestCloud;
const tokens: Record<'admin' | 'coordNomi' | 'coordKanazawa' | 'staffNomi' | 'coordGhost', string> = {} as never;
const mqttClients: MqttClient[] = [];

beforeAll(async () => {
  t = await startTestCloud({ MQTT_WS_PORT: 'off', SQLITE_SYNC: 'normal', REGIONS_DIR: path.join(ROOT, 'config/regions') });
  tokens.admin = t.token;
  tokens.coordNomi = await t.tokenFor('coord-nomi', 'coordinator', [], [A]);
  tokens.coordKanazawa = await t.tokenFor('coord-kanazawa', 'coordinator', [], [B]);
  tokens.staffNomi = await t.tokenFor('staff-nomi', 'staff', [HUB_A]);
  tokens.coordGhost = await t.tokenFor('coord-ghost', 'coordinator', [], ['no-such-region']);
}, 30_000);
afterAll(async () => {
  for (const c of mqttClients) c.end(true);
  await t?.stop();
});

const as = (token: string) => ({
  get: (p: string) => fetch(`${t.cloud.urls.http}${p}`, { headers: { authorization: `Bearer ${token}` } }),
  post: (p: string, body: unknown = {}) => fetch(`${t.cloud.urls.http}${p}`, {
    method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
  }),
});
const codeOf = async (res: Response) => ({ status: res.status, code: ((await res.json()) as { error?: { code: string } }).error?.code });

async function metric(name: string, labels = ''): Promise<number> {
  const text = await (await t.api('/metrics')).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.split(' ').pop()) : 0;
}

interface Stream { text(): string; destroy(): void }
const streams: Stream[] = [];
afterEach(() => {
  for (const s of streams.splice(0)) s.destroy();
});

/** A live-feed stream, resolved once it delivered its first `hubs` event (so it is registered and served). */
async function openFeed(token: string): Promise<Stream> {
  const s = await new Promise<Stream>((resolve, reject) => {
    const req = http.get(`${t.cloud.urls.http}/api/v1/events`, { agent: false, headers: { authorization: `Bearer ${token}` } }, (res) => {
      expect(res.statusCode).toBe(200);
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('error', () => {});
      resolve({ text: () => text, destroy: () => req.destroy() });
    });
    req.on('error', reject);
  });
  streams.push(s);
  await vi.waitFor(() => expect(s.text()).toContain('event: hubs'), { timeout: 10_000, interval: 20 });
  return s;
}

/** The data of every event of this name received so far. */
const eventsOf = (s: Stream, name: string) => s.text().split('\n\n').filter((e) => e.startsWith(`event: ${name}\n`)).map((e) => e.slice(e.indexOf('data: ') + 6));

describe('live feed (GET /api/v1/events)', () => {
  it("sends a coordinator of region A its region's alarms, orders and mode and never region B's; a coordinator of a region that does not exist gets nothing; the admin gets both", async () => {
    const admin = await openFeed(tokens.admin);
    const nomi = await openFeed(tokens.coordNomi);
    const staff = await openFeed(tokens.staffNomi);
    const ghost = await openFeed(tokens.coordGhost);

    await t.cloud.alarms.raise({ hub: HUB_A, kind: 'door_open_too_long', device: 'feed-region', detail: 'alarm of region A' });
    await t.cloud.alarms.raise({ hub: HUB_B, kind: 'door_open_too_long', device: 'feed-region', detail: 'alarm of region B' });
    await vi.waitFor(() => expect(eventsOf(admin, 'alarm').join()).toMatch(/alarm of region A[\s\S]*alarm of region B/), { timeout: 10_000, interval: 20 });
    // Every audience is written in the same call as the admin's: what they lack now, they never get.
    expect(eventsOf(nomi, 'alarm').join()).toContain('alarm of region A');
    expect(eventsOf(nomi, 'alarm').join()).not.toContain('alarm of region B');
    expect(eventsOf(staff, 'alarm').join()).toContain('alarm of region A');
    expect(eventsOf(staff, 'alarm').join()).not.toContain('alarm of region B');
    expect(eventsOf(ghost, 'alarm')).toEqual([]);

    // Orders and modes come through the routes the feed reads as each account: B's never reach A's coordinator.
    const admins = as(tokens.admin);
    const order = async (origin: string, to: string) => {
      const res = await admins.post('/api/v1/orders', { originHub: origin, destination: { type: 'locker', hub: to }, weightKg: 1, priority: 'relief' });
      expect(res.status).toBe(201);
      return ((await res.json()) as { id: string }).id;
    };
    const orderB = await order(HUB_B, 'kanazawa-morimoto');
    const orderA = await order(HUB_A, 'nomi-kokufu');
    expect((await admins.post(`/api/v1/regions/${B}/mode`, { mode: 'emergency', reason: 'region B drill' })).status).toBe(202);
    expect((await admins.post(`/api/v1/regions/${A}/mode`, { mode: 'emergency', reason: 'region A drill' })).status).toBe(202);
    await vi.waitFor(() => {
      expect(eventsOf(admin, 'orders').join()).toContain(orderB);
      expect(eventsOf(nomi, 'orders').join()).toContain(orderA);
      expect(eventsOf(nomi, 'mode').join()).toContain('region A drill');
      // Waited for too: a feed pass that read B's mode just before its switch re-reads it in the next pass.
      expect(eventsOf(admin, 'mode').join()).toContain('region B drill');
    }, { timeout: 10_000, interval: 50 });
    expect(nomi.text()).not.toContain(orderB);
    expect(nomi.text()).not.toContain(B);
    expect(nomi.text()).not.toContain('kanazawa-');
    expect(eventsOf(ghost, 'mode')).toEqual([]);
    expect(ghost.text()).not.toMatch(/nomi-|kanazawa-|ishikawa-/);
  }, 30_000);
});

describe('dead letters (GET /api/v1/dead-letters)', () => {
  it("shows and counts a coordinator of region A only A's rows, refuses ?hub= of region B, and shows a coordinator of no real region nothing", async () => {
    const row = (region: string, hub: string, secret: string) => ({
      receivedAt: Date.now(), region, hub, clientId: hub, topic: `v1/${region}/${hub}/sensor/wx/telemetry`, reason: 'schema' as const, detail: 'test row', payload: Buffer.from(secret),
    });
    await t.cloud.deadLetters.addMany([row(A, HUB_A, 'payload of A'), row(B, HUB_B, 'secret payload of B'), row(B, 'kanazawa-morimoto', 'secret payload of B')]);
    type Answer = { total: number; deadLetters: { region: string | null; hub: string | null; payloadText: string | null }[] };
    const read = async (token: string, q = '') => (await (await as(token).get(`/api/v1/dead-letters?limit=500${q}`)).json()) as Answer;

    const all = await read(tokens.admin);
    expect(all.deadLetters.map((d) => d.payloadText)).toEqual(expect.arrayContaining(['payload of A', 'secret payload of B']));
    const ofA = all.deadLetters.filter((d) => d.region === A).length;
    expect(all.total).toBe(all.deadLetters.length);

    const nomi = await read(tokens.coordNomi);
    expect(nomi.deadLetters.map((d) => d.payloadText)).toContain('payload of A');
    expect(nomi.deadLetters.filter((d) => d.region !== A)).toEqual([]);
    expect(nomi.total).toBe(ofA);
    expect(await codeOf(await as(tokens.coordNomi).get(`/api/v1/dead-letters?hub=${HUB_B}`))).toEqual({ status: 403, code: 'region_not_allowed' });
    expect((await read(tokens.coordNomi, `&hub=${HUB_A}`)).deadLetters.map((d) => d.payloadText)).toEqual(['payload of A']);
    expect((await read(tokens.coordKanazawa)).deadLetters.filter((d) => d.region !== B)).toEqual([]);

    const ghost = await read(tokens.coordGhost);
    expect(ghost).toEqual({ total: 0, deadLetters: [] });
    expect(await codeOf(await as(tokens.coordGhost).get(`/api/v1/dead-letters?hub=${HUB_A}`))).toEqual({ status: 403, code: 'region_not_allowed' });
  });
});

describe('audit (GET /api/v1/audit)', () => {
  it("shows a coordinator of region A its own calls and those naming region A or its hubs, never region B's or other accounts' sign-ins", async () => {
    const admins = as(tokens.admin);
    expect((await admins.post(`/api/v1/regions/${B}/mode`, { mode: 'normal', reason: 'audit B' })).status).toBe(202);
    expect((await admins.post(`/api/v1/regions/${A}/mode`, { mode: 'normal', reason: 'audit A' })).status).toBe(202);
    expect((await admins.post(`/api/v1/hubs/${HUB_B}/commands`, { device: 'locker-a', command: 'locker.release', args: {} })).status).not.toBe(403);
    await fetch(`${t.cloud.urls.http}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'coord-kanazawa', password: 'coord-kanazawa-test-password' }) });
    // coord-nomi's own calls: one in its region, one refused in B (its own attempt is its to see).
    expect((await as(tokens.coordNomi).post(`/api/v1/regions/${A}/mode`, { mode: 'normal', reason: 'own call' })).status).toBe(202);
    expect((await as(tokens.coordNomi).post(`/api/v1/regions/${B}/mode`, { mode: 'normal', reason: 'own try' })).status).toBe(403);

    type Entry = { account: string | null; route: string | null; path: string; status: number };
    const audit = async (token: string) => ((await (await as(token).get('/api/v1/audit?limit=1000')).json()) as { entries: Entry[] }).entries;
    // Recorded after the answers went out: wait for the last of them.
    await expect.poll(async () => (await audit(tokens.admin)).some((e) => e.account === 'coord-nomi' && e.path === `/api/v1/regions/${B}/mode`)).toBe(true);
    const everything = await audit(tokens.admin);
    expect(everything.some((e) => e.path.includes(B) || e.path.includes(HUB_B))).toBe(true);
    expect(everything.some((e) => e.route === '/api/v1/auth/login')).toBe(true);

    const nomi = await audit(tokens.coordNomi);
    expect(nomi.some((e) => e.account === 'test-admin' && e.path === `/api/v1/regions/${A}/mode`)).toBe(true);
    expect(nomi.some((e) => e.account === 'coord-nomi' && e.path === `/api/v1/regions/${B}/mode`)).toBe(true);
    const foreign = nomi.filter((e) => e.account !== 'coord-nomi' && (e.path.includes(B) || e.path.includes('kanazawa-') || !/\/(regions\/ishikawa-nomi|hubs\/nomi-)/.test(e.path)));
    expect(foreign).toEqual([]);

    const ghost = await audit(tokens.coordGhost);
    expect(ghost.filter((e) => e.account !== 'coord-ghost')).toEqual([]);
  });
});

describe('a hub with credentials but in no region file', () => {
  it('is in the region its credential names: readable and commandable by that region\'s coordinator, refused (region_not_allowed) to another region\'s and to a coordinator of no real region', async () => {
    const GHOST_HUB = 'ghost-hub';
    await t.cloud.credentials.set(GHOST_HUB, A, GHOST_HUB, 'a-long-ghost-hub-password');
    const c = await connect(t.cloud.urls.mqtt, { username: GHOST_HUB, password: 'a-long-ghost-hub-password', clientId: GHOST_HUB });
    mqttClients.push(c);
    await vi.waitFor(() => expect(t.cloud.live.hubs.get(GHOST_HUB)?.region).toBe(A));

    const paths = [`/api/v1/hubs/${GHOST_HUB}`, `/api/v1/hubs/${GHOST_HUB}/history?device=wx&field=windMps`, `/api/v1/hubs/${GHOST_HUB}/commands`];
    for (const token of [tokens.coordKanazawa, tokens.coordGhost]) {
      for (const p of paths) expect({ p, ...(await codeOf(await as(token).get(p))) }).toEqual({ p, status: 403, code: 'region_not_allowed' });
      expect(await codeOf(await as(token).post(`/api/v1/hubs/${GHOST_HUB}/commands`, { device: 'locker-a', command: 'locker.release', args: {} }))).toEqual({ status: 403, code: 'region_not_allowed' });
    }
    expect((await as(tokens.coordNomi).get(`/api/v1/hubs/${GHOST_HUB}`)).status).toBe(200);
    expect((await as(tokens.admin).get(`/api/v1/hubs/${GHOST_HUB}`)).status).toBe(200);
    // The command reaches the route (which finds no such device), not a region refusal.
    expect((await codeOf(await as(tokens.coordNomi).post(`/api/v1/hubs/${GHOST_HUB}/commands`, { device: 'locker-a', command: 'locker.release', args: {} }))).code).toBe('device_not_found');
    // A hub known nowhere is not shown to be in a scoped coordinator's regions either.
    expect(await codeOf(await as(tokens.coordNomi).get('/api/v1/hubs/never-heard-of'))).toEqual({ status: 403, code: 'region_not_allowed' });
    expect((await as(tokens.admin).get('/api/v1/hubs/never-heard-of')).status).toBe(404);
  });
});

describe('a hub credential naming another region than its region file', () => {
  it('may neither publish under the credential\'s region (refused, counted as region_mismatch, nothing stored) nor subscribe to that region\'s mode', async () => {
    // kanazawa-nonoichi is a hub of B; its credential was made (before B's file was added) naming A.
    await t.cloud.credentials.set(HUB_B, A, HUB_B, 'a-long-mismatched-password');
    const login = { username: HUB_B, password: 'a-long-mismatched-password' };
    const subscriber = await connect(t.cloud.urls.mqtt, { ...login, clientId: `${HUB_B}.sub` });
    mqttClients.push(subscriber);
    const subscribeDenied = await metric('mqtt_subscribe_denied_total');
    await expect(subscriber.subscribeAsync(topics.regionMode(A), { qos: 1 })).rejects.toThrow(/Subscribe error/);
    await expect(subscriber.subscribeAsync(topics.hubSubscriptions(A, HUB_B)[0]!, { qos: 1 })).rejects.toThrow(/Subscribe error/);
    expect(await metric('mqtt_subscribe_denied_total')).toBe(subscribeDenied + 2);

    const publisher = await connect(t.cloud.urls.mqtt, { ...login, clientId: `${HUB_B}.pub` });
    mqttClients.push(publisher);
    const denied = await metric('mqtt_publish_denied_total', 'reason="region_mismatch"');
    const sensor = EXAMPLES.find((e) => e.name === 'sensor.telemetry')!.payload;
    publisher.publish(topics.device(A, HUB_B, 'sensor', 'wx', 'telemetry'), JSON.stringify({ ...sensor, id: 'mismatched-1', hub: HUB_B, ts: Date.now() }), { qos: 1 });
    expect(await closed(publisher)).toBe(true);
    expect(await metric('mqtt_publish_denied_total', 'reason="region_mismatch"')).toBe(denied + 1);
    expect(await t.cloud.store.messageIds(HUB_B, 0, Date.now() + 60_000)).not.toContain('mismatched-1');
  });
});
