import fs from 'node:fs';
import { describe, expect, it } from 'vitest';

// The committed base map is what the console draws; it must stay valid without GMT or the internet.
type Pt = [number, number];
const geo = JSON.parse(fs.readFileSync('config/regions/ishikawa-nomi.geography.json', 'utf8')) as {
  region: string; bbox: { west: number; south: number; east: number; north: number };
  credit: { ja: string; en: string }; source: { dataset: string; version: string; licence: string };
  sea: Pt[][]; land: Pt[][]; lakes: Pt[][]; coastline: Pt[][]; rivers: Pt[][];
};
const region = JSON.parse(fs.readFileSync('config/regions/ishikawa-nomi.json', 'utf8')) as {
  id: string; hubs: { id: string; location: { lat: number; lon: number } }[];
};

function inside(p: Pt, ring: Pt[]): boolean {
  let odd = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i]!; const [xj, yj] = ring[j]!;
    if ((yi > p[1]) !== (yj > p[1]) && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) odd = !odd;
  }
  return odd;
}

describe('the committed region base map', () => {
  it('belongs to the region, credits its dataset and stays small', () => {
    expect(geo.region).toBe(region.id);
    expect(geo.credit.ja).toContain('GSHHG');
    expect(geo.credit.en).toContain('GSHHG');
    expect(geo.source).toMatchObject({ version: expect.any(String), licence: expect.stringContaining('LGPL') });
    expect(fs.statSync('config/regions/ishikawa-nomi.geography.json').size).toBeLessThan(100_000);
  });

  it('has a coastline and a sea, every point inside its box, the box around every hub', () => {
    expect(geo.coastline.flat().length).toBeGreaterThan(20);
    expect(geo.sea.length).toBeGreaterThan(0);
    const { west, south, east, north } = geo.bbox;
    for (const p of [...geo.sea, ...geo.land, ...geo.lakes, ...geo.coastline, ...geo.rivers].flat()) {
      expect(p).toHaveLength(2);
      expect(p[0] >= west && p[0] <= east && p[1] >= south && p[1] <= north, String(p)).toBe(true);
    }
    for (const h of region.hubs) expect(h.location.lon > west && h.location.lon < east && h.location.lat > south && h.location.lat < north, h.id).toBe(true);
  });

  it('puts every hub on land, not in the sea', () => {
    for (const h of region.hubs) {
      const p: Pt = [h.location.lon, h.location.lat];
      const inSea = geo.sea.filter((ring) => inside(p, ring)).length - geo.land.filter((ring) => inside(p, ring)).length > 0;
      expect(inSea, h.id).toBe(false);
    }
  });
});
