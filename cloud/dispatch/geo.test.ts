import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { haversineM, headwindMps, initialBearingDeg, pointInPolygon, segmentIntersectsPolygon, windComponents, type LatLon } from './geo.ts';

// Hub positions from config/regions/ishikawa-nomi.json (copied, so the test does not move with the file).
const KOMATSU_KIBAGATA = { lat: 36.376, lon: 136.48 }; // 道の駅 こまつ木場潟
const NOMI_TERAI = { lat: 36.4435, lon: 136.452 }; // 寺井地区公民館
const NOMI_TATSUNOKUCHI = { lat: 36.432, lon: 136.505 };

/** A square of `sideM` metres centred on `c` (small enough that the local plane is exact). */
function square(c: LatLon, sideM: number): LatLon[] {
  const dLat = sideM / 2 / 111_195;
  const dLon = dLat / Math.cos((c.lat * Math.PI) / 180);
  return [
    { lat: c.lat - dLat, lon: c.lon - dLon },
    { lat: c.lat - dLat, lon: c.lon + dLon },
    { lat: c.lat + dLat, lon: c.lon + dLon },
    { lat: c.lat + dLat, lon: c.lon - dLon },
  ];
}

/** Offset a point by metres east/north. */
const at = (c: LatLon, eastM: number, northM: number): LatLon => ({
  lat: c.lat + northM / 111_195,
  lon: c.lon + eastM / (111_195 * Math.cos((c.lat * Math.PI) / 180)),
});

describe('haversineM', () => {
  it('matches WGS84 (Vincenty) within 0.5 % for hubs of the Nomi region and Tokyo–Osaka', () => {
    // Reference values from Vincenty's inverse formula on the WGS84 ellipsoid.
    const cases: [LatLon, LatLon, number][] = [
      [KOMATSU_KIBAGATA, NOMI_TERAI, 7_900.1],
      [NOMI_TERAI, NOMI_TATSUNOKUCHI, 4_920.5],
      [{ lat: 35.681236, lon: 139.767125 }, { lat: 34.702485, lon: 135.495951 }, 403_826.7], // Tokyo St. – Osaka St.
    ];
    for (const [a, b, ref] of cases) {
      expect(Math.abs(haversineM(a, b) - ref) / ref).toBeLessThan(0.005);
      expect(haversineM(b, a)).toBeCloseTo(haversineM(a, b), 6);
    }
    expect(haversineM(KOMATSU_KIBAGATA, KOMATSU_KIBAGATA)).toBe(0);
  });

  it('one degree of latitude is ~111.2 km', () => {
    expect(haversineM({ lat: 36, lon: 136 }, { lat: 37, lon: 136 })).toBeCloseTo(111_195, -1);
  });
});

describe('initialBearingDeg', () => {
  it('gives the compass directions', () => {
    const c = { lat: 36.4, lon: 136.5 };
    expect(initialBearingDeg(c, at(c, 0, 1000))).toBeCloseTo(0, 3);
    expect(initialBearingDeg(c, at(c, 1000, 0))).toBeCloseTo(90, 1);
    expect(initialBearingDeg(c, at(c, 0, -1000))).toBeCloseTo(180, 3);
    expect(initialBearingDeg(c, at(c, -1000, 0))).toBeCloseTo(270, 1);
    expect(initialBearingDeg(c, c)).toBe(0);
  });

  it('Kibagata → Terai is north-north-west', () => {
    const b = initialBearingDeg(KOMATSU_KIBAGATA, NOMI_TERAI);
    expect(b).toBeGreaterThan(335);
    expect(b).toBeLessThan(345);
  });
});

describe('pointInPolygon', () => {
  const c = { lat: 36.42, lon: 136.48 };
  const sq = square(c, 1000);

  it('inside, outside, on the boundary', () => {
    expect(pointInPolygon(c, sq)).toBe(true);
    expect(pointInPolygon(at(c, 600, 0), sq)).toBe(false);
    expect(pointInPolygon(at(c, 0, 499), sq)).toBe(true);
    expect(pointInPolygon(sq[0]!, sq)).toBe(true); // a vertex counts as inside (conservative)
    expect(pointInPolygon(c, [...sq, sq[0]!])).toBe(true); // explicitly closed ring
    expect(pointInPolygon(c, sq.slice(0, 2))).toBe(false); // not a polygon
  });

  it('handles a concave (U-shaped) zone', () => {
    // U open to the north: 1 km wide, the notch 400 m wide and 700 m deep.
    const u = [at(c, -500, -500), at(c, 500, -500), at(c, 500, 500), at(c, 200, 500), at(c, 200, -200), at(c, -200, -200), at(c, -200, 500), at(c, -500, 500)];
    expect(pointInPolygon(at(c, 0, 100), u)).toBe(false); // in the notch
    expect(pointInPolygon(at(c, 0, -300), u)).toBe(true); // the bottom of the U
    expect(pointInPolygon(at(c, 350, 300), u)).toBe(true); // an arm
  });
});

