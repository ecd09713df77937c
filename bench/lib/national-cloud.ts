import fs from 'node:fs';
import path from 'node:path';
import { spawnCloud, tempDir, testCloudEnv, type CloudProcess } from '../../test/support/cloud-harness.ts';
import { freePorts } from '../../test/support/influxd.ts';
import type { BenchDatabaseKind } from './bench-database.ts';
import { ONE_ADDRESS_FLEET_ENV } from './one-address.ts';
import { seedCloudData, writeNationalRegion, type NationalRegion, type SeededCloudData } from './national-region.ts';

/**
 * The real cloud process (`cloud/main.ts`, spawned like the system tests do) for a synthetic national
 * region of `hubs` hubs, with pre-seeded hub credentials and an admin API token (see national-region.ts),
 * on SQLite (the default) or PostgreSQL (`database`). Its MQTT port is fixed for its life, so hubs
 * find it again after `restart()`.
 */
export interface NationalCloud {
  /** The running process (a new one after `restart()`). */
  readonly cloud: CloudProcess;
  region: NationalRegion;
  seeded: SeededCloudData;
  mqttPort: number;
  /** PostgreSQL: the cloud's database URL; SQLite: undefined. */
  databaseUrl?: string;
  /** SQLite: the data dir holding cloud.db (the same across restarts). */
  dataDir: string;
  /** spawn → CLOUD_READY, ms (of the first start). */
  startupMs: number;
  /** fetch against the cloud's HTTP API as the admin. */
  api(p: string, init?: RequestInit): Promise<Response>;
  /**
   * Stops the process with `signal` and starts it again on the same data and MQTT port, as a
   * supervisor would (systemd `Restart=always`, Docker's restart policy). Times are epoch ms.
   */
  restart(signal?: NodeJS.Signals): Promise<Restart>;
  stop(): Promise<void>;
}

export interface Restart {
  signalledAt: number;
  exitedAt: number;
  readyAt: number;
}

const epochNow = () => performance.timeOrigin + performance.now();

export async function startNationalCloud(
  hubs: number,
  o: { legacyScryptHubs?: number; nodeArgs?: string[]; env?: Record<string, string>; database?: BenchDatabaseKind } = {},
): Promise<NationalCloud> {
  const dir = tempDir(`bench-national-${hubs}`);
  try {
    const region = writeNationalRegion(dir, hubs);
    const dataDir = path.join(dir, 'data');
    const seeded = await seedCloudData(dataDir, region.id, region.hubs, region.hubs.slice(0, o.legacyScryptHubs ?? 0), o.database ?? 'sqlite');
    const [mqttPort] = await freePorts(1);
    const env = testCloudEnv(dataDir, {
      REGION_FILE: region.file, DEMO_CREDENTIALS: 'false', LOG_LEVEL: 'warn', MQTT_WS_PORT: 'off', MQTT_PORT: String(mqttPort), ...ONE_ADDRESS_FLEET_ENV, ...seeded.env, ...o.env,
    });
    // spawnCloud takes extra Node flags from CLOUD_NODE_ARGS (e.g. --inspect for the memory section).
    const spawn = async () => {
      const before = process.env.CLOUD_NODE_ARGS;
      if (o.nodeArgs) process.env.CLOUD_NODE_ARGS = [before ?? '', ...o.nodeArgs].join(' ').trim();
      try {
        return await spawnCloud(env);
      } finally {
        if (before === undefined) delete process.env.CLOUD_NODE_ARGS;
        else process.env.CLOUD_NODE_ARGS = before;
      }
    };
    const t0 = performance.now();
    let cloud = await spawn();
    const startupMs = performance.now() - t0;
    const killOnExit = () => cloud.child.kill('SIGKILL');
    process.once('exit', killOnExit);
    const stopCloud = async (signal: NodeJS.Signals) => {
      const exited = cloud.kill(signal);
      const timer = setTimeout(() => cloud.child.kill('SIGKILL'), 25_000);
      await exited;
      clearTimeout(timer);
    };
    return {
      get cloud() {
        return cloud;
      },
      region, seeded, startupMs, dataDir, databaseUrl: seeded.env.DATABASE_URL, mqttPort: mqttPort!,
      api(p, init = {}) {
        const headers = new Headers(init.headers);
        headers.set('authorization', `Bearer ${seeded.adminToken}`);
        if (init.body !== undefined && !headers.has('content-type')) headers.set('content-type', 'application/json');
        return fetch(`${cloud.urls.http}${p}`, { ...init, headers });
      },
      async restart(signal = 'SIGTERM') {
        const signalledAt = epochNow();
        await stopCloud(signal);
        const exitedAt = epochNow();
        cloud = await spawn();
        return { signalledAt, exitedAt, readyAt: epochNow() };
      },
      async stop() {
        process.off('exit', killOnExit);
        await stopCloud('SIGTERM');
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
