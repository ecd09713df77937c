import { describe, expect, it } from 'vitest';
import { runScenario } from './run-scenario.ts';
import { scenarioOf, TWO_SETTLEMENTS } from './test-scenario.ts';

/**
 * A storm over the test region (planning/sim/fixtures/two-settlements.json): 12 m/s wind, 16 m/s
 * gusts all day, above the drone's limits (5 m/s mean, 5 m/s gust: contract DRONE_DEFAULTS). The
 * production dispatch rules ground the drone: parcels for hub-b go on the A–B bus (09:00, 13:00,
 * 17:00 JST), relief to a settlement (no bus goes there) waits, and the refusals name the wind rules.
 */
describe('planning mode: wind above the limit', () => {
  it('grounds the drones: refusals by the wind rules, parcels by bus, relief waits', async () => {
    const r = await runScenario(scenarioOf(TWO_SETTLEMENTS, {
      id: 'storm', start: '2026-06-01T07:00:00+09:00', duration: '8h', seed: 5,
      events: [
        { type: 'weather', hubs: 'all', profile: [{ at: 0, windMps: 12, gustMps: 16, rainMmPerH: 4 }] },
        { type: 'demand', kind: 'normal', from: 0, until: '5h', hubs: ['hub-a'], perHour: 2, weightKg: [0.5, 3], deadlineMin: 600 },
        { type: 'demand', kind: 'relief', from: '1h', until: '4h', sites: ['site-near'], perHour: 1, deadlineMin: 120 },
      ],
    }));
    const normal = r.deliveries.find((d) => d.priority === 'normal')!;
    const relief = r.deliveries.find((d) => d.priority === 'relief')!;
    expect(normal.requested).toBeGreaterThan(3);
    expect(relief.requested).toBeGreaterThan(0);

    expect(r.drones.every((d) => d.flights === 0)).toBe(true);
    const refusals = Object.fromEntries(r.refusals.map((x) => [x.reason, x.count]));
    // Every order was refused by the wind rules at least once (counted once per order and rule).
    expect(refusals.wind_over_limit).toBe(normal.requested + relief.requested);
    expect(refusals.gust_over_limit).toBe(normal.requested + relief.requested);

    // Parcels went by bus: loaded at a departure and handed over at hub-b.
    expect(normal.delivered).toBeGreaterThan(0);
    expect(normal.byGround).toBe(normal.delivered);
    // Before the 09:00 departure the parcels wait for the bus, and the samples say so.
    const beforeBus = r.waiting.find((w) => w.atS === 6300)!; // 08:45
    expect(beforeBus.byReason.waiting_ground_round).toBeGreaterThan(0);
    expect(r.waiting.find((w) => w.atS === 7200 + 900)!.byReason.waiting_ground_round ?? 0).toBeLessThan(beforeBus.byReason.waiting_ground_round!);
    // Relief to the settlement cannot go by bus: it waits for the wind, and the samples say why.
    expect(relief.delivered).toBe(0);
    expect(relief.open).toBe(relief.requested);
    const last = r.waiting.at(-1)!;
    expect(last.atS).toBe(8 * 3600);
    expect(last.byReason.wind_over_limit).toBe(relief.requested);
    const site = r.relief.find((x) => x.site === 'site-near')!;
    expect(site.firstRequestAtS).not.toBeNull();
    expect(site.firstReliefAtS).toBeNull();
  });
});
