import fc from 'fast-check';
import { analyzeDispatch, planDispatch, type DispatchInput, type OrderAnalysis, type OrderInput } from './dispatch-engine.ts';
import { dispatchInputArb, type RegionShape } from './dispatch-arbitraries.ts';
import { NOW } from './dispatch-fixtures.ts';

/**
 * How good are the engine's assignments? On small random problems (≤ 4 orders, ≤ 4 drones, ≤ 6
 * compartments a hub, ground rounds) the number of orders served, weighted by priority, is
 * compared with the exhaustive optimum over every assignment of drones, compartments and ground
 * departures. Medical and relief weigh 5, normal 1: with ≤ 4 orders that makes the optimum
 * lexicographic — first serve as many priority orders as possible, then as many normal ones.
 *
 * Both sides use the engine's per-order analysis (which drones and compartments each order could
 * use on its own — the per-pair rules are covered by the property tests); what is judged here is
 * the allocation. A plain greedy (first free drone, first free compartment, no re-assignment) is
 * measured alongside for comparison.
 *
 * Shared by dispatch-quality.test.ts (assertions) and the benchmark (bench/sections/dispatch.ts,
 * figures). Every case set is drawn from fast-check with a fixed seed, so both see the same cases.
 */

/** Priority weight of an order: medical and relief 5, normal 1. */
export const weight = (o: OrderInput): number => (o.priority === 'normal' ? 1 : 5);

export interface GroundOption {
  /** Round and departure time — how the engine keys a departure (and `groundBookings` name one). */
  key: string;
  departsAt: number;
  capacityKg: number;
  /** Weight already booked on it by earlier planning rounds (`groundBookings`). */
  bookedKg: number;
}

export const groundKey = (roundId: string, departsAt: number): string => `${roundId}@${departsAt}`;

/** The ground departures the engine may offer the order: its origin and destination hub, a class the round carries, at or after `now`, before the deadline. */
export function groundOptions(input: DispatchInput, a: OrderAnalysis, now: number = NOW): GroundOption[] {
  if (a.destinationHub === undefined) return [];
  const o = a.order;
  const booked = new Map<string, number>();
  for (const b of input.groundBookings ?? []) booked.set(groundKey(b.roundId, b.departsAt), (booked.get(groundKey(b.roundId, b.departsAt)) ?? 0) + b.weightKg);
  return (input.groundRounds ?? []).flatMap((r) =>
    r.fromHub === o.originHub && r.toHub === a.destinationHub && (r.tempClasses ?? ['ambient']).includes(o.tempClass)
      ? r.departures.flatMap((d) => {
          const key = groundKey(r.id, d.departsAt);
          return d.departsAt >= now && (o.deadline === undefined || d.departsAt < o.deadline) ? [{ key, departsAt: d.departsAt, capacityKg: d.capacityKg, bookedKg: booked.get(key) ?? 0 }] : [];
        })
      : [],
  );
}

/** Can the order be served at all (not refused, not held)? The engine holds normal orders in emergency mode by default. */
export const servable = (a: OrderAnalysis): boolean => a.blocking.length === 0 && a.emergencyHub === undefined;
export const droneOk = (a: OrderAnalysis): boolean => servable(a) && a.shared.length === 0;

/** How a plan is scored (dispatch-milp.ts: `SERVED`, `timeValued`); by default orders served, 5 : 1, a bus seat like a flight. */
export interface OutcomeValues {
  drone: (a: OrderAnalysis) => number;
  ground: (a: OrderAnalysis, g: GroundOption) => number;
  wait: (a: OrderAnalysis) => number;
}

const SERVED_VALUES: OutcomeValues = { drone: (a) => weight(a.order), ground: (a) => weight(a.order), wait: () => 0 };

/**
 * The best score over every assignment of drones, compartments and ground departures — by default
 * the largest priority-weighted number of orders served. Only servable orders count (a held or
 * refused order scores nothing either way).
 */
