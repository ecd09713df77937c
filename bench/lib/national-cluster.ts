import fs from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { spawnCloud, tempDir, testCloudEnv, type CloudProcess } from '../../test/support/cloud-harness.ts';
import { startHaproxy, type Haproxy } from '../../test/support/haproxy.ts';
import { freePort } from '../../test/support/ports.ts';
import { startRedis, type RedisServer } from '../../test/support/redis.ts';
import { ONE_ADDRESS_FLEET_ENV } from './one-address.ts';
import { prepareCloudDatabase } from './bench-database.ts';
import { benchHubSecrets, writeBenchRegion, type BenchRegion } from './bench-region.ts';
import { seedCloudData, writeNationalRegion, type NationalRegion, type SeededCloudData } from './national-region.ts';
import { cpuSeconds } from './procs.ts';

/**
 * A cloud cluster for the "cluster" benchmark (issue 15, item 4): N cloud nodes (`cloud/main.ts`, real
 * processes, NODE_ID node-1…N) sharing one PostgreSQL database (the invocation's durable cluster, see
 * bench-database.ts) and one redis-server, HAProxy in front of their MQTT ports (health-checked on
 * /healthz), a synthetic national region of `hubs` hubs with pre-seeded credentials (production form).
 * Each node keeps its fixed ports for its life, so a killed node can be started again on them.
 */
export interface ClusterNode {
  readonly id: string;
  readonly httpPort: number;
  readonly mqttPort: number;
  proc: CloudProcess | null;
}

export interface NationalCluster {
  readonly nodes: ClusterNode[];
  readonly redis: RedisServer;
  readonly haproxy: Haproxy;
  /** The national region (hubs share one generated secret: `seeded.password`), or the ingest benchmark's region (`benchRegion`, a secret per hub). */
  readonly region: NationalRegion;
  readonly seeded: SeededCloudData;
  readonly benchRegion: BenchRegion | null;
  readonly databaseUrl: string;
  /** spawn of the first node → the last node ready, ms. */
  readonly startupMs: number;
  /** fetch against a live node's HTTP API as the admin (the first one up, or `node`). */
  api(p: string, init?: RequestInit, node?: number): Promise<Response>;
  /** kill -9 of a node; resolves when it has exited. */
  kill(i: number): Promise<void>;
  /** Starts a killed node again on its ports. */
  start(i: number): Promise<void>;
  /** The region's lease holder and token from the leases table (null if none is valid now). */
  leaseHolder(name: string): Promise<{ holder: string; token: number } | null>;
  /** CPU seconds of the live cloud nodes / redis-server so far. */
  nodeCpuSeconds(): number;
  redisCpuSeconds(): Promise<number>;
  stop(): Promise<void>;
}

