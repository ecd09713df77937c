// Builds a region's base map from a maintained open dataset, clipped to the region (issue 13, item 1):
//   npm run geography:build [-- config/regions/<region>.json]
// needs Debian's `gmt` and `gmt-gshhg-full` (apt-get install gmt gmt-gshhg-full) — only here, at build
// time: the result, `<region>.geography.json` next to the region file, is committed, so `npm start`, CI
// and the consoles need neither GMT nor the internet.
//
// Source: GSHHG (Global Self-consistent, Hierarchical, High-resolution Geography, Wessel & Smith), full
// resolution, through GMT's `coast -M` dump. GSHHG's shores are closed polygons cut at the box here,
// so each cut shore is closed again along the box on its water side: the side holding no hub.
// GSHHG's rivers (WDBII) are included when any cross the box; borders inside Japan are not in GSHHG or
// GMT's DCW, and no maintained dataset of them is packaged for Debian or npm, so the map has none.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadRegionFile } from '../cloud/hubs/region-loader.ts';
import { geographyFileOf, insideRing, RegionGeography } from '../cloud/hubs/region-geography.ts';

type Pt = [number, number];
export interface Box { west: number; south: number; east: number; north: number }
export interface Segment { level: number; points: Pt[] }

/** Margin around the region's own points, in degrees (≈ 22 km north–south, 18 km east–west): a wide tablet zoomed out still sees real ground. */
const MARGIN_DEG = 0.2;
/** Douglas–Peucker tolerance in metres: finer than a map pixel at the consoles' largest zoom. */
const SIMPLIFY_M = 25;

/** GMT's multi-segment text (`> … Level n` headers, then "lon<TAB>lat" rows). */
export function parseGmtSegments(text: string): Segment[] {
  const out: Segment[] = [];
  let cur: Segment | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('>')) {
      cur = { level: Number(/Level (\d+)/.exec(line)?.[1] ?? 0), points: [] };
      out.push(cur);
    } else if (cur && line.trim()) {
      const [lon, lat] = line.trim().split(/\s+/).map(Number);
      if (Number.isFinite(lon) && Number.isFinite(lat)) cur.points.push([lon!, lat!]);
    }
  }
  return out.filter((s) => s.points.length >= 2);
}

const EPS = 1e-7;
const onBox = (p: Pt, b: Box) => Math.abs(p[0] - b.west) < EPS || Math.abs(p[0] - b.east) < EPS || Math.abs(p[1] - b.south) < EPS || Math.abs(p[1] - b.north) < EPS;

/** Position along the box's outline, counter-clockwise from the south-west corner, in [0, 4). */
function perimeterT(p: Pt, b: Box): number {
  if (Math.abs(p[1] - b.south) < EPS) return (p[0] - b.west) / (b.east - b.west);
  if (Math.abs(p[0] - b.east) < EPS) return 1 + (p[1] - b.south) / (b.north - b.south);
  if (Math.abs(p[1] - b.north) < EPS) return 2 + (b.east - p[0]) / (b.east - b.west);
  return 3 + (b.north - p[1]) / (b.north - b.south);
}

/**
 * The two rings a shore cut at the box makes with the box's outline (walking on from its end to its
 * start one way round, or the other); `keepOut` says which points must not be inside (hubs: on land).
 */
export function closeAlongBox(line: Pt[], b: Box, keepOut: Pt[]): Pt[] | null {
  const first = line[0]!;
  const last = line[line.length - 1]!;
  if (!onBox(first, b) || !onBox(last, b)) return null;
  const corners: [number, Pt][] = [[0, [b.west, b.south]], [1, [b.east, b.south]], [2, [b.east, b.north]], [3, [b.west, b.north]]];
  const walk = (dir: 1 | -1): Pt[] => {
    const from = perimeterT(last, b);
    const to = perimeterT(first, b);
    const span = dir === 1 ? (to - from + 4) % 4 : (from - to + 4) % 4;
    const passed = corners
      .map(([t, p]) => ({ d: dir === 1 ? (t - from + 4) % 4 : (from - t + 4) % 4, p }))
      .filter((c) => c.d > EPS && c.d < span - EPS)
      .sort((x, y) => x.d - y.d)
      .map((c) => c.p);
    return [...line, ...passed, first];
  };
  const rings = [walk(1), walk(-1)];
  return rings.find((r) => keepOut.every((p) => !insideRing(p, r))) ?? null;
}

/** Douglas–Peucker on a line of [lon, lat], tolerance in metres (equirectangular at the line's latitude). */
export function simplify(points: Pt[], toleranceM: number): Pt[] {
  if (points.length <= 2) return points;
  const kx = 111_320 * Math.cos((points[0]![1] * Math.PI) / 180);
  const ky = 110_574;
  const keep = new Uint8Array(points.length);
  keep[0] = 1;
  keep[points.length - 1] = 1;
  const stack: [number, number][] = [[0, points.length - 1]];
  while (stack.length) {
    const [i, j] = stack.pop()!;
    const [ax, ay] = [points[i]![0] * kx, points[i]![1] * ky];
    const [bx, by] = [points[j]![0] * kx, points[j]![1] * ky];
    const len = Math.hypot(bx - ax, by - ay) || 1;
    let worst = -1;
    let at = -1;
    for (let k = i + 1; k < j; k++) {
      const [px, py] = [points[k]![0] * kx, points[k]![1] * ky];
      const d = Math.abs((bx - ax) * (ay - py) - (ax - px) * (by - ay)) / len;
      if (d > worst) [worst, at] = [d, k];
    }
    if (worst > toleranceM) {
      keep[at] = 1;
      stack.push([i, at], [at, j]);
    }
  }
  return points.filter((_, k) => keep[k]);
}

