import Database from 'better-sqlite3';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { generate, parser as mqttParser, type Packet } from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { topics } from '../contract/index.ts';
import type { TestCloud } from './support/cloud-harness.ts';
import { spawnCloud, startTestCloud, tempDir, testCloudEnv, type CloudProcess } from './support/cloud-harness.ts';
import { closed, connect } from './support/mqtt-client.ts';
import { startHaproxy } from './support/haproxy.ts';
import { startRedis, type RedisServer } from './support/redis.ts';
import { freshPostgresUrl } from './support/test-database.ts';

/**
 * The clustered MQTT broker (issue 15, item 1): aedes with mqemitter-redis and aedes-persistence-redis
 * (cloud/broker/cluster-broker.ts) on a real redis-server, nodes sharing a real PostgreSQL database.
 * REDIS_URL in this file: it runs on PostgreSQL in the first pass only (vitest.postgres.config.ts).
 */

const REGION = 'ishikawa-nomi';

let redis: RedisServer;
let db: string;
let a: TestCloud;
let b: TestCloud;
const clients: MqttClient[] = [];

function node(id: string, fromDir?: string): Promise<TestCloud> {
  const dir = tempDir(id);
  if (fromDir) fs.copyFileSync(path.join(fromDir, 'credentials.json'), path.join(dir, 'credentials.json'));
  return startTestCloud({ DATABASE_URL: db, REDIS_URL: redis.url, NODE_ID: id }, dir);
}

beforeAll(async () => {
  redis = await startRedis();
  db = await freshPostgresUrl();
  a = await node('node-a');
  b = await node('node-b', a.dataDir);
});
afterAll(async () => {
  for (const c of clients) c.end(true);
  await b?.stop();
  await a?.stop();
  await redis?.stop();
});

const hubIds = () => Object.keys(a.credentials).sort();

async function hub(t: TestCloud, hubId: string, suffix: string, extra: Parameters<typeof connect>[1] = {}): Promise<MqttClient> {
  const creds = a.credentials[hubId]!;
  const c = await connect(t.cloud.urls.mqtt, { username: creds.username, password: creds.password, clientId: `${hubId}.${suffix}`, ...extra });
  clients.push(c);
  return c;
}

/** Messages a client receives, by topic. */
function inbox(c: MqttClient): Map<string, string[]> {
  const seen = new Map<string, string[]>();
  c.on('message', (topic, payload) => seen.set(topic, [...(seen.get(topic) ?? []), payload.toString()]));
  return seen;
}

async function statusAccepted(t: TestCloud): Promise<number> {
  const m = t.cloud.metrics.registry.getSingleMetric('ingest_messages_accepted_total');
  const v = (await m!.get()).values.find((x) => x.labels.type === 'hub.status');
  return v?.value ?? 0;
}

/** A node as its own process (cloud/main.ts), on the file's Redis and database. */
async function spawnNode(id: string): Promise<CloudProcess & { dataDir: string }> {
  const dir = tempDir(id);
  fs.copyFileSync(path.join(a.dataDir, 'credentials.json'), path.join(dir, 'credentials.json'));
  return Object.assign(await spawnCloud(testCloudEnv(dir, { DATABASE_URL: db, REDIS_URL: redis.url, NODE_ID: id })), { dataDir: dir });
}

/** Hubs connected to `url` as their agents would be, each with its "offline" status (at `ts`) as last will. */
async function hubsWithWills(url: string, hubs: readonly string[], suffix: string, ts: number | (() => number), agent: string): Promise<void> {
  for (const h of hubs) {
    const creds = a.credentials[h]!;
    const at = typeof ts === 'number' ? ts : ts();
    const client = await connect(url, {
      username: creds.username, password: creds.password, clientId: `${h}.${suffix}`, keepalive: 60,
      will: { topic: topics.status(REGION, h), payload: Buffer.from(JSON.stringify({ v: 1, type: 'hub.status', hub: h, state: 'offline', ts: at, agent })), qos: 1, retain: true },
    });
    client.on('error', () => undefined);
    clients.push(client);
  }
}

