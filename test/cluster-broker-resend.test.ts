import net from 'node:net';
import { Aedes } from 'aedes';
import { Redis } from 'ioredis';
import type { MqttClient } from 'mqtt';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createBrokerCluster, type BrokerCluster } from '../cloud/broker/cluster-broker.ts';
import { topics } from '../contract/index.ts';
import { connect } from './support/mqtt-client.ts';
import { startRedis, type RedisServer } from './support/redis.ts';

/**
 * The cluster broker (cloud/broker/cluster-broker.ts) alone on a real redis-server: region modes sent
 * again after a Redis reconnect race the node's other publishes of that moment (the cloud sends every
 * connected hub its pending commands right after the same reconnect). aedes drops a packet whose
 * counter is not above the highest its client has had from that broker id.
 */
const REGION = 'ishikawa-nomi';
const mode = topics.regionMode(REGION);
let redis: RedisServer;
let cluster: BrokerCluster;
let aedes: Aedes;
let server: net.Server;
let url: string;
const clients: MqttClient[] = [];

beforeAll(async () => {
  redis = await startRedis();
  cluster = createBrokerCluster({ nodeId: 'n1', redisUrl: redis.url, logger: pino({ level: 'silent' }), concurrency: 100 });
  aedes = await Aedes.createBroker(cluster.aedesOptions as never);
  await cluster.attach(aedes, async () => undefined);
  server = net.createServer((s) => aedes.handle(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}, 30_000);
afterAll(async () => {
  for (const c of clients) c.end(true);
  await new Promise<void>((r) => aedes.close(() => r()));
  server.close();
  await cluster.close();
  await redis.stop();
});

const publish = (topic: string, payload: string, retain = false) =>
  new Promise<void>((r) => aedes.publish({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 1, retain, dup: false } as never, () => r()));

it('a region mode sent again reaches a hub that is sent a command in the same moment; nothing of it stays in Redis', { timeout: 30_000 }, async () => {
  await publish(mode, '{"mode":"m1"}', true);
  // Persistent sessions on the node: the re-send is queued for them before it goes out.
  for (let i = 0; i < 5; i++) {
    const c = await connect(url, { clientId: `persistent-${i}`, clean: false });
    clients.push(c);
    await c.subscribeAsync(mode, { qos: 1 });
  }
  const cmd = topics.command(REGION, 'hub-h', 'locker', 'l1');
  const hub = await connect(url, { clientId: 'hub-h' });
  clients.push(hub);
  const got: string[] = [];
  hub.on('message', (topic) => got.push(topic));
  await hub.subscribeAsync([mode, cmd], { qos: 1 });
  await expect.poll(() => got.filter((t) => t === mode).length).toBe(1);
  // As the cloud does after a reconnect: the hubs' pending commands at once.
  cluster.onReconnect(() => void publish(cmd, '{"cmd":1}'));
  const r = new Redis(redis.url);
  try {
    const line = String(await r.client('LIST')).split('\n').find((l) => l.includes(' name=n1:sessions '))!;
    await r.client('KILL', 'ID', /id=(\d+)/.exec(line)![1]!);
    await expect.poll(() => got.includes(cmd), { timeout: 10_000 }).toBe(true);
    await expect.poll(() => got.filter((t) => t === mode).length, { timeout: 5_000 }).toBe(2);
    // Every copy acknowledged: no packet of this node's left queued in Redis.
    await expect.poll(async () => (await r.keys('packet:*')).length, { timeout: 5_000 }).toBe(0);
  } finally {
    r.disconnect();
  }
});

it("refuses a NODE_ID with ':' (part of Redis keys) or '~' (<node>~resent is a node's re-send id)", () => {
  for (const nodeId of ['n:1', 'n1~resent']) {
    expect(() => createBrokerCluster({ nodeId, redisUrl: redis.url, logger: pino({ level: 'silent' }), concurrency: 1 }), nodeId).toThrow(/NODE_ID must not contain/);
  }
});
