import * as highsModule from 'highs';
import type { Highs } from 'highs';
import { analyzeDispatch, planDispatch, type DispatchInput, type DispatchPlan, type OrderAnalysis } from './dispatch-engine.ts';
import { droneOk, groundKey, groundOptions, plainGreedy, servable, weight, type GroundOption } from './dispatch-optimum.ts';

/**
 * The dispatch problem of one planning round as a mixed-integer linear program, solved to
 * optimality by HiGHS (the `highs` package, WebAssembly) — the yardstick for the engine on
 * instances far too large for the exhaustive search of dispatch-optimum.ts (20–60 orders, 5–20
 * drones, lockers and bus rounds).
 *
 * Built from the same data as `planDispatch`: what each order could use on its own comes from the
 * engine's own per-order analysis (`analyzeDispatch`: payload, weather, wind, energy and reserve,
 * no-fly zones, registered routes, compartment size/temperature/relief stock, emergency holds) —
 * no rule is re-implemented here. Ground departures are those dispatch-optimum.ts offers (the
 * engine's rule: same origin and destination hub, a temperature class the round carries, departing
 * at or after `now` and before the deadline), with the weight already booked on them.
 *
 * Variables (all binary):
 *  - x[o,d]  order o flies on drone d (d a candidate of o);
 *  - z[o,c]  order o gets compartment c at its locker destination (c a candidate of o);
 *  - y[o,g]  order o rides ground departure g.
 * A flight to a locker needs exactly one compartment (Σ_c z[o,c] = Σ_d x[o,d]); a flight to a
 * landing site needs none. This is the x[order, drone, compartment-or-site] model with the product
 * factored: in the engine's analysis an order's usable drones and compartments are independent sets
 * (any candidate drone with any candidate compartment is a feasible flight), so x[o,d,c] = 1 ⇔
 * x[o,d] = z[o,c] = 1 and both models have the same optimum, with |D|+|C| columns per order
 * instead of |D|·|C|.
 * Constraints: each order at most once (Σ_d x + Σ_g y ≤ 1), each drone at most once, each
 * compartment at most once, each departure's kg (new + already booked) within its capacity.
 *
 * Objective: a value per outcome (see `Valuation`). `SERVED` is dispatch-optimum.ts's score —
 * medical/relief 5, normal 1, a bus seat counted like a flight ("speed-blind"); `timeValued` counts
 * how soon each order gets going, waiting included.
 */

export interface Valuation {
  name: string;
  /** Value of flying the order now. */
  drone: (a: OrderAnalysis) => number;
  /** Value of putting it on ground departure `g`. */
  ground: (a: OrderAnalysis, g: GroundOption) => number;
  /** Value of leaving it to a later planning round (0 in the speed-blind score). */
  wait: (a: OrderAnalysis) => number;
}

/** dispatch-optimum.ts's score: orders served, medical/relief 5 : normal 1, bus = flight. */
export const SERVED: Valuation = { name: 'served (speed-blind)', drone: (a) => weight(a.order), ground: (a) => weight(a.order), wait: () => 0 };

export interface TimeValueParams {
  /** Planning horizon: a delivery that starts this late is worth nothing more than none (default 6 h). */
  horizonMs: number;
  /** One drone cycle at a hub: mission and recharge before a drone takes the next order (default 30 min). */
  droneCycleMs: number;
}

export const DEFAULT_TIME_VALUE: TimeValueParams = { horizonMs: 6 * 3_600_000, droneCycleMs: 30 * 60_000 };

/**
 * Time-valued score: an order is worth its priority weight (5 : 1) times 1 − delay / horizon, where
 * the delay is how long until it gets going — 0 for a flight now; the departure for a bus seat;
 * for an order left waiting that some drone could fly on its own (it waits only because the drones
 * or compartments it could use are taken), one drone cycle (a drone back and recharged — the next
 * planning rounds take it); an order no drone could fly now (range, payload, wind, no-fly zone, no
 * drone at the hub…) waits the whole horizon and is worth nothing waiting. The score of a plan is
 * the sum over every servable order, waiting ones included.
 *
 * The queue is not modelled: in a backlog an order left waiting may wait several cycles, so this
 * undervalues the engine's bus seats for drone-busy orders (see README, "Quality").
 */
