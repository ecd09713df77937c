import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

/**
 * A region's base map (issue 13, item 1): real geography shipped with the project, clipped to the
 * region at build time by scripts/build-region-geography.ts — no tile server, nothing fetched at run
 * time (the network may be down in a disaster). It sits next to the region file as
 * `<region>.geography.json`; a region without one gets a map without a base layer.
 *
 * Coordinates are [lon, lat] (GeoJSON order). `sea` and `lakes` are closed rings of water, `land`
 * closed rings of land inside the sea (islands), `coastline` the shore as open lines.
 */
const Position = z.tuple([z.number().min(-180).max(180), z.number().min(-90).max(90)]);
const Line = z.array(Position).min(2);
const Ring = z.array(Position).min(4);

export const RegionGeography = z.object({
  region: z.string().min(1),
  bbox: z.object({ west: z.number(), south: z.number(), east: z.number(), north: z.number() }),
  /** The line a map must show, in each console language. */
  credit: z.object({ ja: z.string().min(1), en: z.string().min(1) }),
  source: z.object({ dataset: z.string(), version: z.string(), licence: z.string(), package: z.string(), url: z.string(), resolution: z.string() }),
  sea: z.array(Ring),
  land: z.array(Ring),
  lakes: z.array(Ring),
  coastline: z.array(Line),
  rivers: z.array(Line),
});
export type RegionGeography = z.infer<typeof RegionGeography>;

/** `config/regions/x.json` → `config/regions/x.geography.json`. */
export const geographyFileOf = (regionFile: string): string =>
  path.join(path.dirname(regionFile), `${path.basename(regionFile, '.json')}.geography.json`);

/** The region's base map, or null when the region has none. A file that exists but does not parse stops start-up, naming the file. */
export function loadRegionGeography(regionFile: string): RegionGeography | null {
  const file = geographyFileOf(regionFile);
  if (!fs.existsSync(file)) return null;
  const parsed = RegionGeography.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
  if (!parsed.success) throw new Error(`${file}: not a region geography file: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/** Ray casting: is [lon, lat] inside the closed ring? */
export function insideRing(p: readonly [number, number], ring: readonly (readonly [number, number])[]): boolean {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i]!;
    const [xj, yj] = ring[j]!;
    if ((yi > p[1]) !== (yj > p[1]) && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Is the point in water: in the sea (and not on an island in it) or in a lake? */
export function inWater(geo: RegionGeography, p: readonly [number, number]): boolean {
  const sea = geo.sea.some((r) => insideRing(p, r)) && !geo.land.some((r) => insideRing(p, r));
  return sea || geo.lakes.some((r) => insideRing(p, r));
}
