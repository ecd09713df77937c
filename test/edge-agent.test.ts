import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EdgeAgent } from '../edge/agent.ts';
import { EXAMPLES, topics } from '../contract/index.ts';
import { startTestCloud, tempDir, type TestCloud } from './support/cloud-harness.ts';
import { deviceLogin, staffToken, startTestEdge, testEdgeEnv } from './support/edge-harness.ts';
import { connect } from './support/mqtt-client.ts';
import { waitFor } from './support/ports.ts';

/** The edge agent as hub devices and hub staff meet it, in front of a real cloud. */
const HUB = 'nomi-kokufu';
const REGION = 'ishikawa-nomi';
let t: TestCloud;
let agent: EdgeAgent;
const dir = tempDir('edge');

beforeAll(async () => {
  t = await startTestCloud();
  agent = await startTestEdge(testEdgeEnv({ hub: HUB, cloudUrl: t.cloud.urls.mqtt, password: t.credentials[HUB]!.password, dataDir: dir }));
});
afterAll(async () => {
  await agent?.close();
  await t?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const sensor = EXAMPLES.find((e) => e.name === 'sensor.telemetry')!.payload;
const sensorTopic = topics.device(REGION, HUB, 'sensor', 'wx', 'telemetry');
/** The agent's endpoint as hub staff use it, with the staff token. */
const local = async <T>(path: string, init: RequestInit = {}): Promise<T> =>
  (await (await fetch(`${agent.localHttpUrl}${path}`, { ...init, headers: { ...init.headers as Record<string, string>, authorization: `Bearer ${staffToken(agent)}` } })).json()) as T;

describe('edge agent', () => {
  it('forwards device messages to the cloud and reports its link as online', async () => {
    const device = await connect(agent.localMqttUrl, deviceLogin(agent, 'wx'));
    for (let i = 0; i < 20; i++) await device.publishAsync(sensorTopic, JSON.stringify({ ...sensor, hub: HUB, id: `fwd-${i}`, ts: Date.now() }), { qos: 1 });
    await device.endAsync();
    await waitFor('all 20 stored in the cloud', async () => (await t.cloud.store.messageIds(HUB, 0, Date.now() + 60_000)).filter((id) => id.startsWith('fwd-')).length === 20);
    const hub = await waitFor('status with outbox depth', async () => {
      const h = (await (await t.api(`/api/v1/hubs/${HUB}`)).json()) as { link: { online: boolean; outboxDepth: number | null; agent: string | null } };
      return h.link.outboxDepth === 0 ? h : null;
    });
    expect(hub.link).toMatchObject({ online: true, outboxDepth: 0, agent: expect.stringContaining('chiiki-edge') });
    // The agent's own status reports pass through its outbox too: at load one may be in flight when asked.
    await expect.poll(() => local('/status'), { timeout: 10_000, interval: 100 }).toMatchObject({ hub: HUB, uplink: { connected: true }, outbox: { depth: 0 } });
  });

  it('refuses invalid device messages locally, keeps them for inspection, and keeps forwarding', async () => {
    const device = await connect(agent.localMqttUrl, deviceLogin(agent, 'wx', 'bad'));
    await device.publishAsync(sensorTopic, '{"v":1', { qos: 1 });
    await device.publishAsync(topics.device(REGION, 'nomi-terai', 'sensor', 'wx', 'telemetry'), JSON.stringify({ ...sensor, hub: 'nomi-terai', id: 'foreign-1' }), { qos: 1 });
    await device.publishAsync(sensorTopic, JSON.stringify({ ...sensor, hub: HUB, id: 'after-bad', ts: Date.now() }), { qos: 1 });
    await device.endAsync();
    const dead = await local<{ refused: { reason: string }[] }>('/dead-letters');
    expect(dead.refused.map((r) => r.reason)).toEqual(expect.arrayContaining(['malformed_json', 'foreign_hub']));
    await waitFor('the valid one stored', async () => (await t.cloud.store.messageIds(HUB, 0, Date.now() + 60_000)).includes('after-bad'));
  });

  it('lets hub staff switch the mode locally; the cloud receives the acknowledgement', async () => {
    const res = await local<{ mode: string; source: string }>('/mode', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'emergency', reason: '停電・道路寸断' }),
    });
    expect(res).toMatchObject({ mode: 'emergency', source: 'local' });
    expect(await local('/status')).toMatchObject({ mode: { mode: 'emergency', source: 'local' } });
  });

  it('applies a newer region mode from the cloud and acknowledges it', async () => {
    const rm = { v: 1, type: 'region.mode', region: REGION, version: 5, ts: Date.now(), mode: 'normal', hubs: { [HUB]: 'emergency' }, reason: '訓練' };
    await t.cloud.broker.publish(topics.regionMode(REGION), JSON.stringify(rm), { qos: 1, retain: true });
    await waitFor('mode applied', async () => (await local<{ mode: { version: number } }>('/status')).mode.version === 5);
    expect(await local('/status')).toMatchObject({ mode: { mode: 'emergency', version: 5, source: 'cloud' } });
  });
});