/** Ends a node's session connection to Redis (a blip; once it is connected): the node re-reads the retained messages and sends the region modes again. */
async function blipSessions(nodeId: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const r = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  try {
    const id = await vi.waitFor(async () => {
      const line = String(await r.client('LIST')).split('\n').find((l) => l.includes(` name=${nodeId}:sessions `));
      const found = line && /id=(\d+)/.exec(line)?.[1];
      if (!found) throw new Error(`${nodeId} has no session connection to Redis`);
      return found;
    }, { timeout: 10_000, interval: 50 });
    await r.client('KILL', 'ID', id);
  } finally {
    r.disconnect();
  }
}

describe('clustered broker: two in-process nodes on one Redis and one PostgreSQL', () => {
  it('a hub on node B gets what node A publishes: commands, acks, region modes (retained, also for a hub subscribing later)', async () => {
    const h = hubIds()[0]!;
    const onB = await hub(b, h, 'b');
    const got = inbox(onB);
    await onB.subscribeAsync(topics.hubSubscriptions(REGION, h), { qos: 1 });
    const cmd = topics.command(REGION, h, 'locker', 'locker-x');
    await a.cloud.broker.publish(cmd, '{"cross":"node"}', { qos: 1 });
    await a.cloud.broker.publish(topics.ack(REGION, h), '{"ack":1}', { qos: 1 });
    await expect.poll(() => got.get(cmd), { timeout: 5_000, interval: 20 }).toEqual(['{"cross":"node"}']);
    await expect.poll(() => got.get(topics.ack(REGION, h)), { timeout: 5_000, interval: 20 }).toEqual(['{"ack":1}']);

    // A region mode as the mode service publishes it: retained.
    await a.cloud.broker.publish(topics.regionMode(REGION), '{"mode":"test-1"}', { qos: 1, retain: true });
    await expect.poll(() => got.get(topics.regionMode(REGION))?.at(-1), { timeout: 5_000, interval: 20 }).toBe('{"mode":"test-1"}');
    // A hub subscribing later, on either node, gets the retained message from that node's index.
    for (const t of [b, a]) {
      const later = await hub(t, hubIds()[1]!, `later-${t === a ? 'a' : 'b'}`);
      const laterGot = inbox(later);
      await later.subscribeAsync(topics.hubSubscriptions(REGION, hubIds()[1]!), { qos: 1 });
      await expect.poll(() => laterGot.get(topics.regionMode(REGION))?.at(-1), { timeout: 5_000, interval: 20 }).toBe('{"mode":"test-1"}');
      later.end(true);
    }
  });

  it('hub subscriptions add no Redis pattern subscriptions (one per node for every hub topic)', async () => {
    const { Redis } = await import('ioredis');
    const r = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      const before = Number(await r.pubsub('NUMPAT'));
      for (const [i, h] of hubIds().slice(12, 16).entries()) {
        const c = await hub(i % 2 ? a : b, h, 'numpat');
        await c.subscribeAsync(topics.hubSubscriptions(REGION, h), { qos: 1 });
      }
      expect(Number(await r.pubsub('NUMPAT'))).toBe(before);
      expect(Number(await r.pubsub('NUMSUB', topics.ack(REGION, hubIds()[12]!)).then((x) => x[1]))).toBe(0);
    } finally {
      r.disconnect();
    }
  });

  it('a client id taken over on the other node closes the old connection', async () => {
    const h = hubIds()[2]!;
    const first = await hub(a, h, 'same');
    const gone = closed(first, 10_000);
    await hub(b, h, 'same');
    expect(await gone).toBe(true);
  });

  it('a QoS 1 publish to node B is stored before its PUBACK (ingest in-process on B)', async () => {
    const h = hubIds()[3]!;
    const onB = await hub(b, h, 'ingest');
    const id = `cluster-puback-${Date.now()}`;
    await onB.publishAsync(topics.device(REGION, h, 'sensor', 'wx', 'telemetry'), JSON.stringify({
      v: 1, type: 'sensor.telemetry', id, ts: Date.now(), hub: h, device: 'wx',
      windSpeedMps: 3.5, windGustMps: 4, windDirDeg: 90, rainMmPerH: 0, airTempC: 12, gridPowerUp: true, backupBatteryPct: 90, linkQualityPct: 80,
    }), { qos: 1 });
    // PUBACK came: B's store already holds it (no waiting).
    const r = await b.api(`/api/v1/hubs/${h}`);
    const states = ((await r.json()) as { deviceStates: { device: string; telemetry: { windSpeedMps?: number } | null }[] }).deviceStates;
    expect(states.find((d) => d.device === 'wx')?.telemetry?.windSpeedMps).toBe(3.5);
  });
});

