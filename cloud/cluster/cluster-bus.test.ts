import path from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../../test/support/redis.ts';
import { loadRegionFile } from '../hubs/region-loader.ts';
import { LiveState } from '../live/live-state.ts';
import { ClusterBus, type ClusterBusOptions } from './cluster-bus.ts';

/**
 * The cluster bus on a real redis-server: what another node shows after the faults pub/sub cannot
 * carry on its own — a lost subscription, a node that dies or pauses, Redis restarted, a flood.
 */

const region = loadRegionFile(path.resolve(import.meta.dirname, '../../config/regions/ishikawa-nomi.json'));
const R = region.id;
const HUB = 'nomi-terai';
const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });

let redis: RedisServer;
let admin: Redis;
const buses: ClusterBus[] = [];
let prefixN = 0;
let prefix = '';

beforeAll(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url, { maxRetriesPerRequest: null });
  admin.on('error', () => {}); // reconnects across the restart test
});
afterAll(async () => {
  admin?.disconnect();
  await redis?.stop();
});
afterEach(async () => {
  for (const b of buses.splice(0)) await b.close();
});

/** A node: its own live state and bus (each test a fresh key prefix, so tests never see each other's nodes). */
async function node(id: string, over: Partial<ClusterBusOptions> = {}) {
  const live = new LiveState(region);
  const registry = new Registry();
  const bus = await ClusterBus.start({ redisUrl: redis.url, nodeId: id, live, registry, logger, heartbeatTtlMs: 1500, checkIntervalMs: 200, prefix, ...over });
  buses.push(bus);
  const metric = async (name: string, labels: Record<string, string> = {}) => {
    const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
    return m?.values.filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val)).reduce((s, v) => s + v.value, 0) ?? 0;
  };
  return { live, bus, registry, metric, link: () => live.hubs.get(HUB)!.link };
}

