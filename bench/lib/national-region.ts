import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { RegionFile } from '../../contract/index.ts';
import { hashSecret } from '../../cloud/hubs/hub-credentials.ts';
import { rng } from '../../cloud/dispatch/synthetic-dispatch.ts';
import { prepareCloudDatabase, type BenchDatabaseKind } from './bench-database.ts';

/**
 * A synthetic national region for benchmarks: `count` hubs — the first 1,230 roadside stations
 * (道の駅, the national count), the rest community halls (公民館; 13,800 with them) — with positions
 * spread over Japan and no devices (the broker and modes do not care about devices). Valid against
 * the region file schema in contract/.
 */
export const ROADSIDE_STATIONS = 1_230;
export const COMMUNITY_HALLS_AND_STATIONS = 13_800;

export interface NationalRegion {
  file: string;
  id: string;
  hubs: string[];
}

export const hubIdOf = (i: number): string =>
  i < ROADSIDE_STATIONS ? `rs-${String(i + 1).padStart(5, '0')}` : `ch-${String(i - ROADSIDE_STATIONS + 1).padStart(5, '0')}`;

export function writeNationalRegion(dir: string, count: number, id = 'japan-national'): NationalRegion {
  const rand = rng(count);
  const hubs = Array.from({ length: count }, (_, i) => {
    const hubId = hubIdOf(i);
    const station = i < ROADSIDE_STATIONS;
    // Along the archipelago from Kyushu (31°N 130°E) to Hokkaido (44°N 144°E), ±1.5° across.
    const t = rand();
    const across = (rand() - 0.5) * 3;
    return {
      id: hubId,
      kind: station ? 'roadside-station' : 'community-hall',
      name: station ? { ja: `道の駅 ${i + 1}`, en: `Roadside station ${i + 1}` } : { ja: `公民館 ${i + 1}`, en: `Community hall ${i + 1}` },
      location: { lat: Number((31 + 13 * t + across * 0.6).toFixed(5)), lon: Number((130 + 14 * t - across * 0.8).toFixed(5)) },
    };
  });
  const region = { id, name: { ja: '全国 (ベンチマーク)', en: `National (benchmark, ${count} hubs)` }, hubs };
  RegionFile.parse(region); // fail here, not in the cloud, when the generator drifts from the schema
  const file = path.join(dir, `region-${count}.json`);
  fs.writeFileSync(file, JSON.stringify(region));
  return { file, id, hubs: hubs.map((h) => h.id) };
}

/** scrypt N of the benchmark's hub secrets (production: 2^14). */
export const BENCH_SCRYPT_N = 1 << 8;

/** The stored secret format of cloud/hubs/hub-credentials.ts (`scrypt$N$r$p$salt$hash`), at a chosen cost. */
export function lowCostSecret(password: string, N = BENCH_SCRYPT_N): string {
  const salt = crypto.randomBytes(16);
  const hash = crypto.scryptSync(password, salt, 32, { N, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
  return ['scrypt', N, 8, 1, salt.toString('base64url'), hash.toString('base64url')].join('$');
}

export interface SeededCloudData {
  /** Password of every hub not in `productionCost`. */
  password: string;
  /** Hubs whose secret is hashed at production cost (N=2^14), with their own passwords. */
  productionCost: Record<string, string>;
  /** Bearer token of an admin account. */
  adminToken: string;
}

/**
 * Pre-seeds the cloud's operational database before the cloud starts — SQLite (DATA_DIR/cloud.db) or
 * PostgreSQL (a new database in the invocation's cluster; its DATABASE_URL is in `env`): hub credentials
 * and an admin account with an API token (what `npm run hub-credentials` and `npm run accounts` do, in
 * bulk: bench-database.ts). Every hub shares one password and one low-cost secret (scrypt N=2^8: the
 * cloud still runs one scrypt per hub at its first connect, ~0.6 ms instead of ~48 ms); the hubs listed
 * in `productionCostHubs` get their own password hashed at production cost.
 */
export async function seedCloudData(
  dataDir: string, region: string, hubs: readonly string[], productionCostHubs: readonly string[] = [], database: BenchDatabaseKind = 'sqlite',
): Promise<SeededCloudData & { env: Record<string, string> }> {
  fs.mkdirSync(dataDir, { recursive: true });
  const password = crypto.randomBytes(12).toString('base64url');
  const shared = lowCostSecret(password);
  const productionCost: Record<string, string> = {};
  const prodSecrets = new Map<string, string>();
  for (const h of productionCostHubs) {
    productionCost[h] = crypto.randomBytes(12).toString('base64url');
    prodSecrets.set(h, await hashSecret(productionCost[h]));
  }
  const prepared = await prepareCloudDatabase(database, dataDir, region, hubs.map((h) => ({ hubId: h, username: h, secret: prodSecrets.get(h) ?? shared })));
  return { password, productionCost, adminToken: prepared.adminToken, env: prepared.env };
}
