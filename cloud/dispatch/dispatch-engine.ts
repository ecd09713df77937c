import {
  DEFAULT_ENERGY_PARAMS,
  DEFAULT_RESERVE_PCT,
  groundSpeedMps,
  profileEnergyPct,
  tripProfile,
  type EnergyModelParams,
  type LegAir,
  type TripProfile,
} from './energy-model.ts';
import {
  bbox,
  bboxesOverlap,
  expandBBox,
  haversineM,
  initialBearingDeg,
  segmentIntersectsPolygon,
  windComponents,
  type BBox,
  type LatLon,
} from './geo.ts';
import {
  DEFAULT_DRONE_LIMITS,
  REASON_CODES,
  type CompartmentInput,
  type CompartmentSize,
  type DispatchInput,
  type DispatchPlan,
  type DroneInput,
  type DroneLimits,
  type HubInput,
  type LandingSiteInput,
  type Mode,
  type OrderInput,
  type Outcome,
  type Reason,
  type RouteLeg,
  type Weather,
} from './dispatch-types.ts';

export * from './dispatch-types.ts';

/**
 * The dispatch engine: given the fleet, the hubs (weather, lockers), the landing sites, no-fly
 * zones, registered relief routes, ground rounds and the pending orders, decide for every order
 * whether a drone takes it now (and which compartment is reserved), a ground round takes it, or it
 * waits — with machine-readable reasons. Pure: no I/O, no clock (`now` is given).
 *
 * Rules (issue 4, DOMAIN.md):
 *  - a drone flies one mission at a time, only from its home hub's pad, idle or charging;
 *  - payload ≤ the drone's limit; weather at origin and destination below the drone's wind, gust
 *    and rain limits (at the limit is forbidden — MLIT standard manual: no flight at ≥ 5 m/s);
 *  - energy for the round trip (energy-model.ts) ≤ state of charge − reserve (higher in emergency);
 *  - no leg touches an active no-fly polygon;
 *  - a locker destination needs a free, working compartment of the size (or larger) and exactly the
 *    temperature class; relief-stock compartments only for relief orders while the destination hub
 *    is in emergency mode; the compartment is reserved for the order in the plan;
 *  - landing sites must be registered; in emergency mode a flight to a site must follow a
 *    pre-registered route ("a route cannot be flown until its landing point is known");
 *  - normal orders touching an emergency-mode hub are held (`held_emergency`), never failed;
 *  - each drone and each compartment appears at most once in a plan.
 *
 * Allocation: orders are taken in priority order (medical and relief, then normal; earliest
 * deadline, no deadline last; oldest first). An order is served if it can be added to the orders
 * already served without unserving any of them: when the drones (or compartments) it could use
 * are taken, the engine looks for an augmenting path — an earlier order that can move to another
 * drone (compartment) to make room (Kuhn's algorithm). For the drones alone this is exactly optimal
 * in priority order (the orders that can be served together form a transversal matroid, where the
 * greedy is optimal); with drones and compartments together it is a greedy on the intersection of
 * two matroids, which can in theory serve half the optimum; on small random cases with competing
 * orders it serves the priority-weighted optimum in ~99.4 % of them (dispatch-quality.test.ts).
 * Orders no drone can take go to the earliest ground round with room that departs before their
 * deadline (貨客混載) — drone first: an order a drone can fly now is flown, even where putting it
 * on a bus hours later would free the drone for another order (that one waits ~one mission).
 */
export function planDispatch(input: DispatchInput, now: number): DispatchPlan {
  const ctx = buildContext(input, now);
  const sorted = sortByPriority(input.orders);
  const analyses = sorted.map((o) => analyzeOrder(ctx, o));
  const outcomes = allocate(ctx, analyses);
  const stats = { drone: 0, ground: 0, wait: 0 };
  for (const o of outcomes) stats[o.kind]++;
  return { outcomes, stats };
}

// ------------------------------------------------------------------ context

interface Options {
  reservePct: { normal: number; emergency: number };
  maxWeatherAgeMs: number;
  maxDroneStateAgeMs: number;
  padRadiusM: number;
  noFlyMarginM: number;
  emergencyNormalOrders: 'hold' | 'after-priority';
  energy: EnergyModelParams;
}

interface Zone {
  id: string;
  polygon: readonly LatLon[];
  box: BBox;
}

export interface Route {
  key: string;
  id?: string;
  points: LatLon[];
  legs: RouteLeg[];
  distanceM: number;
  /** Active zones the route touches (empty: clear). */
  zoneIds: string[];
}

