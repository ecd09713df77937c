/**
 * Spherical-earth geometry (mean earth radius, haversine): the error against WGS84 is under 0.5 %,
 * far inside a drone's battery reserve and plenty for legs of a few kilometres. One module for the
 * cloud's dispatch planning (cloud/dispatch/geo.ts builds geofence tests on it) and the simulated
 * drones' flight paths, so the planner and the simulator agree on every distance [issue 12].
 */
export interface LatLon {
  lat: number;
  lon: number;
}

/** Mean earth radius (IUGG), metres. */
export const EARTH_RADIUS_M = 6_371_008.8;

const rad = (deg: number): number => (deg * Math.PI) / 180;
const deg = (r: number): number => (r * 180) / Math.PI;

/** Great-circle distance in metres (haversine). */
export function haversineM(a: LatLon, b: LatLon): number {
  const dLat = rad(b.lat - a.lat);
  const dLon = rad(b.lon - a.lon);
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(rad(a.lat)) * Math.cos(rad(b.lat)) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** Initial great-circle bearing from a to b, degrees clockwise from true north in [0, 360). 0 when a = b. */
export function initialBearingDeg(a: LatLon, b: LatLon): number {
  const φ1 = rad(a.lat);
  const φ2 = rad(b.lat);
  const Δλ = rad(b.lon - a.lon);
  const y = Math.sin(Δλ) * Math.cos(φ2);
  const x = Math.cos(φ1) * Math.sin(φ2) - Math.sin(φ1) * Math.cos(φ2) * Math.cos(Δλ);
  if (x === 0 && y === 0) return 0;
  return (deg(Math.atan2(y, x)) + 360) % 360;
}

/** The point a `fraction` (0–1) of the way from a to b along the great circle. */
export function intermediatePoint(a: LatLon, b: LatLon, fraction: number): LatLon {
  const d = haversineM(a, b) / EARTH_RADIUS_M;
  if (d < 1e-12) return { lat: a.lat, lon: a.lon };
  const f = Math.min(1, Math.max(0, fraction));
  const A = Math.sin((1 - f) * d) / Math.sin(d);
  const B = Math.sin(f * d) / Math.sin(d);
  const [φ1, λ1, φ2, λ2] = [rad(a.lat), rad(a.lon), rad(b.lat), rad(b.lon)];
  const x = A * Math.cos(φ1) * Math.cos(λ1) + B * Math.cos(φ2) * Math.cos(λ2);
  const y = A * Math.cos(φ1) * Math.sin(λ1) + B * Math.cos(φ2) * Math.sin(λ2);
  const z = A * Math.sin(φ1) + B * Math.sin(φ2);
  return { lat: deg(Math.atan2(z, Math.hypot(x, y))), lon: deg(Math.atan2(y, x)) };
}
