import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { planDispatch, type DispatchInput, type DispatchPlan } from './dispatch-engine.ts';
import { BIG, FAIR, dispatchInputArb } from './dispatch-arbitraries.ts';
import { NOW } from './dispatch-fixtures.ts';
import { checkPlan as checkPlanAt } from './dispatch-plan-checks.ts';

/**
 * Properties of every plan, over random regions, fleets, weather and orders
 * (dispatch-arbitraries.ts). The rules are checked independently of the engine in
 * dispatch-plan-checks.ts.
 */

const RUNS = Number(process.env.DISPATCH_PROPERTY_RUNS ?? 400);
const checkPlan = (input: DispatchInput, plan: DispatchPlan): void => checkPlanAt(input, plan, NOW);

describe('planDispatch properties (random regions, fleets, weather, orders)', () => {
  for (const [name, shape] of [
    ['messy regions: dangling references, stale data, odd drone states, random options', BIG],
    ['fair regions: most plans fly', FAIR],
  ] as const) {
    it(`every plan keeps every rule — ${name}`, () => {
      let flown = 0;
      fc.assert(
        fc.property(dispatchInputArb(shape), (input) => {
          const plan = planDispatch(input, NOW);
          checkPlan(input, plan);
          if (plan.stats.drone > 0) flown++;
        }),
        { numRuns: RUNS },
      );
      // Not vacuous: a good share of the random plans do send drones (≈ 20 % messy, ≈ 40 % fair).
      expect(flown).toBeGreaterThan(RUNS * (shape === FAIR ? 0.25 : 0.1));
    });

    it(`every plan keeps every rule in emergency mode (hold and after-priority) — ${name}`, () => {
      let normalFlown = 0;
      fc.assert(
        fc.property(dispatchInputArb(shape), fc.constantFrom('hold' as const, 'after-priority' as const), (input, policy) => {
          const emergency: DispatchInput = { ...input, mode: 'emergency', options: { ...input.options, emergencyNormalOrders: policy } };
          const plan = planDispatch(emergency, NOW);
          checkPlan(emergency, plan);
          normalFlown += plan.outcomes.filter((o) => o.kind !== 'wait' && emergency.orders.find((x) => x.id === o.orderId)!.priority === 'normal').length;
        }),
        { numRuns: RUNS },
      );
      // 'after-priority' does release normal orders sometimes, so its rule is really exercised.
      expect(normalFlown).toBeGreaterThan(0);
    });
  }

  it('the plan does not depend on the order of the input lists', () => {
    fc.assert(
      fc.property(dispatchInputArb(BIG), fc.infiniteStream(fc.double({ min: 0, max: 1, noNaN: true })), (input, rnd) => {
        const shuffle = <T>(xs: readonly T[]): T[] => xs.map((x) => ({ x, k: rnd.next().value })).sort((a, b) => a.k - b.k).map(({ x }) => x);
        const shuffled: DispatchInput = { ...input, drones: shuffle(input.drones), orders: shuffle(input.orders), hubs: shuffle(input.hubs) };
        const key = (p: DispatchPlan) => p.outcomes.map((o) => (o.kind === 'drone' ? `${o.orderId}:${o.droneId}:${o.compartmentId}` : o.kind === 'ground' ? `${o.orderId}:${o.roundId}` : `${o.orderId}:wait`));
        expect(key(planDispatch(shuffled, NOW))).toEqual(key(planDispatch(input, NOW)));
      }),
      { numRuns: RUNS / 2 },
    );
  });

  it('a drone that was dispatched is dispatched again with more battery, and a waiting order still waits with less', () => {
    fc.assert(
      fc.property(dispatchInputArb({ ...BIG, orders: [1, 1] }), (input) => {
        const p = planDispatch(input, NOW);
        const o = p.outcomes[0]!;
        const more = { ...input, drones: input.drones.map((d) => ({ ...d, state: { ...d.state, batteryPct: Math.min(100, d.state.batteryPct + 10) } })) };
        const less = { ...input, drones: input.drones.map((d) => ({ ...d, state: { ...d.state, batteryPct: Math.max(0, d.state.batteryPct - 10) } })) };
        if (o.kind === 'drone') expect(planDispatch(more, NOW).outcomes[0]!.kind).toBe('drone');
        if (o.kind === 'wait') expect(planDispatch(less, NOW).outcomes[0]!.kind).toBe('wait');
      }),
      { numRuns: RUNS },
    );
  });
});