export function timeValued(input: DispatchInput, now: number, p: TimeValueParams = DEFAULT_TIME_VALUE): Valuation {
  const u = (delayMs: number): number => Math.max(0, 1 - delayMs / p.horizonMs);
  return {
    name: `time-valued (horizon ${p.horizonMs / 3_600_000} h, drone cycle ${p.droneCycleMs / 60_000} min)`,
    drone: (a) => weight(a.order),
    ground: (a, g) => weight(a.order) * u(g.departsAt - now),
    wait: (a) => (droneOk(a) && a.drones.length > 0 && a.compartments?.length !== 0 ? weight(a.order) * u(p.droneCycleMs) : 0),
  };
}

type Col = { kind: 'x'; order: number; droneId: string } | { kind: 'z'; order: number; key: string } | { kind: 'y'; order: number; g: GroundOption };

export interface DispatchMilp {
  /** CPLEX LP text. */
  lp: string;
  columns: Map<string, Col>;
  analyses: OrderAnalysis[];
  /** Σ of the wait values of every servable order (the objective's constant). */
  constant: number;
  rows: number;
}

/** What a plan or a solution does with each order. */
export type Choice = { kind: 'drone'; droneId: string; compartmentKey?: string } | { kind: 'ground'; key: string; departsAt: number } | { kind: 'wait' };

const fmtNum = (x: number): string => (Number.isInteger(x) ? String(x) : x.toPrecision(15).replace(/\.?0+$/, ''));

function sumLine(terms: [number, string][]): string {
  // LP lines are kept short (the format's readers allow continuation lines).
  const parts = terms.map(([c, v], i) => `${c < 0 ? '-' : i === 0 ? '' : '+'} ${fmtNum(Math.abs(c))} ${v}`);
  const lines: string[] = [];
  for (let i = 0; i < parts.length; i += 8) lines.push(parts.slice(i, i + 8).join(' '));
  return lines.join('\n   ');
}

export function buildDispatchMilp(input: DispatchInput, now: number, valuation: Valuation = SERVED): DispatchMilp {
  const analyses = analyzeDispatch(input, now);
  const columns = new Map<string, Col>();
  const objective: [number, string][] = [];
  const rows: string[] = [];
  const byDrone = new Map<string, string[]>();
  const byComp = new Map<string, string[]>();
  const byDeparture = new Map<string, { capacityKg: number; bookedKg: number; terms: [number, string][] }>();
  const droneIdx = new Map<string, number>();
  const compIdx = new Map<string, number>();
  let constant = 0;

  analyses.forEach((a, i) => {
    if (!servable(a)) return;
    const wait = valuation.wait(a);
    constant += wait;
    const served: string[] = [];
    if (droneOk(a) && a.drones.length > 0 && a.compartments?.length !== 0) {
      const xs: string[] = [];
      for (const d of a.drones) {
        const di = droneIdx.get(d.drone.id) ?? droneIdx.size;
        droneIdx.set(d.drone.id, di);
        const name = `x${i}_${di}`;
        columns.set(name, { kind: 'x', order: i, droneId: d.drone.id });
        objective.push([valuation.drone(a) - wait, name]);
        byDrone.set(d.drone.id, [...(byDrone.get(d.drone.id) ?? []), name]);
        xs.push(name);
      }
      served.push(...xs);
      if (a.compartments !== null) {
        const zs: string[] = [];
        for (const c of a.compartments) {
          const ci = compIdx.get(c.key) ?? compIdx.size;
          compIdx.set(c.key, ci);
          const name = `z${i}_${ci}`;
          columns.set(name, { kind: 'z', order: i, key: c.key });
          byComp.set(c.key, [...(byComp.get(c.key) ?? []), name]);
          zs.push(name);
        }
        rows.push(` lk${i}: ${sumLine([...zs.map((z): [number, string] => [1, z]), ...xs.map((x): [number, string] => [-1, x])])} = 0`);
      }
    }
    for (const g of groundOptions(input, a, now)) {
      const name = `y${i}_${columns.size}`;
      columns.set(name, { kind: 'y', order: i, g });
      objective.push([valuation.ground(a, g) - wait, name]);
      const dep = byDeparture.get(g.key) ?? { capacityKg: g.capacityKg, bookedKg: g.bookedKg, terms: [] };
      dep.capacityKg = Math.max(dep.capacityKg, g.capacityKg);
      dep.terms.push([a.order.weightKg, name]);
      byDeparture.set(g.key, dep);
      served.push(name);
    }
    if (served.length > 1) rows.push(` o${i}: ${sumLine(served.map((v) => [1, v]))} <= 1`);
  });
  for (const [id, vs] of byDrone) if (vs.length > 1) rows.push(` d${droneIdx.get(id)}: ${sumLine(vs.map((v) => [1, v]))} <= 1`);
  for (const [key, vs] of byComp) if (vs.length > 1) rows.push(` c${compIdx.get(key)}: ${sumLine(vs.map((v) => [1, v]))} <= 1`);
  let gi = 0;
  for (const dep of byDeparture.values()) {
    const room = dep.capacityKg - dep.bookedKg;
    if (dep.terms.reduce((s, [kg]) => s + kg, 0) > room) rows.push(` g${gi++}: ${sumLine(dep.terms)} <= ${fmtNum(room)}`);
  }
  const names = [...columns.keys()];
  const lp = [
    'Maximize',
    ` obj: ${sumLine(objective)}`,
    'Subject To',
    // HiGHS wants a constraint section: a trivial row when nothing competes.
    ...(rows.length > 0 ? rows : [` r0: ${names[0] ?? 'dummy'} <= 1`]),
    'Binary',
    ...Array.from({ length: Math.ceil(names.length / 10) }, (_, k) => ` ${names.slice(10 * k, 10 * k + 10).join(' ')}`),
    'End',
  ].join('\n');
  return { lp, columns, analyses, constant, rows: rows.length };
}