export function exhaustiveOptimum(input: DispatchInput, analyses: OrderAnalysis[], values: OutcomeValues = SERVED_VALUES, now: number = NOW): number {
  const ground = analyses.map((a) => (servable(a) ? groundOptions(input, a, now) : []));
  const usedD = new Set<string>();
  const usedC = new Set<string>();
  const usedKg = new Map<string, number>();
  const go = (i: number): number => {
    if (i === analyses.length) return 0;
    const a = analyses[i]!;
    if (!servable(a)) return go(i + 1);
    let best = values.wait(a) + go(i + 1);
    if (droneOk(a)) {
      const w = values.drone(a);
      for (const d of a.drones) {
        if (usedD.has(d.drone.id)) continue;
        usedD.add(d.drone.id);
        if (a.compartments === null) best = Math.max(best, w + go(i + 1));
        else
          for (const c of a.compartments) {
            if (usedC.has(c.key)) continue;
            usedC.add(c.key);
            best = Math.max(best, w + go(i + 1));
            usedC.delete(c.key);
          }
        usedD.delete(d.drone.id);
      }
    }
    for (const g of ground[i]!) {
      const kg = usedKg.get(g.key) ?? g.bookedKg;
      if (kg + a.order.weightKg > g.capacityKg) continue;
      usedKg.set(g.key, kg + a.order.weightKg);
      best = Math.max(best, values.ground(a, g) + go(i + 1));
      usedKg.set(g.key, kg);
    }
    return best;
  };
  return go(0);
}

/**
 * First free drone and compartment in priority order, no re-assignment; else the first ground departure with room.
 * `pick: 'worst'` takes them from the wrong end (most battery to spare, largest compartment): a control that a
 * quality test's floor must reject.
 */
export function plainGreedy(input: DispatchInput, analyses: OrderAnalysis[], now: number = NOW, pick: 'first' | 'worst' = 'first'): number {
  const order = <T>(list: readonly T[]): readonly T[] => (pick === 'first' ? list : [...list].reverse());
  const usedD = new Set<string>();
  const usedC = new Set<string>();
  const usedKg = new Map<string, number>();
  let value = 0;
  for (const a of analyses) {
    if (!servable(a)) continue;
    if (droneOk(a)) {
      const d = order(a.drones).find((x) => !usedD.has(x.drone.id));
      const c = a.compartments === null ? null : order(a.compartments).find((x) => !usedC.has(x.key));
      if (d && c !== undefined) {
        usedD.add(d.drone.id);
        if (c) usedC.add(c.key);
        value += weight(a.order);
        continue;
      }
    }
    const g = groundOptions(input, a, now)
      .sort((p, q) => p.departsAt - q.departsAt)
      .find((x) => (usedKg.get(x.key) ?? x.bookedKg) + a.order.weightKg <= x.capacityKg);
    if (g) {
      usedKg.set(g.key, (usedKg.get(g.key) ?? g.bookedKg) + a.order.weightKg);
      value += weight(a.order);
    }
  }
  return value;
}

export interface Tally {
  cases: number;
  contended: number;
  engineEqual: number;
  greedyEqual: number;
  engineWorst: number;
  greedyWorst: number;
  engine: number;
  greedy: number;
  optimum: number;
}

/** Two servable orders share a candidate drone or compartment. */
export function competing(input: DispatchInput): boolean {
  const seen = new Set<string>();
  for (const a of analyzeDispatch(input, NOW)) {
    if (!droneOk(a) || a.drones.length === 0 || a.compartments?.length === 0) continue;
    const keys = [...a.drones.map((d) => `d:${d.drone.id}`), ...(a.compartments ?? []).map((c) => `c:${c.key}`)];
    if (keys.some((k) => seen.has(k))) return true;
    keys.forEach((k) => seen.add(k));
  }
  return false;
}

/** Per case: the engine's and the plain greedy's weighted value and the optimum (the test asserts on them). */
export type CaseCheck = (c: { engine: number; greedy: number; optimum: number; input: DispatchInput }) => void;

/** The optimum is an upper bound on both, or the checker is wrong. */
export const throwIfOverOptimum: CaseCheck = ({ engine, greedy, optimum }) => {
  if (engine > optimum || greedy > optimum) throw new Error(`exhaustive optimum ${optimum} below engine ${engine} / greedy ${greedy}: the checker is wrong`);
};

