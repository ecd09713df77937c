import { expect } from 'vitest';
import {
  DEFAULT_DRONE_LIMITS,
  REASON_CODES,
  type DispatchInput,
  type DispatchPlan,
  type DroneAssignment,
  type LatLon,
  type Mode,
  type OrderInput,
  type Weather,
} from './dispatch-engine.ts';
import { DEFAULT_ENERGY_PARAMS, DEFAULT_RESERVE_PCT, estimateRoundTrip, type LegAir } from './energy-model.ts';
import { haversineM, initialBearingDeg, pointInPolygon } from './geo.ts';

/**
 * Every rule a plan must keep, checked from the rules rather than from the engine: modes, weather
 * freshness, pad and compartment rules are re-derived here, no-fly zones are checked by sampling each
 * leg densely with point-in-polygon, and the energy is recomputed from the model with the wind taken
 * independently. Used by the property tests and the scale test. Assumes default weather/drone
 * freshness and pad radius.
 */

const modeOf = (input: DispatchInput, hubId: string): Mode => (typeof input.mode === 'string' ? input.mode : (input.mode.hubs?.[hubId] ?? input.mode.mode));
const freshAt = (now: number) => (w: Weather | undefined): Weather | undefined => (w && now - w.observedAt <= 10 * 60_000 ? w : undefined);
const SIZE = { S: 0, M: 1, L: 2 } as const;
const sizeNeeded = (o: OrderInput) => o.size ?? (o.weightKg <= 2 ? 'S' : o.weightKg <= 4 ? 'M' : 'L');
const same = (a: LatLon, b: LatLon) => a.lat === b.lat && a.lon === b.lon;

/** The normal order touches a hub in emergency mode. */
function touchesEmergency(input: DispatchInput, o: OrderInput): boolean {
  return modeOf(input, o.originHub) === 'emergency' || (o.destination.type === 'locker' && modeOf(input, o.destination.hub) === 'emergency');
}

/** Energy recomputed from the model: per leg and direction, the slowest of the fresh winds at the ends. */
function expectedEnergy(input: DispatchInput, freshWeather: (w: Weather | undefined) => Weather | undefined, a: DroneAssignment, order: OrderInput, cruiseMps: number, enduranceS: number, maxPayloadKg: number): number {
  const origin = input.hubs.find((h) => h.id === order.originHub)!;
  const destW =
    order.destination.type === 'locker'
      ? input.hubs.find((h) => h.id === (order.destination as { hub: string }).hub)?.weather
      : input.sites?.find((s) => s.id === (order.destination as { siteId: string }).siteId)?.weather;
  const winds = [freshWeather(origin.weather), freshWeather(destW)].filter((w): w is Weather => w !== undefined);
  const leg = (from: LatLon, to: LatLon): LegAir => {
    const track = initialBearingDeg(from, to);
    let worst: LegAir = { distanceM: haversineM(from, to), headwindMps: 0, crosswindMps: 0 };
    let worstGs = Infinity;
    for (const w of winds) {
      const rel = ((w.windFromDeg - track) * Math.PI) / 180;
      const head = w.windMps * Math.cos(rel);
      const cross = Math.abs(w.windMps * Math.sin(rel));
      const gs = Math.sqrt(Math.max(0, cruiseMps ** 2 - cross ** 2)) - head;
      if (gs < worstGs) [worst, worstGs] = [{ distanceM: worst.distanceM, headwindMps: head, crosswindMps: cross }, gs];
    }
    return worst;
  };
  const outbound = a.legs.map((l) => leg(l.from, l.to));
  const inbound = [...a.legs].reverse().map((l) => leg(l.to, l.from));
  const est = estimateRoundTrip({ cruiseMps, enduranceS, maxPayloadKg }, { outbound, inbound, payloadKg: order.weightKg }, { ...DEFAULT_ENERGY_PARAMS, ...input.options?.energy });
  if (!est.ok) throw new Error('the model refuses a flown mission');
  return est.energyPct;
}