export interface MilpSolution {
  status: string;
  /** Optimum of the valuation (wait values included). */
  value: number;
  choices: Map<string, Choice>;
  columns: number;
  rows: number;
  ms: number;
}

let highsPromise: Promise<Highs> | undefined;
/**
 * One HiGHS runtime per process. (The package's types describe its CommonJS entry; under Node's ESM
 * resolution `default` is the loader function.)
 */
export const loadHighs = (): Promise<Highs> => (highsPromise ??= (highsModule.default as unknown as () => Promise<Highs>)());

/** Solve to proven optimality (mip_rel_gap 0); throws if HiGHS does not prove an optimum. */
export async function solveDispatchMilp(input: DispatchInput, now: number, valuation: Valuation = SERVED): Promise<MilpSolution> {
  const highs = await loadHighs();
  const t0 = performance.now();
  const m = buildDispatchMilp(input, now, valuation);
  if (m.columns.size === 0) return { status: 'Optimal', value: m.constant, choices: new Map(), columns: 0, rows: 0, ms: performance.now() - t0 };
  const r = highs.solve(m.lp, { output_flag: false, mip_rel_gap: 0, mip_abs_gap: 1e-9, time_limit: 120 });
  const ms = performance.now() - t0;
  if (r.Status !== 'Optimal') throw new Error(`HiGHS: ${r.Status} (${m.columns.size} columns, ${m.rows} rows)`);
  const choices = new Map<string, Choice>();
  const comps = new Map<number, string>();
  for (const [name, col] of m.columns) {
    const v = (r.Columns as Record<string, { Primal: number } | undefined>)[name]?.Primal ?? 0;
    if (v < 0.5) continue;
    const id = m.analyses[col.order]!.order.id;
    if (col.kind === 'x') choices.set(id, { kind: 'drone', droneId: col.droneId });
    else if (col.kind === 'z') comps.set(col.order, col.key);
    else choices.set(id, { kind: 'ground', key: col.g.key, departsAt: col.g.departsAt });
  }
  for (const [i, key] of comps) {
    const id = m.analyses[i]!.order.id;
    const c = choices.get(id);
    if (c?.kind === 'drone') c.compartmentKey = key;
  }
  return { status: r.Status, value: r.ObjectiveValue + m.constant, choices, columns: m.columns.size, rows: m.rows, ms };
}

export interface PlanScore {
  value: number;
  /** Priority-weighted orders flown / on a bus (5 : 1). */
  droneWeight: number;
  groundWeight: number;
}

/** The engine's plan scored with the same valuation (holds and refusals count nothing, as in the MILP). */
export function scorePlan(input: DispatchInput, now: number, plan: DispatchPlan, valuation: Valuation = SERVED): PlanScore {
  const byId = new Map(analyzeDispatch(input, now).map((a) => [a.order.id, a]));
  const s: PlanScore = { value: 0, droneWeight: 0, groundWeight: 0 };
  for (const o of plan.outcomes) {
    const a = byId.get(o.orderId)!;
    if (!servable(a)) continue;
    if (o.kind === 'drone') {
      s.value += valuation.drone(a);
      s.droneWeight += weight(a.order);
    } else if (o.kind === 'ground') {
      const g = groundOptions(input, a, now).find((x) => x.key === groundKey(o.roundId, o.departsAt));
      if (!g) throw new Error(`engine put ${o.orderId} on ${o.roundId} at ${o.departsAt}, which the MILP does not offer`);
      s.value += valuation.ground(a, g);
      s.groundWeight += weight(a.order);
    } else s.value += valuation.wait(a);
  }
  return s;
}


