import type { RegionFile } from '../../contract/index.ts';
import { createRegions, type Regions } from '../../cloud/hubs/regions.ts';

/**
 * Regions made of hub ids only, for unit tests of services that look hubs up in `Regions` and need
 * nothing else of a region file (modes, proposals). Not valid region files: never pass them to code
 * that reads hubs' lockers, drones or positions.
 */
export function regionsOfHubs(byRegion: Record<string, readonly string[]>): Regions {
  return createRegions(Object.entries(byRegion).map(([id, hubs]) => regionOfHubs(id, hubs)));
}

export function regionOfHubs(id: string, hubs: readonly string[]): RegionFile {
  return {
    id, name: { ja: id, en: id }, hubs: hubs.map((h) => ({ id: h }) as RegionFile['hubs'][number]),
    landingSites: [], noFlyZones: [], reliefRoutes: [], groundRounds: [],
  };
}
