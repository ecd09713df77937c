import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EXAMPLES, topics } from '../contract/index.ts';
import { createSqliteTelemetryStore } from '../cloud/telemetry/sqlite-telemetry-store.ts';
import { readCredentials, spawnCloud, startTestCloud, tempDir, testCloudEnv, type CloudProcess } from './support/cloud-harness.ts';
import { deviceLogin, staffToken, startTestEdge, testEdgeEnv } from './support/edge-harness.ts';
import { freePort, waitFor } from './support/ports.ts';
import { startResendingDevice } from './support/resending-device.ts';
import { startTcpProxy } from './support/tcp-proxy.ts';
import { stallSqliteStore } from './support/store-stall.ts';

/**
 * Quarantine only on an explicit refusal by the cloud [issue 12]: a message that is in flight while
 * the link drops, again and again, is delivered in the end — never moved aside.
 */
const REGION = 'ishikawa-nomi';
const HUB = 'hakusan-chiyono';
const alarm = EXAMPLES.find((e) => e.name === 'sensor.event')!.payload;

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('edge agent: innocent messages are never quarantined', () => {
  it('an alarm alone in flight while the link is cut four times (cloud store stalled) is delivered; nothing quarantined', async () => {
    const t = await startTestCloud();
    cleanups.push(() => t.stop());
    const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: Number(new URL(t.cloud.urls.mqtt).port) } });
    cleanups.push(() => proxy.stop());
    const edgeDir = tempDir('quarantine-edge');
    cleanups.push(() => fs.rmSync(edgeDir, { recursive: true, force: true }));
    const agent = await startTestEdge(testEdgeEnv({ hub: HUB, cloudUrl: proxy.url('mqtt'), password: t.credentials[HUB]!.password, dataDir: edgeDir }));
    cleanups.push(() => agent.close());
    await waitFor('the agent connected', () => agent.uplink.connected);

    // Stall the cloud's store the way a slow disk would (its write lock held from another
    // connection): the alarm reaches the cloud but is not acknowledged — it stays in flight.
    const stall = stallSqliteStore(t.dataDir);
    cleanups.push(() => stall.close());
    const device = startResendingDevice(agent.localMqttUrl, deviceLogin(agent, 'wx'));
    cleanups.push(() => device.close());
    device.publish('alarm-1', topics.device(REGION, HUB, 'sensor', 'wx', 'event'), JSON.stringify({ ...alarm, hub: HUB, id: 'alarm-1', ts: Date.now() }));
    await waitFor('the alarm alone in flight', () => agent.uplink.stats().inFlight === 1);
    for (let cut = 1; cut <= 4; cut++) {
      const connects = agent.uplink.stats().connects;
      proxy.cut();
      await waitFor(`the agent reconnected after cut ${cut}`, () => agent.uplink.stats().connects > connects && agent.uplink.connected, 10_000);
    }
    stall.release();

    await waitFor('the outbox drained', () => agent.outbox.depth === 0, 20_000);
    const ids = await t.cloud.store.messageIds(HUB, 0, 4_102_444_800_000);
    expect(ids).toContain('alarm-1');
    const q = (await (await fetch(`${agent.localHttpUrl}/quarantine`, { headers: { authorization: `Bearer ${staffToken(agent)}` } })).json()) as { quarantined: unknown[] };
    expect(q.quarantined).toEqual([]);
    expect(agent.outbox.stats().dropped.quarantined).toBe(0);
    expect(agent.uplink.stats().refusals).toBe(0);
  }, 60_000);

  it('an alarm alone in flight while the cloud is killed and restarted four times (store stalled) is delivered; nothing quarantined', async () => {
    const cloudDir = tempDir('quarantine-cloud');
    const env = testCloudEnv(cloudDir, { HTTP_PORT: String(await freePort()), MQTT_PORT: String(await freePort()), MQTT_WS_PORT: 'off' });
    let cloud: CloudProcess = await spawnCloud(env);
    cleanups.push(() => fs.rmSync(cloudDir, { recursive: true, force: true }), () => cloud.kill('SIGKILL'));
    const edgeDir = tempDir('quarantine-edge2');
    cleanups.push(() => fs.rmSync(edgeDir, { recursive: true, force: true }));
    // The agent reaches the cloud through a proxy, so that it can reconnect only once the restarted
    // cloud's store is stalled again (a cloud does not start with its store locked).
    const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: Number(env.MQTT_PORT) } });
    cleanups.push(() => proxy.stop());
    const agent = await startTestEdge(testEdgeEnv({ hub: HUB, cloudUrl: proxy.url('mqtt'), password: readCredentials(cloudDir)[HUB]!.password, dataDir: edgeDir }));
    cleanups.push(() => agent.close());
    await waitFor('the agent connected', () => agent.uplink.connected);

    const stall = stallSqliteStore(cloudDir);
    cleanups.push(() => stall.close());
    const device = startResendingDevice(agent.localMqttUrl, deviceLogin(agent, 'wx'));
    cleanups.push(() => device.close());
    device.publish('alarm-2', topics.device(REGION, HUB, 'sensor', 'wx', 'event'), JSON.stringify({ ...alarm, hub: HUB, id: 'alarm-2', ts: Date.now() }));
    await waitFor('the alarm alone in flight', () => agent.uplink.stats().inFlight === 1);
    for (let restart = 1; restart <= 4; restart++) {
      const connects = agent.uplink.stats().connects;
      await proxy.stop();
      expect(await cloud.kill('SIGKILL')).toBe(null);
      stall.release();
      cloud = await spawnCloud(env);
      stall.hold();
      await proxy.start();
      await waitFor(`the agent reconnected after restart ${restart}`, () => agent.uplink.stats().connects > connects && agent.uplink.connected, 15_000);
    }
    stall.release();

    await waitFor('the outbox drained', () => agent.outbox.depth === 0, 20_000);
    await cloud.kill('SIGTERM');
    const store = await createSqliteTelemetryStore({ path: path.join(cloudDir, 'telemetry.db') });
    try {
      expect(await store.messageIds(HUB, 0, 4_102_444_800_000)).toContain('alarm-2');
    } finally {
      await store.close();
    }
    expect(agent.outbox.listQuarantine()).toEqual([]);
    expect(agent.uplink.stats().refusals).toBe(0);
  }, 90_000);
});
