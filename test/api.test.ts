import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLES, topics } from '../contract/index.ts';
import { startTestCloud, type TestCloud } from './support/cloud-harness.ts';
import { connect } from './support/mqtt-client.ts';

/** The HTTP API as an operator or integrator meets it. */
const HUB = 'rs-shirayamasan';
let t: TestCloud;
let api: (path: string) => Promise<{ status: number; body: any; type: string | null }>;

beforeAll(async () => {
  t = await startTestCloud();
  api = async (path) => {
    const res = await t.api(`${path}`);
    const type = res.headers.get('content-type');
    return { status: res.status, type, body: type?.includes('json') ? await res.json() : await res.text() };
  };
});
afterAll(async () => t?.stop());

const drone = EXAMPLES.find((e) => e.name === 'drone.telemetry')!.payload;
const droneTopic = (device: string) => topics.device('ishikawa-nomi', HUB, 'drone', device, 'telemetry');

async function publish(messages: { topic: string; payload: object }[]): Promise<void> {
  const cred = t.credentials[HUB]!;
  const c = await connect(t.cloud.urls.mqtt, { username: cred.username, password: cred.password, clientId: `${HUB}.api-${crypto.randomUUID()}` });
  for (const m of messages) await c.publishAsync(m.topic, JSON.stringify(m.payload), { qos: 1 });
  await c.endAsync();
}

describe('HTTP API', () => {
  it('reports health, metrics and OpenAPI docs', async () => {
    expect((await api('/healthz')).body).toMatchObject({ status: 'ok', store: 'sqlite' });
    const metrics = await api('/metrics');
    for (const name of ['ingest_messages_accepted_total', 'ingest_messages_rejected_total', 'store_write_duration_seconds', 'store_write_failures_total', 'hubs_connected', 'mqtt_connected_clients']) {
      expect(metrics.body).toContain(name);
    }
    const docs = await api('/docs/json');
    expect(Object.keys(docs.body.paths)).toEqual(expect.arrayContaining(['/api/v1/hubs', '/api/v1/hubs/{hubId}', '/api/v1/hubs/{hubId}/history', '/api/v1/dead-letters']));
    expect((await api('/docs/')).type).toContain('text/html');
  });

  it('lists every hub of the region with kind, location and link state', async () => {
    const { body } = await api('/api/v1/hubs');
    expect(body.hubs.length).toBeGreaterThanOrEqual(8);
    const kinds = new Set(body.hubs.map((h: { kind: string }) => h.kind));
    expect(kinds).toEqual(new Set(['community-hall', 'roadside-station']));
    const h = body.hubs.find((x: { id: string }) => x.id === HUB);
    expect(h).toMatchObject({ region: 'ishikawa-nomi', registered: true, link: { online: false, lastSeen: null } });
    expect(h.name.ja).toMatch(/道の駅/);
    expect(h.location.lat).toBeGreaterThan(36);
  });

  it('answers an unknown hub or route with 404 and a JSON error', async () => {
    expect(await api('/api/v1/hubs/no-such-hub')).toMatchObject({ status: 404, body: { error: { code: 'hub_not_found' } } });
    expect(await api('/api/v1/nothing')).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
  });

  it('shows the newest reading as live state; an older (replayed) reading goes to history only', async () => {
    const now = Date.now();
    await publish([
      { topic: droneTopic('drone-1'), payload: { ...drone, hub: HUB, id: 'live-new', ts: now, batteryPct: 80 } },
      { topic: droneTopic('drone-1'), payload: { ...drone, hub: HUB, id: 'live-old', ts: now - 60_000, batteryPct: 20, historical: true } },
    ]);
    const { body } = await api(`/api/v1/hubs/${HUB}`);
    const d = body.deviceStates.find((x: { device: string }) => x.device === 'drone-1');
    expect(d.telemetry).toMatchObject({ id: 'live-new', batteryPct: 80 });
    expect(body.link.lastSeen).not.toBeNull();
    expect(await t.cloud.store.messageIds(HUB, now - 120_000, now + 1)).toEqual(expect.arrayContaining(['live-new', 'live-old']));
  });

  it('returns a time-bucketed series with the right values', async () => {
    const bucket = Math.floor(Date.now() / 60_000) * 60_000 - 10 * 60_000;
    await publish([10, 20, 60].map((pct, i) => ({ topic: droneTopic('drone-2'), payload: { ...drone, hub: HUB, device: 'drone-2', id: `hist-${i}`, ts: bucket + i * 1000, batteryPct: pct } })));
    const from = new Date(bucket - 60_000).toISOString();
    const to = new Date(bucket + 120_000).toISOString();
    const mean = await api(`/api/v1/hubs/${HUB}/history?device=drone-2&field=battery_pct&from=${from}&to=${to}&bucket=1m`);
    expect(mean.status).toBe(200);
    expect(mean.body.points).toEqual([{ t: new Date(bucket).toISOString(), value: 30 }]);
    const max = await api(`/api/v1/hubs/${HUB}/history?device=drone-2&field=battery_pct&from=${from}&to=${to}&bucket=1m&aggregate=max`);
    expect(max.body.points[0].value).toBe(60);
  });

  it('explains bad history queries', async () => {
    expect(await api(`/api/v1/hubs/${HUB}/history?device=drone-2&field=flight_state`)).toMatchObject({ status: 400, body: { error: { code: 'unknown_field' } } });
    expect(await api(`/api/v1/hubs/${HUB}/history?device=drone-2&field=battery_pct&bucket=soon`)).toMatchObject({ status: 400, body: { error: { code: 'validation' } } });
    expect(await api(`/api/v1/hubs/${HUB}/history?device=nope&field=battery_pct`)).toMatchObject({ status: 404, body: { error: { code: 'device_not_found' } } });
    const many = await api(`/api/v1/hubs/${HUB}/history?device=drone-2&field=battery_pct&from=0&bucket=1s`);
    expect(many).toMatchObject({ status: 400, body: { error: { code: 'validation' } } });
    expect(many.body.error.message).toMatch(/10,000 buckets/);
    // Times a JavaScript Date cannot hold (found in review: a 500 with a RangeError), or before 1970.
    for (const range of ['to=99999999999999999999', 'from=8640000000000001&to=8640000003600001', 'to=1969-12-31T00:00:00Z', 'from=+275760-09-13T00:00:00Z']) {
      const bad = await api(`/api/v1/hubs/${HUB}/history?device=drone-2&field=battery_pct&${range}`);
      expect(bad, range).toMatchObject({ status: 400, body: { error: { code: 'validation' } } });
    }
  });
});