describe('clustered broker: a command issued while the hub is away', () => {
  // The hub's SUBSCRIBE, sent on CONNACK, is often handled before aedes' clientReady (in a cluster the
  // last connect step is a Redis round trip); re-delivery skipped there left 13 of 60 such reconnects
  // without the command. 30 reconnects: each would miss with ~1 chance in 5.
  it('reaches it on every reconnect to the other node, sent on CONNACK as the edge agent does', { timeout: 60_000 }, async () => {
    const h = hubIds().slice(4, 8).find((id) => [...(a.cloud.live.hubs.get(id)?.devices.values() ?? [])].some((d) => d.kind === 'locker'))!;
    const locker = [...a.cloud.live.hubs.get(h)!.devices].find(([, d]) => d.kind === 'locker')![0];
    const missed: string[] = [];
    for (let i = 0; i < 30; i++) {
      const issued = await a.cloud.commands.issue({ hub: h, device: locker, command: 'locker.unlock', args: { compartment: 'A01' }, ttlS: 300 });
      const c = await hub(b, h, 'away');
      const got = inbox(c);
      await c.subscribeAsync(topics.hubSubscriptions(REGION, h), { qos: 1 });
      const delivered = await vi.waitFor(() => {
        if (!(got.get(topics.command(REGION, h, 'locker', locker)) ?? []).some((m) => m.includes(issued.id))) throw new Error('not yet');
      }, { timeout: 3_000, interval: 10 }).then(() => true, () => false);
      if (!delivered) missed.push(issued.id);
      // Answered, so the next reconnect re-delivers only the next command.
      await a.cloud.commands.applyAck({ v: 1, type: 'hub.command-ack', id: `away-${i}`, ts: Date.now(), hub: h, device: locker, commandId: issued.id, result: 'done' });
      await c.endAsync(true);
    }
    expect(missed, 'commands not re-delivered on the reconnect after they were issued').toEqual([]);
  });
});

