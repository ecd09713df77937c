import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Redis } from 'ioredis';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topics } from '../contract/index.ts';
import type { TestCloud } from './support/cloud-harness.ts';
import { startTestCloud, tempDir } from './support/cloud-harness.ts';
import { connect } from './support/mqtt-client.ts';
import { startRedis, type RedisServer } from './support/redis.ts';
import { freshPostgresUrl } from './support/test-database.ts';

/**
 * A hub's last will speaks for the hub only (red-team finding H7-1, issue 15): hub X, with its own
 * valid credentials, connected with a will on hub Y's status topic; aedes stored it unchecked and,
 * when X's node died, another node published it as Y's status (retained "offline", a future ts that
 * beat Y's real statuses for minutes). Now the will is checked at login (CONNACK 5 on every node),
 * and a stored will published without its connection — a dead node's, or a node's previous run's —
 * is skipped, counted and deleted unless its client id belongs to the hub its topic names (wills
 * stored by an older version, or written into Redis; planted here the way aedes-persistence-redis
 * stores them). Real redis-server and PostgreSQL; nodes in this process.
 */
const REGION = 'ishikawa-nomi';
const requireFromPersistence = createRequire(createRequire(import.meta.url).resolve('aedes-persistence-redis'));
const msgpack = requireFromPersistence('msgpack-lite') as { encode(v: unknown): Buffer; decode(b: Buffer): unknown };

let redis: RedisServer;
let r: Redis;
let db: string;
let a: TestCloud | null = null;
let b: TestCloud | null = null;
const clients: MqttClient[] = [];

beforeAll(async () => {
  redis = await startRedis();
  r = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await r.connect();
  db = await freshPostgresUrl();
});
afterAll(async () => {
  for (const c of clients) c.end(true);
  await a?.stop();
  await b?.stop();
  r?.disconnect();
  await redis?.stop();
});

// Fixed hubs of the region: the attacker, the hub it targets, and two hubs whose wills are honest.
const [ATTACKER, VICTIM, HONEST_1, HONEST_2] = ['nomi-neagari', 'nomi-terai', 'nomi-wake', 'nomi-kokufu'];
const status = (hub: string, state: 'online' | 'offline', ts = Date.now()) => Buffer.from(JSON.stringify({ v: 1, type: 'hub.status', hub, state, ts, agent: 'test' }));

/** A will as aedes-persistence-redis stores it (putWill): `will:<broker>:<client id>` and its key in the `will` list. */
async function plantWill(brokerId: string, clientId: string, topic: string, payload: Buffer): Promise<void> {
  const key = `will:${brokerId}:${encodeURIComponent(clientId)}`;
  await r.set(key, msgpack.encode({ cmd: 'publish', topic, payload, qos: 1, retain: true, dup: false, clientId, brokerId }));
  await r.rpush('will', key);
}

async function counter(t: TestCloud | null, name: string, labels: Record<string, string>): Promise<number> {
  const m = t?.cloud.metrics.registry.getSingleMetric(name);
  if (!m) return 0;
  return (await m.get()).values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value ?? 0;
}
const refusedWills = async () => (await counter(a, 'mqtt_publish_denied_total', { reason: 'will_foreign_client_id' })) + (await counter(b, 'mqtt_publish_denied_total', { reason: 'will_foreign_client_id' }));
const statusesAccepted = async () => (await counter(a, 'ingest_messages_accepted_total', { type: 'hub.status' })) + (await counter(b, 'ingest_messages_accepted_total', { type: 'hub.status' }));
const statusOn = (t: TestCloud, hub: string) => t.cloud.live.hubs.get(hub)?.link.status?.state ?? null;
/** The retained status in Redis (what every node's index and a starting node load). */
const retainedStatus = async (hub: string) => {
  const buf = await r.hgetBuffer('retained', topics.status(REGION, hub));
  return buf === null ? null : (msgpack.decode(buf) as { payload: Buffer });
};
const retainedState = async (hub: string) => {
  const p = await retainedStatus(hub);
  return p ? (JSON.parse(Buffer.from(p.payload).toString()) as { state: string }).state : null;
};

