import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { openAccountStore } from '../../cloud/accounts/account-store.ts';
import { openDatabase } from '../../cloud/db/database.ts';
import { generatePassword, openHubCredentialStore } from '../../cloud/hubs/hub-credentials.ts';
import { loadRegionFile } from '../../cloud/hubs/region-loader.ts';
import { DEVICE_LOGINS_FILE, readDeviceLogins, type DeviceLogin } from '../../shared/device-logins.ts';
import { authedFetch, REGION_FILE, spawnCloud, tempDir, testCloudEnv, type CloudProcess } from './cloud-harness.ts';
import { spawnEdge, testEdgeEnv, type EdgeProcess } from './edge-harness.ts';
import { startHaproxy, type Haproxy, type HaproxyServerStat } from './haproxy.ts';
import { createInfluxDatabase, startInfluxd, type Influxd } from './influxd.ts';
import { startPostgresCluster, type PostgresCluster } from './postgres.ts';
import { freePort, waitFor } from './ports.ts';
import { startRedis, type RedisServer } from './redis.ts';

/**
 * A cloud cluster of real processes on loopback for the fault tests of issue 15 (item 2): one durable
 * PostgreSQL (a fresh database), Redis, influxd, N cloud nodes (`cloud/main.ts`, NODE_ID node-1…N,
 * a short LEASE_TTL_S), HAProxy in front of the nodes' MQTT ports, and one edge agent process per hub
 * connected through HAProxy. Devices are the test's business (they connect to the agents' local
 * brokers: `agents.get(hub).urls.mqtt`, logins from `deviceLogins(hub)`).
 *
 * Redis (append-only, so a restart keeps sessions and retained messages) and HAProxy (leastconn, each
 * node checked on GET /healthz, sessions cut when a node is marked down) come from test/support/redis.ts
 * and test/support/haproxy.ts.
 *
 * Hub credentials and the admin API token are put into the database before any node starts, so the
 * nodes agree on them without DEMO_CREDENTIALS racing between three processes.
 *
 * The fault hooks: `killNode(i)` (SIGKILL by default), `stopNode`/`contNode` (SIGSTOP/SIGCONT),
 * `restartNode(i)` (same ports, id and data dir), `restartPostgres()`, `restartRedis()`. The counts:
 * `influxPoints` (points per message id in influxd), `sql` (the operational database), `leaseHolder`.
 */
export const REGION = 'ishikawa-nomi';
export const INFLUX_DB = 'chiiki';

export interface ClusterOptions {
  /** Hubs that get an edge agent (real process) behind HAProxy. */
  hubs: readonly string[];
  nodes?: number;
  leaseTtlS?: number;
  /** Extra environment for every node (e.g. MODE_ACK_TIMEOUT_S). */
  nodeEnv?: Record<string, string>;
  /** Extra environment for every edge agent. */
  edgeEnv?: Record<string, string>;
}

export interface ClusterNode {
  readonly index: number;
  readonly id: string;
  readonly httpPort: number;
  readonly mqttPort: number;
  readonly httpUrl: string;
  /** 'up': running; 'stopped': SIGSTOP; 'down': killed or stopped, not restarted yet. */
  state: 'up' | 'stopped' | 'down';
  proc: CloudProcess | null;
  /** Output lines of every run of this node (stdout and stderr), for failure messages. */
  readonly log: string[];
}

export interface ClusterAgent {
  readonly hub: string;
  readonly dir: string;
  proc: EdgeProcess;
}

export interface AgentStatus {
  uplink: { connected: boolean; connects: number; sent: number; acked: number; inFlight: number };
  outbox: { depth: number };
  mode: { mode: string; version: number };
}

export interface RestartOptions {
  downMs?: number;
  crash?: boolean;
  whileDown?: () => Promise<unknown>;
}

export interface LeaseRow {
  holder: string;
  token: number;
  expiresAt: number | null;
}

