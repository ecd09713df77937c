import fs from 'node:fs';
import path from 'node:path';
import { RegionFile } from '../../contract/index.ts';
import { hashPassword, LEGACY_SCRYPT } from '../../cloud/accounts/password-hash.ts';
import { generatePassword, hashHubSecret } from '../../cloud/hubs/hub-credentials.ts';
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

export interface SeededCloudData {
  /** Password of every hub not in `legacyScrypt` (a generated secret; each hub's row holds its own HMAC of it). */
  password: string;
  /** Hubs whose secret is stored as an older cloud stored it (scrypt N=2^14, r=8, p=1), with their own passwords. */
  legacyScrypt: Record<string, string>;
  /** Bearer token of an admin account. */
  adminToken: string;
}

/**
 * Pre-seeds the cloud's operational database before the cloud starts — SQLite (DATA_DIR/cloud.db) or
 * PostgreSQL (a new database in the invocation's cluster; its DATABASE_URL is in `env`): hub credentials
 * and an admin account with an API token (what `npm run hub-credentials` and `npm run accounts` do, in
 * bulk: bench-database.ts). Hub secrets are in the production form (issue 17: HMAC-SHA-256 with a key
 * of each row's own, hubs/hub-credentials.ts), so every connect costs what it costs in production; every
 * hub shares one generated secret, which changes nothing in that cost (each row is its own HMAC of it,
 * checked after its own row is read). The hubs listed in `legacyScryptHubs` get their own password
 * stored as a scrypt N=2^14 hash instead — what a cloud before issue 17 stored, re-stored in the fast
 * form at their first login.
 */
export async function seedCloudData(
  dataDir: string, region: string, hubs: readonly string[], legacyScryptHubs: readonly string[] = [], database: BenchDatabaseKind = 'sqlite',
): Promise<SeededCloudData & { env: Record<string, string> }> {
  fs.mkdirSync(dataDir, { recursive: true });
  const password = generatePassword();
  const legacyScrypt: Record<string, string> = {};
  const legacySecrets = new Map<string, string>();
  for (const h of legacyScryptHubs) {
    legacyScrypt[h] = generatePassword();
    legacySecrets.set(h, await hashPassword(legacyScrypt[h], LEGACY_SCRYPT));
  }
  const prepared = await prepareCloudDatabase(database, dataDir, region, hubs.map((h) => ({ hubId: h, username: h, secret: legacySecrets.get(h) ?? hashHubSecret(password) })));
  return { password, legacyScrypt, adminToken: prepared.adminToken, env: prepared.env };
}