export function checkPlan(input: DispatchInput, plan: DispatchPlan, NOW: number): void {
  const freshWeather = freshAt(NOW);
  const orders = new Map(input.orders.map((o) => [o.id, o]));
  const hubs = new Map(input.hubs.map((h) => [h.id, h]));
  const drones = new Map(input.drones.map((d) => [d.id, d]));
  const sites = new Map((input.sites ?? []).map((s) => [s.id, s]));
  const activeZones = (input.noFlyZones ?? []).filter((z) => (z.activeFrom ?? -Infinity) <= NOW && NOW < (z.activeUntil ?? Infinity));
  const policy = input.options?.emergencyNormalOrders ?? 'hold';

  // Every order gets exactly one outcome.
  expect(plan.outcomes.map((o) => o.orderId).sort()).toEqual([...orders.keys()].sort());
  expect(plan.stats.drone + plan.stats.ground + plan.stats.wait).toBe(orders.size);

  const usedDrones = new Set<string>();
  const usedCompartments = new Set<string>();
  const groundKg = new Map<string, number>();
  // Weight booked by earlier planning rounds counts against the same capacity (issue 12 (2)).
  for (const b of input.groundBookings ?? []) groundKg.set(`${b.roundId}@${b.departsAt}`, (groundKg.get(`${b.roundId}@${b.departsAt}`) ?? 0) + b.weightKg);

  // Relief/medical orders from emergency hubs left waiting for something that may clear.
  const priorityWaiting = plan.outcomes.some((oc) => {
    const o = orders.get(oc.orderId)!;
    return oc.kind === 'wait' && o.priority !== 'normal' && modeOf(input, o.originHub) === 'emergency' && oc.reasons.some((r) => REASON_CODES[r.code].clearsByWaiting);
  });

  for (const oc of plan.outcomes) {
    const o = orders.get(oc.orderId)!;
    const emergencyNormal = o.priority === 'normal' && hubs.has(o.originHub) && touchesEmergency(input, o);

    if (oc.kind === 'wait') {
      expect(oc.reasons.length).toBeGreaterThan(0);
      for (const r of oc.reasons) expect(REASON_CODES).toHaveProperty(r.code);
      continue;
    }
    // Normal orders are never sent while held in emergency mode.
    if (emergencyNormal) {
      expect(policy).toBe('after-priority');
      expect(priorityWaiting).toBe(false);
    }

    if (oc.kind === 'ground') {
      expect(o.destination.type).toBe('locker');
      const round = input.groundRounds!.find((g) => g.id === oc.roundId)!;
      expect(round.fromHub).toBe(o.originHub);
      expect(round.toHub).toBe(o.destination.type === 'locker' ? o.destination.hub : '');
      expect(round.tempClasses ?? ['ambient']).toContain(o.tempClass);
      expect(oc.departsAt).toBeGreaterThanOrEqual(NOW);
      if (o.deadline !== undefined) expect(oc.departsAt).toBeLessThan(o.deadline);
      const key = `${round.id}@${oc.departsAt}`;
      groundKg.set(key, (groundKg.get(key) ?? 0) + o.weightKg);
      const capacity = round.departures.filter((d) => d.departsAt === oc.departsAt).reduce((s, d) => s + d.capacityKg, 0);
      expect(groundKg.get(key)!).toBeLessThanOrEqual(capacity + 1e-9);
      continue;
    }

    // ---- a drone flies it
    const d = drones.get(oc.droneId)!;
    const origin = hubs.get(o.originHub)!;
    const lim = { ...DEFAULT_DRONE_LIMITS, ...d.limits };
    expect(usedDrones.has(d.id), `drone ${d.id} booked twice`).toBe(false);
    usedDrones.add(d.id);

    // One mission at a time, from its own pad, idle or charging, with fresh telemetry.
    expect(d.hubId).toBe(o.originHub);
    expect(['idle', 'charging']).toContain(d.state.flightState);
    expect(d.state.missionId ?? null).toBeNull();
    expect(d.state.busy ?? false).toBe(false);
    expect(haversineM(d.state.position, origin.position)).toBeLessThanOrEqual(100);
    if (d.state.observedAt !== undefined) expect(NOW - d.state.observedAt).toBeLessThanOrEqual(2 * 60_000);

    // Payload.
    expect(o.weightKg).toBeLessThanOrEqual(lim.maxPayloadKg);

    // Weather at both ends strictly under every limit, and known at the hubs.
    const ow = freshWeather(origin.weather);
    expect(ow, 'origin weather known').toBeDefined();
    const destPos = o.destination.type === 'locker' ? hubs.get(o.destination.hub)!.position : sites.get(o.destination.siteId)!.position;
    const dw = o.destination.type === 'locker' ? freshWeather(hubs.get(o.destination.hub)!.weather) : freshWeather(sites.get(o.destination.siteId)!.weather);
    if (o.destination.type === 'locker') expect(dw, 'destination weather known').toBeDefined();
    for (const w of [ow, dw]) {
      if (!w) continue;
      expect(w.windMps).toBeLessThan(lim.windLimitMps);
      expect(w.gustMps).toBeLessThan(lim.gustLimitMps);
      expect(w.rainMmPerH).toBeLessThan(lim.rainLimitMmPerH);
    }

    // The route: a chain from the origin to the destination, no sampled point inside an active zone.
    expect(oc.legs.length).toBeGreaterThan(0);
    expect(same(oc.legs[0]!.from, origin.position)).toBe(true);
    expect(same(oc.legs.at(-1)!.to, destPos)).toBe(true);
    for (let i = 1; i < oc.legs.length; i++) expect(same(oc.legs[i - 1]!.to, oc.legs[i]!.from)).toBe(true);
    for (const leg of oc.legs) {
      for (let k = 0; k <= 64; k++) {
        const t = k / 64;
        const p = { lat: leg.from.lat + (leg.to.lat - leg.from.lat) * t, lon: leg.from.lon + (leg.to.lon - leg.from.lon) * t };
        for (const z of activeZones) expect(pointInPolygon(p, z.polygon), `leg crosses ${z.id}`).toBe(false);
      }
    }

    // Landing sites: registered; in emergency mode only along a registered route from this hub.
    if (o.destination.type === 'site') {
      expect(sites.has(o.destination.siteId)).toBe(true);
      if (modeOf(input, o.originHub) === 'emergency') {
        const route = (input.reliefRoutes ?? []).find((r) => r.id === oc.routeId);
        expect(route, 'registered route').toBeDefined();
        expect(route!.originHub).toBe(o.originHub);
        expect(route!.siteId).toBe(o.destination.siteId);
        const points = [origin.position, ...(route!.waypoints ?? []), destPos];
        expect(oc.legs.map((l) => l.from).concat([oc.legs.at(-1)!.to])).toEqual(points);
      }
    }

    // Battery: energy (recomputed from the model) ≤ charge − reserve, the reserve of the origin's mode.
    const reserve = { ...DEFAULT_RESERVE_PCT, ...input.options?.reservePct }[modeOf(input, o.originHub)];
    expect(oc.reservePct).toBe(reserve);
    const energy = expectedEnergy(input, freshWeather, oc, o, lim.cruiseMps, lim.enduranceS, lim.maxPayloadKg);
    expect(oc.energyNeededPct).toBeCloseTo(energy, 6);
    expect(energy).toBeLessThanOrEqual(d.state.batteryPct - reserve + 1e-9);

    // Compartment: free (or reserved for this order), the right class, big enough, relief stock only for relief in emergency.
    if (o.destination.type === 'locker') {
      const destHub = hubs.get(o.destination.hub)!;
      const c = (destHub.compartments ?? []).find((x) => x.id === oc.compartmentId && (x.lockerId ?? undefined) === oc.lockerId);
      expect(c, 'compartment exists').toBeDefined();
      expect(c!.status === 'free' || (c!.status === 'reserved' && c!.reservedFor === o.id)).toBe(true);
      expect(c!.tempClass).toBe(o.tempClass);
      expect(SIZE[c!.size]).toBeGreaterThanOrEqual(SIZE[sizeNeeded(o)]);
      if (c!.reliefStock) {
        expect(o.priority).toBe('relief');
        expect(modeOf(input, destHub.id)).toBe('emergency');
      }
      const key = `${destHub.id}/${oc.lockerId}/${oc.compartmentId}`;
      expect(usedCompartments.has(key), `compartment ${key} booked twice`).toBe(false);
      usedCompartments.add(key);
    } else {
      expect(oc.compartmentId).toBeUndefined();
    }
  }
}