describe('clustered broker: Redis restarted (no persistence: it comes back empty)', () => {
  it('no node crashes; connected hubs keep publishing with PUBACKs; new logins wait or are refused; afterwards commands and the retained mode cross nodes again', { timeout: 60_000 }, async () => {
    const h = hubIds()[8]!;
    const onB = await hub(b, h, 'redis-down');
    const got = inbox(onB);
    await onB.subscribeAsync(topics.hubSubscriptions(REGION, h), { qos: 1 });
    await a.cloud.broker.publish(topics.regionMode(REGION), '{"mode":"before-redis-restart"}', { qos: 1, retain: true });
    await expect.poll(() => got.get(topics.regionMode(REGION))?.at(-1), { timeout: 5_000, interval: 20 }).toBe('{"mode":"before-redis-restart"}');

    await redis.stop({ keepData: true });
    // A QoS 1 reading to B while Redis is down: acknowledged (ingest is in-process; nothing waits for Redis).
    const id = `redis-down-${Date.now()}`;
    await onB.publishAsync(topics.device(REGION, h, 'sensor', 'wx', 'telemetry'), JSON.stringify({
      v: 1, type: 'sensor.telemetry', id, ts: Date.now(), hub: h, device: 'wx',
      windSpeedMps: 9.5, windGustMps: 10, windDirDeg: 90, rainMmPerH: 0, airTempC: 12, gridPowerUp: true, backupBatteryPct: 90, linkQualityPct: 80,
    }), { qos: 1 });
    // A new login while Redis is down needs the shared session store.
    const creds = a.credentials[hubIds()[9]!]!;
    const login = await new Promise<string>((resolve) => {
      const c = mqtt.connect(a.cloud.urls.mqtt, { username: creds.username, password: creds.password, clientId: `${hubIds()[9]}.during`, reconnectPeriod: 0, connectTimeout: 5_000, protocolVersion: 4 });
      clients.push(c);
      const started = Date.now();
      c.once('connect', () => resolve(`connected after ${Date.now() - started} ms`));
      c.once('error', (err) => resolve(`refused after ${Date.now() - started} ms: ${err.message}`));
      c.once('close', () => resolve(`closed by the broker after ${Date.now() - started} ms`));
    });
    expect(login).not.toMatch(/^connected/);
    console.log(`a login during the Redis outage: ${login}`);

    await redis.start();
    // Back: a command from A reaches the hub on B (subscriptions re-made by ioredis), and a hub that
    // subscribes now gets the retained mode (written back to the empty Redis by the nodes).
    const cmd = topics.command(REGION, h, 'locker', 'locker-after');
    await expect.poll(async () => {
      await a.cloud.broker.publish(cmd, '{"after":"restart"}', { qos: 1 }).catch(() => undefined);
      return got.get(cmd)?.length ?? 0;
    }, { timeout: 20_000, interval: 500 }).toBeGreaterThan(0);
    const later = await hub(a, hubIds()[10]!, 'after');
    const laterGot = inbox(later);
    await later.subscribeAsync(topics.hubSubscriptions(REGION, hubIds()[10]!), { qos: 1 });
    await expect.poll(() => laterGot.get(topics.regionMode(REGION))?.at(-1), { timeout: 5_000, interval: 20 }).toBe('{"mode":"before-redis-restart"}');
    await expect.poll(async () => (await import('ioredis').then(async ({ Redis }) => {
      const r = new Redis(redis.url, { maxRetriesPerRequest: 1 });
      try {
        return await r.hexists('retained', topics.regionMode(REGION));
      } finally {
        r.disconnect();
      }
    })), { timeout: 10_000, interval: 200 }).toBe(1);
  });
});

describe('clustered broker: a command and a mode issued on node A while Redis is down', () => {
  it('reach the hub on node B once Redis is back (pending command re-delivered, mode delivered again)', { timeout: 60_000 }, async () => {
    const h = 'nomi-kokufu'; // has a locker (config/regions/ishikawa-nomi.json)
    const onB = await hub(b, h, 'gap');
    const got = inbox(onB);
    await onB.subscribeAsync(topics.hubSubscriptions(REGION, h), { qos: 1 });
    await redis.stop({ keepData: true });
    const issued = await a.cloud.commands.issue({ hub: h, device: 'locker-a', command: 'locker.unlock', args: { compartment: 'A01' }, ttlS: 300 } as never).catch((err: Error) => err);
    const modePublish = await a.cloud.broker.publish(topics.regionMode(REGION), '{"mode":"during-outage"}', { qos: 1, retain: true }).then(() => 'published', (err: Error) => `failed: ${err.message}`);
    console.log(`during the outage: command ${issued instanceof Error ? `refused: ${issued.message}` : 'stored'}, mode publish ${modePublish}`);
    await redis.start();
    await expect.poll(() => got.get(topics.regionMode(REGION))?.at(-1), { timeout: 15_000, interval: 50 }).toBe('{"mode":"during-outage"}');
    expect(issued).not.toBeInstanceOf(Error);
    await expect.poll(() => got.get(topics.command(REGION, h, 'locker', 'locker-a'))?.length ?? 0, { timeout: 15_000, interval: 50 }).toBeGreaterThan(0);
  });
});