export interface Cluster {
  readonly pg: PostgresCluster;
  readonly databaseUrl: string;
  readonly redis: RedisServer;
  readonly influx: Influxd;
  readonly haproxy: Haproxy;
  readonly nodes: ClusterNode[];
  readonly agents: Map<string, ClusterAgent>;
  /** Admin API token (valid on every node: they share the database). */
  readonly token: string;
  /** Figures measured while starting: ms for the infrastructure, the nodes (agents starting meanwhile), the agents connected after HAProxy opened. */
  readonly startup: { infraMs: number; nodesMs: number; agentsMs: number; totalMs: number };
  /** fetch as the admin on node `i` (default: the first node that is up). */
  api(p: string, init?: RequestInit, i?: number): Promise<Response>;
  /** GET as JSON on node `i` (default: the first that is up); throws on a non-2xx answer. */
  getJson<T>(p: string, i?: number): Promise<T>;
  /** POST JSON on node `i` (default: the first that is up); the status and the parsed body. */
  postJson<T>(p: string, body: unknown, i?: number): Promise<{ status: number; body: T }>;
  upNodes(): ClusterNode[];
  killNode(i: number, signal?: NodeJS.Signals): Promise<void>;
  stopNode(i: number): void;
  contNode(i: number): void;
  restartNode(i: number): Promise<void>;
  /** Stops PostgreSQL (fast shutdown; `crash`: SIGKILL), runs `whileDown`, waits out `downMs`, starts it again. */
  restartPostgres(o?: RestartOptions): Promise<void>;
  /** The same for Redis (SIGTERM: it writes its append-only file first; `crash`: SIGKILL). */
  restartRedis(o?: RestartOptions): Promise<void>;
  /** The unexpired lease of a region (`leases` table, cloud/cluster/leases.ts); null when none is held or the table is missing. */
  leaseHolder(region?: string): Promise<LeaseRow | null>;
  /** Index of the node whose NODE_ID holds the region's lease (and has not expired), or null. */
  leaseHolderIndex(region?: string): Promise<number | null>;
  /** Points per message id of one measurement of a hub in influxd. */
  influxPoints(measurement: string, hub: string): Promise<Map<string, number>>;
  /** The sum of the numbers an InfluxQL count query answers (every series). */
  influxCount(q: string): Promise<number>;
  /** Every message id of a hub in influxd (all measurements). */
  influxIds(hub: string): Promise<Set<string>>;
  /** A query on the operational database (a fresh connection each time: survives PostgreSQL restarts). */
  sql<R = Record<string, unknown>>(text: string, params?: unknown[]): Promise<R[]>;
  agentStatus(hub: string): Promise<AgentStatus>;
  deviceLogins(hub: string): Record<string, DeviceLogin>;
  haproxyServers(): Promise<HaproxyServerStat[]>;
  stop(): Promise<void>;
}

