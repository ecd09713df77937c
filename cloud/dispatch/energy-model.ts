/**
 * Battery model for planning a delivery: how much of the battery (percent of a full charge) a round
 * trip origin → destination → origin takes. Pure and deliberately simple, so an operator can check
 * it by hand and tune it from flight logs.
 *
 * Model
 *  - A full battery lasts `enduranceS` of flight at cruise power with no payload, so the base drain
 *    is 100 / enduranceS percent per second (1080 s → 0.0926 %/s).
 *  - Payload raises power linearly: × (1 + payloadPowerAtMaxPayload · payloadKg / maxPayloadKg),
 *    i.e. +35 % at the aircraft's maximum payload (5 kg by default). The parcel is carried out and
 *    handed over, so the return flight is empty.
 *  - The aircraft holds its cruise airspeed; wind changes only the time spent. Ground speed on a leg
 *    is √(V² − crosswind²) − headwind (crab into the crosswind, then lose or gain the headwind).
 *    A leg whose ground speed is ≤ `minGroundSpeedMps` is refused: the aircraft could barely make
 *    way and any gust would stall it. Outbound and return legs see the wind from opposite sides.
 *  - Vertical phases at each end: climb to `cruiseAltM` at `climbMps` (× climbPowerFactor), descend
 *    at `descentMps` (× descentPowerFactor), then `landingHoverS` of hover (× hoverPowerFactor) to
 *    line up and land; at the destination another `handoverHoverS` for the handover (lowering or
 *    landing and releasing the parcel), counted with the payload still on.
 *  - Energy needed = Σ time × power factor × base drain. A mission is allowed when
 *    energy needed ≤ state of charge − reserve (reserve: 25 % normally, 35 % in emergency mode).
 *
 * Defaults (DOMAIN.md "Drone operations in Japan"): cruise ~10 m/s, climb 3 m/s, descent 2 m/s,
 * endurance ~17–20 min (1080 s = 18 min is taken), 5 kg payload. Cruise altitude 60 m, the +35 %
 * payload penalty and the +15 % climb power are the values the region simulator
 * (simulators/devices/drone-model.ts) flies with, so the plan and the simulated battery agree.
 * With these defaults a full drone in still air reaches a destination ~3.2 km away and back with
 * the 25 % reserve left (~2.6 km carrying 5 kg out; 2.65 / 2.1 km with the 35 % emergency reserve;
 * 4.5 km with no reserve at all) — see energy-model.test.ts. That is shorter than DOMAIN.md's
 * "~20 km round-trip range", which needs a faster or longer-lived aircraft than 10 m/s × 18 min:
 * set `cruiseMps` / `enduranceS` per aircraft model.
 */

export interface EnergyModelParams {
  /** Cruise altitude above the take-off/landing point, metres. */
  cruiseAltM: number;
  climbMps: number;
  descentMps: number;
  /** Power while climbing relative to cruise power. */
  climbPowerFactor: number;
  /** Power while descending relative to cruise power (multirotors save little: 1). */
  descentPowerFactor: number;
  /** Power while hovering relative to cruise power (hover costs a little more than efficient cruise). */
  hoverPowerFactor: number;
  /** Hover to line up and land, at each landing, seconds. */
  landingHoverS: number;
  /** Extra hover at the destination for the handover, seconds. */
  handoverHoverS: number;
  /** Pre-flight checks after arming before take-off (no drain counted; adds to the ETA), seconds. */
  preflightS: number;
  /** Extra power at the aircraft's maximum payload, as a fraction of the empty power (0.35 = +35 %). */
  payloadPowerAtMaxPayload: number;
  /** Legs with a ground speed at or below this are refused, m/s. */
  minGroundSpeedMps: number;
}

/** Defaults; the sources are in the file comment. */
export const DEFAULT_ENERGY_PARAMS: Readonly<EnergyModelParams> = Object.freeze({
  cruiseAltM: 60,
  climbMps: 3, // DOMAIN.md
  descentMps: 2, // DOMAIN.md
  climbPowerFactor: 1.15,
  descentPowerFactor: 1,
  hoverPowerFactor: 1.1,
  landingHoverS: 15,
  handoverHoverS: 30,
  preflightS: 10,
  payloadPowerAtMaxPayload: 0.35,
  minGroundSpeedMps: 2,
});