/**
 * Throws unless `choices` is a plan the engine's rules allow: each order's drone, compartment and
 * departure among its own candidates, each drone and compartment once, each departure's weight
 * (booked included) within its capacity. Returns the choices' value under `valuation`.
 */
export function checkChoices(input: DispatchInput, now: number, choices: Map<string, Choice>, valuation: Valuation = SERVED): number {
  const usedD = new Set<string>();
  const usedC = new Set<string>();
  const kg = new Map<string, number>();
  let value = 0;
  for (const a of analyzeDispatch(input, now)) {
    const c = choices.get(a.order.id) ?? { kind: 'wait' };
    if (!servable(a)) {
      if (c.kind !== 'wait') throw new Error(`${a.order.id} is held or refused but ${c.kind}`);
      continue;
    }
    if (c.kind === 'wait') value += valuation.wait(a);
    else if (c.kind === 'drone') {
      if (!droneOk(a) || !a.drones.some((d) => d.drone.id === c.droneId)) throw new Error(`${a.order.id}: drone ${c.droneId} is not a candidate`);
      if (usedD.has(c.droneId)) throw new Error(`drone ${c.droneId} twice`);
      usedD.add(c.droneId);
      if (a.compartments !== null) {
        if (c.compartmentKey === undefined || !a.compartments.some((x) => x.key === c.compartmentKey)) throw new Error(`${a.order.id}: compartment ${c.compartmentKey} is not a candidate`);
        if (usedC.has(c.compartmentKey)) throw new Error(`compartment ${c.compartmentKey} twice`);
        usedC.add(c.compartmentKey);
      } else if (c.compartmentKey !== undefined) throw new Error(`${a.order.id}: a compartment at a landing site`);
      value += valuation.drone(a);
    } else {
      const g = groundOptions(input, a, now).find((x) => x.key === c.key);
      if (!g) throw new Error(`${a.order.id}: departure ${c.key} is not offered`);
      const load = (kg.get(g.key) ?? g.bookedKg) + a.order.weightKg;
      if (load > g.capacityKg + 1e-9) throw new Error(`departure ${g.key} over capacity: ${load} > ${g.capacityKg} kg`);
      kg.set(g.key, load);
      value += valuation.ground(a, g);
    }
  }
  return value;
}

/** The engine's plan as choices (for `checkChoices` and comparisons). */
export function planChoices(input: DispatchInput, plan: DispatchPlan): Map<string, Choice> {
  const out = new Map<string, Choice>();
  const hubOf = new Map(input.orders.map((o) => [o.id, o.destination.type === 'locker' ? o.destination.hub : undefined]));
  for (const o of plan.outcomes) {
    if (o.kind === 'drone') {
      const hub = hubOf.get(o.orderId);
      out.set(o.orderId, { kind: 'drone', droneId: o.droneId, ...(o.compartmentId === undefined || hub === undefined ? {} : { compartmentKey: `${hub}\u0000${o.lockerId ?? ''}\u0000${o.compartmentId}` }) });
    } else if (o.kind === 'ground') out.set(o.orderId, { kind: 'ground', key: groundKey(o.roundId, o.departsAt), departsAt: o.departsAt });
    else out.set(o.orderId, { kind: 'wait' });
  }
  return out;
}

export interface FamilyTally {
  instances: number;
  /** Speed-blind score (orders served, 5 : 1): engine, plain greedy, MILP optimum; instances where the engine reaches it. */
  engine: number;
  greedy: number;
  optimum: number;
  engineOptimal: number;
  /** Lowest engine / optimum of one instance (1 when every optimum is 0). */
  worst: number;
  /** Time-valued score: engine, optimum, and the same with every order left waiting (the baseline). */
  engineTime: number;
  optimumTime: number;
  allWaitTime: number;
  /** Orders flown / sent by bus by the engine. */
  flown: number;
  bussed: number;
  /** Where the gap comes from: weight the optimum serves by bus that the engine flies, … */
  optimumBusesEngineFlies: number;
  /** … departure delay of those bus seats, hours (one value per order), … */
  swapBusDelaysH: number[];
  /** … and the engine's own missions, minutes from now until the drone is back (one per flight). */
  engineMissionsMin: number[];
  /** Best bus packing for the orders the engine does not fly, minus the engine's bus weight (0: its bus seats are optimal given its flights). */
  packingGap: number;
  /** HiGHS solve time per instance (speed-blind), ms, and the largest model. */
  solveMs: number[];
  maxColumns: number;
}

