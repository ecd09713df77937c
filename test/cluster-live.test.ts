import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topics } from '../contract/index.ts';
import { authedFetch, readCredentials, spawnCloud, startTestCloud, tempDir, testCloudEnv, type CloudProcess, type TestCloud } from './support/cloud-harness.ts';
import { connect } from './support/mqtt-client.ts';
import { startRedis, type RedisServer } from './support/redis.ts';
import { freshPostgresUrl } from './support/test-database.ts';

/**
 * Cluster mode (issue 15): live state, the consoles' live feed and /metrics show the whole deployment
 * from any node. Two cloud nodes share one PostgreSQL database and one real redis-server; a hub
 * connected to node A must look, on node B's API, live feed and /metrics, as it does on A.
 */

const REGION = 'ishikawa-nomi';
const HUB = 'nomi-terai';
const HUB2 = 'nomi-neagari';

interface Hub {
  client: MqttClient;
  telemetry(windSpeedMps: number): Promise<void>;
}

/** A hub's connection; its client id is `<hub>.<suffix>` (the broker's rule, contract/client-id.ts). */
async function hubOn(mqttUrl: string, creds: { username: string; password: string }, suffix: string, hub = HUB): Promise<Hub> {
  const clientId = `${hub}.${suffix}`;
  const client = await connect(mqttUrl, { username: creds.username, password: creds.password, clientId });
  let n = 0;
  return {
    client,
    telemetry: (windSpeedMps) => client.publishAsync(topics.device(REGION, hub, 'sensor', 'wx', 'telemetry'), JSON.stringify({
      v: 1, type: 'sensor.telemetry', id: `${clientId}-${Date.now()}-${n++}`, ts: Date.now(), hub, device: 'wx',
      windSpeedMps, windGustMps: windSpeedMps + 1, windDirDeg: 90, rainMmPerH: 0, airTempC: 12, gridPowerUp: true, backupBatteryPct: 90, linkQualityPct: 80,
    }), { qos: 1 }).then(() => undefined),
  };
}

async function linkOf(base: string, token: string, hub: string): Promise<{ online: boolean; connections: number }> {
  const r = await authedFetch(base, token, `/api/v1/hubs/${hub}`);
  const body = (await r.json()) as { link: { online: boolean; connections: number } };
  return body.link;
}

/** The live feed as a console reads it: every chunk received so far. */
function openFeed(base: string, token: string): { text(): string; ended(): boolean; close(): void } {
  let text = '';
  let ended = false;
  const req = http.get(`${base}/api/v1/events`, { agent: false, headers: { authorization: `Bearer ${token}` } }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (c: string) => (text += c));
    res.on('end', () => (ended = true));
  });
  req.on('error', () => {});
  return { text: () => text, ended: () => ended, close: () => req.destroy() };
}

/** The newest `hubs` event of a feed, parsed. */
function lastHubs(text: string): { id: string; link: { online: boolean } }[] | null {
  const events = text.split('\n\n').filter((e) => e.startsWith('event: hubs\n'));
  const last = events.at(-1);
  if (!last) return null;
  return (JSON.parse(last.slice(last.indexOf('data: ') + 6)) as { hubs: { id: string; link: { online: boolean } }[] }).hubs;
}

async function metricValue(base: string, line: RegExp): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = text.split('\n').find((l) => line.test(l));
  return m ? Number(m.split(' ').at(-1)) : 0;
}

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

/** Node B of a cluster whose node A keeps its demo credentials in `fromDir`: same credentials file, same database, same Redis. */
function nodeB(databaseUrl: string, fromDir: string, extra: Record<string, string> = {}): Promise<TestCloud> {
  const dir = tempDir('node-b');
  fs.copyFileSync(path.join(fromDir, 'credentials.json'), path.join(dir, 'credentials.json'));
  return startTestCloud({ DATABASE_URL: databaseUrl, REDIS_URL: redis.url, NODE_ID: 'node-b', ...extra }, dir);
}

/** A cluster of the tests before may have left retained messages (region modes of another database) in Redis: start empty. */
async function emptyRedis(): Promise<void> {
  const admin = new Redis(redis.url);
  try {
    await admin.flushall();
  } finally {
    admin.disconnect();
  }
}

