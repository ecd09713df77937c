import path from 'node:path';
import type { SyntheticSize } from '../../cloud/dispatch/synthetic-dispatch.ts';
import type { DispatchReply, DispatchRequest, PlanReply, PlanRequest, QualityReply } from '../load/dispatch-worker.ts';
import { startWorker } from '../lib/procs.ts';
import type { Row, Section } from '../lib/report.ts';
import { fmt, summarize, type Summary } from '../lib/stats.ts';

/**
 * Benchmark 7 — dispatch: how long `planDispatch` takes to decide for 100 / 1,000 / 5,000 pending
 * orders with 50 / 200 / 1,000 drones, and how close its assignments come to the exhaustive optimum
 * on small random instances (cloud/dispatch/dispatch-optimum.ts, shared with dispatch-quality.test.ts).
 * Everything runs in one child process (bench/load/dispatch-worker.ts).
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
          ...(isTarget ? { target: `≤ ${TARGET_MS} ms`, met: r.summary.median <= TARGET_MS } : {}),
        });
      }
    const emergency = await plan('1000 orders × 200 drones, emergency mode', { hubs: HUBS, drones: 200, orders: 1000, seed: SEED, mode: 'emergency' });
    rows.push({ metric: 'dispatch decision, 1,000 × 200, emergency mode', ours: emergency.summary, unit: 'ms', decimals: 1, comparison: outcome(emergency) });
    const oneHub = await plan('1000 orders × 200 drones, all at one hub', { hubs: HUBS, drones: 200, orders: 1000, seed: SEED, oneHub: true });
    rows.push({ metric: 'dispatch decision, 1,000 × 200, all at one hub (worst case)', ours: oneHub.summary, unit: 'ms', decimals: 1, comparison: outcome(oneHub) });

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
        `alongside a plain greedy (first free drone and compartment in priority order, no re-assignment).`,
      rows,
      notes,
      raw,
    };
  } finally {
    await worker.stop();
  }
};
