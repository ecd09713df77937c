/**
 * Geometry for planning drone legs. Pure functions, no I/O.
 *
 * Distances and bearings use a spherical earth (mean radius, haversine): the error against WGS84
 * is under 0.5 %, far inside the battery reserve.
 *
 * Geofence tests (point in polygon, leg crosses polygon) treat a leg as a straight line on a local
 * **equirectangular projection** (x = R·Δλ·cos φ₀, y = R·Δφ, with φ₀ the latitude of the leg's
 * midpoint). Why that is good enough here:
 *  - the projection is an affine map of (lat, lon), so "does this straight line cross this polygon"
 *    has the same answer whatever φ₀ is — φ₀ only matters for metric margins;
 *  - the approximation is that the aircraft flies that straight line, while a navigator flying
 *    the great circle bows away from it by about d²·tan φ·sin 2θ / (8R): for a 20 km leg at 36° N
 *    (Ishikawa) that is ≤ 6 m, at 45° N ≤ 8 m. Delivery legs are ≤ ~20 km (pre-registered relief
 *    routes ≤ 8 km), so give geofences a margin of a few tens of metres (`marginM`) rather than
 *    trusting the line to the metre;
 *  - polygons must not straddle the antimeridian or a pole (irrelevant in Japan).
 * Touching counts as crossing: a leg that grazes a zone's edge or vertex is refused.
 */

import { EARTH_RADIUS_M, type LatLon } from '../../shared/great-circle.ts';

// Distances and bearings come from the one great-circle module the simulators use too.
export { EARTH_RADIUS_M, haversineM, initialBearingDeg, intermediatePoint, type LatLon } from '../../shared/great-circle.ts';

const rad = (deg: number): number => (deg * Math.PI) / 180;
const deg = (r: number): number => (r * 180) / Math.PI;

// ------------------------------------------------------------------ local plane

interface XY {
  x: number;
  y: number;
}

/** Equirectangular projection about `ref`, metres east (x) and north (y) of it. */
function projector(ref: LatLon): (p: LatLon) => XY {
  const kx = rad(1) * EARTH_RADIUS_M * Math.cos(rad(ref.lat));
  const ky = rad(1) * EARTH_RADIUS_M;
  return (p) => ({ x: (p.lon - ref.lon) * kx, y: (p.lat - ref.lat) * ky });
}

const cross = (o: XY, a: XY, b: XY): number => (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x);

/** p lies on the closed segment [a, b] (given that it is collinear with it). */
const within = (a: XY, b: XY, p: XY): boolean =>
  Math.min(a.x, b.x) <= p.x && p.x <= Math.max(a.x, b.x) && Math.min(a.y, b.y) <= p.y && p.y <= Math.max(a.y, b.y);

/** Closed segments [a, b] and [c, d] share at least one point (touching included). */
function segmentsTouch(a: XY, b: XY, c: XY, d: XY): boolean {
  const d1 = cross(c, d, a);
  const d2 = cross(c, d, b);
  const d3 = cross(a, b, c);
  const d4 = cross(a, b, d);
  if (((d1 > 0 && d2 < 0) || (d1 < 0 && d2 > 0)) && ((d3 > 0 && d4 < 0) || (d3 < 0 && d4 > 0))) return true;
  return (
    (d1 === 0 && within(c, d, a)) || (d2 === 0 && within(c, d, b)) || (d3 === 0 && within(a, b, c)) || (d4 === 0 && within(a, b, d))
  );
}

function pointSegmentDistance(p: XY, a: XY, b: XY): number {
  const vx = b.x - a.x;
  const vy = b.y - a.y;
  const len2 = vx * vx + vy * vy;
  const t = len2 === 0 ? 0 : Math.max(0, Math.min(1, ((p.x - a.x) * vx + (p.y - a.y) * vy) / len2));
  return Math.hypot(p.x - (a.x + t * vx), p.y - (a.y + t * vy));
}

function segmentDistance(a: XY, b: XY, c: XY, d: XY): number {
  if (segmentsTouch(a, b, c, d)) return 0;
  return Math.min(pointSegmentDistance(a, c, d), pointSegmentDistance(b, c, d), pointSegmentDistance(c, a, b), pointSegmentDistance(d, a, b));
}

