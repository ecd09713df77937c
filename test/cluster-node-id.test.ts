import { Redis } from 'ioredis';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topics } from '../contract/index.ts';
import { openDatabase } from '../cloud/db/database.ts';
import { generatePassword, openHubCredentialStore } from '../cloud/hubs/hub-credentials.ts';
import { spawnCloud, tempDir, testCloudEnv, type CloudProcess } from './support/cloud-harness.ts';
import { INFLUX_DB, REGION, startCluster, type Cluster } from './support/cluster-harness.ts';
import { connect } from './support/mqtt-client.ts';

/**
 * One process per NODE_ID (issue 15; cloud/cluster/node-owner.ts), with real processes: two cloud nodes
 * (PostgreSQL, Redis, influxd, HAProxy from the cluster harness) at the default LEASE_TTL_S of 6 s, a
 * hub (an MQTT client with a last will) connected to node-1, and a third process started as node-1 — an
 * operator's copy-pasted configuration.
 *
 * Without the guard that process would take node-1's hub's will for a leftover of its own previous run
 * and publish and delete it at start (cluster-broker.ts attach). With it: the process refuses to start
 * (status 1, a message naming the NODE_ID), node-1 keeps its hub and the will, and the will still fires
 * when node-1 dies. A restart after a clean stop claims the NODE_ID at once; after kill -9 it waits for
 * the old claim to expire (≤ LEASE_TTL_S). A node paused until a process with its NODE_ID took over
 * exits with status 1 when it runs again.
 */
const TTL_S = 6;
const HUB = 'nomi-terai';
const CLIENT_ID = `${HUB}.agent`;
const WILL_KEY = `will:node-1:${encodeURIComponent(CLIENT_ID)}`;
const OWNER_KEY = 'cloud:node-owner:node-1';
const statusTopic = topics.status(REGION, HUB);

let c: Cluster;
let r: Redis;
let password: string;
let hub: MqttClient | null = null;
const extra: CloudProcess[] = [];
const figures: string[] = [];
const note = (line: string) => {
  figures.push(line);
  console.info(`[cluster-node-id] ${line}`);
};

beforeAll(async () => {
  c = await startCluster({ hubs: [], nodes: 2, leaseTtlS: TTL_S, nodeEnv: { LOG_LEVEL: 'info' } });
  r = new Redis(c.redis.url, { maxRetriesPerRequest: 1 });
  // A hub login in the shared database (the nodes read it at every CONNECT).
  password = generatePassword();
  const db = await openDatabase({ url: c.databaseUrl, dataDir: '' });
  try {
    await (await openHubCredentialStore(db)).set(HUB, REGION, HUB, password);
  } finally {
    await db.close();
  }
}, 120_000);
afterAll(async () => {
  hub?.end(true);
  for (const p of extra) await p.kill('SIGKILL');
  r?.disconnect();
  await c?.stop();
  if (figures.length > 0) console.info(`[cluster-node-id] figures:\n  ${figures.join('\n  ')}`);
});

/** node-1's environment as the harness gives it, but any free ports: the same NODE_ID, Redis and database. */
function asNode1(): Record<string, string> {
  return testCloudEnv(tempDir('node-id-dup'), {
    HTTP_PORT: '0', MQTT_PORT: '0', MQTT_WS_PORT: 'off', DEMO_CREDENTIALS: 'false', DEMO_ACCOUNTS: 'false', LOG_LEVEL: 'info',
    DATABASE_URL: c.databaseUrl, REDIS_URL: c.redis.url, NODE_ID: 'node-1', LEASE_TTL_S: String(TTL_S), INFLUX_URL: c.influx.url, INFLUX_DB,
  });
}

const status = (state: 'online' | 'offline', ts = Date.now()) => JSON.stringify({ v: 1, type: 'hub.status', hub: HUB, state, ts, agent: 'test' });
const onlineOn = async (i: number) => (await c.getJson<{ link: { online: boolean } }>(`/api/v1/hubs/${HUB}`, i)).link.online;
/** The retained status of the hub as the broker stored it in Redis (msgpack; the JSON payload inside as is). */
const retainedState = async () => {
  const b = await r.hgetBuffer('retained', statusTopic);
  return b === null ? null : b.includes('"state":"offline"') ? 'offline' : b.includes('"state":"online"') ? 'online' : '?';
};
/** `waitedMs` of the NODE_ID claim in a node's log (info level). */
const claimWaitedMs = (lines: string[]) => {
  const line = lines.find((l) => l.includes('"component":"node-owner"') && l.includes('"waitedMs"'));
  return line === undefined ? null : (JSON.parse(line) as { waitedMs: number }).waitedMs;
};