describe('clustered broker: packets sent again, and a node restarted with the same NODE_ID', () => {
  // aedes drops a packet for a client unless its broker counter is above the highest that client has had
  // from that broker; a node restarted with the same NODE_ID counted from 0 again.
  it('a region mode sent again after a Redis reconnect reaches a hub that has had newer packets from the node that published it; commands through that node, restarted, still reach the hub', { timeout: 60_000 }, async () => {
    const h = 'nomi-terai';
    const creds = a.credentials[h]!;
    const onB = await connect(b.cloud.urls.mqtt, { username: creds.username, password: creds.password, clientId: `${h}.resent` });
    clients.push(onB);
    const got = inbox(onB);
    await onB.subscribeAsync(topics.hubSubscriptions(REGION, h), { qos: 1 });
    const locker = [...a.cloud.live.hubs.get(h)!.devices].find(([, d]) => d.kind === 'locker')![0];
    const reaches = async (t: TestCloud) => {
      const c = await t.cloud.commands.issue({ hub: h, device: locker, command: 'locker.unlock', args: { compartment: 'A01' }, ttlS: 300 });
      const arrived = await vi.waitFor(() => {
        if (!(got.get(topics.command(REGION, h, 'locker', locker)) ?? []).some((m) => m.includes(c.id))) throw new Error('not yet');
      }, { timeout: 3_000, interval: 10 }).then(() => true, () => false);
      await t.cloud.commands.applyAck({ v: 1, type: 'hub.command-ack', id: `resent-${c.id}`, ts: Date.now(), hub: h, device: locker, commandId: c.id, result: 'done' });
      return arrived;
    };
    const modes = () => got.get(topics.regionMode(REGION)) ?? [];
    const blip = () => blipSessions('node-b');

    // Node A's mode, then a command from A (a higher counter).
    for (let i = 0; i < 3_000; i++) await a.cloud.broker.publish('test/counter', 'x', { qos: 0 });
    await a.cloud.broker.publish(topics.regionMode(REGION), '{"mode":"resent-1"}', { qos: 1, retain: true });
    await expect.poll(() => modes().at(-1), { timeout: 5_000, interval: 20 }).toBe('{"mode":"resent-1"}');
    expect(await reaches(a)).toBe(true);
    const before = modes().length;
    await blip();
    await expect.poll(() => modes().length, { timeout: 10_000, interval: 20 }).toBe(before + 1);

    // Node A restarts with the same NODE_ID (its mode stays in every node's retained index); B resends it.
    await a.stop();
    a = await node('node-a', b.dataDir);
    await blip();
    await expect.poll(() => modes().length, { timeout: 10_000, interval: 20 }).toBe(before + 2);
    expect(await reaches(a), 'a command through the restarted node A').toBe(true);
    expect(await reaches(b)).toBe(true);
  });
  it('a hub with a persistent session subscribes (SUBACK for its three topics), gets a region mode sent again with nothing of it left in Redis once acknowledged, and its commands', { timeout: 30_000 }, async () => {
    const h = 'nomi-wake';
    const creds = a.credentials[h]!;
    const hub = await connect(b.cloud.urls.mqtt, { username: creds.username, password: creds.password, clientId: `${h}.persistent`, clean: false });
    clients.push(hub);
    const got = inbox(hub);
    // All three of a hub's subscriptions in one SUBSCRIBE (with clean=false it got no SUBACK before).
    await hub.subscribeAsync(topics.hubSubscriptions(REGION, h), { qos: 1 });
    await a.cloud.broker.publish(topics.regionMode(REGION), '{"mode":"persistent-1"}', { qos: 1, retain: true });
    const modes = () => got.get(topics.regionMode(REGION)) ?? [];
    await expect.poll(() => modes().at(-1), { timeout: 5_000, interval: 20 }).toBe('{"mode":"persistent-1"}');
    const { Redis } = await import('ioredis');
    const r = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      const packetsOfB = async () => (await r.keys('packet:node-b:*')).length;
      await expect.poll(packetsOfB, { timeout: 5_000, interval: 50 }).toBe(0);
      for (let i = 1; i <= 3; i++) {
        await blipSessions('node-b');
        await expect.poll(() => modes().length, { timeout: 10_000, interval: 20 }).toBeGreaterThan(i);
      }
      // Each copy was queued for the session and cleared by its PUBACK.
      await expect.poll(packetsOfB, { timeout: 5_000, interval: 50 }).toBe(0);
      // And its commands reach it, from either node.
      const locker = [...a.cloud.live.hubs.get(h)!.devices].find(([, d]) => d.kind === 'locker')![0];
      for (const t of [a, b]) {
        const c = await t.cloud.commands.issue({ hub: h, device: locker, command: 'locker.unlock', args: { compartment: 'A01' }, ttlS: 300 });
        await expect.poll(() => (got.get(topics.command(REGION, h, 'locker', locker)) ?? []).some((m) => m.includes(c.id)), { timeout: 5_000, interval: 20 }).toBe(true);
      }
    } finally {
      r.disconnect();
    }
  });
});