describe('cluster bus', () => {
  beforeEach(() => {
    prefix = `t${prefixN++}`;
  });

  it('a hub moving from node A to node B is online on node C throughout, and on a node started after A\'s close', async () => {
    const a = await node('a');
    const b = await node('b');
    const c = await node('c');
    a.live.connectionOpened(HUB, R, Date.now());
    await expect.poll(() => c.link().online, { interval: 20 }).toBe(true);
    b.live.connectionOpened(HUB, R, Date.now());
    await expect.poll(() => c.link().connections, { interval: 20 }).toBe(2);
    a.live.connectionClosed(HUB, R, Date.now()); // A's close arrives after B's open
    await expect.poll(() => c.link().connections, { interval: 20 }).toBe(1);
    expect(c.link().online).toBe(true);
    // A node started now reads the link records (snapshot), not a message stream.
    const d = await node('d');
    expect(d.link()).toMatchObject({ online: true, connections: 1 });
  });

  it('a lost subscription (Redis drops the subscriber) is recovered: changes made meanwhile are shown after the reconnect', async () => {
    const a = await node('a');
    const b = await node('b');
    a.live.connectionOpened(HUB, R, Date.now());
    await expect.poll(() => b.link().online, { interval: 20 }).toBe(true);
    // Kill B's subscriber connection and change the link while it is away: that message is lost to B.
    await admin.client('KILL', 'TYPE', 'pubsub');
    a.live.connectionClosed(HUB, R, Date.now());
    await expect.poll(() => b.link().online, { timeout: 5_000, interval: 20 }).toBe(false);
    expect(await b.metric('cloud_cluster_bus_resyncs_total')).toBeGreaterThan(0);
  });

  it('a gap in a node\'s sequence (a message lost in between) makes the others read its link record again', async () => {
    const a = await node('a');
    const b = await node('b');
    a.live.connectionOpened(HUB, R, Date.now());
    await expect.poll(() => b.link().online, { interval: 20 }).toBe(true);
    const before = await b.metric('cloud_cluster_bus_resyncs_total');
    // A message "lost": A's record changes and its sequence moves on without B hearing the change.
    const sender = a.bus as unknown as { seq: number };
    sender.seq++;
    await admin.multi().hdel(`${prefix}:links:a`, HUB).hset(`${prefix}:links:a`, '_seq', String(sender.seq)).exec();
    a.live.connectionOpened('nomi-neagari', R, Date.now()); // the next message shows the gap
    await expect.poll(() => b.link().online, { timeout: 5_000, interval: 20 }).toBe(false);
    expect(b.live.hubs.get('nomi-neagari')!.link.online).toBe(true);
    expect(await b.metric('cloud_cluster_bus_resyncs_total')).toBeGreaterThan(before);
  });

  it('a lost last message before a silence (no gap to see) is recovered by the periodic reconcile', async () => {
    const a = await node('a');
    const b = await node('b', { reconcileMs: 500 });
    a.live.connectionOpened(HUB, R, Date.now());
    await expect.poll(() => b.link().online, { interval: 20 }).toBe(true);
    // A's close is recorded but its message never reaches B, and A stays silent.
    const sender = a.bus as unknown as { seq: number };
    sender.seq++;
    await admin.multi().hdel(`${prefix}:links:a`, HUB).hset(`${prefix}:links:a`, '_seq', String(sender.seq)).exec();
    await expect.poll(() => b.link().online, { timeout: 3_000, interval: 20 }).toBe(false);
  });

  it('a node without heartbeat is dead: its hubs go offline elsewhere within TTL + check; back (after a pause), they return', async () => {
    const a = await node('a');
    const b = await node('b');
    a.live.connectionOpened(HUB, R, Date.now());
    await expect.poll(() => b.link().online, { interval: 20 }).toBe(true);
    // As if A were paused: its heartbeat key expires (here deleted), the others drop it.
    await admin.del(`${prefix}:node:a`);
    await expect.poll(() => b.link().online, { timeout: 3_000, interval: 20 }).toBe(false);
    expect(b.bus.nodes()).toEqual(['b']);
    // A "wakes": its next heartbeat finds its key gone, rewrites its link record and says hello.
    await expect.poll(() => b.link().online, { timeout: 3_000, interval: 20 }).toBe(true);
    await expect.poll(() => b.bus.nodes(), { timeout: 3_000, interval: 20 }).toEqual(['a', 'b']);
  });

  it('a node that stops gracefully takes its hubs offline elsewhere at once', async () => {
    const a = await node('a');
    const b = await node('b');
    a.live.connectionOpened(HUB, R, Date.now());
    await expect.poll(() => b.link().online, { interval: 20 }).toBe(true);
    const t0 = Date.now();
    await a.bus.close();
    await expect.poll(() => b.link().online, { timeout: 3_000, interval: 10 }).toBe(false);
    expect(Date.now() - t0).toBeLessThan(1_000); // not the heartbeat TTL
  });

  it('Redis restarted empty: every node writes its record again and the others show the true link state', async () => {
    const a = await node('a');
    const b = await node('b');
    a.live.connectionOpened(HUB, R, Date.now());
    await expect.poll(() => b.link().online, { interval: 20 }).toBe(true);
    await redis.restart();
    // While Redis was away the link changed on A.
    a.live.connectionOpened('nomi-neagari', R, Date.now());
    await expect.poll(() => b.live.hubs.get('nomi-neagari')!.link.online, { timeout: 10_000, interval: 50 }).toBe(true);
    expect(b.link().online).toBe(true); // never dropped: nobody is declared dead for one TTL after a reconnect
    await expect.poll(async () => (await admin.hgetall(`${prefix}:links:a`))[HUB], { timeout: 5_000 }).toMatch(/^1\|/);
  });

  it('one node\'s flood is bounded at the receiver: the excess is dropped and counted, the link view stays true', async () => {
    const a = await node('a');
    const b = await node('b', { maxBytesPerSecondPerNode: 20_000 });
    a.live.connectionOpened(HUB, R, Date.now());
    const t = Date.now();
    for (let i = 0; i < 5_000; i++) {
      a.live.applyDeviceMessage(R, 'sensor', {
        v: 1, type: 'sensor.telemetry', id: `f${i}`, ts: t + i, hub: HUB, device: `s${i}`, windSpeedMps: 1, windGustMps: 2, windDirDeg: 0,
        rainMmPerH: 0, airTempC: 10, gridPowerUp: true, backupBatteryPct: 90, linkQualityPct: 90,
      }, t + i);
    }
    await expect.poll(() => b.metric('cloud_cluster_bus_dropped_total', { reason: 'rate_limited' }), { timeout: 5_000, interval: 50 }).toBeGreaterThan(0);
    expect(b.live.hubs.get(HUB)!.devices.size).toBeLessThan(1_000);
    await expect.poll(() => b.link().online, { timeout: 5_000, interval: 50 }).toBe(true);
  });

  it('sends the newest reading of a device once per window, and counts what it published', async () => {
    const a = await node('a', { deviceFlushMs: 200 });
    const b = await node('b');
    const t = Date.now();
    for (let i = 0; i < 100; i++) {
      a.live.applyDeviceMessage(R, 'sensor', {
        v: 1, type: 'sensor.telemetry', id: `m${i}`, ts: t + i, hub: HUB, device: 'wx', windSpeedMps: i, windGustMps: i, windDirDeg: 0,
        rainMmPerH: 0, airTempC: 10, gridPowerUp: true, backupBatteryPct: 90, linkQualityPct: 90,
      }, t + i);
    }
    await expect.poll(() => (b.live.hubs.get(HUB)!.devices.get('wx')!.telemetry as { windSpeedMps: number } | null)?.windSpeedMps, { interval: 20 }).toBe(99);
    expect(await a.metric('cloud_cluster_bus_changes_published_total')).toBeLessThan(10);
  });
});
