import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topics, type LockerEvent, type LockerTelemetry } from '../contract/index.ts';
import { authedFetch, startTestCloud, type TestCloud } from './support/cloud-harness.ts';
import { connect } from './support/mqtt-client.ts';

/**
 * Issue 4, item 5, as hub staff meet it: a hub reports a door left open, the alarm shows in the API,
 * someone acknowledges it, and the door closing clears it; a hub that drops off raises hub_offline
 * after the grace period (1 s here) and clears it when it is back.
 */
const REGION = 'ishikawa-nomi';
let t: TestCloud;
const clients: MqttClient[] = [];

beforeAll(async () => {
  t = await startTestCloud({ ALARM_HUB_OFFLINE_GRACE_S: '1' });
});
afterAll(async () => {
  for (const c of clients) c.end(true);
  await t?.stop();
});

async function api(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await t.api(`${path}`, {
    method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

async function hubClient(hub: string, clientId = `${hub}.agent-${clients.length}`): Promise<MqttClient> {
  const cred = t.credentials[hub]!;
  const c = await connect(t.cloud.urls.mqtt, { username: cred.username, password: cred.password, clientId });
  clients.push(c);
  return c;
}

async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const alarmsOf = async (hub: string, kind: string) => (await api('GET', `/api/v1/alarms?hub=${hub}&kind=${kind}`)).body.alarms as any[];

const metricValue = (text: string, series: string): number | null => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? null : Number(line.slice(series.length + 1));
};

describe('alarms over the API', () => {
  it('shows a door left open, records who acknowledged it, and clears it when the door closes', async () => {
    const hub = 'nomi-terai';
    const c = await hubClient(hub);
    const ts = Date.now();
    const event: LockerEvent = {
      v: 1, type: 'locker.event', id: 'locker-a-boot1-000501', ts, hub, device: 'locker-a',
      event: 'door_open_too_long', severity: 'warning', compartment: 'A03', detail: '扉が180秒開いています <script>',
    };
    await c.publishAsync(topics.device(REGION, hub, 'locker', 'locker-a', 'event'), JSON.stringify(event), { qos: 1 });

    const [raised] = await waitFor('the alarm', async () => {
      const list = await alarmsOf(hub, 'door_open_too_long');
      return list.length > 0 && list;
    }, 3000);
    expect(raised).toMatchObject({
      region: REGION, hub, device: 'locker-a', compartment: 'A03', kind: 'door_open_too_long', severity: 'warning', state: 'open', count: 1,
      sourceMsgId: event.id, observedAt: new Date(ts).toISOString(), acknowledgedAt: null, acknowledgedBy: null, clearedAt: null,
    });
    expect(raised.detail).toContain('"扉が180秒開いています <script>"'); // device text kept as plain text
    // Consoles render the headline from kind + params; the device's own text comes apart, as sent.
    expect(raised).toMatchObject({ params: {}, deviceDetail: '扉が180秒開いています <script>', acknowledgedByName: null, clearedByName: null });
    expect((await api('GET', `/api/v1/alarms/${raised.id}`)).body).toEqual(raised);
    expect((await api('GET', '/api/v1/alarms?state=open&severity=warning')).body.alarms.map((a: { id: string }) => a.id)).toContain(raised.id);

    await t.cloud.accounts.update('test-admin', { displayName: '山田 花子' });
    const acked = await api('POST', `/api/v1/alarms/${raised.id}/ack`, { by: '山田 (寺井公民館)', note: '向かいます' });
    expect(acked.status).toBe(200);
    // The account is recorded, not the body's `by` (kept only so older clients still validate);
    // people read its display name (issue 13, item 5).
    expect(acked.body).toMatchObject({ id: raised.id, state: 'acknowledged', acknowledgedBy: 'test-admin', acknowledgedByName: '山田 花子', ackNote: '向かいます' });
    expect(Date.parse(acked.body.acknowledgedAt)).toBeGreaterThanOrEqual(Date.parse(raised.raisedAt));
    expect((await api('GET', `/api/v1/alarms/${raised.id}`)).body).toMatchObject({ state: 'acknowledged', acknowledgedBy: 'test-admin', acknowledgedByName: '山田 花子' });
    expect((await alarmsOf(hub, 'door_open_too_long'))[0]).toMatchObject({ acknowledgedByName: '山田 花子' });
    // A renamed account shows its name as it is now.
    await t.cloud.accounts.update('test-admin', { displayName: '山田 花子 (寺井)' });
    expect((await api('GET', `/api/v1/alarms/${raised.id}`)).body).toMatchObject({ acknowledgedByName: '山田 花子 (寺井)' });

    const closed: LockerTelemetry = {
      v: 1, type: 'locker.telemetry', id: 'locker-a-boot1-000502', ts: ts + 1000, hub, device: 'locker-a',
      compartments: [
        { id: 'A03', size: 'M', tempClass: 'chilled', door: 'closed', occupied: false, reservedFor: null, tempC: 6.5, fault: 'none' },
      ],
    };
    await c.publishAsync(topics.device(REGION, hub, 'locker', 'locker-a', 'telemetry'), JSON.stringify(closed), { qos: 1 });
    const cleared = await waitFor('the alarm to clear', async () => {
      const a = (await api('GET', `/api/v1/alarms/${raised.id}`)).body;
      return a.state === 'cleared' && a;
    }, 3000);
    expect(cleared).toMatchObject({ clearedBy: null, clearNote: 'door of A03 closed', acknowledgedBy: 'test-admin' });
    expect(await alarmsOf(hub, 'door_open_too_long')).toHaveLength(1);
  });

  it('counts a repeated condition on the same alarm and a too-warm chilled compartment from telemetry', async () => {
    const hub = 'nomi-tatsunokuchi';
    const c = await hubClient(hub);
    const telemetry = (id: string, ts: number, tempC: number): LockerTelemetry => ({
      v: 1, type: 'locker.telemetry', id, ts, hub, device: 'locker-a',
      compartments: [{ id: 'A06', size: 'M', tempClass: 'chilled', door: 'closed', occupied: true, reservedFor: null, tempC, fault: 'none' }],
    });
    const topic = topics.device(REGION, hub, 'locker', 'locker-a', 'telemetry');
    const ts = Date.now();
    await c.publishAsync(topic, JSON.stringify(telemetry('lk-1', ts, 10)), { qos: 1 });
    expect(await alarmsOf(hub, 'compartment_too_warm')).toEqual([]);
    await c.publishAsync(topic, JSON.stringify(telemetry('lk-2', ts + 10_000, 10.1)), { qos: 1 });
    await c.publishAsync(topic, JSON.stringify(telemetry('lk-3', ts + 20_000, 11.4)), { qos: 1 });
    const [warm, ...rest] = await waitFor('the too-warm alarm', async () => {
      const list = await alarmsOf(hub, 'compartment_too_warm');
      return list[0]?.count === 2 && list;
    }, 3000);
    expect(rest).toEqual([]);
    expect(warm).toMatchObject({ compartment: 'A06', state: 'open', detail: 'chilled compartment A06 at 11.4 °C (limit 10 °C)' });
    // The latest reading, as data: what the consoles say in Japanese or English.
    expect(warm).toMatchObject({ params: { tempC: 11.4, limitC: 10, tempClass: 'chilled' }, deviceDetail: null });
    // Someone without an account (a system, a removed account) is shown by the username recorded.
    await t.cloud.alarms.acknowledge(warm.id, 'night-shift', null);
    expect((await api('GET', `/api/v1/alarms/${warm.id}`)).body).toMatchObject({ acknowledgedBy: 'night-shift', acknowledgedByName: 'night-shift' });
  });

  it('answers 404 for an unknown alarm, 409 once cleared (with or without `by`)', async () => {
    expect(await api('GET', '/api/v1/alarms/alm-nope')).toMatchObject({ status: 404, body: { error: { code: 'alarm_not_found' } } });
    expect(await api('POST', '/api/v1/alarms/alm-nope/ack', { by: 'x' })).toMatchObject({ status: 404, body: { error: { code: 'alarm_not_found' } } });
    const cleared = (await api('GET', '/api/v1/alarms?state=cleared&kind=door_open_too_long')).body.alarms[0];
    expect(await api('POST', `/api/v1/alarms/${cleared.id}/ack`, { by: 'x' })).toMatchObject({ status: 409, body: { error: { code: 'alarm_cleared' } } });
    expect(await api('POST', `/api/v1/alarms/${cleared.id}/clear`, { by: 'x' })).toMatchObject({ status: 409, body: { error: { code: 'alarm_cleared' } } });
    expect(await api('POST', `/api/v1/alarms/${cleared.id}/ack`, { note: 'who?' })).toMatchObject({ status: 409, body: { error: { code: 'alarm_cleared' } } });
    expect(await api('POST', `/api/v1/alarms/${cleared.id}/ack`, { by: '' })).toMatchObject({ status: 400, body: { error: { code: 'validation' } } });
    expect(await api('GET', '/api/v1/alarms?severity=loud')).toMatchObject({ status: 400, body: { error: { code: 'validation' } } });
  });

  it('raises hub_offline when a hub\'s link stays down past the grace period, and clears it when the hub is back', async () => {
    const hub = 'komatsu-awazu';
    const first = await hubClient(hub, 'komatsu-awazu.agent');
    await waitFor('the hub online', async () => (await api('GET', `/api/v1/hubs/${hub}`)).body.link.online);
    first.end(true);
    const wentDown = Date.now();
    const [offline] = await waitFor('hub_offline', async () => {
      const list = await alarmsOf(hub, 'hub_offline');
      return list.length > 0 && list;
    }, 5000);
    expect(Date.now() - wentDown).toBeGreaterThanOrEqual(1000);
    expect(offline).toMatchObject({ hub, device: null, compartment: null, severity: 'critical', state: 'open', count: 1, deviceDetail: null });
    expect(Date.parse(offline.params.offlineSince)).toBeGreaterThanOrEqual(wentDown - 50);
    expect(Date.parse(offline.params.offlineSince)).toBeLessThan(Date.now());
    expect(offline.params.offlineS).toBeGreaterThanOrEqual(1);

    await hubClient(hub, 'komatsu-awazu.agent');
    const cleared = await waitFor('hub_offline to clear', async () => {
      const a = (await api('GET', `/api/v1/alarms/${offline.id}`)).body;
      return a.state === 'cleared' && a;
    }, 5000);
    expect(cleared).toMatchObject({ clearedBy: null, clearNote: 'hub online again' });
    // Hubs that never connected to this cloud are not judged.
    expect(await alarmsOf('hakusan-chiyono', 'hub_offline')).toEqual([]);
  });

  it('lists alarms by region, and a coordinator only those of its regions (issue 14)', async () => {
    const raised = await t.cloud.alarms.raise({ hub: 'nomi-terai', device: 'drone-region-test', kind: 'drone_failsafe', detail: 'failsafe' });
    const ids = async (token: string, query: string) => {
      const res = await authedFetch(t.cloud.urls.http, token, `/api/v1/alarms?kind=drone_failsafe${query}`);
      return { status: res.status, body: (await res.json()) as any };
    };
    expect((await ids(t.token, `&region=${REGION}`)).body.alarms.map((a: { id: string }) => a.id)).toEqual([raised.id]);
    expect((await ids(t.token, '&region=somewhere-else')).body.alarms).toEqual([]);
    const coordinator = await t.tokenFor('alarms-coordinator-nomi', 'coordinator', [], [REGION]);
    expect((await ids(coordinator, '')).body.alarms.map((a: { id: string }) => a.id)).toEqual([raised.id]);
    expect((await ids(coordinator, `&region=${REGION}`)).body.alarms.map((a: { id: string }) => a.id)).toEqual([raised.id]);
    expect(await ids(coordinator, '&region=somewhere-else')).toMatchObject({ status: 403, body: { error: { code: 'region_not_allowed' } } });
    await t.cloud.alarms.clear(raised.id, 'test', null);
  });

  it('shows alarms in /metrics', async () => {
    const text = await (await t.api(`/metrics`)).text();
    expect(metricValue(text, 'alarms_raised_total{kind="door_open_too_long"}')).toBe(1);
    expect(metricValue(text, 'alarms_raised_total{kind="hub_offline"}')).toBe(1);
    expect(metricValue(text, 'alarms_raised_total{kind="tamper"}')).toBe(0);
    expect(metricValue(text, 'alarms_open{severity="warning"}')).toBe(1); // the warm compartment
    expect(metricValue(text, 'alarms_open{severity="critical"}')).toBe(0);
  });
});