describe('clustered broker: persistent sessions', () => {
  // The session store's broadcast waits for its own confirmation under one key per client and first
  // topic: two SUBSCRIBEs of a clean=false hub in flight with the same first stored topic left one unanswered.
  it('two SUBSCRIBEs in flight are both answered, also when the first starts with a refused topic or both with the same one', { timeout: 30_000 }, async () => {
    const h = 'nomi-neagari';
    const own = topics.ack(REGION, h);
    for (const [i, first] of [topics.regionMode(REGION), topics.command(REGION, 'nomi-terai', 'locker', 'locker-a'), own].entries()) {
      const creds = a.credentials[h]!;
      const socket = net.connect(Number(new URL(b.cloud.urls.mqtt).port), '127.0.0.1');
      socket.on('error', () => undefined);
      const packets: Packet[] = [];
      const parser = mqttParser();
      parser.on('packet', (pk) => packets.push(pk));
      socket.on('data', (d: Buffer) => parser.parse(d));
      try {
        socket.write(generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: false, clientId: `${h}.two-${i}`, keepalive: 30, username: creds.username, password: Buffer.from(creds.password) }));
        await expect.poll(() => packets.some((pk) => pk.cmd === 'connack')).toBe(true);
        socket.write(Buffer.concat([
          generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: first, qos: 1 }, { topic: own, qos: 1 }] }),
          generate({ cmd: 'subscribe', messageId: 2, subscriptions: [{ topic: own, qos: 1 }] }),
        ]));
        await expect.poll(() => packets.filter((pk) => pk.cmd === 'suback').map((pk) => (pk as { messageId: number }).messageId).sort(), { timeout: 5_000 }).toEqual([1, 2]);
      } finally {
        socket.destroy();
      }
    }
  });
});

