import { planDispatch } from '../../cloud/dispatch/dispatch-engine.ts';
import { competingDroneCases, competingGroundCases, measure, type Tally } from '../../cloud/dispatch/dispatch-optimum.ts';
import { syntheticDispatch, type SyntheticSize } from '../../cloud/dispatch/synthetic-dispatch.ts';
import { serveWorker } from '../lib/procs.ts';

/**
 * Child process of bench/sections/dispatch.ts: times `planDispatch` on
 * seeded synthetic regions and scores the engine against the exhaustive optimum on small cases, so
 * the runner's own heap and timers stay out of the figures.
 */

export const DISPATCH_NOW = Date.UTC(2025, 0, 15, 3, 0, 0);

export interface PlanRequest {
  kind: 'plan';
  size: SyntheticSize;
  /** Warm-up: at least this many calls, and go on until minMs have passed. */
  warmupCalls: number;
  warmupMs: number;
  /** Timed calls: at most `runs`, stopping early (but never below 3) once `budgetMs` has passed. */
  runs: number;
  budgetMs: number;
}

export interface PlanReply {
  /** One value per timed call, ms. */
  times: number[];
  warmupCalls: number;
  buildMs: number;
  stats: { drone: number; ground: number; wait: number };
}

export interface QualityRequest {
  kind: 'quality';
  scenario: 'drones' | 'ground';
  /** As DISPATCH_QUALITY_CASES in the test: samples drawn = 6 × cases (drones) or 4 × cases (ground). */
  cases: number;
}

/** A case where the engine is furthest below the optimum. */
export interface WorstCase {
  engine: number;
  optimum: number;
  orders: number;
  drones: number;
  priorityOrders: number;
}

export interface QualityReply {
  tally: Tally;
  /** Cases where the engine's (plain greedy's) weighted value is below 97 % of the optimum. */
  engineBelow97: number;
  greedyBelow97: number;
  worst: WorstCase | null;
  ms: number;
}

export type DispatchRequest = PlanRequest | QualityRequest;
export type DispatchReply = PlanReply | QualityReply;

function timePlans(req: PlanRequest): PlanReply {
  const b0 = performance.now();
  const input = syntheticDispatch(req.size, DISPATCH_NOW);
  const buildMs = performance.now() - b0;
  let warmupCalls = 0;
  const w0 = performance.now();
  while (warmupCalls < req.warmupCalls || performance.now() - w0 < req.warmupMs) {
    planDispatch(input, DISPATCH_NOW);
    warmupCalls++;
  }
  const times: number[] = [];
  let stats = { drone: 0, ground: 0, wait: 0 };
  const t0 = performance.now();
  while (times.length < req.runs && (times.length < 3 || performance.now() - t0 < req.budgetMs)) {
    // Back to back, as a dispatcher re-planning in a loop would: a forced full GC before each call was
    // tried and made the calls ~1.5–2× slower (V8 shrinks the young generation, the call pays to regrow it).
    const s = performance.now();
    const plan = planDispatch(input, DISPATCH_NOW);
    times.push(performance.now() - s);
    stats = { drone: plan.stats.drone, ground: plan.stats.ground, wait: plan.stats.wait };
  }
  return { times, warmupCalls, buildMs, stats };
}

function quality(req: QualityRequest): QualityReply {
  const t0 = performance.now();
  const inputs = req.scenario === 'drones' ? competingDroneCases(req.cases) : competingGroundCases(req.cases);
  let engineBelow97 = 0;
  let greedyBelow97 = 0;
  let worst: WorstCase | null = null;
  const tally = measure(inputs, ({ engine, greedy, optimum, input }) => {
    if (engine > optimum || greedy > optimum) throw new Error(`exhaustive optimum ${optimum} below engine ${engine} / greedy ${greedy}: the checker is wrong`);
    if (engine < 0.97 * optimum) engineBelow97++;
    if (greedy < 0.97 * optimum) greedyBelow97++;
    if (optimum > 0 && (worst === null || engine / optimum < worst.engine / worst.optimum)) {
      worst = { engine, optimum, orders: input.orders.length, drones: input.drones.length, priorityOrders: input.orders.filter((o) => o.priority !== 'normal').length };
    }
  });
  return { tally, engineBelow97, greedyBelow97, worst, ms: performance.now() - t0 };
}

serveWorker<DispatchRequest, DispatchReply>(async (req) => (req.kind === 'plan' ? timePlans(req) : quality(req)));
