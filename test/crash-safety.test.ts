import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXAMPLES, topics } from '../contract/index.ts';
import { createSqliteTelemetryStore } from '../cloud/telemetry/sqlite-telemetry-store.ts';
import { readCredentials, spawnCloud, tempDir, testCloudEnv, type CloudProcess } from './support/cloud-harness.ts';
import { freePort, waitFor } from './support/ports.ts';
import { startResendingDevice } from './support/resending-device.ts';
import { stallSqliteStore } from './support/store-stall.ts';

/**
 * Crash safety, counted: a device publishes a stream of QoS 1 messages; the cloud process is killed
 * with SIGKILL mid-stream and started again. Every message the device got a PUBACK for must be in
 * the store, and none twice.
 */
const HUB = 'nomi-tatsunokuchi';
const dirs: string[] = [];
let proc: CloudProcess | null = null;

afterAll(async () => {
  await proc?.kill('SIGKILL');
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('crash safety of ingest', () => {
  it('loses no acknowledged message when the cloud is killed with SIGKILL mid-stream', async () => {
    const dataDir = tempDir('crash');
    dirs.push(dataDir);
    const env = testCloudEnv(dataDir, { HTTP_PORT: String(await freePort()), MQTT_PORT: String(await freePort()), MQTT_WS_PORT: 'off' });
    proc = await spawnCloud(env);
    const cred = readCredentials(dataDir)[HUB]!;
    const sensor = EXAMPLES.find((e) => e.name === 'sensor.telemetry')!.payload;
    const topic = topics.device('ishikawa-nomi', HUB, 'sensor', 'wx', 'telemetry');

    const device = startResendingDevice(proc.urls.mqtt, { username: cred.username, password: cred.password, clientId: `${HUB}.crash-device` });
    let seq = 0;
    const publishSome = (n: number) => {
      for (let i = 0; i < n; i++) {
        const id = `crash-${seq++}`;
        device.publish(id, topic, JSON.stringify({ ...sensor, hub: HUB, id, ts: 1_790_000_000_000 + seq }));
      }
    };
    await waitFor('device connected', () => device.connected);
    const timer = setInterval(() => publishSome(20), 10); // ~2,000 messages/s
    await waitFor('first acknowledgements', () => device.acked.size > 1000);

    // Stall the store the way a slow disk would: hold its write lock from another connection, so the
    // cloud has messages in hand that it cannot write yet. Then kill it. Only unwritten messages are
    // in that state, and none of them may have been acknowledged.
    const stall = stallSqliteStore(dataDir);
    await new Promise((r) => setTimeout(r, 400));
    expect(await proc.kill('SIGKILL')).toBe(null);
    stall.close();
    const ackedAtKill = device.acked.size;
    await new Promise((r) => setTimeout(r, 700)); // the device keeps producing while the cloud is down
    proc = await spawnCloud(env);
    await new Promise((r) => setTimeout(r, 1500));
    clearInterval(timer);
    await waitFor('every published message acknowledged after the restart', () => device.unacked === 0, 30_000);
    const acked = device.acked;
    const published = device.published;
    await device.close();
    await proc.kill('SIGTERM');
    proc = null;

    const store = await createSqliteTelemetryStore({ path: path.join(dataDir, 'telemetry.db'), synchronous: 'full' });
    try {
      const stored = new Set(await store.messageIds(HUB, 0, 4_102_444_800_000));
      const missing = [...acked].filter((id) => !stored.has(id));
      expect(missing).toEqual([]);
      expect(await store.countPoints('sensor', HUB, 0, 4_102_444_800_000)).toBe(stored.size); // none twice
      expect(ackedAtKill).toBeGreaterThan(1000);
      expect(published).toBeGreaterThan(ackedAtKill); // messages were in flight across the crash
      expect(acked.size).toBe(published);
    } finally {
      await store.close();
    }
  }, 90_000);
});
