import { describe, expect, it } from 'vitest';
import { runScenario } from './run-scenario.ts';
import { comparable, NOMI, scenarioOf } from './test-scenario.ts';

// Three virtual hours of the demo region with demand, wind over the limit at two hubs and a cut link.
const scenario = scenarioOf(NOMI, {
  id: 'determinism', start: '2026-06-01T09:00:00+09:00', duration: '3h', seed: 7,
  events: [
    { type: 'weather', hubs: ['rs-komatsu-kibagata', 'komatsu-awazu'], profile: [{ at: 0, windMps: 2 }, { at: '1h', windMps: 7 }, { at: '2h', windMps: 2 }] },
    { type: 'link', at: '30m', hubs: ['rs-megumi-hakusan'], state: 'cut' },
    { type: 'link', at: '1h30m', hubs: ['rs-megumi-hakusan'], state: 'restored' },
    { type: 'demand', kind: 'normal', from: 0, until: '3h', hubs: ['rs-komatsu-kibagata', 'rs-megumi-hakusan', 'nomi-terai'], perHour: 2, deadlineMin: 120 },
    { type: 'demand', kind: 'relief', from: 0, until: '3h', sites: ['kibagata-park-shelter', 'nakajima-es-shelter'], perHour: 1, deadlineMin: 60 },
  ],
});

describe('planning mode: runScenario', () => {
  it('gives the same result for the same seed, and another for another seed', async () => {
    const a = await runScenario(scenario);
    const b = await runScenario(scenario);
    const c = await runScenario(scenario, { seed: 8 });
    // The run did something worth comparing: orders were placed and delivered, a hub went offline.
    const requested = a.deliveries.reduce((n, d) => n + d.requested, 0);
    const delivered = a.deliveries.reduce((n, d) => n + d.delivered, 0);
    expect(requested).toBeGreaterThan(5);
    expect(delivered).toBeGreaterThan(0);
    expect(a.drones.some((d) => d.flights > 0)).toBe(true);
    expect(a.alarms.byKind.find((k) => k.kind === 'hub_offline')?.raised).toBe(1);
    expect(a.scenario.seed).toBe(7);
    expect(a.kind).toBe('planning');

    expect(comparable(b)).toEqual(comparable(a));
    expect(c.scenario.seed).toBe(8);
    expect(comparable(c)).not.toEqual(comparable(a));
  });
});
