import path from 'node:path';
import { analyzeDispatch, planDispatch } from '../../cloud/dispatch/dispatch-engine.ts';
import type { DispatchInput } from '../../cloud/dispatch/dispatch-types.ts';
import { DEFAULT_TIME_VALUE, measureFamily, planChoices, playRounds, scorePlan, SERVED, solveDispatchMilp, timeValued, type Choice, type FamilyTally } from '../../cloud/dispatch/dispatch-milp.ts';
import { competingGroundCases, exhaustiveOptimum } from '../../cloud/dispatch/dispatch-optimum.ts';
import { MEDIUM_FAMILIES, mediumInstance, type SyntheticSize } from '../../cloud/dispatch/synthetic-dispatch.ts';
import type { DispatchReply, DispatchRequest, PlanReply, PlanRequest, QualityReply } from '../load/dispatch-worker.ts';
import { startWorker } from '../lib/procs.ts';
import type { Row, Section } from '../lib/report.ts';
import { fmt, summarize, type Summary } from '../lib/stats.ts';

/**
 * Benchmark 7 — dispatch: how long `planDispatch` takes to decide for 100 / 1,000 / 5,000 pending
 * orders with 50 / 200 / 1,000 drones, and how close its assignments come to the exhaustive optimum
 * on small random instances (cloud/dispatch/dispatch-optimum.ts, shared with dispatch-quality.test.ts)
 * and to the MILP optimum (HiGHS) on medium ones (cloud/dispatch/dispatch-milp.ts, shared with
 * dispatch-milp.test.ts). The timing and the small cases run in one child process
 * (bench/load/dispatch-worker.ts); the MILP part (not timed) runs in this process.
 */

const HUBS = 50;
const ORDERS = [100, 1000, 5000] as const;
const DRONES = [50, 200, 1000] as const;
const SEED = 1;
const TARGET_MS = 100;
const TARGET_RATIO = 0.97;
const GREEDY = 'plain greedy (no re-assignment)';