describe('clustered broker: a persistent session stored before its subscriptions were filtered', () => {
  // Until fcea167 a clean=false SUBSCRIBE was stored with its refused topics too: another hub's commands
  // were then queued for the session in Redis while it was away (never delivered since: authorizeForward).
  it('loses the refused subscription at its next login, and nothing on it is queued for it any more', { timeout: 60_000 }, async () => {
    const h = 'nomi-tatsunokuchi';
    const other = 'nomi-terai';
    const id = `${h}.legacy`;
    const own = topics.ack(REGION, h);
    const foreign = topics.hubSubscriptions(REGION, other)[0]!; // the other hub's cmd/#
    const { Redis } = await import('ioredis');
    const { createRequire } = await import('node:module');
    // The session store's own encoding (aedes-persistence-redis stores each subscription msgpack-encoded).
    const msgpack = createRequire(createRequire(import.meta.url).resolve('aedes-persistence-redis'))('msgpack-lite') as { encode(v: unknown): Buffer };
    const r = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    let g: TestCloud | null = null;
    try {
      const subsKey = `client:${encodeURIComponent(id)}`;
      const queued = () => r.llen(`outgoing:${encodeURIComponent(id)}`);
      await r.hset(subsKey, own, msgpack.encode({ topic: own, qos: 1 }), foreign, msgpack.encode({ topic: foreign, qos: 1 }));
      await r.sadd('clients', id);
      // A node started now loads the stored session, as every node did after such a session was stored.
      g = await node('node-g', a.dataDir);
      const locker = [...g.cloud.live.hubs.get(other)!.devices].find(([, d]) => d.kind === 'locker')![0];
      const command = () => g!.cloud.commands.issue({ hub: other, device: locker, command: 'locker.unlock', args: { compartment: 'A01' }, ttlS: 300 });
      await command();
      await expect.poll(queued, { timeout: 5_000, interval: 50 }).toBe(1); // the defect this cleans up

      const creds = a.credentials[h]!;
      const back = await connect(g.cloud.urls.mqtt, { username: creds.username, password: creds.password, clientId: id, clean: false });
      await expect.poll(async () => (await r.hkeys(subsKey)).sort(), { timeout: 5_000, interval: 50 }).toEqual([own]);
      back.end();
      await closed(back);
      // aedes queues a message for offline sessions before it delivers it to connected ones: once the
      // other hub has the next command, it would have been queued for this session too.
      const watcher = await hub(g, other, 'watch');
      const got = inbox(watcher);
      await watcher.subscribeAsync(foreign, { qos: 1 });
      const next = await command();
      await expect.poll(() => [...got.values()].flat().some((m) => m.includes(next.id)), { timeout: 5_000, interval: 20 }).toBe(true);
      // The copy queued before was dropped at the login (authorizeForward); none came after it.
      await expect.poll(queued, { timeout: 5_000, interval: 50 }).toBe(0);
    } finally {
      r.disconnect();
      await g?.stop();
    }
  });
});

describe('clustered broker: a node killed with kill -9', () => {
  let c: CloudProcess | null = null;
  afterAll(async () => {
    await c?.kill('SIGKILL');
  });

  it('its hubs\' last wills are published once, by a surviving node, and go through its ingest', { timeout: 60_000 }, async () => {
    c = await spawnNode('node-c');
    const ours = hubIds().slice(4, 7);
    const before = (await statusAccepted(a)) + (await statusAccepted(b));
    await hubsWithWills(c.urls.mqtt, ours, 'agent', Date.now, 'test');
    const killedAt = Date.now();
    await c.kill('SIGKILL');
    await expect.poll(async () => (await statusAccepted(a)) + (await statusAccepted(b)) - before, { timeout: 30_000, interval: 100 }).toBe(ours.length);
    const tookMs = Date.now() - killedAt;
    // The surviving nodes show the hubs offline.
    for (const t of [a, b]) {
      for (const h of ours) {
        await expect.poll(async () => ((await (await t.api(`/api/v1/hubs/${h}`)).json()) as { link: { online: boolean } }).link.online, { timeout: 10_000, interval: 100 }).toBe(false);
      }
    }
    // Every surviving node runs aedes' round of dead brokers' wills (every 4 heartbeats = 8 s): after
    // two more rounds still once each. (Waiting out the rounds is the point: a duplicate would come then.)
    await new Promise((r) => setTimeout(r, 17_000));
    expect((await statusAccepted(a)) + (await statusAccepted(b)) - before).toBe(ours.length);
    console.log(`wills of ${ours.length} hubs published ${tookMs} ms after kill -9 of their node`);
  });
});