describe('one process per NODE_ID in a cluster', () => {
  it('a second process started with a live node\'s NODE_ID refuses to start (status 1, the message names the NODE_ID); the live node keeps its hub and the hub\'s will', { timeout: 60_000 }, async () => {
    const node1 = c.nodes[0]!;
    hub = await connect(`mqtt://127.0.0.1:${node1.mqttPort}`, {
      username: HUB, password, clientId: CLIENT_ID, keepalive: 60,
      will: { topic: statusTopic, payload: Buffer.from(status('offline')), qos: 1, retain: true },
    });
    hub.on('error', () => undefined);
    await hub.publishAsync(statusTopic, status('online'), { qos: 1, retain: true });
    await expect.poll(() => onlineOn(1), { timeout: 15_000, interval: 100 }).toBe(true);
    await expect.poll(() => r.lrange('will', 0, -1), { timeout: 5_000, interval: 50 }).toEqual([WILL_KEY]);
    const holder = await r.get(OWNER_KEY);
    expect(holder).toMatch(/^[0-9a-f-]{36}$/);

    const t0 = Date.now();
    const err = await spawnCloud(asNode1()).then((p) => {
      extra.push(p);
      return null;
    }, (e: Error) => e);
    const refusedMs = Date.now() - t0;
    expect(err?.message).toContain('cloud exited with 1 before it was ready');
    expect(err?.message).toContain(`NODE_ID \\"node-1\\" is in use: another running cloud process holds it (instance ${holder}`);
    expect(err?.message).toContain('A claim lasts 6 s (LEASE_TTL_S) after its holder stops renewing it');
    note(`duplicate NODE_ID refused: process start → exit ${refusedMs} ms (LEASE_TTL_S ${TTL_S}: a live holder is recognised within one renewal, ${TTL_S / 3} s)`);

    // node-1 carries on: same claim, its hub connected and shown online, the hub's will still stored.
    expect(await r.get(OWNER_KEY)).toBe(holder);
    expect(hub.connected).toBe(true);
    expect(await r.lrange('will', 0, -1)).toEqual([WILL_KEY]);
    expect(await retainedState()).toBe('online');
    expect(await onlineOn(0)).toBe(true);
    expect(await onlineOn(1)).toBe(true);
    expect(node1.proc!.child.exitCode).toBeNull();
  });

  it('kill -9 of that node: its hub\'s will still fires, and the node restarted at once claims its NODE_ID within LEASE_TTL_S', { timeout: 60_000 }, async () => {
    const tKill = Date.now();
    await c.killNode(0);
    await c.restartNode(0);
    const restartMs = Date.now() - tKill;
    const waited = claimWaitedMs(c.nodes[0]!.proc!.output);
    expect(waited).not.toBeNull();
    expect(waited!).toBeLessThanOrEqual(TTL_S * 1000 + 500);
    note(`kill -9 → restarted node ready: ${restartMs} ms, of which waiting for the killed process's claim to expire: ${waited} ms (LEASE_TTL_S ${TTL_S})`);

    // The hub's last will was published (by node-2 or by node-1's new run): its retained status is offline, the will gone.
    await expect.poll(retainedState, { timeout: 20_000, interval: 100 }).toBe('offline');
    await expect.poll(() => r.lrange('will', 0, -1), { timeout: 5_000, interval: 50 }).toEqual([]);
    note(`the hub's will published ${Date.now() - tKill} ms after the kill (or earlier)`);
    hub?.end(true);
    hub = null;
  });

  it('a restart after a clean stop claims the NODE_ID at once', { timeout: 60_000 }, async () => {
    const t0 = Date.now();
    await c.restartNode(0); // SIGTERM, then start
    const restartMs = Date.now() - t0;
    expect(claimWaitedMs(c.nodes[0]!.proc!.output)).toBe(0);
    note(`clean stop → restarted node ready: ${restartMs} ms, claim wait 0 ms`);
    expect(await r.get(OWNER_KEY)).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('a node paused until a process with its NODE_ID took over exits with status 1 once it runs again, without touching the new claim', { timeout: 60_000 }, async () => {
    const node1 = c.nodes[0]!;
    const old = await r.get(OWNER_KEY);
    c.stopNode(0);
    const t0 = Date.now();
    const successor = await spawnCloud(asNode1()); // waits for the paused process's claim to expire
    extra.push(successor);
    const takeoverMs = Date.now() - t0;
    const now = await r.get(OWNER_KEY);
    expect(now).not.toBe(old);
    note(`paused node's NODE_ID taken over by a new process: start → ready ${takeoverMs} ms (claim wait ${claimWaitedMs(successor.output)} ms)`);

    c.contNode(0);
    await expect.poll(() => node1.proc!.child.exitCode, { timeout: 10_000, interval: 50 }).toBe(1);
    node1.state = 'down';
    expect(node1.proc!.output.some((l) => l.includes('"level":50') && l.includes('is now held by another process'))).toBe(true);
    expect(await r.get(OWNER_KEY)).toBe(now);
    expect(successor.child.exitCode).toBeNull();
    expect((await fetch(`${successor.urls.http}/healthz`)).status).toBe(200);
  });
});
