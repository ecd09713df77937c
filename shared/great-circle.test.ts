import { describe, expect, it } from 'vitest';
import { haversineM as distanceM, initialBearingDeg as bearingDeg, intermediatePoint } from './great-circle.ts';

const terai = { lat: 36.4435, lon: 136.452 };
const kibagata = { lat: 36.376, lon: 136.48 };

describe('great-circle geometry', () => {
  it('measures distances and bearings', () => {
    expect(distanceM(terai, kibagata)).toBeGreaterThan(7_800);
    expect(distanceM(terai, kibagata)).toBeLessThan(8_000);
    // One degree of latitude is ~111.2 km on the mean sphere.
    expect(distanceM({ lat: 36, lon: 136 }, { lat: 37, lon: 136 })).toBeCloseTo(111_195, -1);
    expect(bearingDeg({ lat: 36, lon: 136 }, { lat: 37, lon: 136 })).toBeCloseTo(0, 6);
    expect(bearingDeg({ lat: 36, lon: 136 }, { lat: 36, lon: 137 })).toBeCloseTo(89.7, 1);
    expect(bearingDeg(terai, kibagata)).toBeGreaterThan(90);
    expect(bearingDeg(terai, kibagata)).toBeLessThan(180);
  });

  it('interpolates along the great circle', () => {
    const mid = intermediatePoint(terai, kibagata, 0.5);
    expect(distanceM(terai, mid)).toBeCloseTo(distanceM(mid, kibagata), 3);
    expect(intermediatePoint(terai, kibagata, 0)).toEqual(expect.objectContaining({ lat: expect.closeTo(terai.lat, 9) }));
    expect(distanceM(intermediatePoint(terai, kibagata, 1), kibagata)).toBeLessThan(1e-6);
    expect(intermediatePoint(terai, terai, 0.3)).toEqual(terai);
  });
});