describe('clustered broker: a node stopped gracefully (SIGTERM)', () => {
  let e: (CloudProcess & { dataDir: string }) | null = null;
  afterAll(async () => {
    await e?.kill('SIGKILL');
  });

  it('publishes its hubs\' last wills itself and leaves none in Redis for the next start or another node to publish again', { timeout: 60_000 }, async () => {
    e = await spawnNode('node-e');
    const { Redis } = await import('ioredis');
    const r = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    try {
      const ours = hubIds().slice(4, 7);
      const ts = Date.now();
      await hubsWithWills(e.urls.mqtt, ours, 'agent-e', ts, 'graceful');
      const ownWills = async () => (await r.lrange('will', 0, -1)).filter((k) => k.startsWith('will:node-e:'));
      const stored = async () => (await r.exists(...(await ownWills()))) as number;
      expect(await stored()).toBe(ours.length);

      expect(await e.kill('SIGTERM')).toBe(0);
      // Published by node-e as it closed the connections, through its own ingest (its telemetry.db here: no INFLUX_URL).
      const telemetry = new Database(path.join(e.dataDir, 'telemetry.db'), { readonly: true });
      try {
        const wills = telemetry.prepare("SELECT hub FROM points WHERE measurement = 'hub_status' AND ts = ? ORDER BY hub").all(ts) as { hub: string }[];
        expect(wills.map((w) => w.hub)).toEqual([...ours].sort());
      } finally {
        telemetry.close();
      }
      // No stored copy left: nobody can publish them a second time.
      expect(await stored()).toBe(0);
    } finally {
      r.disconnect();
    }
  });
});

describe('clustered broker behind HAProxy', () => {
  let d: CloudProcess | null = null;
  afterAll(async () => {
    await d?.kill('SIGKILL');
  });

  it('a hub connected through HAProxy to a node killed with kill -9 is cut and reconnects to a surviving node, where commands from the other node reach it', { timeout: 60_000 }, async () => {
    d = await spawnNode('node-d');
    const port = (u: string) => Number(new URL(u).port);
    const lb = await startHaproxy([
      { name: 'node-a', port: port(a.cloud.urls.mqtt), checkPort: port(a.cloud.urls.http) },
      { name: 'node-d', port: port(d.urls.mqtt), checkPort: port(d.urls.http) },
    ]);
    try {
      await lb.waitForStatus('node-a', 'UP');
      await lb.waitForStatus('node-d', 'UP');
      // New connections to node D only, so the hub lands there.
      await lb.setServerState('node-a', 'drain');
      const h = hubIds()[11]!;
      const creds = a.credentials[h]!;
      const client = mqtt.connect(lb.url, { username: creds.username, password: creds.password, clientId: `${h}.lb`, reconnectPeriod: 200, connectTimeout: 5_000, protocolVersion: 4 });
      clients.push(client);
      client.on('error', () => undefined);
      const got = inbox(client);
      let connects = 0;
      client.on('connect', () => {
        connects++;
        void client.subscribeAsync(topics.hubSubscriptions(REGION, h), { qos: 1 }).catch(() => undefined);
      });
      await expect.poll(() => connects, { timeout: 10_000 }).toBe(1);
      expect((await lb.servers()).find((s) => s.name === 'node-d')?.sessions).toBe(1);
      await lb.setServerState('node-a', 'ready');

      const killedAt = Date.now();
      await d.kill('SIGKILL');
      await expect.poll(() => connects, { timeout: 20_000, interval: 50 }).toBe(2);
      const reconnectMs = Date.now() - killedAt;
      await lb.waitForStatus('node-d', 'DOWN', 10_000);
      expect((await lb.servers()).find((s) => s.name === 'node-a')?.sessions).toBe(1);
      // On node A now; a command published on node B reaches it.
      const cmd = topics.command(REGION, h, 'locker', 'locker-lb');
      await expect.poll(async () => {
        await b.cloud.broker.publish(cmd, '{"via":"haproxy"}', { qos: 1 });
        return got.get(cmd)?.length ?? 0;
      }, { timeout: 10_000, interval: 300 }).toBeGreaterThan(0);
      console.log(`through HAProxy: the hub reconnected ${reconnectMs} ms after kill -9 of its node`);
      client.end(true);
    } finally {
      await lb.stop();
    }
  });
});