export const dispatch: Section = async ({ quick, log }) => {
  const timing = quick
    ? { warmupCalls: 3, warmupMs: 200, runs: 7, budgetMs: 1_500 }
    : { warmupCalls: 5, warmupMs: 1_000, runs: 21, budgetMs: 8_000 };
  // Samples drawn: 6 × cases (drones) and 4 × cases (ground); the test uses 2,000 for both.
  const qualityCases = quick ? { drones: 600, ground: 2_000 } : { drones: 2_000, ground: 10_000 };
  // Medium instances per family for the MILP yardstick (the test uses 12).
  const mediumInstances = quick ? 12 : 40;
  // Instances a bus family played forward over 6 h of planning rounds (three policies each).
  const roundsInstances = quick ? 4 : 20;

  const worker = startWorker<DispatchRequest, DispatchReply>(path.resolve(import.meta.dirname, '..', 'load', 'dispatch-worker.ts'));
  const rows: Row[] = [];
  const notes: string[] = [];
  const plans: unknown[] = [];
  const raw: Record<string, unknown> = { hubs: HUBS, seed: SEED, timing, qualityCases, plans };
  try {
    const plan = async (label: string, size: SyntheticSize): Promise<PlanReply & { summary: Summary }> => {
      const reply = (await worker.call({ kind: 'plan', size, ...timing } satisfies PlanRequest, 120_000)) as PlanReply;
      const summary = summarize(reply.times);
      log(`${label}: median ${fmt(summary.median, 1)} ms (${fmt(summary.min, 1)}–${fmt(summary.max, 1)}, ${summary.runs} runs) → ${reply.stats.drone} drone, ${reply.stats.ground} ground, ${reply.stats.wait} wait`);
      plans.push({ label, size, ...reply });
      return { ...reply, summary };
    };
    const outcome = (r: PlanReply): string => `${fmt(r.stats.drone, 0)} drone / ${fmt(r.stats.ground, 0)} ground / ${fmt(r.stats.wait, 0)} wait`;

    // Decision time, 3 × 3 grid.
    let main: (PlanReply & { summary: Summary }) | undefined;
    for (const orders of ORDERS)
      for (const drones of DRONES) {
        const r = await plan(`${orders} orders × ${drones} drones`, { hubs: HUBS, drones, orders, seed: SEED });
        const isTarget = orders === 1000 && drones === 200;
        if (isTarget) main = r;
        rows.push({
          metric: `dispatch decision, ${fmt(orders, 0)} orders × ${fmt(drones, 0)} drones`,
          ours: r.summary,
          unit: 'ms',
          decimals: 1,
          comparison: isTarget ? `${fmt((100 * r.summary.median) / TARGET_MS, 0)} % of the budget` : outcome(r),
          // Issue 17 item 6: every decision shape within the budget, not only the reference one.
          target: `≤ ${TARGET_MS} ms`, met: r.summary.median <= TARGET_MS,
        });
      }
    const emergency = await plan('1000 orders × 200 drones, emergency mode', { hubs: HUBS, drones: 200, orders: 1000, seed: SEED, mode: 'emergency' });
    rows.push({ metric: 'dispatch decision, 1,000 × 200, emergency mode', ours: emergency.summary, unit: 'ms', decimals: 1, comparison: outcome(emergency), target: `≤ ${TARGET_MS} ms`, met: emergency.summary.median <= TARGET_MS });
    const oneHub = await plan('1000 orders × 200 drones, all at one hub', { hubs: HUBS, drones: 200, orders: 1000, seed: SEED, oneHub: true });
    rows.push({ metric: 'dispatch decision, 1,000 × 200, all at one hub (worst case)', ours: oneHub.summary, unit: 'ms', decimals: 1, comparison: outcome(oneHub), target: `≤ ${TARGET_MS} ms`, met: oneHub.summary.median <= TARGET_MS });

    // Quality against the exhaustive optimum.
    const pct = (x: number, of: number, d = 2): string => `${fmt((100 * x) / of, d)} %`;
    const quality: Record<string, QualityReply> = {};
    for (const [scenario, title] of [
      ['drones', 'drones + compartments'],
      ['ground', 'drones, compartments + ground rounds'],
    ] as const) {
      const q = (await worker.call({ kind: 'quality', scenario, cases: qualityCases[scenario] }, 300_000)) as QualityReply;
      quality[scenario] = q;
      const t = q.tally;
      const ratio = t.engine / t.optimum;
      log(`quality, ${title}: ${t.cases} cases in ${fmt(q.ms / 1000, 1)} s — engine ${pct(t.engine, t.optimum)} of the optimum (optimal in ${pct(t.engineEqual, t.cases)}), greedy ${pct(t.greedy, t.optimum)}`);
      rows.push({
        metric: `quality, ${title}: weighted total vs exhaustive optimum (${fmt(t.cases, 0)} small cases)`,
        ours: pct(t.engine, t.optimum),
        alternative: { name: GREEDY, value: pct(t.greedy, t.optimum) },
        comparison: `${(100 * (t.engine - t.greedy)) / t.optimum >= 0 ? '+' : ''}${fmt((100 * (t.engine - t.greedy)) / t.optimum, 2)} points`,
        target: 'within 3 % of optimum',
        met: ratio >= TARGET_RATIO,
      });
      rows.push({
        metric: `quality, ${title}: cases solved optimally (worst case)`,
        ours: `${pct(t.engineEqual, t.cases, 1)} (worst ${fmt(t.engineWorst, 2)} × optimum)`,
        alternative: { name: GREEDY, value: `${pct(t.greedyEqual, t.cases, 1)} (worst ${fmt(t.greedyWorst, 2)} × optimum)` },
        comparison: `${fmt(q.engineBelow97, 0)} vs ${fmt(q.greedyBelow97, 0)} cases below 97 %`,
      });
    }
    raw.quality = quality;

    // Quality against the MILP optimum (HiGHS) on medium instances, speed-blind and time-valued.
    const milp = await milpQuality({ groundCases: qualityCases.ground, mediumInstances, roundsInstances, log });
    rows.push(...milp.rows);
    raw.medium = milp.medium;
    raw.rounds = milp.rounds;
    raw.tinyGroundTimeValued = milp.tinyGroundTimeValued;

    // Notes.
    const q = quality.drones!;
    const g = quality.ground!;
    if (main) {
      notes.push(
        `1,000 orders × 200 drones: median ${fmt(main.summary.median, 1)} ms, slowest run ${fmt(main.summary.max, 1)} ms — ${main.summary.median <= TARGET_MS ? 'within' : 'OVER'} the ${TARGET_MS} ms target ` +
          `(${outcome(main)}). Most orders wait — the fleet is smaller than the backlog (drone_busy), the trip exceeds a drone's charge or range ` +
          `(insufficient_battery, out_of_range), or wind, rain or a no-fly zone is in the way — as in a real backlog; every order is still checked against every drone at its origin hub.`,
      );
    }
    const worstNote = (r: QualityReply): string =>
      r.worst ? `the worst case serves ${r.worst.engine} of an optimum ${r.worst.optimum} (${r.worst.orders} orders, ${r.worst.priorityOrders} medical/relief, ${r.worst.drones} drones)` : 'no case with a positive optimum';
    notes.push(
      `Quality, drones + compartments: the engine's weighted total is ${pct(q.tally.engine, q.tally.optimum)} of the optimum (plain greedy ${pct(q.tally.greedy, q.tally.optimum)}); ` +
        `${fmt(q.engineBelow97, 0)} of ${fmt(q.tally.cases, 0)} cases fall below 97 % of their own optimum, and ${worstNote(q)} — a greedy on the intersection of two matroids ` +
        `(drones, compartments) is only guaranteed ½ of the optimum per case; the 3 % target holds for the total, not for every case.`,
    );
    notes.push(
      `Quality with ground rounds: ${pct(g.tally.engine, g.tally.optimum)} of the optimum${g.tally.engine / g.tally.optimum >= TARGET_RATIO ? '' : ' — below the 3 % target'}. ` +
        `The optimum here is speed-blind (a bus seat hours later counts like a flight now); the engine flies every order a drone can take now by rule (issue 4: ` +
        `ground rounds only when no drone can) — without ground rounds the same allocation reaches ${pct(q.tally.engine, q.tally.optimum)}, so the rule, not the search, is the likely source of most of the gap; ` +
        `${worstNote(g)}. Plain greedy, with the same rule, reaches ${pct(g.tally.greedy, g.tally.optimum)}. The test (dispatch-quality.test.ts) draws 8,000 samples (~190 cases) and asserts ≥ 93 %.`,
    );
    notes.push(...milp.notes);
    notes.push(
      `Synthetic regions are one fixed seed, so the spread is run-to-run noise on one instance, not the variation between instances. ` +
        `Input building (${fmt(main?.buildMs ?? Number.NaN, 1)} ms for 1,000 × 200) is not timed; a service would also read its state from the store first.`,
    );

    return {
      title: 'Dispatch: decision time and solution quality',
      method:
        `\`planDispatch\` (cloud/dispatch/dispatch-engine.ts) in a child process (bench/load/dispatch-worker.ts) on seeded synthetic regions ` +
        `(cloud/dispatch/synthetic-dispatch.ts, seed ${SEED}): ${HUBS} hubs on a jittered grid over 12 × 12 km, 20 locker compartments a hub, 20 landing sites, 10 no-fly zones, ` +
        `20 bus rounds, drones spread evenly over the hubs (80 % idle or charging, 30–100 % battery), orders mostly to hubs within 3 km, 15 % medical/relief. ` +
        `For each of orders {100, 1,000, 5,000} × drones {50, 200, 1,000}, plus 1,000 × 200 in emergency mode and with every drone and order at one hub: ` +
        `the input is built once, then ${timing.warmupCalls}+ warm-up calls (≥ ${fmt(timing.warmupMs / 1000, 1)} s), then up to ${timing.runs} timed calls ` +
        `(at least 3, stopping after ${fmt(timing.budgetMs / 1000, 1)} s), back to back; one value per call (wall time of the decision alone, including the garbage collection its own allocations cause). ` +
        `Quality: seeded fast-check samples of small regions (2 hubs, 1–4 orders, 1–4 drones, 1–3 compartments a hub, calm weather; ` +
        `${fmt(qualityCases.drones * 6, 0)} samples without ground rounds, ${fmt(qualityCases.ground * 4, 0)} with random bus rounds), kept only where two orders compete for a drone or compartment ` +
        `(and, with ground rounds, a bus is available); each is scored against the exhaustive optimum over every assignment of drones, compartments and bus seats ` +
        `(orders weighted 5 medical/relief : 1 normal; cloud/dispatch/dispatch-optimum.ts, the same code and cases as dispatch-quality.test.ts), ` +
        `alongside a plain greedy (first free drone and compartment in priority order, no re-assignment). ` +
        `Medium instances (cloud/dispatch/synthetic-dispatch.ts MEDIUM_FAMILIES, ${mediumInstances} seeded instances a family): 6 hubs over 4 × 4 km, 20–60 orders, 5–20 drones charged 60–100 %, 4–12 compartments a hub, ` +
        `12 bus rounds (12 kg a departure, at +1, +3, +5 h) or none, normal mode, emergency mode (60 % medical/relief) or everything at one hub; each is solved to optimality by HiGHS (the \`highs\` package, WebAssembly) as a MILP built from the engine's own per-order analysis — ` +
        `x[order, drone], z[order, compartment], y[order, departure], each order, drone and compartment at most once, each departure's kg (booked included) within capacity — ` +
        `under two scores: speed-blind (as the exhaustive optimum: 5 : 1, a bus seat like a flight) and time-valued (see the notes).`,
      rows,
      notes,
      raw,
    };
  } finally {
    await worker.stop();
  }
};

