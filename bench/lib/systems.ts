import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { spawnCloud, tempDir, testCloudEnv, type CloudProcess } from '../../test/support/cloud-harness.ts';
import { ONE_ADDRESS_FLEET_ENV } from './one-address.ts';
import type { RunPlan } from '../load/publisher.ts';
import { DATABASE_LABEL, prepareCloudDatabase, type BenchDatabaseKind } from './bench-database.ts';
import { benchHubSecrets, writeBenchRegion, type BenchRegion } from './bench-region.ts';

/** The systems under test, started the way a deployment runs them (own processes, loopback). */

export interface OurCloud {
  process: CloudProcess;
  pid: number;
  region: BenchRegion;
  mqttPort: number;
  httpUrl: string;
  dataDir: string;
  /** Admin bearer token. */
  token: string;
  /** The operational database it runs on. */
  database: BenchDatabaseKind;
  /** "SQLite" / "PostgreSQL". */
  label: string;
  /** cloud.db, or the PostgreSQL database's URL. */
  databaseWhere: string;
  stop(): Promise<void>;
}

/**
 * The real cloud process (cloud/main.ts) with a synthetic region of `hubs` hubs; telemetry into influxd
 * when `influx` is given, else the embedded telemetry store. Its operational database (hub credentials,
 * dedupe ids, alarms, modes…) is `database`: SQLite (DATA_DIR/cloud.db, SQLITE_SYNC=full, the default)
 * or PostgreSQL (a database of its own in the invocation's durable cluster, bench-database.ts).
 */
export async function startOurCloud(o: { hubs: number; database?: BenchDatabaseKind; influx?: { url: string; database: string }; env?: Record<string, string> }): Promise<OurCloud> {
  const database = o.database ?? 'sqlite';
  const dataDir = tempDir('bench-cloud');
  const region = writeBenchRegion(dataDir, o.hubs);
  const prepared = await prepareCloudDatabase(database, dataDir, region.id, benchHubSecrets(region));
  const token = prepared.adminToken;
  const env: Record<string, string> = {
    REGION_FILE: region.file, DEMO_CREDENTIALS: 'false', LOG_LEVEL: 'warn', MQTT_WS_PORT: 'off',
    INGEST_MAX_DEVICES_PER_HUB: '2000', SQLITE_SYNC: 'full', ...ONE_ADDRESS_FLEET_ENV, ...prepared.env, ...o.env,
  };
  if (o.influx) Object.assign(env, { INFLUX_URL: o.influx.url, INFLUX_DB: o.influx.database, INFLUX_CREATE_DB: 'true' });
  const proc = await spawnCloud(testCloudEnv(dataDir, env));
  return {
    process: proc, pid: proc.child.pid!, region, dataDir, token, database, label: DATABASE_LABEL[database], databaseWhere: prepared.where,
    mqttPort: Number(new URL(proc.urls.mqtt).port), httpUrl: proc.urls.http,
    async stop() {
      await proc.kill('SIGTERM');
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** InfluxQL against the v1 API; returns the `series` of each statement. */
export async function influxQuery(url: string, db: string, q: string): Promise<{ series?: { name: string; columns: string[]; values: unknown[][]; tags?: Record<string, string> }[] }[]> {
  const res = await fetch(`${url}/query?${new URLSearchParams({ db, q, epoch: 'ms' })}`);
  if (!res.ok) throw new Error(`influx query failed: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { results: { series?: { name: string; columns: string[]; values: unknown[][] }[]; error?: string }[] };
  for (const r of body.results) if (r.error) throw new Error(`influx: ${r.error}`);
  return body.results;
}

export interface Counts {
  drone: number;
  sensor: number;
  locker: number;
  /** drone + sensor + locker messages (a locker message is 16 points: counted once, by compartment A01). */
  messages: number;
}

/** Messages stored with a timestamp in [from, to). */
export async function influxCounts(url: string, db: string, from: number, to: number): Promise<Counts> {
  const range = `time >= ${from}ms AND time < ${to}ms`;
  const results = await influxQuery(url, db, [
    `SELECT count("battery_pct") FROM "drone" WHERE ${range}`,
    `SELECT count("wind_speed_mps") FROM "sensor" WHERE ${range}`,
    `SELECT count("occupied") FROM "locker" WHERE "compartment" = 'A01' AND ${range}`,
  ].join('; '));
  const n = (i: number) => Number(results[i]?.series?.[0]?.values?.[0]?.[1] ?? 0);
  const c = { drone: n(0), sensor: n(1), locker: n(2) };
  return { ...c, messages: c.drone + c.sensor + c.locker };
}

/** The same from the embedded store (SQLite file, read-only connection). */
export function sqliteCounter(dataDir: string): { counts(from: number, to: number): Counts; probeTimes(hubs: string[], device: string, from: number): { hub: string; ts: number }[]; close(): void } {
  const db = new Database(path.join(dataDir, 'telemetry.db'), { readonly: true, fileMustExist: true });
  const count = db.prepare<[string, number, number], { n: number }>("SELECT count(*) AS n FROM points WHERE measurement = ? AND part IN ('', 'A01') AND ts >= ? AND ts < ?");
  return {
    counts(from, to) {
      const c = { drone: count.get('drone', from, to)!.n, sensor: count.get('sensor', from, to)!.n, locker: count.get('locker', from, to)!.n };
      return { ...c, messages: c.drone + c.sensor + c.locker };
    },
    probeTimes(hubs, device, from) {
      const q = db.prepare(`SELECT hub, ts FROM points WHERE hub IN (${hubs.map(() => '?').join(',')}) AND device = ? AND measurement = 'drone' AND ts >= ?`);
      return q.all(...hubs, device, from) as { hub: string; ts: number }[];
    },
    close: () => db.close(),
  };
}

export function expectedMessages(plan: RunPlan, slices: number): number {
  return (plan.perSlice.drone + plan.perSlice.sensor + plan.perSlice.locker) * slices;
}

/**
 * Watches a run's one-second slices: a slice passes when every message scheduled in it is queryable
 * at its end + `deadlineMs`. Resolves when all slices are checked.
 */
export async function watchSlices(plan: RunPlan, count: (from: number, to: number) => Promise<Counts>, deadlineMs = 5_000): Promise<{ passed: number; failed: number; shortfall: number; firstFailure: string | null }> {
  const perSlice = plan.perSlice.drone + plan.perSlice.sensor + plan.perSlice.locker;
  let passed = 0;
  let failed = 0;
  let shortfall = 0;
  let firstFailure: string | null = null;
  for (let i = 0; i < plan.seconds; i++) {
    const from = plan.startedAt + i * 1000;
    const checkAt = from + 1000 + deadlineMs;
    const wait = checkAt - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const c = await count(from, from + 1000);
    if (c.messages >= perSlice) passed++;
    else {
      failed++;
      shortfall += perSlice - c.messages;
      firstFailure ??= `slice ${i}: ${c.messages} of ${perSlice} queryable ${deadlineMs / 1000} s after its end`;
    }
  }
  return { passed, failed, shortfall, firstFailure };
}