export async function startNationalCluster(
  hubs: number,
  o: { nodes?: number; env?: Record<string, string>; leaseTtlS?: number; benchRegion?: boolean } = {},
): Promise<NationalCluster> {
  const dir = tempDir(`bench-cluster-${hubs}`);
  const count = o.nodes ?? 3;
  const seedDir = path.join(dir, 'seed');
  let region: NationalRegion;
  let seeded: SeededCloudData & { env: Record<string, string> };
  let benchRegion: BenchRegion | null = null;
  if (o.benchRegion) {
    benchRegion = writeBenchRegion(dir, hubs);
    fs.mkdirSync(seedDir, { recursive: true });
    const prepared = await prepareCloudDatabase('postgres', seedDir, benchRegion.id, benchHubSecrets(benchRegion));
    region = { id: benchRegion.id, file: benchRegion.file, hubs: benchRegion.hubs.map((h) => h.id) };
    seeded = { password: '', legacyScrypt: {}, adminToken: prepared.adminToken, env: prepared.env };
  } else {
    region = writeNationalRegion(dir, hubs);
    seeded = await seedCloudData(seedDir, region.id, region.hubs, [], 'postgres');
  }
  const databaseUrl = seeded.env.DATABASE_URL!;
  const redis = await startRedis();
  const nodes: ClusterNode[] = [];
  for (let i = 0; i < count; i++) nodes.push({ id: `node-${i + 1}`, httpPort: await freePort(), mqttPort: await freePort(), proc: null });
  const envOf = (n: ClusterNode) => testCloudEnv(path.join(dir, n.id), {
    REGION_FILE: region.file, DEMO_CREDENTIALS: 'false', INGEST_MAX_DEVICES_PER_HUB: '2000', DEMO_ACCOUNTS: 'false', LOG_LEVEL: 'warn', MQTT_WS_PORT: 'off',
    HTTP_PORT: String(n.httpPort), MQTT_PORT: String(n.mqttPort), DATABASE_URL: databaseUrl, REDIS_URL: redis.url, NODE_ID: n.id,
    ...(o.leaseTtlS ? { LEASE_TTL_S: String(o.leaseTtlS) } : {}),
    ...ONE_ADDRESS_FLEET_ENV, ...o.env,
  });
  const t0 = performance.now();
  const killers: (() => void)[] = [];
  const start = async (i: number) => {
    const n = nodes[i]!;
    n.proc = await spawnCloud(envOf(n));
    const p = n.proc;
    const k = () => p.child.kill('SIGKILL');
    killers.push(k);
    process.once('exit', k);
  };
  let haproxy: Haproxy | null = null;
  try {
    // One after the other: the first migrates the schema; the rest find it done.
    for (let i = 0; i < count; i++) await start(i);
    haproxy = await startHaproxy(nodes.map((n) => ({ name: n.id, port: n.mqttPort, checkPort: n.httpPort })), { maxconn: 9_000 });
    for (const n of nodes) await haproxy.waitForStatus(n.id, 'UP', 20_000);
  } catch (err) {
    for (const n of nodes) n.proc?.child.kill('SIGKILL');
    await haproxy?.stop();
    await redis.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const startupMs = performance.now() - t0;
  const lb = haproxy;
  // Redis reports its own CPU (INFO cpu), which needs no pid.
  const redisInfo = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  const live = () => nodes.filter((n) => n.proc && n.proc.child.exitCode === null && n.proc.child.signalCode === null);
  return {
    nodes, redis, haproxy: lb, region, seeded, benchRegion, databaseUrl, startupMs,
    api(p, init = {}, node) {
      const n = node === undefined ? live()[0] : nodes[node];
      if (!n?.proc) return Promise.reject(new Error('no cloud node is up'));
      const headers = new Headers(init.headers);
      headers.set('authorization', `Bearer ${seeded.adminToken}`);
      if (init.body !== undefined && !headers.has('content-type')) headers.set('content-type', 'application/json');
      return fetch(`${n.proc.urls.http}${p}`, { ...init, headers });
    },
    async kill(i) {
      const n = nodes[i]!;
      await n.proc?.kill('SIGKILL');
      n.proc = null;
    },
    start,
    async leaseHolder(name) {
      const r = await pool.query<{ holder: string; token: string }>('SELECT holder, token FROM leases WHERE name = $1 AND expires_at > clock_timestamp()', [name]);
      return r.rows[0] ? { holder: r.rows[0].holder, token: Number(r.rows[0].token) } : null;
    },
    nodeCpuSeconds: () => live().reduce((s, n) => s + cpuSeconds(n.proc!.child.pid!), 0),
    async redisCpuSeconds() {
      const info = await redisInfo.info('cpu');
      // A regex literal does not interpolate `${k}`: the old /^${k}:…/m read 0 for every field.
      const field = (k: string) => Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
      return field('used_cpu_sys') + field('used_cpu_user');
    },
    async stop() {
      await Promise.all(nodes.map(async (n) => {
        if (!n.proc) return;
        const exited = n.proc.kill('SIGTERM');
        const timer = setTimeout(() => n.proc?.child.kill('SIGKILL'), 25_000);
        await exited;
        clearTimeout(timer);
      }));
      for (const k of killers) process.off('exit', k);
      await pool.end();
      redisInfo.disconnect();
      await lb.stop();
      await redis.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