/** Starts the whole cluster. On failure everything started so far is stopped again. */
export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const t0 = Date.now();
  const n = o.nodes ?? 3;
  const stops: (() => Promise<unknown>)[] = [];
  const stopAll = async () => {
    for (const s of stops.splice(0).reverse()) await s().catch(() => undefined);
  };
  try {
    const [pgc, redis, influx] = await Promise.all([startPostgresCluster({ durable: true }), startRedis({ appendonly: true }), startInfluxd()]);
    stops.push(() => pgc.destroy(), () => redis.stop(), () => influx.stop());
    await createInfluxDatabase(influx.url, INFLUX_DB);
    const databaseUrl = await pgc.createDatabase('cluster');

    // Credentials and an admin token first, in the shared database (migrations included).
    const region = loadRegionFile(REGION_FILE);
    const passwords = new Map(o.hubs.map((h) => [h, generatePassword()]));
    const db = await openDatabase({ url: databaseUrl, dataDir: '' });
    let token: string;
    try {
      const credentials = await openHubCredentialStore(db);
      for (const [hub, password] of passwords) {
        if (!region.hubs.some((h) => h.id === hub)) throw new Error(`hub ${hub} is not in ${REGION_FILE}`);
        await credentials.set(hub, REGION, hub, password);
      }
      const accounts = await openAccountStore(db);
      await accounts.create({ username: 'cluster-admin', role: 'admin', hubs: [], password: 'cluster-admin-password-1' });
      token = (await accounts.createApiToken('cluster-admin', 'cluster fault tests')).token;
    } finally {
      await db.close();
    }
    const infraMs = Date.now() - t0;

    const nodes: ClusterNode[] = [];
    for (let i = 0; i < n; i++) {
      const [httpPort, mqttPort] = [await freePort(), await freePort()];
      nodes.push({ index: i, id: `node-${i + 1}`, httpPort, mqttPort, httpUrl: `http://127.0.0.1:${httpPort}`, state: 'down', proc: null, log: [] });
    }
    const nodeDirs = nodes.map((nd) => tempDir(`cluster-${nd.id}`));
    stops.push(async () => nodeDirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
    const envOf = (nd: ClusterNode) =>
      testCloudEnv(nodeDirs[nd.index]!, {
        HTTP_PORT: String(nd.httpPort), MQTT_PORT: String(nd.mqttPort), MQTT_WS_PORT: 'off',
        DEMO_CREDENTIALS: 'false', DEMO_ACCOUNTS: 'false', LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
        DATABASE_URL: databaseUrl, REDIS_URL: redis.url, NODE_ID: nd.id, LEASE_TTL_S: String(o.leaseTtlS ?? 2),
        INFLUX_URL: influx.url, INFLUX_DB,
        ...o.nodeEnv,
      });
    const startNode = async (nd: ClusterNode) => {
      const proc = await spawnCloud(envOf(nd)).catch((err: Error) => {
        nd.log.push(err.message);
        throw err;
      });
      nd.proc = proc;
      nd.state = 'up';
      // spawnCloud collects the output per run; keep every run's lines on the node.
      const from = nd.log.length;
      nd.log.push(`--- ${nd.id} started at ${new Date().toISOString()} ---`);
      const mirror = setInterval(() => {
        nd.log.splice(from + 1, nd.log.length, ...proc.output);
      }, 500);
      mirror.unref();
      proc.child.once('exit', () => {
        clearInterval(mirror);
        nd.log.splice(from + 1, nd.log.length, ...proc.output);
      });
    };
    const tNodes = Date.now();
    stops.push(async () => {
      for (const nd of nodes) {
        if (nd.state === 'stopped') nd.proc?.child.kill('SIGCONT');
        await nd.proc?.kill('SIGKILL');
      }
    });
    // The agents start (a few seconds of tsx each) while the nodes do; they point at HAProxy's port, which
    // opens once every node is ready, so leastconn spreads them over all three (their back-off is 1 s).
    const haproxyPort = await freePort();
    const agents = new Map<string, ClusterAgent>();
    stops.push(async () => {
      for (const a of agents.values()) {
        await a.proc.kill('SIGKILL');
        fs.rmSync(a.dir, { recursive: true, force: true });
      }
    });
    const agentsStarted = Promise.allSettled(o.hubs.map(async (hub) => {
      const dir = tempDir(`cluster-edge-${hub}`);
      try {
        const proc = await spawnEdge(testEdgeEnv({ hub, cloudUrl: `mqtt://127.0.0.1:${haproxyPort}`, password: passwords.get(hub)!, dataDir: dir, extra: o.edgeEnv }));
        agents.set(hub, { hub, dir, proc });
      } catch (err) {
        fs.rmSync(dir, { recursive: true, force: true });
        throw err;
      }
    }));
    const nodesStarted = await Promise.allSettled(nodes.map((nd) => startNode(nd)));
    const nodesMs = Date.now() - tNodes;
    const failed = [...nodesStarted, ...(await agentsStarted)].find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;

    const haproxy = await startHaproxy(nodes.map((nd) => ({ name: nd.id, port: nd.mqttPort, checkPort: nd.httpPort })), { port: haproxyPort });
    stops.push(() => haproxy.stop());
    for (const nd of nodes) await haproxy.waitForStatus(nd.id, 'UP');
    const tAgents = Date.now();
    const agentStatus = async (hub: string): Promise<AgentStatus> => {
      const res = await fetch(`${agents.get(hub)!.proc.urls.http}/status`, { signal: AbortSignal.timeout(5_000) });
      return (await res.json()) as AgentStatus;
    };
    await waitFor('every agent connected through HAProxy', async () => (await Promise.all(o.hubs.map(agentStatus))).every((s) => s.uplink.connected), 30_000, 100);
    const agentsMs = Date.now() - tAgents;

    const up = () => nodes.filter((nd) => nd.state === 'up');
    const nodeAt = (i?: number) => {
      const nd = i === undefined ? up()[0] : nodes[i];
      if (!nd) throw new Error('no node is up');
      return nd;
    };
    const api = (p: string, init?: RequestInit, i?: number) => authedFetch(nodeAt(i).httpUrl, token, p, { signal: AbortSignal.timeout(10_000), ...init });
    const sql = async <R>(text: string, params: unknown[] = []): Promise<R[]> => {
      const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5_000 });
      client.on('error', () => undefined);
      await client.connect();
      try {
        return (await client.query(text, params)).rows as R[];
      } finally {
        await client.end().catch(() => undefined);
      }
    };
    const influxQuery = async (q: string) => {
      const res = await fetch(`${influx.url}/query?${new URLSearchParams({ db: INFLUX_DB, q, epoch: 'ms' })}`, { signal: AbortSignal.timeout(20_000) });
      if (!res.ok) throw new Error(`influxd ${res.status}: ${await res.text()}`);
      return ((await res.json()) as { results: { series?: { name: string; columns: string[]; values: unknown[][] }[]; error?: string }[] }).results[0]!;
    };
    const leaseHolder = async (r = REGION): Promise<LeaseRow | null> => {
      // cloud/cluster/leases.ts: one row per lease name (`region:<id>`); the holder is `<NODE_ID>/<per-process suffix>`.
      const rows = await sql<{ holder: string; token: string; expires_at: string; live: boolean }>(
        "SELECT holder, token, (extract(epoch FROM expires_at) * 1000)::bigint AS expires_at, expires_at > clock_timestamp() AS live FROM leases WHERE name = $1",
        [`region:${r}`],
      ).catch((err: Error) => {
        if (/relation "leases" does not exist/.test(err.message)) return [];
        throw err;
      });
      const row = rows[0];
      return row && row.live ? { holder: row.holder, token: Number(row.token), expiresAt: Number(row.expires_at) } : null;
    };

    const cluster: Cluster = {
      pg: pgc, databaseUrl, redis, influx, haproxy, nodes, agents, token,
      startup: { infraMs, nodesMs, agentsMs, totalMs: Date.now() - t0 },
      api,
      async getJson<T>(p: string, i?: number) {
        const res = await api(p, {}, i);
        if (!res.ok) throw new Error(`GET ${p} on ${nodeAt(i).id}: ${res.status} ${await res.text()}`);
        return (await res.json()) as T;
      },
      async postJson<T>(p: string, body: unknown, i?: number) {
        const res = await api(p, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }, i);
        return { status: res.status, body: (await res.json()) as T };
      },
      upNodes: up,
      async killNode(i, signal = 'SIGKILL') {
        const nd = nodes[i]!;
        if (nd.state === 'stopped') nd.proc!.child.kill('SIGCONT');
        nd.state = 'down';
        await nd.proc?.kill(signal);
      },
      stopNode(i) {
        const nd = nodes[i]!;
        nd.proc!.child.kill('SIGSTOP');
        nd.state = 'stopped';
      },
      contNode(i) {
        const nd = nodes[i]!;
        nd.proc!.child.kill('SIGCONT');
        nd.state = 'up';
      },
      async restartNode(i) {
        const nd = nodes[i]!;
        if (nd.state !== 'down') await cluster.killNode(i, 'SIGTERM');
        await startNode(nd);
        await haproxy.waitForStatus(nd.id, 'UP');
      },
      async restartPostgres(r = {}) {
        const down = Date.now();
        await pgc.stop({ crash: r.crash });
        await r.whileDown?.();
        await sleepRest(down, r.downMs);
        await pgc.restart();
      },
      async restartRedis(r = {}) {
        const down = Date.now();
        await redis.stop({ keepData: true, crash: r.crash });
        await r.whileDown?.();
        await sleepRest(down, r.downMs);
        await redis.start();
      },
      leaseHolder,
      async leaseHolderIndex(r = REGION) {
        const row = await leaseHolder(r);
        if (!row) return null;
        const i = nodes.findIndex((nd) => row.holder.startsWith(`${nd.id}/`));
        return i < 0 ? null : i;
      },
      async influxPoints(measurement, hub) {
        const result = await influxQuery(`SELECT "msg_id" FROM "${measurement}" WHERE "hub" = '${hub}'`);
        if (result.error) throw new Error(result.error);
        const counts = new Map<string, number>();
        for (const s of result.series ?? []) for (const row of s.values) counts.set(String(row[1]), (counts.get(String(row[1])) ?? 0) + 1);
        return counts;
      },
      async influxCount(q) {
        const result = await influxQuery(q);
        if (result.error) throw new Error(result.error);
        let n = 0;
        for (const s of result.series ?? []) for (const row of s.values) for (const v of row.slice(1)) if (typeof v === 'number') n += v;
        return n;
      },
      async influxIds(hub) {
        const measurements = await influxQuery('SHOW MEASUREMENTS');
        const names = (measurements.series?.[0]?.values ?? []).map((v) => String(v[0]));
        const ids = new Set<string>();
        for (const m of names) {
          const result = await influxQuery(`SELECT DISTINCT("msg_id") FROM "${m}" WHERE "hub" = '${hub}'`);
          for (const s of result.series ?? []) for (const row of s.values) if (typeof row[1] === 'string') ids.add(row[1]);
        }
        return ids;
      },
      sql,
      agentStatus,
      deviceLogins: (hub) => readDeviceLogins(path.join(agents.get(hub)!.dir, DEVICE_LOGINS_FILE)).logins,
      haproxyServers: () => haproxy.servers(),
      stop: stopAll,
    };
    return cluster;
  } catch (err) {
    await stopAll();
    throw err;
  }
}

/** The fault's duration: what is left of `ms` since `from`. */
async function sleepRest(from: number, ms = 0): Promise<void> {
  const left = ms - (Date.now() - from);
  if (left > 0) await new Promise((r) => setTimeout(r, left));
}
