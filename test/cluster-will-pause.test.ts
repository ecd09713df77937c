import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topics } from '../contract/index.ts';
import type { TestCloud } from './support/cloud-harness.ts';
import { spawnCloud, startTestCloud, tempDir, testCloudEnv, type CloudProcess } from './support/cloud-harness.ts';
import { connect } from './support/mqtt-client.ts';
import { startRedis, type RedisServer } from './support/redis.ts';
import { freshPostgresUrl } from './support/test-database.ts';

/**
 * A node paused past the heartbeat window (red-team finding H7-4, issue 15): the other nodes take it
 * for dead and publish and delete its hubs' last wills while the hubs stay connected to it. Once it
 * runs again it stores the wills of its connected hubs again (cluster-broker.ts restoreWills), so a
 * later death of that node still announces them. Node C is a real process (SIGSTOP/SIGCONT, kill -9),
 * node A in this process; real redis-server and PostgreSQL.
 */
const REGION = 'ishikawa-nomi';
let redis: RedisServer;
let r: Redis;
let db: string;
let a: TestCloud;
let c: CloudProcess | null = null;
const clients: MqttClient[] = [];

beforeAll(async () => {
  redis = await startRedis();
  r = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await r.connect();
  db = await freshPostgresUrl();
  a = await startTestCloud({ DATABASE_URL: db, REDIS_URL: redis.url, NODE_ID: 'wp-a' }, tempDir('wp-a'));
});
afterAll(async () => {
  for (const x of clients) x.end(true);
  if (c) {
    c.child.kill('SIGCONT');
    await c.kill('SIGKILL');
  }
  await a?.stop();
  r?.disconnect();
  await redis?.stop();
});

async function statusAccepted(t: TestCloud): Promise<number> {
  const m = t.cloud.metrics.registry.getSingleMetric('ingest_messages_accepted_total');
  return (await m!.get()).values.find((x) => x.labels.type === 'hub.status')?.value ?? 0;
}

describe('clustered broker: a node paused past the heartbeat window', () => {
  it('stores its connected hubs\' wills again once it runs, so its later death still announces them', { timeout: 120_000 }, async () => {
    const h = Object.keys(a.credentials).sort()[0]!;
    const dir = tempDir('wp-c');
    fs.copyFileSync(path.join(a.dataDir, 'credentials.json'), path.join(dir, 'credentials.json'));
    c = await spawnCloud(testCloudEnv(dir, { DATABASE_URL: db, REDIS_URL: redis.url, NODE_ID: 'wp-c' }));
    const cr = a.credentials[h]!;
    const hub = await connect(c.urls.mqtt, {
      username: cr.username, password: cr.password, clientId: `${h}.agent`, keepalive: 60, reconnectPeriod: 0,
      will: { topic: topics.status(REGION, h), payload: Buffer.from(JSON.stringify({ v: 1, type: 'hub.status', hub: h, state: 'offline', ts: Date.now(), agent: 'test' })), qos: 1, retain: true },
    });
    hub.on('error', () => undefined);
    clients.push(hub);
    await hub.publishAsync(topics.status(REGION, h), JSON.stringify({ v: 1, type: 'hub.status', hub: h, state: 'online', ts: Date.now(), agent: 'test' }), { qos: 1, retain: true });
    const online = async () => ((await (await a.api(`/api/v1/hubs/${h}`)).json()) as { link: { online: boolean } }).link.online;
    await expect.poll(online, { timeout: 10_000, interval: 100 }).toBe(true);
    const key = `will:wp-c:${encodeURIComponent(`${h}.agent`)}`;
    expect(await r.lrange('will', 0, -1)).toEqual([key]);

    // Paused: node A takes C for dead (3 heartbeats) and publishes and deletes the will (its next round, ≤ 8 s later).
    const accepted = await statusAccepted(a);
    c.child.kill('SIGSTOP');
    await expect.poll(() => r.lrange('will', 0, -1), { timeout: 30_000, interval: 200 }).toEqual([]);
    expect(await statusAccepted(a)).toBe(accepted + 1);
    c.child.kill('SIGCONT');
    // Running again: the will of its still-connected hub is stored again, and nobody's claim holds it.
    // (The node stores the will, then deletes the claim: two Redis commands, so both are polled together.)
    await expect.poll(async () => [await r.lrange('will', 0, -1), await r.exists(`will-claim:${key}`)], { timeout: 15_000, interval: 100 }).toEqual([[key], 0]);
    expect(hub.connected).toBe(true);
    expect(await online()).toBe(true);

    // Its later death announces the hub's link loss again.
    await c.kill('SIGKILL');
    c = null;
    await expect.poll(() => statusAccepted(a), { timeout: 30_000, interval: 200 }).toBe(accepted + 2);
    await expect.poll(() => r.lrange('will', 0, -1), { timeout: 5_000, interval: 100 }).toEqual([]);
  });
});