interface Context {
  now: number;
  opts: Options;
  hubs: Map<string, HubInput>;
  sites: Map<string, LandingSiteInput>;
  dronesByHub: Map<string, FleetDrone[]>;
  reliefRoutes: Map<string, NonNullable<DispatchInput['reliefRoutes']>[number][]>;
  zones: Zone[];
  groundRounds: NonNullable<DispatchInput['groundRounds']>;
  groundBookings: NonNullable<DispatchInput['groundBookings']>;
  modeOf: (hubId: string) => Mode;
  routeCache: Map<string, Route>;
  /** Trip profiles by route and airspeed (the weather at both ends is fixed per route). */
  profileCache: Map<string, TripProfile>;
  /** Every compartment of a hub with its key, by hub id (filled on first use). */
  compartmentRefs: Map<string, CompartmentRef[]>;
}

/** A drone with what does not depend on the order worked out once. */
interface FleetDrone {
  drone: DroneInput;
  lim: DroneLimits;
  /** Idle or charging on its home pad, no mission, not marked busy. */
  onPad: boolean;
  stale: boolean;
}

export function resolveOptions(o: DispatchInput['options'] = {}): Options {
  return {
    reservePct: { ...DEFAULT_RESERVE_PCT, ...o.reservePct },
    maxWeatherAgeMs: o.maxWeatherAgeMs ?? 10 * 60_000,
    maxDroneStateAgeMs: o.maxDroneStateAgeMs ?? 2 * 60_000,
    padRadiusM: o.padRadiusM ?? 100,
    noFlyMarginM: o.noFlyMarginM ?? 0,
    emergencyNormalOrders: o.emergencyNormalOrders ?? 'hold',
    energy: { ...DEFAULT_ENERGY_PARAMS, ...o.energy },
  };
}

export function droneLimits(d: DroneInput): DroneLimits {
  return { ...DEFAULT_DRONE_LIMITS, ...d.limits };
}

/** Mode of a hub under a region mode with per-hub overrides. */
export function modeOfHub(mode: DispatchInput['mode'], hubId: string): Mode {
  return typeof mode === 'string' ? mode : (mode.hubs?.[hubId] ?? mode.mode);
}

function uniqueIds<T extends { id: string }>(what: string, items: readonly T[]): Map<string, T> {
  const m = new Map<string, T>();
  for (const it of items) {
    if (m.has(it.id)) throw new TypeError(`planDispatch: duplicate ${what} id ${JSON.stringify(it.id)}`);
    m.set(it.id, it);
  }
  return m;
}

function buildContext(input: DispatchInput, now: number): Context {
  const opts = resolveOptions(input.options);
  uniqueIds('order', input.orders);
  const drones = uniqueIds('drone', input.drones);
  const hubs = uniqueIds('hub', input.hubs);
  const dronesByHub = new Map<string, FleetDrone[]>();
  for (const d of drones.values()) {
    const home = hubs.get(d.hubId);
    const st = d.state;
    const onPad = home !== undefined && PAD_STATES.has(st.flightState) && !st.missionId && !st.busy && haversineM(st.position, home.position) <= opts.padRadiusM;
    const stale = st.observedAt !== undefined && now - st.observedAt > opts.maxDroneStateAgeMs;
    const list = dronesByHub.get(d.hubId) ?? [];
    list.push({ drone: d, lim: droneLimits(d), onPad, stale });
    dronesByHub.set(d.hubId, list);
  }
  const reliefRoutes = new Map<string, NonNullable<DispatchInput['reliefRoutes']>[number][]>();
  for (const r of uniqueIds('relief route', input.reliefRoutes ?? []).values()) {
    const key = `${r.originHub}\u0000${r.siteId}`;
    reliefRoutes.set(key, [...(reliefRoutes.get(key) ?? []), r]);
  }
  const zones: Zone[] = (input.noFlyZones ?? [])
    .filter((z) => z.polygon.length >= 3 && (z.activeFrom ?? -Infinity) <= now && now < (z.activeUntil ?? Infinity))
    .map((z) => ({ id: z.id, polygon: z.polygon, box: expandBBox(bbox(z.polygon), opts.noFlyMarginM + 1) }));
  return {
    now,
    opts,
    hubs,
    sites: uniqueIds('site', input.sites ?? []),
    dronesByHub,
    reliefRoutes,
    zones,
    groundRounds: input.groundRounds ?? [],
    groundBookings: input.groundBookings ?? [],
    modeOf: (hubId) => modeOfHub(input.mode, hubId),
    routeCache: new Map(),
    profileCache: new Map(),
    compartmentRefs: new Map(),
  };
}

// ------------------------------------------------------------------ priority

const PRIORITY_CLASS = { medical: 0, relief: 0, normal: 1 } as const;
/** Flight states in which a drone on its pad can take a mission (planning mode reads it too). */
export const PAD_STATES: ReadonlySet<string> = new Set(['idle', 'charging']);

/**
 * Which of a drone's weather limits a reading is at or above — at the limit is forbidden (MLIT standard
 * manual: no flight at ≥ 5 m/s). The one statement of the rule: dispatch refuses by it, and planning
 * mode plans a round when a hub's reading crosses it.
 */