/**
 * The engine against the MILP optimum over `instances` seeded instances of a family, both scores,
 * with what the bench reports about where the gap comes from. Shared by bench/sections/dispatch.ts.
 */
export async function measureFamily(make: (seed: number) => DispatchInput, instances: number, now: number): Promise<FamilyTally> {
  const t: FamilyTally = {
    instances,
    engine: 0,
    greedy: 0,
    optimum: 0,
    engineOptimal: 0,
    worst: 1,
    engineTime: 0,
    optimumTime: 0,
    allWaitTime: 0,
    flown: 0,
    bussed: 0,
    optimumBusesEngineFlies: 0,
    swapBusDelaysH: [],
    engineMissionsMin: [],
    packingGap: 0,
    solveMs: [],
    maxColumns: 0,
  };
  for (let seed = 1; seed <= instances; seed++) {
    const input = make(seed);
    const p = planDispatch(input, now);
    const choices = planChoices(input, p);
    const engine = checkChoices(input, now, choices, SERVED);
    const m = await solveDispatchMilp(input, now, SERVED);
    if (engine > m.value + 1e-9) throw new Error(`MILP optimum ${m.value} below the engine's ${engine}: the model is wrong`);
    t.engine += engine;
    t.optimum += m.value;
    if (Math.abs(engine - m.value) < 1e-9) t.engineOptimal++;
    if (m.value > 0) t.worst = Math.min(t.worst, engine / m.value);
    t.greedy += plainGreedy(input, analyzeDispatch(input, now), now);
    t.solveMs.push(m.ms);
    t.maxColumns = Math.max(t.maxColumns, m.columns);
    const tv = timeValued(input, now);
    t.engineTime += checkChoices(input, now, choices, tv);
    t.optimumTime += (await solveDispatchMilp(input, now, tv)).value;
    t.allWaitTime += checkChoices(input, now, new Map(), tv);
    const byId = new Map(input.orders.map((o) => [o.id, o]));
    for (const o of p.outcomes) {
      if (o.kind === 'drone') {
        t.flown++;
        t.engineMissionsMin.push((o.returnMs - now) / 60_000);
        const c = m.choices.get(o.orderId);
        if (c?.kind === 'ground') {
          t.optimumBusesEngineFlies += weight(byId.get(o.orderId)!);
          t.swapBusDelaysH.push((c.departsAt - now) / 3_600_000);
        }
      } else if (o.kind === 'ground') t.bussed++;
    }
    // Bus packing alone: the orders the engine does not fly, no drones, best use of the buses.
    const notFlown = new Set(p.outcomes.filter((o) => o.kind !== 'drone').map((o) => o.orderId));
    const rest = await solveDispatchMilp({ ...input, drones: [], orders: input.orders.filter((o) => notFlown.has(o.id)) }, now, SERVED);
    t.packingGap += rest.value - scorePlan(input, now, p, SERVED).groundWeight;
  }
  return t;
}

export interface RoundsResult {
  /** Priority-weighted mean delay until an order gets going (flight or bus departure), minutes; orders never started count the whole horizon. */
  weightedMeanDelayMin: number;
  /** Priority-weighted share started within the horizon. */
  startedShare: number;
  flown: number;
  bussed: number;
}

/**
 * Plays one instance forward over `horizonMs` in planning rounds every `stepMs`, each round decided
 * by `decide` (the engine, or a MILP optimum), to see what a one-round score does to delivery times:
 * a flown order's drone is away until its return, then charges on its pad at `chargePctPerMin`; a
 * flown order's compartment is taken until `pickupMs` after the landing (compartments that were
 * occupied at the start stay so); a bus seat is booked (`groundBookings`) and the order
 * counts as started at the departure; weather and telemetry are kept fresh; drones away at the
 * start are back after `awayAtStartMs`. Orders are the instance's backlog (no new arrivals).
 */
