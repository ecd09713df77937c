import { describe, expect, it } from 'vitest';
import { competingDroneCases, competingGroundCases, measure, report, type CaseCheck } from './dispatch-optimum.ts';

/**
 * How good are the engine's assignments? On small random problems (≤ 4 orders, ≤ 4 drones, ≤ 6
 * compartments a hub, ground rounds) the number of orders served, weighted by priority, is
 * compared with the exhaustive optimum over every assignment of drones, compartments and ground
 * departures (dispatch-optimum.ts, shared with the benchmark `npm run bench -- --only dispatch`).
 * Medical and relief weigh 5, normal 1: with ≤ 4 orders that makes the optimum lexicographic —
 * first serve as many priority orders as possible, then as many normal ones.
 *
 * Both sides use the engine's per-order analysis (which drones and compartments each order could
 * use on its own — the per-pair rules are covered by the property tests); what is judged here is
 * the allocation. A plain greedy (first free drone, first free compartment, no re-assignment) is
 * measured alongside for comparison.
 */

const CASES = Number(process.env.DISPATCH_QUALITY_CASES ?? 2000);

const check: CaseCheck = ({ engine, greedy, optimum }) => {
  expect(engine).toBeLessThanOrEqual(optimum); // the optimum is an upper bound, or the checker is wrong
  expect(greedy).toBeLessThanOrEqual(optimum);
};

describe('assignment quality against the exhaustive optimum (small random cases)', () => {
  it('drones and compartments, competing orders: optimal in ≥ 98 % of cases, never below half the optimum', () => {
    // Crowded: two hubs, 2–4 orders, 1–4 drones, 1–3 compartments a hub, calm weather; no ground rounds.
    // Keep the cases where at least two orders want the same drone or compartment: elsewhere any
    // allocation is optimal and would only flatter the figures.
    const inputs = competingDroneCases(CASES);
    const t = measure(inputs, check);
    console.log(report('drone allocation (competing orders only)', t));
    expect(t.cases).toBeGreaterThan(CASES / 2);
    expect(t.contended).toBeGreaterThan(CASES * 0.3); // the comparison is not vacuous
    expect(t.engineEqual / t.cases).toBeGreaterThanOrEqual(0.98);
    // Greedy on the intersection of two matroids (drones, compartments) is within 1/2 of the optimum.
    expect(t.engineWorst).toBeGreaterThanOrEqual(0.5);
    expect(t.engineEqual).toBeGreaterThanOrEqual(t.greedyEqual);
  });

  it('with ground rounds: drone first by rule, so a speed-blind optimum sometimes serves more (reported)', () => {
    // The rule (issue 4) is "when no drone can serve an order, offer it to a ground round": an order a
    // drone can fly now is flown, even if putting it on a bus that leaves hours later would free the
    // drone for another order. The optimum below ignores time and treats a bus seat like a flight.
    const inputs = competingGroundCases(CASES);
    const t = measure(inputs, check);
    console.log(report('drones + ground rounds (competing orders, a bus available)', t));
    expect(t.cases).toBeGreaterThan(CASES / 20);
    // Measured (seeded, 2,000 × 4 samples): optimal in ~87 % of these cases, ~96 % of the weighted optimum.
    expect(t.engineEqual / t.cases).toBeGreaterThanOrEqual(0.8);
    expect(t.engine / t.optimum).toBeGreaterThanOrEqual(0.93);
    expect(t.engineWorst).toBeGreaterThanOrEqual(1 / 3);
  });
});
