import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_AIRCRAFT,
  DEFAULT_ENERGY_PARAMS,
  DEFAULT_RESERVE_PCT,
  drainPctPerS,
  estimateRoundTrip,
  estimateStraightRoundTrip,
  groundSpeedMps,
  type RoundTripEstimate,
} from './energy-model.ts';

const pct = (e: RoundTripEstimate): number => {
  if (!e.ok) throw new Error(`refused: ${JSON.stringify(e)}`);
  return e.energyPct;
};

describe('energy model defaults', () => {
  it('uses the DOMAIN.md figures', () => {
    expect(DEFAULT_AIRCRAFT).toEqual({ cruiseMps: 10, enduranceS: 1080, maxPayloadKg: 5 });
    expect(DEFAULT_ENERGY_PARAMS.climbMps).toBe(3);
    expect(DEFAULT_ENERGY_PARAMS.descentMps).toBe(2);
    expect(DEFAULT_RESERVE_PCT).toEqual({ normal: 25, emergency: 35 });
    expect(drainPctPerS(DEFAULT_AIRCRAFT, 0)).toBeCloseTo(100 / 1080, 9);
    expect(drainPctPerS(DEFAULT_AIRCRAFT, 5)).toBeCloseTo((100 / 1080) * 1.35, 9); // +35 % at 5 kg
  });

  it('works out by hand for 3 km each way, 2 kg, still air', () => {
    const p = DEFAULT_ENERGY_PARAMS;
    const base = 100 / 1080;
    const ends = (60 / 3) * 1.15 + (60 / 2) * 1 + 15 * 1.1; // climb, descent, landing hover
    const out = (300 + ends + 30 * 1.1) * base * (1 + 0.35 * (2 / 5));
    const back = (300 + ends) * base;
    const e = estimateStraightRoundTrip({ distanceM: 3000, payloadKg: 2 });
    expect(pct(e)).toBeCloseTo(out + back, 9);
    if (!e.ok) return;
    expect(e.outboundArrivalS).toBeCloseTo(p.preflightS + 20 + 300 + 30 + 15, 9);
    expect(e.missionS).toBeCloseTo(e.outboundArrivalS + 30 + 20 + 300 + 30 + 15, 9);
  });

  it('range with the defaults: how far a full drone can go and come back with the 25 % reserve', () => {
    const maxOneWay = (payloadKg: number, reservePct: number): number => {
      let lo = 0;
      let hi = 20_000;
      for (let i = 0; i < 60; i++) {
        const mid = (lo + hi) / 2;
        if (pct(estimateStraightRoundTrip({ distanceM: mid, payloadKg })) <= 100 - reservePct) lo = mid;
        else hi = mid;
      }
      return lo;
    };
    // Documented in energy-model.ts and README.md: ~3.2 km out empty, ~2.6 km with 5 kg (normal reserve);
    // ~2.65 / ~2.1 km with the 35 % emergency reserve; ~4.5 km with no reserve.
    expect(maxOneWay(0, 25) / 1000).toBeCloseTo(3.19, 1);
    expect(maxOneWay(5, 25) / 1000).toBeCloseTo(2.56, 1);
    expect(maxOneWay(0, 35) / 1000).toBeCloseTo(2.65, 1);
    expect(maxOneWay(5, 35) / 1000).toBeCloseTo(2.1, 1);
    expect(maxOneWay(0, 0) / 1000).toBeCloseTo(4.54, 1);
  });
});