export function measure(inputs: DispatchInput[], check: CaseCheck = throwIfOverOptimum): Tally {
  const t: Tally = { cases: inputs.length, contended: 0, engineEqual: 0, greedyEqual: 0, engineWorst: 1, greedyWorst: 1, engine: 0, greedy: 0, optimum: 0 };
  for (const input of inputs) {
    const analyses = analyzeDispatch(input, NOW);
    const optimum = exhaustiveOptimum(input, analyses);
    const plan = planDispatch(input, NOW);
    const engine = plan.outcomes.filter((o) => o.kind !== 'wait').reduce((s, o) => s + weight(input.orders.find((x) => x.id === o.orderId)!), 0);
    const greedy = plainGreedy(input, analyses);
    check({ engine, greedy, optimum, input });
    // Contended: the orders that could each be served alone cannot all be served together.
    const alone = analyses.filter((a) => (droneOk(a) && a.drones.length > 0 && (a.compartments === null || a.compartments.length > 0)) || (servable(a) && groundOptions(input, a).length > 0));
    if (alone.reduce((s, a) => s + weight(a.order), 0) > optimum) t.contended++;
    if (engine === optimum) t.engineEqual++;
    else if (process.env.DISPATCH_QUALITY_DUMP) console.log(JSON.stringify({ engine, optimum, input }));
    if (greedy === optimum) t.greedyEqual++;
    if (optimum > 0) {
      t.engineWorst = Math.min(t.engineWorst, engine / optimum);
      t.greedyWorst = Math.min(t.greedyWorst, greedy / optimum);
    }
    t.engine += engine;
    t.greedy += greedy;
    t.optimum += optimum;
  }
  return t;
}

export function report(title: string, t: Tally): string {
  const pct = (x: number, of: number): string => `${((100 * x) / of).toFixed(2)} %`;
  const contendedOnly = (equal: number): string => pct(equal - (t.cases - t.contended), t.contended);
  return [
    `${title}: ${t.cases} random cases, ${t.contended} where not every servable order can be served`,
    `  engine (priority order + augmenting paths): optimal in ${pct(t.engineEqual, t.cases)} (${contendedOnly(t.engineEqual)} of the contended), worst ratio ${t.engineWorst.toFixed(3)}, weighted total ${pct(t.engine, t.optimum)} of optimum`,
    `  plain greedy (no re-assignment):            optimal in ${pct(t.greedyEqual, t.cases)} (${contendedOnly(t.greedyEqual)} of the contended), worst ratio ${t.greedyWorst.toFixed(3)}, weighted total ${pct(t.greedy, t.optimum)} of optimum`,
  ].join('\n');
}

const SMALL: RegionShape = { hubs: [2, 3], drones: [1, 4], orders: [1, 4], zones: [0, 1], spreadM: 1000, chaos: false };

/**
 * Crowded: two hubs, 2–4 orders, 1–4 drones, 1–3 compartments a hub, calm weather; no ground rounds.
 * Only the cases where at least two orders want the same drone or compartment are kept: elsewhere
 * any allocation is optimal and would only flatter the figures. Draws `6 × cases` samples (seeded).
 */
export function competingDroneCases(cases: number, seed = 20240101): DispatchInput[] {
  const shape: RegionShape = { hubs: [2, 2], drones: [1, 4], orders: [2, 4], zones: [0, 1], spreadM: 1000, chaos: false, compartments: [1, 3], calm: true };
  return fc
    .sample(dispatchInputArb(shape), { numRuns: cases * 6, seed })
    .map((i) => ({ ...i, groundRounds: [] }))
    .filter(competing);
}

/**
 * As `competingDroneCases` (two hubs, 1–4 orders) with random ground rounds, keeping the cases
 * where orders compete and at least one servable order has a bus. The rule (issue 4) is "when no
 * drone can serve an order, offer it to a ground round": an order a drone can fly now is flown, even
 * if putting it on a bus that leaves hours later would free the drone for another order. The
 * optimum ignores time and treats a bus seat like a flight. Draws `4 × cases` samples (seeded).
 */
export function competingGroundCases(cases: number, seed = 20240102): DispatchInput[] {
  const crowded: RegionShape = { ...SMALL, hubs: [2, 2], compartments: [1, 3], calm: true };
  return fc
    .sample(dispatchInputArb(crowded), { numRuns: cases * 4, seed })
    .filter((input) => competing(input) && analyzeDispatch(input, NOW).some((a) => servable(a) && groundOptions(input, a).length > 0));
}