export async function playRounds(
  input0: DispatchInput,
  now0: number,
  decide: (input: DispatchInput, now: number) => Promise<Map<string, Choice>>,
  o: { horizonMs: number; stepMs: number; chargePctPerMin: number; awayAtStartMs: number; pickupMs: number } = { horizonMs: 6 * 3_600_000, stepMs: 5 * 60_000, chargePctPerMin: 1, awayAtStartMs: 15 * 60_000, pickupMs: 2 * 3_600_000 },
): Promise<RoundsResult> {
  type DroneState = DispatchInput['drones'][number];
  let drones: DroneState[] = input0.drones.map((d) => ({ ...d, state: { ...d.state } }));
  const backAt = new Map<string, number>();
  // Drones away at the start (flying, landing…) are back on their pad after `awayAtStartMs`.
  for (const d of drones) if (d.state.flightState !== 'idle' && d.state.flightState !== 'charging') backAt.set(d.id, now0 + o.awayAtStartMs);
  const taken = new Map<string, number>(); // compartment key → when the parcel is picked up
  const bookings = [...(input0.groundBookings ?? [])];
  let orders = [...input0.orders];
  const analyses0 = new Map(analyzeDispatch(input0, now0).map((a) => [a.order.id, a]));
  const started = new Map<string, number>();
  let flown = 0;
  let bussed = 0;
  for (let now = now0; now < now0 + o.horizonMs; now += o.stepMs) {
    // Drones back from their missions charge on their pad.
    drones = drones.map((d) => {
      const back = backAt.get(d.id);
      if (back !== undefined && back > now) return { ...d, state: { ...d.state, observedAt: now } };
      const wasAway = back !== undefined;
      if (wasAway) backAt.delete(d.id);
      const onPad = wasAway || d.state.flightState === 'idle' || d.state.flightState === 'charging';
      const elapsedMin = wasAway ? (now - back) / 60_000 : now === now0 ? 0 : o.stepMs / 60_000;
      return {
        ...d,
        state: {
          ...d.state,
          ...(onPad ? { flightState: 'charging' as const, missionId: null, batteryPct: Math.min(100, d.state.batteryPct + o.chargePctPerMin * elapsedMin) } : {}),
          observedAt: now,
        },
      };
    });
    const hubs = input0.hubs.map((h) => ({
      ...h,
      ...(h.weather ? { weather: { ...h.weather, observedAt: now } } : {}),
      compartments: (h.compartments ?? []).map((c) => ((taken.get(`${h.id}\u0000${c.lockerId ?? ''}\u0000${c.id}`) ?? -Infinity) > now ? { ...c, status: 'occupied' as const } : c)),
    }));
    const input: DispatchInput = { ...input0, hubs, drones, orders, groundBookings: bookings };
    if (orders.length === 0) break;
    const choices = await decide(input, now);
    const analyses = new Map(analyzeDispatch(input, now).map((a) => [a.order.id, a]));
    for (const [id, c] of choices) {
      const a = analyses.get(id)!;
      if (c.kind === 'drone') {
        const cand = a.drones.find((d) => d.drone.id === c.droneId)!;
        drones = drones.map((d) => (d.id === c.droneId ? { ...d, state: { ...d.state, flightState: 'mission', missionId: `m-${id}`, batteryPct: d.state.batteryPct - cand.energyNeededPct } } : d));
        backAt.set(c.droneId, now + cand.missionS * 1000);
        if (c.compartmentKey !== undefined) taken.set(c.compartmentKey, now + cand.outboundArrivalS * 1000 + o.pickupMs);
        started.set(id, now);
        flown++;
      } else if (c.kind === 'ground') {
        bookings.push({ roundId: c.key.slice(0, c.key.lastIndexOf('@')), departsAt: c.departsAt, weightKg: a.order.weightKg });
        started.set(id, c.departsAt);
        bussed++;
      }
    }
    orders = orders.filter((x) => !started.has(x.id));
  }
  let delay = 0;
  let w = 0;
  let startedW = 0;
  for (const [id, a] of analyses0) {
    if (!servable(a)) continue;
    const s = started.get(id);
    const d = s === undefined ? o.horizonMs : Math.min(o.horizonMs, s - now0);
    delay += weight(a.order) * d;
    w += weight(a.order);
    if (s !== undefined && s - now0 < o.horizonMs) startedW += weight(a.order);
  }
  return { weightedMeanDelayMin: w === 0 ? 0 : delay / w / 60_000, startedShare: w === 0 ? 1 : startedW / w, flown, bussed };
}