/** What the model needs to know about the aircraft. */
export interface AircraftPerformance {
  /** Cruise airspeed, m/s (DOMAIN.md: ~10 m/s). */
  cruiseMps: number;
  /** Flight time on a full battery at cruise with no payload, seconds (DOMAIN.md: ~17–20 min). */
  enduranceS: number;
  /** Maximum payload, kg (DOMAIN.md: 5 kg covers ~95 % of demand). */
  maxPayloadKg: number;
}

export const DEFAULT_AIRCRAFT: Readonly<AircraftPerformance> = Object.freeze({ cruiseMps: 10, enduranceS: 1080, maxPayloadKg: 5 });

/**
 * Battery that must remain on landing back at the origin, percent of a full charge. Higher in
 * emergency mode (issue 4: "the battery reserve rises"), where a diversion or a second approach to
 * an unprepared landing site is more likely.
 */
export const DEFAULT_RESERVE_PCT: Readonly<{ normal: number; emergency: number }> = Object.freeze({ normal: 25, emergency: 35 });

/** One straight leg and the wind on it, relative to the direction of flight. */
export interface LegAir {
  distanceM: number;
  /** Headwind component, m/s (negative: tailwind). */
  headwindMps: number;
  /** Crosswind magnitude, m/s (default 0). */
  crosswindMps?: number;
}

export type RoundTripEstimate =
  | {
      ok: true;
      /** Battery needed for the whole round trip, percent of a full charge. */
      energyPct: number;
      /** From arming to landing at the destination (before the handover), seconds. */
      outboundArrivalS: number;
      /** Whole mission, arming to landing back at the origin, seconds. */
      missionS: number;
      /** Lowest ground speed on any leg, m/s. */
      minGroundSpeedMps: number;
    }
  | {
      ok: false;
      reason: 'ground_speed_too_low';
      direction: 'outbound' | 'return';
      legIndex: number;
      groundSpeedMps: number;
      minGroundSpeedMps: number;
    };

/** Ground speed holding `airspeedMps` through the wind: crab into the crosswind, lose the headwind. */
export function groundSpeedMps(airspeedMps: number, headwindMps: number, crosswindMps = 0): number {
  const along = Math.sqrt(Math.max(0, airspeedMps ** 2 - crosswindMps ** 2));
  return along - headwindMps;
}

/** Battery drain in cruise carrying `payloadKg`, percent per second. */
export function drainPctPerS(aircraft: AircraftPerformance, payloadKg: number, params: EnergyModelParams = DEFAULT_ENERGY_PARAMS): number {
  return (100 / aircraft.enduranceS) * (1 + params.payloadPowerAtMaxPayload * (Math.max(0, payloadKg) / aircraft.maxPayloadKg));
}

/**
 * The part of a round trip that does not depend on the payload or the battery: power-weighted
 * seconds of each half and the timings. Energy is then linear in the drain of each half, so one
 * profile per route and airspeed serves every parcel and every aircraft of that speed.
 */
export type TripProfile =
  | {
      ok: true;
      /** Σ seconds × power factor, outbound (carrying the parcel, handover included). */
      outWeightedS: number;
      /** Σ seconds × power factor, return (empty). */
      backWeightedS: number;
      outboundArrivalS: number;
      missionS: number;
      minGroundSpeedMps: number;
    }
  | Extract<RoundTripEstimate, { ok: false }>;

