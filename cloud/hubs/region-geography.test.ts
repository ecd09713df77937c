import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildGeography, closeAlongBox, parseGmtSegments, runsInside, simplify, type Box } from '../../scripts/build-region-geography.ts';
import { geographyFileOf, inWater, insideRing, loadRegionGeography } from './region-geography.ts';
import { loadRegionFile } from './region-loader.ts';

const REGION_FILE = path.join(import.meta.dirname, '../../config/regions/ishikawa-nomi.json');

describe('the committed base map of the demo region', () => {
  const region = loadRegionFile(REGION_FILE);
  const geo = loadRegionGeography(REGION_FILE)!;

  it('exists next to the region file, is small, and credits its source', () => {
    expect(geo).not.toBeNull();
    expect(geo.region).toBe(region.id);
    expect(fs.statSync(geographyFileOf(REGION_FILE)).size).toBeLessThan(64 * 1024);
    expect(geo.credit.ja).toContain('GSHHG');
    expect(geo.credit.en).toContain('GSHHG');
    expect(geo.source.licence).toMatch(/LGPL/);
  });

  it('has a coastline and sea, every point inside its box', () => {
    expect(geo.coastline.reduce((n, l) => n + l.length, 0)).toBeGreaterThan(50);
    expect(geo.sea.length).toBeGreaterThan(0);
    const b = geo.bbox;
    for (const p of [...geo.sea, ...geo.land, ...geo.lakes, ...geo.coastline, ...geo.rivers].flat()) {
      expect(p[0]).toBeGreaterThanOrEqual(b.west);
      expect(p[0]).toBeLessThanOrEqual(b.east);
      expect(p[1]).toBeGreaterThanOrEqual(b.south);
      expect(p[1]).toBeLessThanOrEqual(b.north);
    }
  });

  it('puts every hub and landing site of the region on land, inside the box', () => {
    const places = [...region.hubs.map((h) => ({ id: h.id, at: h.location })), ...region.landingSites.map((s) => ({ id: s.id, at: s.location }))];
    expect(places.filter((p) => inWater(geo, [p.at.lon, p.at.lat])).map((p) => p.id)).toEqual([]);
    const b = geo.bbox;
    for (const p of places) expect(p.at.lon > b.west && p.at.lon < b.east && p.at.lat > b.south && p.at.lat < b.north, p.id).toBe(true);
  });

  it('has the Sea of Japan to the west of the hubs', () => {
    expect(inWater(geo, [geo.bbox.west + 0.01, geo.bbox.north - 0.01])).toBe(true); // north-west corner: sea
    expect(inWater(geo, [geo.bbox.east - 0.01, geo.bbox.south + 0.01])).toBe(false); // south-east corner: the Hakusan hills
  });
});

describe('building a base map from GMT dumps', () => {
  const box: Box = { west: 0, south: 0, east: 10, north: 10 };

  it('parses GMT segments with their levels', () => {
    const segs = parseGmtSegments('> Shore Bin # 1, Level 1\n0\t5\n5\t10\n> Shore Bin # 1, Level 2\n1 1\n2 1\n2 2\n1 1\n');
    expect(segs).toEqual([{ level: 1, points: [[0, 5], [5, 10]] }, { level: 2, points: [[1, 1], [2, 1], [2, 2], [1, 1]] }]);
  });

  it('closes a cut shore along the box on the side without hubs', () => {
    const shore: [number, number][] = [[5, 10], [4, 6], [0, 5]]; // from the north edge to the west edge
    const sea = closeAlongBox(shore, box, [[8, 2]])!; // a hub in the south-east
    expect(insideRing([1, 9], sea)).toBe(true);
    expect(insideRing([8, 2], sea)).toBe(false);
    const other = closeAlongBox(shore, box, [[1, 9]])!; // a hub in the north-west: the water is the rest
    expect(insideRing([8, 2], other)).toBe(true);
    expect(closeAlongBox([[5, 10], [4, 6], [3, 5]], box, [])).toBeNull(); // ends inside the box: not a cut shore
  });

  it('refuses a shore with hubs on both sides', () => {
    expect(() => buildGeography('r', box, [{ level: 1, points: [[5, 10], [4, 6], [0, 5]] }], [], [[1, 9], [8, 2]], '2.3.7')).toThrow(/neither side/);
  });

  it('simplifies within its tolerance and keeps the ends', () => {
    const line: [number, number][] = Array.from({ length: 101 }, (_, i) => [136 + i * 0.001, 36 + (i % 2) * 0.000_01]); // ±1 m zigzag
    const s = simplify(line, 25);
    expect(s).toEqual([line[0], line[100]]);
    const corner: [number, number][] = [[136, 36], [136.01, 36.01], [136.02, 36]];
    expect(simplify(corner, 25)).toEqual(corner);
  });

  it('keeps only the parts of a river inside the box', () => {
    expect(runsInside([[-1, 5], [1, 5], [2, 5], [11, 5], [3, 3], [4, 4]], box)).toEqual([[[1, 5], [2, 5]], [[3, 3], [4, 4]]]);
  });
});

describe('a region without a base map', () => {
  it('loads as null (the consoles draw the map without one), and a broken file stops start-up naming it', () => {
    const dir = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'geo-'));
    const file = path.join(dir, 'elsewhere.json');
    expect(loadRegionGeography(file)).toBeNull();
    fs.writeFileSync(geographyFileOf(file), JSON.stringify({ region: 'elsewhere' }));
    expect(() => loadRegionGeography(file)).toThrow(/elsewhere\.geography\.json: not a region geography file/);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
