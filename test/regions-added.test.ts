import fs from 'node:fs';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCredentials, ROOT, startTestCloud, tempDir, type TestCloud } from './support/cloud-harness.ts';
import { closed, connect } from './support/mqtt-client.ts';
import { waitFor } from './support/ports.ts';

/**
 * Issue 14, item 3: a region is added to a running cloud by dropping its file into REGIONS_DIR. Its hubs
 * can connect and show up at once; hubs of the region already served keep their connections (counted:
 * no reconnect, no close). A hub whose credential names a region the cloud does not serve is refused.
 */
const CONFIG = path.join(ROOT, 'config/regions');
const regionsDir = tempDir('regions-dir');
let t: TestCloud;
const clients: MqttClient[] = [];

/** A hub's MQTT client that counts its connects and closes. */
async function hubClient(hub: string, password: string) {
  const counts = { connects: 0, closes: 0 };
  const c = await connect(t.cloud.urls.mqtt, { username: hub, password, clientId: `${hub}.test`, reconnectPeriod: 200 });
  counts.connects = 1;
  c.on('connect', () => counts.connects++);
  c.on('close', () => counts.closes++);
  clients.push(c);
  return { client: c, counts };
}

beforeAll(async () => {
  for (const f of ['ishikawa-nomi.json', 'ishikawa-nomi.geography.json']) fs.copyFileSync(path.join(CONFIG, f), path.join(regionsDir, f));
  t = await startTestCloud({ MQTT_WS_PORT: 'off', REGIONS_DIR: regionsDir });
}, 30_000);

afterAll(async () => {
  for (const c of clients) c.end(true);
  await t?.stop();
  fs.rmSync(regionsDir, { recursive: true, force: true });
});

const regionsListed = async () => ((await (await t.api('/api/v1/regions')).json()) as { regions: { id: string; hubCount: number }[] }).regions;

describe('a region added while running', () => {
  it('serves the new region\'s hubs at once; the other region\'s hubs stay connected', async () => {
    expect(await regionsListed()).toEqual([{ id: 'ishikawa-nomi', name: expect.any(Object), hubCount: 13 }]);
    const nomi = await Promise.all(['nomi-terai', 'nomi-neagari'].map((h) => hubClient(h, t.credentials[h]!.password)));

    fs.copyFileSync(path.join(CONFIG, 'ishikawa-kanazawa.json'), path.join(regionsDir, 'ishikawa-kanazawa.json'));
    process.emit('SIGHUP', 'SIGHUP'); // the watcher also polls every 5 s; the signal makes the test quick

    expect((await regionsListed()).map((r) => [r.id, r.hubCount])).toEqual([['ishikawa-nomi', 13], ['ishikawa-kanazawa', 5]]);
    const creds = await waitFor('demo credentials of the added region', () => readCredentials(t.dataDir)['kanazawa-yuwaku']);
    const yuwaku = await hubClient('kanazawa-yuwaku', creds.password);
    const ts = Date.now();
    yuwaku.client.publish('v1/ishikawa-kanazawa/kanazawa-yuwaku/status', JSON.stringify({ v: 1, type: 'hub.status', hub: 'kanazawa-yuwaku', state: 'online', ts }), { qos: 1, retain: true });
    const hub = await waitFor('the added hub online in the API', async () => {
      const r = await t.api('/api/v1/hubs/kanazawa-yuwaku');
      const body = r.status === 200 ? ((await r.json()) as { region: string; registered: boolean; link: { online: boolean } }) : null;
      return body?.link.online ? body : null;
    });
    expect(hub).toMatchObject({ region: 'ishikawa-kanazawa', registered: true });
    const region = (await (await t.api('/api/v1/region?region=ishikawa-kanazawa')).json()) as { hubs: { id: string }[]; baseMap: string | null };
    expect(region.hubs.map((h) => h.id)).toContain('kanazawa-yuwaku');
    expect(region.baseMap).toBeNull();
    // Its mode can be switched at once (the mode service looks the region up when asked).
    const sw = await t.api('/api/v1/regions/ishikawa-kanazawa/mode', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'emergency', hubs: ['kanazawa-yuwaku'], reason: 'added region drill' }) });
    expect(sw.status).toBe(202);
    const mode = (await (await t.api('/api/v1/regions/ishikawa-kanazawa/mode')).json()) as { hubs: { hub: string }[] };
    expect(mode.hubs.map((h) => h.hub)).toEqual(['kanazawa-nonoichi', 'kanazawa-morimoto', 'kanazawa-tsubata', 'kanazawa-uchinada', 'kanazawa-yuwaku']);

    // The kanazawa hub is kept to its region's topics.
    expect((await yuwaku.client.subscribeAsync('v1/ishikawa-kanazawa/mode', { qos: 1 })).map((g) => g.qos)).toEqual([1]);
    // mqtt.js reports a SUBACK failure code (0x80) as an error on the subscribe call
    await expect(yuwaku.client.subscribeAsync('v1/ishikawa-nomi/mode', { qos: 1 })).rejects.toThrow(/Subscribe error/);

    await new Promise((r) => setTimeout(r, 500)); // time for a dropped connection to show
    for (const n of nomi) expect(n.counts).toEqual({ connects: 1, closes: 0 });
    expect(nomi.every((n) => n.client.connected)).toBe(true);
  });

  it('logs and ignores a changed region file (a restart is needed), keeping its hubs connected', async () => {
    const file = path.join(regionsDir, 'ishikawa-nomi.json');
    const before = JSON.parse(fs.readFileSync(file, 'utf8')) as { hubs: unknown[] };
    fs.writeFileSync(file, JSON.stringify({ ...before, hubs: before.hubs.slice(0, 1) }));
    process.emit('SIGHUP', 'SIGHUP');
    expect((await regionsListed()).find((r) => r.id === 'ishikawa-nomi')!.hubCount).toBe(13);
    expect((await t.api('/api/v1/hubs/nomi-neagari')).status).toBe(200);
  });

  it('refuses a hub whose credential names a region the cloud does not serve', async () => {
    await t.cloud.credentials.set('toyama-1', 'toyama-west', 'toyama-1', 'a-long-test-password-1');
    const stray = await connect(t.cloud.urls.mqtt, { username: 'toyama-1', password: 'a-long-test-password-1', clientId: 'toyama-1.test', reconnectPeriod: 0 });
    clients.push(stray);
    for (const f of ['v1/toyama-west/mode', 'v1/toyama-west/toyama-1/cmd/#']) await expect(stray.subscribeAsync(f, { qos: 1 }), f).rejects.toThrow(/Subscribe error/);
    stray.publish('v1/toyama-west/toyama-1/status', JSON.stringify({ v: 1, type: 'hub.status', hub: 'toyama-1', state: 'online', ts: Date.now() }), { qos: 1 });
    expect(await closed(stray)).toBe(true);
  });
});