export function tripProfile(
  cruiseMps: number,
  outbound: readonly LegAir[],
  inbound: readonly LegAir[],
  params: EnergyModelParams = DEFAULT_ENERGY_PARAMS,
): TripProfile {
  const climbS = params.cruiseAltM / params.climbMps;
  const descentS = params.cruiseAltM / params.descentMps;
  let minGs = Infinity;
  let failure: Extract<RoundTripEstimate, { ok: false }> | undefined;

  const cruise = (legs: readonly LegAir[], direction: 'outbound' | 'return'): number => {
    let s = 0;
    for (const [i, leg] of legs.entries()) {
      if (leg.distanceM <= 0) continue;
      const gs = groundSpeedMps(cruiseMps, leg.headwindMps, leg.crosswindMps ?? 0);
      if (!(gs > params.minGroundSpeedMps)) {
        failure ??= { ok: false, reason: 'ground_speed_too_low', direction, legIndex: i, groundSpeedMps: gs, minGroundSpeedMps: params.minGroundSpeedMps };
        return NaN;
      }
      minGs = Math.min(minGs, gs);
      s += leg.distanceM / gs;
    }
    return s;
  };
  const outCruiseS = cruise(outbound, 'outbound');
  const backCruiseS = failure ? NaN : cruise(inbound, 'return');
  if (failure) return failure;

  const ends = climbS * params.climbPowerFactor + descentS * params.descentPowerFactor + params.landingHoverS * params.hoverPowerFactor;
  const outboundArrivalS = params.preflightS + climbS + outCruiseS + descentS + params.landingHoverS;
  return {
    ok: true,
    outWeightedS: outCruiseS + ends + params.handoverHoverS * params.hoverPowerFactor,
    backWeightedS: backCruiseS + ends,
    outboundArrivalS,
    missionS: outboundArrivalS + params.handoverHoverS + climbS + backCruiseS + descentS + params.landingHoverS,
    minGroundSpeedMps: minGs === Infinity ? cruiseMps : minGs,
  };
}

/** Battery for a profile flown by `aircraft` carrying `payloadKg` out and nothing back, percent. */
export function profileEnergyPct(
  profile: Extract<TripProfile, { ok: true }>,
  aircraft: AircraftPerformance,
  payloadKg: number,
  params: EnergyModelParams = DEFAULT_ENERGY_PARAMS,
): number {
  return profile.outWeightedS * drainPctPerS(aircraft, payloadKg, params) + profile.backWeightedS * drainPctPerS(aircraft, 0, params);
}

/**
 * Energy for origin → destination (carrying `payloadKg`) → origin (empty). `outbound` and
 * `inbound` list the legs in the order flown; each carries the wind as seen in its own direction.
 */
export function estimateRoundTrip(
  aircraft: AircraftPerformance,
  trip: { outbound: readonly LegAir[]; inbound: readonly LegAir[]; payloadKg: number },
  params: EnergyModelParams = DEFAULT_ENERGY_PARAMS,
): RoundTripEstimate {
  const p = tripProfile(aircraft.cruiseMps, trip.outbound, trip.inbound, params);
  if (!p.ok) return p;
  return {
    ok: true,
    energyPct: profileEnergyPct(p, aircraft, trip.payloadKg, params),
    outboundArrivalS: p.outboundArrivalS,
    missionS: p.missionS,
    minGroundSpeedMps: p.minGroundSpeedMps,
  };
}

/**
 * Convenience for one straight leg each way: `distanceM` out and back, with the headwind on the
 * way out and on the way back (for one steady wind, return headwind = − outbound headwind).
 */
export function estimateStraightRoundTrip(
  opts: { distanceM: number; payloadKg: number; outboundHeadwindMps?: number; returnHeadwindMps?: number; crosswindMps?: number },
  aircraft: AircraftPerformance = DEFAULT_AIRCRAFT,
  params: EnergyModelParams = DEFAULT_ENERGY_PARAMS,
): RoundTripEstimate {
  const cross = opts.crosswindMps ?? 0;
  return estimateRoundTrip(
    aircraft,
    {
      outbound: [{ distanceM: opts.distanceM, headwindMps: opts.outboundHeadwindMps ?? 0, crosswindMps: cross }],
      inbound: [{ distanceM: opts.distanceM, headwindMps: opts.returnHeadwindMps ?? 0, crosswindMps: cross }],
      payloadKg: opts.payloadKg,
    },
    params,
  );
}