/** Crossing-number test in the plane; points on the boundary count as inside. */
function insideXY(p: XY, ring: readonly XY[]): boolean {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const a = ring[j]!;
    const b = ring[i]!;
    if (cross(a, b, p) === 0 && within(a, b, p)) return true;
    if (a.y > p.y !== b.y > p.y && p.x < ((b.x - a.x) * (p.y - a.y)) / (b.y - a.y) + a.x) inside = !inside;
  }
  return inside;
}

/**
 * Is `p` inside the polygon (or on its boundary)? The polygon is a ring of vertices, closed
 * implicitly (repeating the first vertex at the end is allowed). Fewer than 3 vertices: never.
 */
export function pointInPolygon(p: LatLon, polygon: readonly LatLon[]): boolean {
  if (polygon.length < 3) return false;
  const project = projector(p);
  return insideXY(project(p), polygon.map(project));
}

/**
 * Does the straight leg a→b enter the polygon, or come closer to it than `marginM` metres?
 * True when an end lies inside, when the leg touches or crosses an edge, or when it passes within
 * the margin. See the file comment for the projection and its error.
 */
export function segmentIntersectsPolygon(a: LatLon, b: LatLon, polygon: readonly LatLon[], marginM = 0): boolean {
  if (polygon.length < 3) return false;
  const project = projector({ lat: (a.lat + b.lat) / 2, lon: (a.lon + b.lon) / 2 });
  const pa = project(a);
  const pb = project(b);
  const ring = polygon.map(project);
  if (insideXY(pa, ring) || insideXY(pb, ring)) return true;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const c = ring[j]!;
    const d = ring[i]!;
    if (marginM > 0 ? segmentDistance(pa, pb, c, d) < marginM : segmentsTouch(pa, pb, c, d)) return true;
  }
  return false;
}

/** Bounding box of a polygon, for a cheap first test. */
export interface BBox {
  minLat: number;
  maxLat: number;
  minLon: number;
  maxLon: number;
}

export function bbox(points: readonly LatLon[]): BBox {
  let minLat = Infinity;
  let maxLat = -Infinity;
  let minLon = Infinity;
  let maxLon = -Infinity;
  for (const p of points) {
    minLat = Math.min(minLat, p.lat);
    maxLat = Math.max(maxLat, p.lat);
    minLon = Math.min(minLon, p.lon);
    maxLon = Math.max(maxLon, p.lon);
  }
  return { minLat, maxLat, minLon, maxLon };
}

/** Grow a bounding box by `marginM` metres on every side. */
export function expandBBox(b: BBox, marginM: number): BBox {
  const dLat = deg(marginM / EARTH_RADIUS_M);
  const cosφ = Math.max(0.01, Math.cos(rad(Math.max(Math.abs(b.minLat), Math.abs(b.maxLat)))));
  const dLon = dLat / cosφ;
  return { minLat: b.minLat - dLat, maxLat: b.maxLat + dLat, minLon: b.minLon - dLon, maxLon: b.maxLon + dLon };
}

export const bboxesOverlap = (p: BBox, q: BBox): boolean =>
  p.minLat <= q.maxLat && q.minLat <= p.maxLat && p.minLon <= q.maxLon && q.minLon <= p.maxLon;

// ------------------------------------------------------------------ wind

/** A measured wind. Direction is where the wind blows FROM (meteorological convention), degrees. */
export interface Wind {
  speedMps: number;
  fromDeg: number;
}

/**
 * Wind relative to a track (the direction the aircraft moves over the ground, degrees).
 * `headwindMps` > 0 opposes the motion (< 0 is a tailwind); `crosswindMps` is the magnitude of the
 * component across the track (≥ 0).
 */
export function windComponents(wind: Wind, trackDeg: number): { headwindMps: number; crosswindMps: number } {
  const θ = rad(wind.fromDeg - trackDeg);
  return { headwindMps: wind.speedMps * Math.cos(θ), crosswindMps: Math.abs(wind.speedMps * Math.sin(θ)) };
}

/** Headwind component of `wind` along a track, m/s (negative: tailwind). */
export function headwindMps(wind: Wind, trackDeg: number): number {
  return windComponents(wind, trackDeg).headwindMps;
}