const DISPATCH_NOW = Date.UTC(2025, 0, 15, 3, 0, 0); // as bench/load/dispatch-worker.ts
const median = (xs: number[]): number => (xs.length === 0 ? Number.NaN : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!);
const pct = (x: number, of: number, d = 2): string => `${fmt((100 * x) / of, d)} %`;

/**
 * The engine against the MILP optimum (HiGHS) on the medium instance families, speed-blind and
 * time-valued, and the small ground cases time-valued against the exhaustive optimum. Not timed;
 * runs in the section's own process.
 */
export async function milpQuality(o: { groundCases: number; mediumInstances: number; roundsInstances: number; log: (s: string) => void }): Promise<{
  rows: Row[];
  notes: string[];
  medium: Record<string, FamilyTally & { ms: number }>;
  rounds: Record<string, Record<string, { delayMin: number; startedShare: number; flown: number; bussed: number }>>;
  tinyGroundTimeValued: { cases: number; engine: number; optimum: number; optimalCases: number };
}> {
  const { log, mediumInstances } = o;
  const rows: Row[] = [];
  const medium: Record<string, FamilyTally & { ms: number }> = {};
  for (const family of MEDIUM_FAMILIES) {
    const t0 = performance.now();
    const t = await measureFamily((seed) => mediumInstance(family, seed, DISPATCH_NOW), mediumInstances, DISPATCH_NOW);
    medium[family.name] = { ...t, ms: performance.now() - t0 };
    const served = t.engine / t.optimum;
    const time = t.engineTime / t.optimumTime;
    log(`MILP, ${family.name}: ${t.instances} instances in ${fmt(medium[family.name]!.ms / 1000, 1)} s — engine ${pct(t.engine, t.optimum)} of the speed-blind optimum (optimal in ${t.engineOptimal}), ${pct(t.engineTime, t.optimumTime)} time-valued`);
    rows.push({
      metric: `quality vs MILP optimum, ${family.name}: weighted total, speed-blind (${fmt(t.instances, 0)} medium instances)`,
      ours: pct(t.engine, t.optimum),
      alternative: { name: GREEDY, value: pct(t.greedy, t.optimum) },
      comparison: `optimal in ${fmt(t.engineOptimal, 0)} of ${fmt(t.instances, 0)}, worst ${fmt(t.worst, 2)} × optimum; ${fmt(t.flown, 0)} flown / ${fmt(t.bussed, 0)} bus`,
      target: 'within 3 % of optimum',
      met: served >= TARGET_RATIO,
    });
    rows.push({
      metric: `quality vs MILP optimum, ${family.name}: time-valued`,
      ours: pct(t.engineTime, t.optimumTime),
      comparison: `${pct(t.engineTime - t.allWaitTime, t.optimumTime - t.allWaitTime)} of the optimum's gain over leaving every order waiting`,
      target: 'within 3 % of optimum',
      met: time >= TARGET_RATIO,
    });
  }
  // Rounds: each bus family played forward 6 h in 5-min planning rounds, decided by the engine, the
  // speed-blind optimum or the time-valued optimum each round (dispatch-milp.ts playRounds).
  const rounds: Record<string, Record<string, { delayMin: number; startedShare: number; flown: number; bussed: number }>> = {};
  const policies: Record<string, (input: DispatchInput, now: number) => Promise<Map<string, Choice>>> = {
    engine: async (input, now) => planChoices(input, planDispatch(input, now)),
    'speed-blind optimum': async (input, now) => (await solveDispatchMilp(input, now, SERVED)).choices,
    'time-valued optimum': async (input, now) => (await solveDispatchMilp(input, now, timeValued(input, now))).choices,
  };
  for (const family of MEDIUM_FAMILIES.filter((f) => f.busRounds > 0)) {
    const per: Record<string, { delayMin: number; startedShare: number; flown: number; bussed: number }> = {};
    for (const [name, decide] of Object.entries(policies)) {
      const sum = { delayMin: 0, startedShare: 0, flown: 0, bussed: 0 };
      for (let seed = 1; seed <= o.roundsInstances; seed++) {
        const r = await playRounds(mediumInstance(family, seed, DISPATCH_NOW), DISPATCH_NOW, decide);
        sum.delayMin += r.weightedMeanDelayMin / o.roundsInstances;
        sum.startedShare += r.startedShare / o.roundsInstances;
        sum.flown += r.flown;
        sum.bussed += r.bussed;
      }
      per[name] = sum;
    }
    rounds[family.name] = per;
    const e = per.engine!;
    const b = per['speed-blind optimum']!;
    const tv = per['time-valued optimum']!;
    log(`rounds, ${family.name}: weighted mean delay engine ${fmt(e.delayMin, 0)} min, speed-blind optimum ${fmt(b.delayMin, 0)} min, time-valued optimum ${fmt(tv.delayMin, 0)} min`);
    rows.push({
      metric: `6 h of 5-min rounds, ${family.name}: priority-weighted mean delay until an order gets going (${fmt(o.roundsInstances, 0)} instances)`,
      ours: `${fmt(e.delayMin, 0)} min`,
      alternative: { name: 'speed-blind optimum each round', value: `${fmt(b.delayMin, 0)} min` },
      comparison: `time-valued optimum each round ${fmt(tv.delayMin, 0)} min; started ${pct(e.startedShare, 1, 1)} / ${pct(b.startedShare, 1, 1)} / ${pct(tv.startedShare, 1, 1)}`,
    });
  }

  // The small ground cases once more, scored time-valued against the exhaustive optimum.
  const tinyGround = competingGroundCases(o.groundCases);
  let tinyEngine = 0;
  let tinyOptimum = 0;
  let tinyEqual = 0;
  for (const input of tinyGround) {
    const tv = timeValued(input, DISPATCH_NOW);
    const e = scorePlan(input, DISPATCH_NOW, planDispatch(input, DISPATCH_NOW), tv).value;
    const best = exhaustiveOptimum(input, analyzeDispatch(input, DISPATCH_NOW), tv, DISPATCH_NOW);
    tinyEngine += e;
    tinyOptimum += best;
    if (Math.abs(e - best) < 1e-9) tinyEqual++;
  }
  rows.push({
    metric: `quality, drones, compartments + ground rounds: time-valued vs exhaustive optimum (${fmt(tinyGround.length, 0)} small cases)`,
    ours: pct(tinyEngine, tinyOptimum),
    comparison: `optimal in ${pct(tinyEqual, tinyGround.length, 1)} of the cases`,
    target: 'within 3 % of optimum',
    met: tinyEngine / tinyOptimum >= TARGET_RATIO,
  });
  const bus = MEDIUM_FAMILIES.filter((f) => f.busRounds > 0).map((f) => medium[f.name]!);
  const noBus = medium[MEDIUM_FAMILIES[0]!.name]!;
  const delays = bus.flatMap((t) => t.swapBusDelaysH);
  const missions = [...noBus.engineMissionsMin, ...bus.flatMap((t) => t.engineMissionsMin)];
  const solve = Object.values(medium).flatMap((t) => t.solveMs);
  const notes = [
    `Against the MILP optimum (HiGHS, proven optimal; cloud/dispatch/dispatch-milp.ts — equal to the exhaustive optimum on every small case in dispatch-milp.test.ts): ` +
      `without bus rounds the engine reaches ${pct(noBus.engine, noBus.optimum)} of the optimum (optimal in ${fmt(noBus.engineOptimal, 0)} of ${fmt(noBus.instances, 0)} instances) — the drone and compartment search is not where quality is lost. ` +
      `With bus rounds the speed-blind gap is ${bus.map((t) => pct(t.optimum - t.engine, t.optimum, 1)).join(' / ')} and none of it is bus packing (best packing of the orders the engine does not fly, minus the engine's: ${bus.map((t) => fmt(t.packingGap, 0)).join(' / ')} weight): ` +
      `it is the rule. To serve more, the optimum moves orders the engine flies now onto a bus (${fmt(delays.length, 0)} orders, departing a median ${fmt(median(delays), 1)} h from now) to free a drone for orders that in the engine's plan wait for the next drone — ` +
      `the engine's missions are back a median ${fmt(median(missions), 1)} min after they leave. A score that counts a bus seat hours later like a flight now rewards that trade; ` +
      `the time-valued score (priority weight × (1 − delay / ${fmt(DEFAULT_TIME_VALUE.horizonMs / 3_600_000, 0)} h): a flight now 1, a bus seat by its departure, an order a drone could fly that waits one drone cycle of ${fmt(DEFAULT_TIME_VALUE.droneCycleMs / 60_000, 0)} min (mission and recharge), an order no drone can fly 0 while waiting) does not, and there the engine is within ${bus.map((t) => pct(t.optimumTime - t.engineTime, t.optimumTime, 1)).join(' / ')} of the optimum. ` +
      `Played forward over 6 h of 5-min planning rounds (drones away until back, charging 1 %/min; compartments taken until 2 h after landing; bus seats booked), the speed-blind optimum chosen every round ` +
      `gets orders going later than the engine (priority-weighted mean delay ${MEDIUM_FAMILIES.filter((f) => f.busRounds > 0).map((f) => `${fmt(rounds[f.name]!['speed-blind optimum']!.delayMin, 0)} vs ${fmt(rounds[f.name]!.engine!.delayMin, 0)}`).join(' / ')} min) ` +
      `and the time-valued optimum every round matches it (${MEDIUM_FAMILIES.filter((f) => f.busRounds > 0).map((f) => fmt(rounds[f.name]!['time-valued optimum']!.delayMin, 0)).join(' / ')} min): the optimum should value time, and then it agrees with the engine. ` +
      `What it still loses there is the opposite trade: a drone-busy order put on a bus hours out where the score expects the next drone cycle — the score knows no queue, and at a crowded hub (one hub: 20–60 orders for 5–20 drones) the next drone is several cycles away, so that share is an upper bound on the loss. HiGHS: median ${fmt(median(solve), 1)} ms a model (max ${fmt(Math.max(...solve), 0)} ms, up to ${fmt(Math.max(...Object.values(medium).map((t) => t.maxColumns)), 0)} binaries).`,
  ];
  return { rows, notes, medium, rounds, tinyGroundTimeValued: { cases: tinyGround.length, engine: tinyEngine, optimum: tinyOptimum, optimalCases: tinyEqual } };
}