/** The parts of a line inside the box (GMT dumps whole bins, which reach past it). */
export function runsInside(points: Pt[], b: Box): Pt[][] {
  const runs: Pt[][] = [[]];
  for (const p of points) {
    if (p[0] >= b.west && p[0] <= b.east && p[1] >= b.south && p[1] <= b.north) runs[runs.length - 1]!.push(p);
    else if (runs[runs.length - 1]!.length) runs.push([]);
  }
  return runs.filter((r) => r.length >= 2);
}

const round = (p: Pt): Pt => [Math.round(p[0] * 1e5) / 1e5, Math.round(p[1] * 1e5) / 1e5];
const isClosed = (s: Pt[]) => s.length > 3 && Math.abs(s[0]![0] - s[s.length - 1]![0]) < EPS && Math.abs(s[0]![1] - s[s.length - 1]![1]) < EPS;

/** The geography file for a region from GMT's dumps of shores (`coast -M -W`) and rivers (`coast -M -Ia`). */
export function buildGeography(regionId: string, box: Box, shores: Segment[], rivers: Segment[], hubs: Pt[], gshhgVersion: string): RegionGeography {
  const sea: Pt[][] = [];
  const land: Pt[][] = [];
  const lakes: Pt[][] = [];
  const coastline: Pt[][] = [];
  for (const s of shores) {
    const pts = simplify(s.points, SIMPLIFY_M).map(round);
    if (s.level === 1) {
      coastline.push(pts);
      if (isClosed(pts)) land.push(pts); // an island, whole inside the box
      else {
        const ring = closeAlongBox(pts, box, hubs);
        if (!ring) throw new Error(`a shore of ${pts.length} points is cut at the box but neither side is free of hubs`);
        sea.push(ring);
      }
    } else if (s.level === 2 && isClosed(pts)) lakes.push(pts);
  }
  return RegionGeography.parse({
    region: regionId,
    bbox: box,
    credit: {
      ja: `海岸線：GSHHG ${gshhgVersion}（Wessel & Smith、LGPL-3.0）`,
      en: `Coastline: GSHHG ${gshhgVersion} (Wessel & Smith, LGPL-3.0)`,
    },
    source: {
      dataset: 'GSHHG — Global Self-consistent, Hierarchical, High-resolution Geography Database',
      version: gshhgVersion, licence: 'LGPL-3.0-or-later', resolution: 'full (via GMT coast -Df)',
      package: `Debian gmt-gshhg-full ${gshhgVersion}`, url: 'https://www.soest.hawaii.edu/pwessel/gshhg/',
    },
    sea, land, lakes, coastline,
    rivers: rivers.flatMap((r) => runsInside(r.points, box)).map((r) => simplify(r, SIMPLIFY_M).map(round)).filter((r) => r.length >= 2),
  });
}

function main(): void {
  const regionFile = path.resolve(process.argv[2] ?? 'config/regions/ishikawa-nomi.json');
  const region = loadRegionFile(regionFile);
  const pts: Pt[] = [...region.hubs.map((h) => h.location), ...region.landingSites.map((s) => s.location), ...region.noFlyZones.flatMap((z) => z.polygon)]
    .map((p) => [p.lon, p.lat]);
  const r2 = (x: number) => Math.round(x * 100) / 100;
  const box: Box = {
    west: r2(Math.min(...pts.map((p) => p[0])) - MARGIN_DEG), east: r2(Math.max(...pts.map((p) => p[0])) + MARGIN_DEG),
    south: r2(Math.min(...pts.map((p) => p[1])) - MARGIN_DEG), north: r2(Math.max(...pts.map((p) => p[1])) + MARGIN_DEG),
  };
  const R = `-R${box.west}/${box.east}/${box.south}/${box.north}`;
  // In a temporary folder: GMT leaves a gmt.history file where it runs.
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'gmt-'));
  const gmt = (...args: string[]) => execFileSync('gmt', args, { cwd: work, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const version = execFileSync('dpkg-query', ['-W', '-f=${Version}', 'gmt-gshhg-full'], { encoding: 'utf8' }).split('-')[0]!;
  const geo = buildGeography(region.id, box, parseGmtSegments(gmt('coast', R, '-Df', '-M', '-W')), parseGmtSegments(gmt('coast', R, '-Df', '-M', '-Ia')),
    region.hubs.map((h) => [h.location.lon, h.location.lat]), version);
  fs.rmSync(work, { recursive: true, force: true });
  const out = geographyFileOf(regionFile);
  fs.writeFileSync(out, `${JSON.stringify(geo)}\n`);
  const n = (rings: Pt[][]) => rings.reduce((a, r) => a + r.length, 0);
  console.log(`${out}: ${fs.statSync(out).size} bytes; coastline ${n(geo.coastline)} points, sea ${geo.sea.length} rings, islands ${geo.land.length}, lakes ${geo.lakes.length}, rivers ${geo.rivers.length}`);
}

if (import.meta.url === `file://${process.argv[1]}`) main();