describe('energy model monotonicity (property)', () => {
  const distance = fc.double({ min: 0, max: 15_000, noNaN: true });
  const payload = fc.double({ min: 0, max: 5, noNaN: true });
  const wind = fc.double({ min: -6, max: 6, noNaN: true });
  const cross = fc.double({ min: 0, max: 6, noNaN: true });
  const more = fc.double({ min: 0.001, max: 5, noNaN: true });

  it('more distance, payload, headwind (either way) or crosswind → more energy', () => {
    fc.assert(
      fc.property(distance, payload, wind, wind, cross, more, (d, kg, hOut, hBack, x, delta) => {
        const base = estimateStraightRoundTrip({ distanceM: d, payloadKg: kg, outboundHeadwindMps: hOut, returnHeadwindMps: hBack, crosswindMps: x });
        // A 6 m/s headwind with a 6 m/s crosswind leaves exactly the minimum ground speed (√(10²−6²) − 6 = 2):
        // the model refuses that leg, rightly, and there is no energy to compare. Only flyable bases count.
        fc.pre(base.ok);
        const e0 = pct(base);
        expect(e0).toBeGreaterThan(0);
        const variants = [
          { distanceM: d + delta * 1000, payloadKg: kg, outboundHeadwindMps: hOut, returnHeadwindMps: hBack, crosswindMps: x },
          { distanceM: d, payloadKg: kg + delta, outboundHeadwindMps: hOut, returnHeadwindMps: hBack, crosswindMps: x },
          { distanceM: d, payloadKg: kg, outboundHeadwindMps: hOut + delta / 2, returnHeadwindMps: hBack, crosswindMps: x },
          { distanceM: d, payloadKg: kg, outboundHeadwindMps: hOut, returnHeadwindMps: hBack + delta / 2, crosswindMps: x },
          { distanceM: d, payloadKg: kg, outboundHeadwindMps: hOut, returnHeadwindMps: hBack, crosswindMps: x + delta / 2 },
        ];
        for (const v of variants) {
          const e = estimateStraightRoundTrip(v);
          if (!e.ok) continue; // stronger wind may make the leg impossible: also "more"
          if (d > 0 || v.distanceM > 0 || v.payloadKg !== kg) expect(e.energyPct).toBeGreaterThanOrEqual(e0);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('payload costs more on the way out only; the return flies empty', () => {
    const a = pct(estimateRoundTrip(DEFAULT_AIRCRAFT, { outbound: [{ distanceM: 2000, headwindMps: 0 }], inbound: [{ distanceM: 2000, headwindMps: 0 }], payloadKg: 5 }));
    const b = pct(estimateRoundTrip(DEFAULT_AIRCRAFT, { outbound: [{ distanceM: 2000, headwindMps: 0 }], inbound: [{ distanceM: 4000, headwindMps: 0 }], payloadKg: 5 }));
    // The 2 km added to the way back are charged at the empty rate.
    expect(b - a).toBeCloseTo(200 * drainPctPerS(DEFAULT_AIRCRAFT, 0), 9);
  });

  it('a steady wind costs more than still air (headwind out, tailwind back does not cancel)', () => {
    fc.assert(
      fc.property(fc.double({ min: 100, max: 10_000, noNaN: true }), fc.double({ min: 0.1, max: 7, noNaN: true }), (d, w) => {
        const still = pct(estimateStraightRoundTrip({ distanceM: d, payloadKg: 0 }));
        const windy = pct(estimateStraightRoundTrip({ distanceM: d, payloadKg: 0, outboundHeadwindMps: w, returnHeadwindMps: -w }));
        expect(windy).toBeGreaterThan(still);
      }),
    );
  });
});

describe('ground speed', () => {
  it('is airspeed minus headwind, less when crabbing into a crosswind', () => {
    expect(groundSpeedMps(10, 3)).toBe(7);
    expect(groundSpeedMps(10, -3)).toBe(13);
    expect(groundSpeedMps(10, 0, 6)).toBeCloseTo(8, 9);
    expect(groundSpeedMps(10, 0, 12)).toBe(0);
  });

  it('refuses a leg at or below 2 m/s ground speed', () => {
    const at = estimateStraightRoundTrip({ distanceM: 1000, payloadKg: 0, outboundHeadwindMps: 8 });
    expect(at).toMatchObject({ ok: false, reason: 'ground_speed_too_low', direction: 'outbound', groundSpeedMps: 2 });
    const back = estimateStraightRoundTrip({ distanceM: 1000, payloadKg: 0, returnHeadwindMps: 9 });
    expect(back).toMatchObject({ ok: false, direction: 'return' });
    expect(estimateStraightRoundTrip({ distanceM: 1000, payloadKg: 0, outboundHeadwindMps: 7.9 }).ok).toBe(true);
  });
});
