import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXAMPLES, topics } from '../contract/index.ts';
import { openAccountStore } from '../cloud/accounts/account-store.ts';
import { openCommandStore } from '../cloud/commands/command-store.ts';
import { openDatabase } from '../cloud/db/database.ts';
import { createSqliteTelemetryStore } from '../cloud/telemetry/sqlite-telemetry-store.ts';
import { authedFetch, readCredentials, spawnCloud, tempDir, testCloudEnv, type CloudProcess } from './support/cloud-harness.ts';
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

  // Issue 14: a command's result is recorded in the group commit that remembers its acknowledgement.
  // Recorded after that commit (as before), a kill in between lost the result for good: the re-sent
  // acknowledgement was then dropped as a copy.
  it('records every acknowledged command result exactly once when the cloud is killed with SIGKILL mid-stream', async () => {
    const CMD_HUB = 'nomi-terai';
    const N = 1500;
    const dataDir = tempDir('crash-commands');
    dirs.push(dataDir);
    const env = testCloudEnv(dataDir, { HTTP_PORT: String(await freePort()), MQTT_PORT: String(await freePort()), MQTT_WS_PORT: 'off' });
    const database = async () => openDatabase({ url: env.DATABASE_URL ?? null, dataDir, synchronous: 'normal' });
    let db = await database();
    const accounts = await openAccountStore(db);
    await accounts.create({ username: 'crash-admin', role: 'admin', hubs: [], password: 'crash-admin-password-123' });
    const { token } = await accounts.createApiToken('crash-admin', 'crash test');
    await db.close();

    proc = await spawnCloud(env);
    const ids: string[] = [];
    for (let i = 0; i < N; i++) {
      const res = await authedFetch(proc.urls.http, token, `/api/v1/hubs/${CMD_HUB}/commands`, {
        method: 'POST', body: JSON.stringify({ device: 'locker-a', command: 'locker.unlock', args: { compartment: 'A02' }, ttlS: 3600 }),
        headers: { 'content-type': 'application/json' },
      });
      expect(res.status).toBe(202);
      ids.push(((await res.json()) as { id: string }).id);
    }
    const cred = readCredentials(dataDir)[CMD_HUB]!;
    const device = startResendingDevice(proc.urls.mqtt, { username: cred.username, password: cred.password, clientId: `${CMD_HUB}.crash-agent` });
    await waitFor('device connected', () => device.connected);
    const topic = topics.commandAck('ishikawa-nomi', CMD_HUB);
    let next = 0;
    const timer = setInterval(() => {
      for (let i = 0; i < 15 && next < N; i++, next++) {
        const ack = { v: 1, type: 'hub.command-ack', id: `crash-ack-${next}`, ts: Date.now(), hub: CMD_HUB, device: 'locker-a', commandId: ids[next], result: 'done', detail: 'opened' };
        device.publish(ack.id, topic, JSON.stringify(ack));
      }
    }, 10);
    await waitFor('first acknowledgements', () => device.acked.size > N / 5);
    expect(await proc.kill('SIGKILL')).toBe(null);
    const ackedAtKill = device.acked.size;
    proc = await spawnCloud(env);
    await waitFor('every acknowledgement published', () => next === N, 30_000);
    clearInterval(timer);
    await waitFor('every acknowledgement taken after the restart', () => device.unacked === 0, 30_000);
    await device.close();
    await proc.kill('SIGTERM');
    proc = null;

    db = await database();
    try {
      const commands = await openCommandStore(db);
      const notDone: string[] = [];
      const twice: string[] = [];
      for (const id of ids) {
        if ((await commands.get(id))!.state !== 'done') notDone.push(id);
        if ((await commands.history(id)).length !== 1) twice.push(id);
      }
      expect(notDone, 'acknowledged commands without their result').toEqual([]);
      expect(twice, 'results recorded more than once').toEqual([]);
      expect(ackedAtKill).toBeLessThan(N); // the kill came mid-stream
    } finally {
      await db.close();
    }
  }, 120_000);
});
