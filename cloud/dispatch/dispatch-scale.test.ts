import { describe, expect, it } from 'vitest';
import { planDispatch } from './dispatch-engine.ts';
import { checkPlan } from './dispatch-plan-checks.ts';
import { syntheticDispatch } from './synthetic-dispatch.ts';

const NOW = Date.UTC(2025, 0, 15, 3, 0, 0);

/**
 * The benchmark's problem (1,000 orders × 200 drones × 50 hubs, `npm run bench -- --only dispatch`) as a test: the
 * plan keeps every rule at that size too, and it is fast. The time ceiling is loose (the machine
 * runs other tests in parallel); the benchmark reports the real figure.
 */
describe('planDispatch at region scale', () => {
  for (const [name, size] of [
    ['normal mode', { hubs: 50, drones: 200, orders: 1000 }],
    ['emergency mode', { hubs: 50, drones: 200, orders: 1000, mode: 'emergency' as const }],
    ['every drone and order at one hub', { hubs: 50, drones: 200, orders: 1000, oneHub: true }],
  ] as const) {
    it(`1,000 orders × 200 drones × 50 hubs, ${name}: every rule kept, well under a second`, () => {
      const input = syntheticDispatch({ ...size, seed: 7 }, NOW);
      planDispatch(input, NOW); // warm-up
      const t0 = performance.now();
      const plan = planDispatch(input, NOW);
      const ms = performance.now() - t0;
      checkPlan(input, plan, NOW);
      expect(plan.stats.drone).toBeGreaterThan(0);
      expect(ms).toBeLessThan(1000);
    });
  }
});