export function weatherOverLimits(w: Pick<Weather, 'windMps' | 'gustMps' | 'rainMmPerH'>, lim: Pick<DroneLimits, 'windLimitMps' | 'gustLimitMps' | 'rainLimitMmPerH'>): { wind: boolean; gust: boolean; rain: boolean } {
  return { wind: w.windMps >= lim.windLimitMps, gust: w.gustMps >= lim.gustLimitMps, rain: w.rainMmPerH >= lim.rainLimitMmPerH };
}

/** Medical and relief first; then earliest deadline (none last); then oldest; then id. */
export function comparePriority(a: OrderInput, b: OrderInput): number {
  return (
    PRIORITY_CLASS[a.priority] - PRIORITY_CLASS[b.priority] ||
    (a.deadline ?? Infinity) - (b.deadline ?? Infinity) ||
    a.createdAt - b.createdAt ||
    (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  );
}

function sortByPriority(orders: readonly OrderInput[]): OrderInput[] {
  return [...orders].sort(comparePriority);
}

const SIZE_RANK: Record<CompartmentSize, number> = { S: 0, M: 1, L: 2 };

/** Size needed: as given, else from the weight (≤ 2 kg S, ≤ 4 kg M, else L). */
export function sizeNeeded(o: Pick<OrderInput, 'size' | 'weightKg'>): CompartmentSize {
  return o.size ?? (o.weightKg <= 2 ? 'S' : o.weightKg <= 4 ? 'M' : 'L');
}

// ------------------------------------------------------------------ per-order analysis

export interface DroneCandidate {
  drone: DroneInput;
  energyNeededPct: number;
  reservePct: number;
  outboundArrivalS: number;
  missionS: number;
  /** Battery left above the reserve after the mission (best fit: smallest first). */
  slackPct: number;
}

export interface CompartmentRef {
  key: string;
  c: CompartmentInput;
}

/** Everything about one order that does not depend on the other orders. */
export interface OrderAnalysis {
  order: OrderInput;
  /** Order-level refusals (unknown places, unregistered site, no registered route). */
  blocking: Reason[];
  /** Normal order touching an emergency-mode hub: that hub (origin first). */
  emergencyHub?: string;
  route?: Route;
  /** Route, compartment, weather-unknown reasons: shared by every drone. */
  shared: Reason[];
  /** Drones that could fly it, ignoring the other orders; best fit first. */
  drones: DroneCandidate[];
  /** Why the other drones at the origin cannot. */
  droneReasons: Reason[];
  /** Compartments it could use; `null` when the destination needs none (landing site). */
  compartments: CompartmentRef[] | null;
  /** The destination hub, when it is a hub (for the ground fallback). */
  destinationHub?: string;
}

const r1 = (x: number): number => Math.round(x * 10) / 10;

function fresh(ctx: Context, w: Weather | undefined): Weather | undefined {
  return w !== undefined && ctx.now - w.observedAt <= ctx.opts.maxWeatherAgeMs ? w : undefined;
}

function buildRoute(ctx: Context, key: string, points: LatLon[], id?: string): Route {
  const cached = ctx.routeCache.get(key);
  if (cached) return cached;
  const legs: RouteLeg[] = [];
  for (let i = 1; i < points.length; i++) {
    const from = points[i - 1]!;
    const to = points[i]!;
    legs.push({ from, to, distanceM: haversineM(from, to), bearingDeg: initialBearingDeg(from, to) });
  }
  const zoneIds: string[] = [];
  for (const z of ctx.zones) {
    const hit = legs.some((l) => bboxesOverlap(bbox([l.from, l.to]), z.box) && segmentIntersectsPolygon(l.from, l.to, z.polygon, ctx.opts.noFlyMarginM));
    // A zero-length route (a point) still must not sit inside a zone.
    if (hit || (legs.length === 0 && points[0] && segmentIntersectsPolygon(points[0], points[0], z.polygon, ctx.opts.noFlyMarginM))) zoneIds.push(z.id);
  }
  const route: Route = { key, ...(id === undefined ? {} : { id }), points, legs, distanceM: legs.reduce((s, l) => s + l.distanceM, 0), zoneIds };
  ctx.routeCache.set(key, route);
  return route;
}

function analyzeOrder(ctx: Context, order: OrderInput): OrderAnalysis {
  const a: OrderAnalysis = { order, blocking: [], shared: [], drones: [], droneReasons: [], compartments: null };
  const origin = ctx.hubs.get(order.originHub);
  if (!origin) a.blocking.push({ code: 'unknown_hub', hubId: order.originHub });

  let destPos: LatLon | undefined;
  let destWeather: { placeId: string; w: Weather | undefined; required: boolean } | undefined;
  let destHub: HubInput | undefined;
  let site: LandingSiteInput | undefined;
  if (order.destination.type === 'locker') {
    destHub = ctx.hubs.get(order.destination.hub);
    if (!destHub) a.blocking.push({ code: 'unknown_hub', hubId: order.destination.hub });
    else {
      destPos = destHub.position;
      destWeather = { placeId: destHub.id, w: fresh(ctx, destHub.weather), required: true };
      a.destinationHub = destHub.id;
    }
  } else {
    site = ctx.sites.get(order.destination.siteId);
    if (!site) a.blocking.push({ code: 'unregistered_site', siteId: order.destination.siteId });
    else {
      destPos = site.position;
      destWeather = { placeId: site.id, w: fresh(ctx, site.weather), required: false };
    }
  }
  if (!origin || !destPos || !destWeather) return a;

  const originMode = ctx.modeOf(origin.id);
  if (order.priority === 'normal') {
    if (originMode === 'emergency') a.emergencyHub = origin.id;
    else if (destHub !== undefined && ctx.modeOf(destHub.id) === 'emergency') a.emergencyHub = destHub.id;
  }

  // The route: direct to a hub; to a site along a registered route (required in emergency mode).
  if (site) {
    const registered = ctx.reliefRoutes.get(`${origin.id}\u0000${site.id}`) ?? [];
    if (registered.length === 0 && originMode === 'emergency') {
      a.blocking.push({ code: 'no_registered_route', originHub: origin.id, siteId: site.id });
      return a;
    }
    const routes =
      registered.length > 0
        ? registered.map((r) => buildRoute(ctx, `route\u0000${r.id}`, [origin.position, ...(r.waypoints ?? []), site.position], r.id))
        : [buildRoute(ctx, `direct\u0000${origin.id}\u0000site\u0000${site.id}`, [origin.position, site.position])];
    const clear = routes.filter((r) => r.zoneIds.length === 0).sort((p, q) => p.distanceM - q.distanceM);
    a.route = clear[0] ?? routes[0]!;
    if (clear.length === 0) a.shared.push({ code: 'no_fly_zone', zoneIds: [...new Set(routes.flatMap((r) => r.zoneIds))].sort() });
  } else {
    a.route = buildRoute(ctx, `direct\u0000${origin.id}\u0000hub\u0000${destHub!.id}`, [origin.position, destPos]);
    if (a.route.zoneIds.length > 0) a.shared.push({ code: 'no_fly_zone', zoneIds: [...a.route.zoneIds].sort() });
  }

  // The compartment at a locker destination.
  if (destHub) {
    a.compartments = usableCompartments(ctx, order, destHub);
    if (a.compartments.length === 0) a.shared.push({ code: 'no_compartment', hubId: destHub.id, size: sizeNeeded(order), tempClass: order.tempClass });
  }

  // Weather: the origin's is required, a hub destination's too; a site's is used when reported.
  const originWeather = fresh(ctx, origin.weather);
  if (!originWeather) a.shared.push({ code: 'weather_unknown', hubId: origin.id });
  if (destWeather.required && !destWeather.w) a.shared.push({ code: 'weather_unknown', hubId: destWeather.placeId });
  const places = [
    ...(originWeather ? [{ placeId: origin.id, w: originWeather }] : []),
    ...(destWeather.w && destWeather.placeId !== origin.id ? [{ placeId: destWeather.placeId, w: destWeather.w }] : []),
  ];

  evaluateDrones(ctx, a, origin, places);
  return a;
}

function usableCompartments(ctx: Context, order: OrderInput, hub: HubInput): CompartmentRef[] {
  const need = SIZE_RANK[sizeNeeded(order)];
  const reliefOk = order.priority === 'relief' && ctx.modeOf(hub.id) === 'emergency';
  // A hub's compartments with their keys, made once per plan (not once per order).
  let all = ctx.compartmentRefs.get(hub.id);
  if (!all) ctx.compartmentRefs.set(hub.id, (all = (hub.compartments ?? []).map((c) => ({ key: `${hub.id}\u0000${c.lockerId ?? ''}\u0000${c.id}`, c }))));
  const out: CompartmentRef[] = [];
  for (const ref of all) {
    const c = ref.c;
    const free = c.status === 'free' || (c.status === 'reserved' && c.reservedFor === order.id);
    if (!free || c.tempClass !== order.tempClass || SIZE_RANK[c.size] < need) continue;
    if (c.reliefStock && !reliefOk) continue;
    out.push(ref);
  }
  // Already reserved for this order first, then the smallest that fits, ordinary before relief stock.
  const rank = (r: CompartmentRef): number => (r.c.status === 'reserved' ? 0 : 100) + 10 * SIZE_RANK[r.c.size] + (r.c.reliefStock ? 1 : 0);
  return out.sort((p, q) => rank(p) - rank(q) || (p.key < q.key ? -1 : p.key > q.key ? 1 : 0));
}

/** Reasons from several drones, merged by code (and place), with every drone named. */
class ReasonCollector {
  private readonly byKey = new Map<string, Reason>();

  add(r: Reason): void {
    const key = 'placeId' in r ? `${r.code}\u0000${r.placeId}` : r.code;
    const prev = this.byKey.get(key);
    if (!prev) {
      this.byKey.set(key, r); // callers pass a fresh object
      return;
    }
    if ('droneIds' in prev && 'droneIds' in r) for (const id of r.droneIds) prev.droneIds.push(id);
    // Keep the figure that is most favourable to flying, so the reason holds for every drone named.
    if (prev.code === 'over_payload' && r.code === 'over_payload') prev.maxPayloadKg = Math.max(prev.maxPayloadKg, r.maxPayloadKg);
    if (prev.code === 'wind_over_limit' && r.code === 'wind_over_limit') prev.limitMps = Math.max(prev.limitMps, r.limitMps);
    if (prev.code === 'gust_over_limit' && r.code === 'gust_over_limit') prev.limitMps = Math.max(prev.limitMps, r.limitMps);
    if (prev.code === 'rain_over_limit' && r.code === 'rain_over_limit') prev.limitMmPerH = Math.max(prev.limitMmPerH, r.limitMmPerH);
    if (prev.code === 'headwind_too_strong' && r.code === 'headwind_too_strong') prev.groundSpeedMps = Math.max(prev.groundSpeedMps, r.groundSpeedMps);
    if (prev.code === 'out_of_range' && r.code === 'out_of_range') {
      prev.neededPct = Math.min(prev.neededPct, r.neededPct);
      prev.usablePct = Math.max(prev.usablePct, r.usablePct);
    }
    if (prev.code === 'insufficient_battery' && r.code === 'insufficient_battery') {
      prev.neededPct = Math.min(prev.neededPct, r.neededPct);
      prev.availablePct = Math.max(prev.availablePct, r.availablePct);
    }
  }

  /*
   * The reasons most drones give (busy, stale, battery, range), added without building a reason
   * object per drone: a crowded hub asks them of every drone for every order (issue 17: "all at
   * one hub" spent ~30 % of its time here). Same result as `add`.
   */

  addDrone(code: 'drone_busy' | 'drone_state_stale', droneId: string): void {
    const prev = this.byKey.get(code) as { droneIds: string[] } | undefined;
    if (prev) prev.droneIds.push(droneId);
    else this.byKey.set(code, { code, droneIds: [droneId] });
  }

  addOutOfRange(neededPct: number, usablePct: number, droneId: string): void {
    const prev = this.byKey.get('out_of_range') as Extract<Reason, { code: 'out_of_range' }> | undefined;
    if (!prev) {
      this.byKey.set('out_of_range', { code: 'out_of_range', neededPct, usablePct, droneIds: [droneId] });
      return;
    }
    prev.droneIds.push(droneId);
    prev.neededPct = Math.min(prev.neededPct, neededPct);
    prev.usablePct = Math.max(prev.usablePct, usablePct);
  }

  addInsufficientBattery(neededPct: number, availablePct: number, reservePct: number, droneId: string): void {
    const prev = this.byKey.get('insufficient_battery') as Extract<Reason, { code: 'insufficient_battery' }> | undefined;
    if (!prev) {
      this.byKey.set('insufficient_battery', { code: 'insufficient_battery', neededPct, availablePct, reservePct, droneIds: [droneId] });
      return;
    }
    prev.droneIds.push(droneId);
    prev.neededPct = Math.min(prev.neededPct, neededPct);
    prev.availablePct = Math.max(prev.availablePct, availablePct);
  }

  addWeather(code: 'wind_over_limit' | 'gust_over_limit' | 'rain_over_limit', placeId: string, value: number, limit: number, droneId: string): void {
    // One key per place and code, made once per collector (i.e. per order), not per drone.
    const keys = (this.placeKeys[code] ??= new Map());
    let key = keys.get(placeId);
    if (key === undefined) keys.set(placeId, (key = `${code}\u0000${placeId}`));
    const prev = this.byKey.get(key) as { droneIds: string[]; limitMps?: number; limitMmPerH?: number } | undefined;
    if (prev) {
      prev.droneIds.push(droneId);
      if (code === 'rain_over_limit') prev.limitMmPerH = Math.max(prev.limitMmPerH!, limit);
      else prev.limitMps = Math.max(prev.limitMps!, limit);
      return;
    }
    const droneIds = [droneId];
    this.byKey.set(
      key,
      code === 'wind_over_limit'
        ? { code, placeId, windMps: value, limitMps: limit, droneIds }
        : code === 'gust_over_limit'
          ? { code, placeId, gustMps: value, limitMps: limit, droneIds }
          : { code, placeId, rainMmPerH: value, limitMmPerH: limit, droneIds },
    );
  }

  private readonly placeKeys: Partial<Record<string, Map<string, string>>> = {};

  list(): Reason[] {
    return [...this.byKey.values()];
  }
}

function evaluateDrones(ctx: Context, a: OrderAnalysis, origin: HubInput, places: { placeId: string; w: Weather }[]): void {
  const fleet = ctx.dronesByHub.get(origin.id) ?? [];
  if (fleet.length === 0) {
    a.droneReasons.push({ code: 'no_drone_at_origin', hubId: origin.id });
    return;
  }
  const route = a.route!;
  const reservePct = ctx.opts.reservePct[ctx.modeOf(origin.id)];
  const reasons = new ReasonCollector();
  const order = a.order;
  const last: { cruiseMps: number; profile: TripProfile | undefined; enduranceS: number; maxPayloadKg: number; energyPct: number } = {
    cruiseMps: Number.NaN,
    profile: undefined,
    enduranceS: Number.NaN,
    maxPayloadKg: Number.NaN,
    energyPct: Number.NaN,
  };

  for (const { drone: d, lim, onPad, stale } of fleet) {
    let ok = true;
    if (!onPad) {
      reasons.addDrone('drone_busy', d.id);
      ok = false;
    }
    if (stale) {
      reasons.addDrone('drone_state_stale', d.id);
      ok = false;
    }
    if (order.weightKg > lim.maxPayloadKg) {
      reasons.add({ code: 'over_payload', weightKg: order.weightKg, maxPayloadKg: lim.maxPayloadKg, droneIds: [d.id] });
      ok = false;
    }
    for (const { placeId, w } of places) {
      const over = weatherOverLimits(w, lim);
      if (over.wind) {
        reasons.addWeather('wind_over_limit', placeId, w.windMps, lim.windLimitMps, d.id);
        ok = false;
      }
      if (over.gust) {
        reasons.addWeather('gust_over_limit', placeId, w.gustMps, lim.gustLimitMps, d.id);
        ok = false;
      }
      if (over.rain) {
        reasons.addWeather('rain_over_limit', placeId, w.rainMmPerH, lim.rainLimitMmPerH, d.id);
        ok = false;
      }
    }
    // Drones of one hub mostly share an aircraft type: the profile and the energy are worked out
    // once per cruise speed (and endurance, payload limit) for this order, not per drone.
    if (lim.cruiseMps !== last.cruiseMps) {
      last.cruiseMps = lim.cruiseMps;
      last.profile = profileFor(ctx, route, places, lim.cruiseMps);
      last.enduranceS = Number.NaN;
    }
    const profile = last.profile!;
    if (!profile.ok) {
      reasons.add({ code: 'headwind_too_strong', groundSpeedMps: r1(profile.groundSpeedMps), minGroundSpeedMps: profile.minGroundSpeedMps, droneIds: [d.id] });
      continue;
    }
    if (lim.enduranceS !== last.enduranceS || lim.maxPayloadKg !== last.maxPayloadKg) {
      last.enduranceS = lim.enduranceS;
      last.maxPayloadKg = lim.maxPayloadKg;
      last.energyPct = profileEnergyPct(profile, lim, order.weightKg, ctx.opts.energy);
    }
    const energyPct = last.energyPct;
    if (energyPct > 100 - reservePct) {
      reasons.addOutOfRange(r1(energyPct), 100 - reservePct, d.id);
    } else if (energyPct > d.state.batteryPct - reservePct) {
      // Only worth saying for a drone that could otherwise go; a flying drone's charge says nothing.
      if (ok) reasons.addInsufficientBattery(r1(energyPct), r1(d.state.batteryPct - reservePct), reservePct, d.id);
    } else if (ok) {
      a.drones.push({
        drone: d,
        energyNeededPct: energyPct,
        reservePct,
        outboundArrivalS: profile.outboundArrivalS,
        missionS: profile.missionS,
        slackPct: d.state.batteryPct - reservePct - energyPct,
      });
    }
  }
  a.drones.sort((p, q) => p.slackPct - q.slackPct || (p.drone.id < q.drone.id ? -1 : 1));
  a.droneReasons.push(...reasons.list());
}

function profileFor(ctx: Context, route: Route, places: { placeId: string; w: Weather }[], cruiseMps: number): TripProfile {
  const key = `${route.key}\u0000${cruiseMps}`;
  let p = ctx.profileCache.get(key);
  if (!p) {
    const { outbound, inbound } = windsAlong(route, places.map((x) => x.w), cruiseMps);
    p = tripProfile(cruiseMps, outbound, inbound, ctx.opts.energy);
    ctx.profileCache.set(key, p);
  }
  return p;
}

/**
 * The wind on every leg, each way. With the wind measured at both ends, each leg takes whichever
 * measurement makes it slower for this aircraft (the measured wind at one end says little about the
 * other; assume the worse).
 */
function windsAlong(route: Route, winds: readonly Weather[], cruiseMps: number): { outbound: LegAir[]; inbound: LegAir[] } {
  const worst = (distanceM: number, trackDeg: number): LegAir => {
    let best: LegAir = { distanceM, headwindMps: 0, crosswindMps: 0 };
    let bestGs = Infinity;
    for (const w of winds) {
      const c = windComponents({ speedMps: w.windMps, fromDeg: w.windFromDeg }, trackDeg);
      const gs = groundSpeedMps(cruiseMps, c.headwindMps, c.crosswindMps);
      if (gs < bestGs) {
        bestGs = gs;
        best = { distanceM, headwindMps: c.headwindMps, crosswindMps: c.crosswindMps };
      }
    }
    return best;
  };
  const outbound = route.legs.map((l) => worst(l.distanceM, l.bearingDeg));
  // The way back flies the legs in reverse order, each from its far end.
  const inbound = [...route.legs].reverse().map((l) => worst(l.distanceM, initialBearingDeg(l.to, l.from)));
  return { outbound, inbound };
}

// ------------------------------------------------------------------ allocation

type Path<K> = Array<[number, K]>;

/**
 * One kind of resource (drones, or compartments) shared by the orders: who holds what, and which
 * resources can never be freed again.
 */
class Matching<K> {
  readonly owner = new Map<string, number>();
  readonly held = new Map<number, K>();
  /**
   * Resources proven saturated: a failed search from an order visited the set S of resources; every
   * holder of S can only use resources in S and holders are never unserved, so S stays taken for the
   * rest of the plan (Hall's condition). Later searches skip S, which keeps a crowded hub linear.
   */
  private readonly dead = new Set<string>();

  constructor(
    private readonly options: (i: number) => readonly K[],
    private readonly keyOf: (k: K) => string,
  ) {}

  /** Kuhn-style augmenting path: give order `oi` one of its options, moving earlier holders along. Does not change anything. */
  find(oi: number): Path<K> | null {
    const seen = new Set<string>();
    const path = this.search(oi, seen);
    if (!path) for (const k of seen) this.dead.add(k);
    return path;
  }

  apply(path: Path<K>): void {
    for (const [o, k] of path) {
      this.owner.set(this.keyOf(k), o);
      this.held.set(o, k);
    }
  }

  private search(oi: number, seen: Set<string>): Path<K> | null {
    for (const opt of this.options(oi)) {
      const key = this.keyOf(opt);
      if (seen.has(key) || this.dead.has(key)) continue;
      seen.add(key);
      const holder = this.owner.get(key);
      if (holder === undefined) return [[oi, opt]];
      const rest = this.search(holder, seen);
      if (rest) {
        rest.unshift([oi, opt]);
        return rest;
      }
    }
    return null;
  }
}

function allocate(ctx: Context, analyses: OrderAnalysis[]): Outcome[] {
  const drones = new Matching<DroneCandidate>(
    (i) => analyses[i]!.drones,
    (c) => c.drone.id,
  );
  const compartments = new Matching<CompartmentRef>(
    (i) => analyses[i]!.compartments ?? [],
    (c) => c.key,
  );
  // Keyed by round and departure time (not by the departure's index: a round's segments are listed
  // separately, and the earlier planning rounds that booked weight saw other indices).
  const groundUsedKg = new Map<string, number>();
  for (const b of ctx.groundBookings) groundUsedKg.set(departureKey(b.roundId, b.departsAt), (groundUsedKg.get(departureKey(b.roundId, b.departsAt)) ?? 0) + b.weightKg);
  const result: (Outcome | undefined)[] = new Array(analyses.length);
  let priorityWaiting: boolean | undefined;

  for (const [i, a] of analyses.entries()) {
    const order = a.order;
    if (a.emergencyHub !== undefined) {
      // Every medical/relief order sorts before every normal one, so their fate is known by now.
      priorityWaiting ??= analyses.some(
        (p, j) => p.order.priority !== 'normal' && ctx.modeOf(p.order.originHub) === 'emergency' && couldClear(result[j]),
      );
      if (ctx.opts.emergencyNormalOrders === 'hold' || priorityWaiting) {
        // Held, not failed. The registered-route rule is an emergency rule: it no longer applies once
        // the mode ends and the order resumes, so it is not a reason here.
        const other = a.blocking.filter((r) => r.code !== 'no_registered_route');
        result[i] = { kind: 'wait', orderId: order.id, reasons: [{ code: 'held_emergency', hubId: a.emergencyHub }, ...other] };
        continue;
      }
    }
    if (a.blocking.length > 0) {
      result[i] = { kind: 'wait', orderId: order.id, reasons: a.blocking };
      continue;
    }

    let reasons: Reason[] = [...a.shared];
    if (a.shared.length === 0) {
      const dronePath = drones.find(i);
      // No need to look for a compartment when no drone can go (and no proof to draw from it).
      const compPath = a.compartments === null ? [] : dronePath ? compartments.find(i) : null;
      if (dronePath && compPath) {
        drones.apply(dronePath);
        compartments.apply(compPath);
        continue; // outcome written at the end: later orders may still move it to another drone
      }
      reasons = [];
      if (!dronePath) {
        reasons.push(...a.droneReasons);
        if (a.drones.length > 0) reasons.push({ code: 'drone_busy', droneIds: a.drones.map((c) => c.drone.id) });
      }
      if (dronePath && !compPath) reasons.push({ code: 'no_compartment', hubId: a.destinationHub!, size: sizeNeeded(order), tempClass: order.tempClass });
    } else {
      reasons.push(...a.droneReasons);
    }
    reasons = mergeBusy(reasons);

    const ground = a.destinationHub === undefined ? undefined : groundDeparture(ctx, order, a.destinationHub, groundUsedKg);
    result[i] = ground
      ? { kind: 'ground', orderId: order.id, roundId: ground.roundId, departsAt: ground.departsAt, reasons }
      : { kind: 'wait', orderId: order.id, reasons };
  }

  for (const [i, a] of analyses.entries()) {
    if (result[i]) continue;
    const c = drones.held.get(i)!;
    const comp = compartments.held.get(i);
    const route = a.route!;
    const etaMs = ctx.now + Math.round(c.outboundArrivalS * 1000);
    result[i] = {
      kind: 'drone',
      orderId: a.order.id,
      droneId: c.drone.id,
      ...(comp ? { compartmentId: comp.c.id, ...(comp.c.lockerId === undefined ? {} : { lockerId: comp.c.lockerId }) } : {}),
      ...(route.id === undefined ? {} : { routeId: route.id }),
      legs: route.legs.map((l) => ({ ...l, from: { ...l.from }, to: { ...l.to } })),
      distanceM: route.distanceM,
      energyNeededPct: c.energyNeededPct,
      reservePct: c.reservePct,
      batteryPct: c.drone.state.batteryPct,
      etaMs,
      returnMs: ctx.now + Math.round(c.missionS * 1000),
      late: a.order.deadline !== undefined && etaMs > a.order.deadline,
    };
  }
  return result as Outcome[];
}

/** One `drone_busy` reason naming every busy drone. */
function mergeBusy(reasons: Reason[]): Reason[] {
  let busy: string[] | undefined;
  const rest: Reason[] = [];
  for (const r of reasons) {
    if (r.code !== 'drone_busy') rest.push(r);
    else if (busy) for (const id of r.droneIds) busy.push(id);
    else busy = [...r.droneIds];
  }
  if (!busy || busy.length === 0) return rest;
  // Sorted, each drone once (sort, then drop repeats in place: no Set per waiting order).
  busy.sort();
  let k = 0;
  for (let i = 0; i < busy.length; i++) if (k === 0 || busy[i] !== busy[k - 1]) busy[k++] = busy[i]!;
  busy.length = k;
  rest.push({ code: 'drone_busy', droneIds: busy });
  return rest;
}

/** A waiting priority order "could clear" unless every reason it has is one waiting cannot fix. */
function couldClear(outcome: Outcome | undefined): boolean {
  if (!outcome || outcome.kind !== 'wait') return false;
  return outcome.reasons.some((r) => REASON_CODES[r.code].clearsByWaiting);
}

const departureKey = (roundId: string, departsAt: number): string => `${roundId}\u0000${departsAt}`;

function groundDeparture(ctx: Context, order: OrderInput, toHub: string, usedKg: Map<string, number>): { roundId: string; departsAt: number } | undefined {
  let best: { roundId: string; departsAt: number; key: string } | undefined;
  for (const round of ctx.groundRounds) {
    if (round.fromHub !== order.originHub || round.toHub !== toHub) continue;
    if (!(round.tempClasses ?? ['ambient']).includes(order.tempClass)) continue;
    for (const dep of round.departures) {
      if (dep.departsAt < ctx.now) continue;
      if (order.deadline !== undefined && dep.departsAt >= order.deadline) continue;
      const key = departureKey(round.id, dep.departsAt);
      if ((usedKg.get(key) ?? 0) + order.weightKg > dep.capacityKg) continue;
      if (!best || dep.departsAt < best.departsAt) best = { roundId: round.id, departsAt: dep.departsAt, key };
    }
  }
  if (!best) return undefined;
  usedKg.set(best.key, (usedKg.get(best.key) ?? 0) + order.weightKg);
  return { roundId: best.roundId, departsAt: best.departsAt };
}

/**
 * For tests and tools: the per-order analysis the allocator works from (feasible drones and
 * compartments of each order taken alone), in priority order.
 */
export function analyzeDispatch(input: DispatchInput, now: number): OrderAnalysis[] {
  const ctx = buildContext(input, now);
  return sortByPriority(input.orders).map((o) => analyzeOrder(ctx, o));
}
