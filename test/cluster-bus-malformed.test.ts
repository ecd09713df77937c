import path from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRegionFile } from '../cloud/hubs/region-loader.ts';
import { LiveState } from '../cloud/live/live-state.ts';
import { ClusterBus } from '../cloud/cluster/cluster-bus.ts';
import { spawnCloud, tempDir, testCloudEnv } from './support/cloud-harness.ts';
import { startRedis, type RedisServer } from './support/redis.ts';
import { freshPostgresUrl } from './support/test-database.ts';

/**
 * Malformed cluster-bus messages must be counted (dropped{reason=malformed}) and
 * never throw out of the Redis message handler (an exception there surfaces as an uncaught
 * exception / ioredis error and, in cloud/main.ts, ends the node).
 */
const region = loadRegionFile(path.resolve(import.meta.dirname, '../config/regions/ishikawa-nomi.json'));
const logger = pino({ level: 'silent' });
let redis: RedisServer;
let admin: Redis;
beforeAll(async () => {
  redis = await startRedis();
  admin = new Redis(redis.url);
});
afterAll(async () => {
  admin?.disconnect();
  await redis?.stop();
});

describe('cluster bus: malformed input', () => {
  for (const [name, body] of [
    ['c: [null]', '{"n":"evil","i":"x","s":1,"c":[null]}'],
    ['c: 5 (not iterable)', '{"n":"evil2","i":"x","s":1,"c":5}'],
    ['a: {} (not iterable)', '{"n":"evil3","i":"x","s":1,"a":{}}'],
    ['device change without msg', '{"n":"evil4","i":"x","s":1,"c":[{"t":"device","region":"ishikawa-nomi","kind":"sensor"}]}'],
  ] as const) {
    it(`${name}: counted as malformed, nothing thrown`, async () => {
      const live = new LiveState(region);
      const registry = new Registry();
      const bus = await ClusterBus.start({ redisUrl: redis.url, nodeId: `victim-${name.length}`, live, registry, logger, heartbeatTtlMs: 1500, checkIntervalMs: 200, prefix: `rt${name.length}` });
      const uncaught: unknown[] = [];
      const onErr = (e: unknown) => uncaught.push(e);
      process.on('uncaughtException', onErr);
      try {
        await admin.publish(`rt${name.length}:live`, body);
        const malformed = async () => (await registry.getSingleMetric('cloud_cluster_bus_dropped_total')!.get()).values.filter((v) => v.labels.reason === 'malformed').reduce((s, v) => s + v.value, 0);
        await expect.poll(async () => (await malformed()) + uncaught.length, { timeout: 3_000, interval: 20 }).toBeGreaterThan(0);
        expect(uncaught.map((e) => String(e))).toEqual([]);
        expect(await malformed()).toBeGreaterThan(0);
      } finally {
        process.off('uncaughtException', onErr);
        await bus.close();
      }
    });
  }

  it('a real node (cloud/main.ts) survives malformed messages on cloud:live and on the MQTT bus (undecodable $SYS messages)', { timeout: 60_000 }, async () => {
    const db = await freshPostgresUrl();
    const node = await spawnCloud(testCloudEnv(tempDir('rt-bus'), { DATABASE_URL: db, REDIS_URL: redis.url, NODE_ID: 'rt-bus-1' }));
    try {
      await admin.publish('cloud:live', '{"n":"evil","i":"x","s":1,"c":5}');
      // mqemitter-redis's subscriber decodes these unguarded (msgpack: BUFFER_SHORTAGE, assert).
      await admin.publish('$SYS/evil/heartbeat', '');
      await admin.publish('$SYS/evil/heartbeat', 'hello');
      const healthz = async () => (await fetch(`${node.urls.http}/healthz`).then((r) => r.status).catch(() => 0));
      // Give it a moment to die if it will (poll until exit or 3 s of good health).
      let healthy = 0;
      await expect.poll(async () => {
        if (node.child.exitCode !== null) return 'exited';
        if ((await healthz()) === 200) healthy++;
        return healthy >= 15 ? 'alive' : 'wait';
      }, { timeout: 20_000, interval: 200 }).not.toBe('wait');
      console.log(`node after malformed message: exitCode=${node.child.exitCode}; last log: ${node.output.slice(-3).join(' | ').slice(0, 600)}`);
      expect(node.child.exitCode).toBeNull();
    } finally {
      await node.kill('SIGKILL');
    }
  });
});
