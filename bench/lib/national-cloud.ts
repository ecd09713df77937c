import fs from 'node:fs';
import path from 'node:path';
import { spawnCloud, tempDir, testCloudEnv, type CloudProcess } from '../../test/support/cloud-harness.ts';
import type { BenchDatabaseKind } from './bench-database.ts';
import { ONE_ADDRESS_FLEET_ENV } from './one-address.ts';
import { seedCloudData, writeNationalRegion, type NationalRegion, type SeededCloudData } from './national-region.ts';

/**
 * The real cloud process (`cloud/main.ts`, spawned like the system tests do) for a synthetic national
 * region of `hubs` hubs, with pre-seeded hub credentials and an admin API token (see national-region.ts),
 * on SQLite (the default) or PostgreSQL (`database`).
 */
export interface NationalCloud {
  cloud: CloudProcess;
  region: NationalRegion;
  seeded: SeededCloudData;
  mqttPort: number;
  /** PostgreSQL: the cloud's database URL; SQLite: undefined. */
  databaseUrl?: string;
  /** spawn → CLOUD_READY, ms. */
  startupMs: number;
  /** fetch against the cloud's HTTP API as the admin. */
  api(p: string, init?: RequestInit): Promise<Response>;
  stop(): Promise<void>;
}

export async function startNationalCloud(
  hubs: number,
  o: { productionCostHubs?: number; nodeArgs?: string[]; env?: Record<string, string>; database?: BenchDatabaseKind } = {},
): Promise<NationalCloud> {
  const dir = tempDir(`bench-national-${hubs}`);
  try {
    const region = writeNationalRegion(dir, hubs);
    const dataDir = path.join(dir, 'data');
    const seeded = await seedCloudData(dataDir, region.id, region.hubs, region.hubs.slice(0, o.productionCostHubs ?? 0), o.database ?? 'sqlite');
    // spawnCloud takes extra Node flags from CLOUD_NODE_ARGS (e.g. --inspect for the memory section).
    const before = process.env.CLOUD_NODE_ARGS;
    if (o.nodeArgs) process.env.CLOUD_NODE_ARGS = [before ?? '', ...o.nodeArgs].join(' ').trim();
    const t0 = performance.now();
    let cloud: CloudProcess;
    try {
      cloud = await spawnCloud(testCloudEnv(dataDir, {
        REGION_FILE: region.file, DEMO_CREDENTIALS: 'false', LOG_LEVEL: 'warn', MQTT_WS_PORT: 'off', ...ONE_ADDRESS_FLEET_ENV, ...seeded.env, ...o.env,
      }));
    } finally {
      if (before === undefined) delete process.env.CLOUD_NODE_ARGS;
      else process.env.CLOUD_NODE_ARGS = before;
    }
    const startupMs = performance.now() - t0;
    const killOnExit = () => cloud.child.kill('SIGKILL');
    process.once('exit', killOnExit);
    return {
      cloud, region, seeded, startupMs, databaseUrl: seeded.env.DATABASE_URL, mqttPort: Number(new URL(cloud.urls.mqtt).port),
      api(p, init = {}) {
        const headers = new Headers(init.headers);
        headers.set('authorization', `Bearer ${seeded.adminToken}`);
        if (init.body !== undefined && !headers.has('content-type')) headers.set('content-type', 'application/json');
        return fetch(`${cloud.urls.http}${p}`, { ...init, headers });
      },
      async stop() {
        process.off('exit', killOnExit);
        const exited = cloud.kill('SIGTERM');
        const timer = setTimeout(() => cloud.child.kill('SIGKILL'), 25_000);
        await exited;
        clearTimeout(timer);
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