describe('clustered broker: a hub cannot forge another hub\'s status through a last will', () => {
  it("a starting node skips its previous run's will that names another hub (counted, deleted) and publishes the honest one", { timeout: 60_000 }, async () => {
    await plantWill('fw-b', `${ATTACKER}.agent`, topics.status(REGION, VICTIM), status(VICTIM, 'offline', Date.now() + 60_000));
    await plantWill('fw-b', `${HONEST_1}.agent`, topics.status(REGION, HONEST_1), status(HONEST_1, 'offline'));
    b = await startTestCloud({ DATABASE_URL: db, REDIS_URL: redis.url, NODE_ID: 'fw-b' }, tempDir('fw-b'));
    // attach() ran before startTestCloud resolved.
    expect(await counter(b, 'mqtt_publish_denied_total', { reason: 'will_foreign_client_id' })).toBe(1);
    expect(await counter(b, 'ingest_messages_accepted_total', { type: 'hub.status' })).toBe(1);
    expect(statusOn(b, HONEST_1)).toBe('offline');
    expect(statusOn(b, VICTIM)).toBeNull();
    expect(await retainedStatus(VICTIM)).toBeNull();
    expect(await r.lrange('will', 0, -1)).toEqual([]);
  });

  it('a login whose will is on another hub\'s status topic is refused with code 5 on every node; nothing is stored', { timeout: 60_000 }, async () => {
    const dir = tempDir('fw-a');
    fs.copyFileSync(path.join(b!.dataDir, 'credentials.json'), path.join(dir, 'credentials.json'));
    a = await startTestCloud({ DATABASE_URL: db, REDIS_URL: redis.url, NODE_ID: 'fw-a' }, dir);
    const v = a.credentials[VICTIM]!;
    const vc = await connect(a.cloud.urls.mqtt, { username: v.username, password: v.password, clientId: `${VICTIM}.agent` });
    clients.push(vc);
    await vc.publishAsync(topics.status(REGION, VICTIM), status(VICTIM, 'online'), { qos: 1, retain: true });
    for (const t of [a, b!]) await expect.poll(() => statusOn(t, VICTIM), { timeout: 10_000, interval: 50 }).toBe('online');

    const x = a.credentials[ATTACKER]!;
    for (const t of [a, b!]) {
      const before = await counter(t, 'mqtt_auth_failures_total', { reason: 'will_foreign_prefix' });
      const code = await connect(t.cloud.urls.mqtt, {
        username: x.username, password: x.password, clientId: `${ATTACKER}.agent`, keepalive: 60,
        will: { topic: topics.status(REGION, VICTIM), payload: status(VICTIM, 'offline', Date.now() + 60_000), qos: 1, retain: true },
      }).then((c) => (clients.push(c), 0), (err: { code?: number }) => err.code ?? -1);
      expect(code).toBe(5);
      expect(await counter(t, 'mqtt_auth_failures_total', { reason: 'will_foreign_prefix' })).toBe(before + 1);
    }
    // The refused logins stored no will (the victim's own connection has none).
    expect(await r.lrange('will', 0, -1)).toEqual([]);
  });

  it("a dead node's will that names another hub is skipped by the survivors (counted, deleted); its honest wills go out", { timeout: 60_000 }, async () => {
    const refusedBefore = await refusedWills();
    const acceptedBefore = await statusesAccepted();
    // A node that is gone (no heartbeat ever): the survivors take its wills within 4 heartbeats (8 s).
    await plantWill('fw-dead', `${ATTACKER}.agent`, topics.status(REGION, VICTIM), status(VICTIM, 'offline', Date.now() + 60_000));
    await plantWill('fw-dead', `${HONEST_2}.agent`, topics.status(REGION, HONEST_2), status(HONEST_2, 'offline'));
    await expect.poll(refusedWills, { timeout: 30_000, interval: 100 }).toBe(refusedBefore + 1);
    await expect.poll(statusesAccepted, { timeout: 30_000, interval: 100 }).toBe(acceptedBefore + 1);
    await expect.poll(() => r.lrange('will', 0, -1), { timeout: 5_000, interval: 100 }).toEqual([]);
    for (const t of [a!, b!]) {
      await expect.poll(() => statusOn(t, HONEST_2), { timeout: 5_000, interval: 50 }).toBe('offline');
      expect(statusOn(t, VICTIM)).toBe('online');
      expect(((await (await t.api(`/api/v1/hubs/${VICTIM}`)).json()) as { link: { online: boolean } }).link.online).toBe(true);
    }
    expect(await retainedState(VICTIM)).toBe('online');
  });
});