describe('two in-process nodes', () => {
  let a: TestCloud;
  let b: TestCloud;
  let bToken: string;
  const hubs: MqttClient[] = [];
  beforeAll(async () => {
    const db = await freshPostgresUrl();
    a = await startTestCloud({ DATABASE_URL: db, REDIS_URL: redis.url, NODE_ID: 'node-a' });
    b = await nodeB(db, a.dataDir);
    bToken = b.token;
  });
  afterAll(async () => {
    for (const c of hubs) c.end(true);
    await b?.stop();
    await a?.stop();
  });

  it('a hub connected to node A is online on node B\'s API and live feed, with the telemetry A stored', async () => {
    const feed = openFeed(b.cloud.urls.http, bToken);
    try {
      expect((await linkOf(b.cloud.urls.http, bToken, HUB)).online).toBe(false);
      const hub = await hubOn(a.cloud.urls.mqtt, a.credentials[HUB]!, 'on-a');
      hubs.push(hub.client);
      await expect.poll(async () => (await linkOf(b.cloud.urls.http, bToken, HUB)).online, { timeout: 5_000, interval: 50 }).toBe(true);
      await expect.poll(() => lastHubs(feed.text())?.find((h) => h.id === HUB)?.link.online, { timeout: 5_000, interval: 50 }).toBe(true);

      await hub.telemetry(7.25);
      await expect.poll(async () => {
        const r = await b.api(`/api/v1/hubs/${HUB}`);
        return ((await r.json()) as { deviceStates: { device: string; telemetry: { windSpeedMps?: number } | null }[] }).deviceStates.find((d) => d.device === 'wx')?.telemetry?.windSpeedMps;
      }, { timeout: 5_000, interval: 50 }).toBe(7.25);

      // The hub's link ends on A: B shows it offline, in the API and in the feed.
      hub.client.end(true);
      await expect.poll(async () => (await linkOf(b.cloud.urls.http, bToken, HUB)).online, { timeout: 5_000, interval: 50 }).toBe(false);
      await expect.poll(() => lastHubs(feed.text())?.find((h) => h.id === HUB)?.link.online, { timeout: 5_000, interval: 50 }).toBe(false);
    } finally {
      feed.close();
    }
  });

  it('a hub moving from node A to node B stays online on both, whichever close or open arrives last', async () => {
    const onA = await hubOn(a.cloud.urls.mqtt, a.credentials[HUB2]!, 'one', HUB2);
    hubs.push(onA.client);
    await expect.poll(async () => (await linkOf(b.cloud.urls.http, bToken, HUB2)).online, { timeout: 5_000, interval: 50 }).toBe(true);
    // The hub's new link reaches B before its old one on A is noticed as gone (the usual order of a failover).
    const onB = await hubOn(b.cloud.urls.mqtt, a.credentials[HUB2]!, 'two', HUB2);
    hubs.push(onB.client);
    await expect.poll(async () => (await linkOf(a.cloud.urls.http, a.token, HUB2)).connections, { timeout: 5_000, interval: 50 }).toBe(2);
    onA.client.end(true);
    await expect.poll(async () => (await linkOf(a.cloud.urls.http, a.token, HUB2)).connections, { timeout: 5_000, interval: 50 }).toBe(1);
    await expect.poll(async () => (await linkOf(b.cloud.urls.http, bToken, HUB2)).connections, { timeout: 5_000, interval: 50 }).toBe(1);
    for (const [node, token] of [[a, a.token], [b, bToken]] as const) expect(await linkOf(node.cloud.urls.http, token, HUB2)).toMatchObject({ online: true, connections: 1 });
    onB.client.end(true);
    await expect.poll(async () => (await linkOf(a.cloud.urls.http, a.token, HUB2)).online, { timeout: 5_000, interval: 50 }).toBe(false);
  });

  it('an alarm raised on node A is pushed to node B\'s live feed', async () => {
    const feed = openFeed(b.cloud.urls.http, bToken);
    try {
      await expect.poll(() => feed.text(), { timeout: 5_000 }).toContain('event: hubs');
      await a.cloud.alarms.raise({ hub: HUB, kind: 'hub_offline', detail: 'raised on node A for the cluster test' });
      await expect.poll(() => feed.text(), { timeout: 5_000, interval: 50 }).toContain('raised on node A for the cluster test');
      expect(feed.text()).toContain('event: alarm');
    } finally {
      feed.close();
    }
  });

  it('an alarm push lost between the nodes (Redis dropped the subscribers) makes node B\'s consoles read the alarms again', async () => {
    const feed = openFeed(b.cloud.urls.http, bToken);
    try {
      await expect.poll(() => feed.text(), { timeout: 5_000 }).toContain('event: hubs');
      const admin = new Redis(redis.url);
      try {
        await admin.client('KILL', 'TYPE', 'pubsub'); // every node's subscriber: what is published until they are back is lost
      } finally {
        admin.disconnect();
      }
      await a.cloud.alarms.raise({ hub: HUB2, kind: 'hub_offline', detail: 'raised on node A while the subscribers were away' });
      // The stream ends (the console's EventSource reconnects after `retry: 2000` and reads GET /api/v1/alarms again) …
      await expect.poll(() => feed.ended(), { timeout: 5_000, interval: 50 }).toBe(true);
      // … where the alarm is, whether or not its push made it.
      const body = (await (await b.api('/api/v1/alarms?state=active&limit=500')).json()) as { alarms: { detail: string }[] };
      expect(body.alarms.map((x) => x.detail)).toContain('raised on node A while the subscribers were away');
    } finally {
      feed.close();
    }
  });

  it('a mode acknowledgement taken on node A shows on node B within 2 s', async () => {
    const r = await a.api(`/api/v1/regions/${REGION}/mode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'emergency', reason: 'cluster test' }) });
    expect(r.status).toBeLessThan(300);
    const version = ((await r.json()) as { version: number }).version;
    const hub = await hubOn(a.cloud.urls.mqtt, a.credentials[HUB]!, 'ack');
    hubs.push(hub.client);
    await hub.client.publishAsync(topics.modeAck(REGION, HUB), JSON.stringify({
      v: 1, type: 'hub.mode-ack', id: `ack-${Date.now()}`, ts: Date.now(), hub: HUB, version, mode: 'emergency', source: 'cloud',
    }), { qos: 1 });
    const t0 = Date.now();
    const statusOn = async (node: TestCloud) => {
      const body = (await (await node.api(`/api/v1/regions/${REGION}/mode`)).json()) as { hubs: { hub: string; status: string }[] };
      return body.hubs.find((h) => h.hub === HUB)?.status;
    };
    await expect.poll(() => statusOn(a), { timeout: 5_000, interval: 50 }).toBe('acknowledged');
    await expect.poll(() => statusOn(b), { timeout: 5_000, interval: 50 }).toBe('acknowledged');
    expect(Date.now() - t0).toBeLessThan(2_500); // B follows A's version within 2 s (mode-service follow) and takes the ack from the bus
  });

  it('/metrics on node B counts node A\'s ingest and both nodes; /healthz names the node and its view of the cluster', async () => {
    const accepted = /^ingest_messages_accepted_total\{type="sensor.telemetry"\} /;
    expect(await metricValue(a.cloud.urls.http, /^cloud_cluster_nodes /)).toBeGreaterThanOrEqual(1);
    const hub = await hubOn(a.cloud.urls.mqtt, a.credentials[HUB]!, 'metrics');
    hubs.push(hub.client);
    await hub.telemetry(3);
    // B ingested none itself; its /metrics sums A's shared figures (written every 5 s).
    await expect.poll(() => metricValue(b.cloud.urls.http, accepted), { timeout: 15_000, interval: 250 }).toBeGreaterThanOrEqual(1);
    expect(await metricValue(b.cloud.urls.http, /^cloud_cluster_nodes /)).toBe(2);
    expect(await metricValue(b.cloud.urls.http, /^cloud_cluster_node_up\{node="node-a"\} /)).toBe(1);
    expect(await metricValue(b.cloud.urls.http, new RegExp(`^hub_online\\{hub="${HUB}"\\} `))).toBe(1); // B's own (cluster-wide) view, not a sum
    const health = await fetch(`${b.cloud.urls.http}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', cluster: { nodeId: 'node-b', redisConnected: true, liveNodes: 2 } });
  });
});

describe('a mode switch made on another node', () => {
  let a: TestCloud;
  let b: TestCloud;
  const clients: MqttClient[] = [];
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await b?.stop();
    await a?.stop();
  });

  it('is acknowledged by hubs connected to node B the moment the broker brings it: no acknowledgement refused as a version B does not know', async () => {
    await emptyRedis();
    const db = await freshPostgresUrl();
    a = await startTestCloud({ DATABASE_URL: db, REDIS_URL: redis.url, NODE_ID: 'node-a' });
    b = await nodeB(db, a.dataDir);
    const hubIds = b.cloud.live.hubsOf(REGION).map((h) => h.id);
    // Each hub acknowledges every region mode it receives at once (the fastest an agent can).
    for (const hub of hubIds) {
      const c = await connect(b.cloud.urls.mqtt, { ...a.credentials[hub]!, clientId: `${hub}.modes` });
      c.on('message', (_topic, payload) => {
        const m = JSON.parse(payload.toString()) as { version: number; mode: string };
        if (m.version > 0) void c.publishAsync(topics.modeAck(REGION, hub), JSON.stringify({ v: 1, type: 'hub.mode-ack', id: `ack-${hub}-${m.version}`, ts: Date.now(), hub, version: m.version, mode: m.mode, source: 'cloud' }), { qos: 1 });
      });
      await c.subscribeAsync(topics.regionMode(REGION), { qos: 1 });
      clients.push(c);
    }
    let version = 0;
    for (const mode of ['emergency', 'normal', 'emergency']) {
      const r = await a.api(`/api/v1/regions/${REGION}/mode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode, reason: 'switch on node A' }) });
      expect(r.status).toBe(202);
      version = ((await r.json()) as { version: number }).version;
    }
    const statuses = async (node: TestCloud) => {
      const body = (await (await node.api(`/api/v1/regions/${REGION}/mode`)).json()) as { hubs: { hub: string; status: string; acknowledged: { version: number } | null }[] };
      return body.hubs.filter((h) => h.status === 'acknowledged' && h.acknowledged?.version === version).length;
    };
    await expect.poll(() => statuses(b), { timeout: 10_000, interval: 100 }).toBe(hubIds.length);
    await expect.poll(() => statuses(a), { timeout: 10_000, interval: 100 }).toBe(hubIds.length);
    const dead = (await (await b.api('/api/v1/dead-letters?limit=100')).json()) as { total: number; deadLetters: { reason: string }[] };
    expect(dead.deadLetters.map((d) => d.reason)).toEqual([]);
  });
});

describe('a node killed with SIGKILL', () => {
  let a: CloudProcess | null = null;
  let b: TestCloud;
  const clients: MqttClient[] = [];
  afterAll(async () => {
    for (const c of clients) c.end(true);
    await a?.kill('SIGKILL');
    await b?.stop();
  });

  it('its hubs are shown offline on the surviving node within LEASE_TTL_S + 1 s; a hub reconnected to the survivor stays online', async () => {
    await emptyRedis();
    const db = await freshPostgresUrl();
    const dirA = tempDir('node-a');
    a = await spawnCloud(testCloudEnv(dirA, { DATABASE_URL: db, REDIS_URL: redis.url, NODE_ID: 'node-a', LEASE_TTL_S: '2' }));
    b = await nodeB(db, dirA, { LEASE_TTL_S: '2' });
    const creds = readCredentials(dirA);
    const one = await hubOn(a.urls.mqtt, creds[HUB]!, 'k');
    const two = await hubOn(a.urls.mqtt, creds[HUB2]!, 'k', HUB2);
    clients.push(one.client, two.client);
    await expect.poll(async () => [(await linkOf(b.cloud.urls.http, b.token, HUB)).online, (await linkOf(b.cloud.urls.http, b.token, HUB2)).online], { timeout: 10_000, interval: 50 }).toEqual([true, true]);

    // HUB2 reconnects to B before A dies (a failover that beat the heartbeat).
    const moved = await hubOn(b.cloud.urls.mqtt, creds[HUB2]!, 'kb', HUB2);
    clients.push(moved.client);
    const killedAt = Date.now();
    await a.kill('SIGKILL');
    await expect.poll(async () => (await linkOf(b.cloud.urls.http, b.token, HUB)).online, { timeout: 10_000, interval: 50 }).toBe(false);
    const shownOfflineAfterMs = Date.now() - killedAt;
    expect(shownOfflineAfterMs).toBeLessThanOrEqual(2_000 + 1_000 + 500);
    expect(await linkOf(b.cloud.urls.http, b.token, HUB2)).toMatchObject({ online: true, connections: 1 });
    console.log(`cluster-live: node killed → its hubs shown offline on the survivor after ${shownOfflineAfterMs} ms (LEASE_TTL_S=2)`);
  });
});
