import fs from 'node:fs';
import path from 'node:path';
import type { RegionFile } from '../../contract/index.ts';
import { BANK_COMPARTMENTS, benchLockerBanks, EVENT_BANKS, EVENT_COMPARTMENTS, eventCompartment } from './bench-devices.ts';
import type { HubSecret } from './bench-database.ts';
import { hashHubSecret } from '../../cloud/hubs/hub-credentials.ts';
import { REGION_FILE } from '../../test/support/cloud-harness.ts';

/**
 * A synthetic region for the benchmarks: `hubs` hubs cloned from the first hub of the Nomi region
 * file (one drone, one locker bank, one weather sensor each), on a grid around Nomi, with hub
 * credentials seeded into the cloud's operational database (SQLite or PostgreSQL: bench-database.ts). Each hub also declares the locker banks
 * the benchmark publisher reports for, and the first hub the banks its alarm events go to
 * (bench/lib/bench-devices.ts): the cloud refuses compartments a region file does not declare.
 *
 * The seeded secrets are in the production form (issue 17: HMAC-SHA-256, a key per row; ~3 µs a
 * check). Until issue 17 they were scrypt at N=2^8 instead of production's 2^14, because at 2^14 every
 * first connect cost 30–60 ms of CPU and connecting the benchmark's hubs would have measured scrypt.
 */
export interface BenchRegion {
  id: string;
  file: string;
  hubs: { id: string; username: string; password: string }[];
}

export function writeBenchRegion(dir: string, hubCount: number, id = 'bench-region'): BenchRegion {
  const template = JSON.parse(fs.readFileSync(REGION_FILE, 'utf8')) as RegionFile;
  const first = template.hubs[0]!;
  const cols = Math.ceil(Math.sqrt(hubCount));
  const bank = (id: string, compartments: string[]) => ({ id, compartments: compartments.map((c) => ({ id: c, size: 'S', tempClass: 'ambient' })) });
  const publisherBanks = benchLockerBanks().map((id) => bank(id, BANK_COMPARTMENTS));
  const eventBanks = Array.from({ length: EVENT_BANKS }, (_, b) => bank(`ev-${b}`, Array.from({ length: EVENT_COMPARTMENTS }, (_, c) => eventCompartment(c))));
  const hubs = Array.from({ length: hubCount }, (_, i) => ({
    ...first,
    lockers: [...first.lockers, ...publisherBanks, ...(i === 0 ? eventBanks : [])],
    id: `h${String(i).padStart(5, '0')}`,
    name: { ja: `ハブ${i}`, en: `Hub ${i}` },
    location: { lat: 36.2 + Math.floor(i / cols) * 0.005, lon: 136.3 + (i % cols) * 0.005 },
  }));
  const region = { id, name: { ja: 'ベンチマーク地域', en: 'Benchmark region' }, hubs, landingSites: [], noFlyZones: [], reliefRoutes: [], groundRounds: [] };
  const file = path.join(dir, 'bench-region.json');
  fs.writeFileSync(file, JSON.stringify(region));
  return { id, file, hubs: hubs.map((h) => ({ id: h.id, username: h.id, password: `bench-secret-of-${h.id}` })) };
}

/** The region's hub credentials as the cloud stores them (production form, see above), for prepareCloudDatabase. */
export function benchHubSecrets(region: BenchRegion): HubSecret[] {
  return region.hubs.map((h) => ({ hubId: h.id, username: h.username, secret: hashHubSecret(h.password) }));
}