describe('segmentIntersectsPolygon', () => {
  const c = { lat: 36.42, lon: 136.48 };
  const sq = square(c, 1000);

  it('refuses legs through, into, out of, and wholly inside a zone', () => {
    expect(segmentIntersectsPolygon(at(c, -2000, 0), at(c, 2000, 0), sq)).toBe(true); // straight through
    expect(segmentIntersectsPolygon(at(c, -2000, 0), c, sq)).toBe(true); // ends inside
    expect(segmentIntersectsPolygon(c, at(c, 0, 3000), sq)).toBe(true); // starts inside
    expect(segmentIntersectsPolygon(at(c, -100, 0), at(c, 100, 0), sq)).toBe(true); // wholly inside
    expect(segmentIntersectsPolygon(at(c, -2000, -2000), at(c, 2000, 2000), sq)).toBe(true); // diagonal
  });

  it('lets legs past the zone through', () => {
    expect(segmentIntersectsPolygon(at(c, -2000, 600), at(c, 2000, 600), sq)).toBe(false); // north of it
    expect(segmentIntersectsPolygon(at(c, 600, -2000), at(c, 600, 2000), sq)).toBe(false); // east of it
    expect(segmentIntersectsPolygon(at(c, -2000, 0), at(c, -600, 0), sq)).toBe(false); // stops short
  });

  it('counts touching a vertex or running along an edge as crossing', () => {
    const [sw, , ne] = sq as [LatLon, LatLon, LatLon, LatLon];
    expect(segmentIntersectsPolygon(at(ne, 500, 500), ne, sq)).toBe(true); // ends on a vertex
    expect(segmentIntersectsPolygon(at(sw, -500, 0), at(sw, 1500, 0), sq)).toBe(true); // along the south edge
  });

  it('passes through the notch of a concave zone but not across an arm', () => {
    const u = [at(c, -500, -500), at(c, 500, -500), at(c, 500, 500), at(c, 200, 500), at(c, 200, -200), at(c, -200, -200), at(c, -200, 500), at(c, -500, 500)];
    expect(segmentIntersectsPolygon(at(c, 0, 2000), at(c, 0, 0), u)).toBe(false); // down into the notch
    expect(segmentIntersectsPolygon(at(c, 0, 2000), at(c, 0, -300), u)).toBe(true); // on into the bottom
    expect(segmentIntersectsPolygon(at(c, -1000, 100), at(c, 1000, 100), u)).toBe(true); // across both arms
  });

  it('keeps the margin', () => {
    const a = at(c, -2000, 550);
    const b = at(c, 2000, 550); // 50 m north of the zone
    expect(segmentIntersectsPolygon(a, b, sq)).toBe(false);
    expect(segmentIntersectsPolygon(a, b, sq, 40)).toBe(false);
    expect(segmentIntersectsPolygon(a, b, sq, 60)).toBe(true);
  });

  it('agrees with dense sampling on random legs and zones (property)', () => {
    const offset = fc.record({ e: fc.double({ min: -3000, max: 3000, noNaN: true }), n: fc.double({ min: -3000, max: 3000, noNaN: true }) });
    fc.assert(
      fc.property(offset, offset, fc.array(offset, { minLength: 3, maxLength: 7 }), (p, q, ring) => {
        const a = at(c, p.e, p.n);
        const b = at(c, q.e, q.n);
        const poly = ring.map((v) => at(c, v.e, v.n));
        // Touching is decided up to floating-point rounding (nanometres: a degenerate zone lying exactly
        // on the leg may go either way), so the oracle allows the leg a 1 mm margin.
        const hit = segmentIntersectsPolygon(a, b, poly, 0.001);
        expect(segmentIntersectsPolygon(b, a, poly, 0.001)).toBe(hit); // direction does not matter
        if (segmentIntersectsPolygon(a, b, poly)) expect(hit).toBe(true); // a margin only adds
        // Any sampled point of the leg inside the polygon ⇒ the leg intersects it.
        for (let i = 0; i <= 200; i++) {
          const t = i / 200;
          const s = { lat: a.lat + (b.lat - a.lat) * t, lon: a.lon + (b.lon - a.lon) * t };
          if (pointInPolygon(s, poly)) {
            expect(hit).toBe(true);
            return;
          }
        }
      }),
      { numRuns: Number(process.env.GEO_RUNS ?? 2000) },
    );
  });
});

describe('wind components', () => {
  it('wind direction is where it blows FROM', () => {
    const north8 = { speedMps: 8, fromDeg: 0 };
    expect(headwindMps(north8, 0)).toBeCloseTo(8); // flying north into a northerly
    expect(headwindMps(north8, 180)).toBeCloseTo(-8); // flying south: tailwind
    const east = windComponents(north8, 90);
    expect(east.headwindMps).toBeCloseTo(0);
    expect(east.crosswindMps).toBeCloseTo(8);
    const quarter = windComponents({ speedMps: 10, fromDeg: 45 }, 0);
    expect(quarter.headwindMps).toBeCloseTo(7.071, 3);
    expect(quarter.crosswindMps).toBeCloseTo(7.071, 3);
  });
});
