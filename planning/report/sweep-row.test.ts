import { describe, expect, it } from 'vitest';
import type { DeliveryRow, ReliefSite, ScenarioResult } from '../scenario-result.ts';
import { sweepRowOf, uniformDronesPerHub } from './sweep-row.ts';

function site(id: string, ttfrS: number | null, asked = true): ReliefSite {
  return {
    site: id, kind: 'shelter', name: { ja: id, en: id }, isolatedAtS: null,
    firstRequestAtS: asked ? 100 : null, firstReliefAtS: asked && ttfrS !== null ? 100 + ttfrS : null,
    timeToFirstReliefS: asked ? ttfrS : null, requests: asked ? 1 : 0, delivered: ttfrS === null ? 0 : 1,
  };
}
function delivery(priority: DeliveryRow['priority'], requested: number, delivered: number, onTime: number): DeliveryRow {
  return { priority, requested, delivered, onTime, failed: 0, cancelled: 0, open: requested - delivered, byGround: 0, leadTimeS: { p50: null, p90: null, max: null } };
}
function result(relief: ReliefSite[], deliveries: DeliveryRow[], fleet: Record<string, number> = { a: 2, b: 2, c: 0 }): ScenarioResult {
  return {
    v: 1, kind: 'planning',
    scenario: { id: 's', name: { ja: 's', en: 's' }, region: { id: 'r', name: { ja: 'r', en: 'r' } }, startIso: '2026-09-01T06:00:00+09:00', durationS: 3600, seed: 1, fleet },
    run: { wallMs: 1, timeScale: null, deviceMessages: 0, decisionRounds: 0 },
    relief, deliveries, waiting: [], drones: [], refusals: [], alarms: { byKind: [], active: [] }, links: [], modes: [], coordinatorActions: [],
  };
}

describe('sweepRowOf', () => {
  it('takes median and worst time to first relief over the sites that asked', () => {
    const row = sweepRowOf(result([site('a', 600), site('b', 1800), site('c', 900), site('quiet', null, false)], []), 3);
    expect(row).toMatchObject({ dronesPerHub: 3, timeToFirstReliefS: { median: 900, max: 1800, sitesWithout: 0 } });
    expect(sweepRowOf(result([site('a', 600), site('b', 1800)], []), 1).timeToFirstReliefS.median).toBe(1200);
  });

  it('gives no worst time once a site went without, and no median once half did', () => {
    expect(sweepRowOf(result([site('a', 600), site('b', 900), site('c', null)], []), 1).timeToFirstReliefS).toEqual({ median: 900, max: null, sitesWithout: 1 });
    expect(sweepRowOf(result([site('a', 600), site('b', null)], []), 1).timeToFirstReliefS).toEqual({ median: null, max: null, sitesWithout: 1 });
    expect(sweepRowOf(result([], []), 1).timeToFirstReliefS).toEqual({ median: null, max: null, sitesWithout: 0 });
  });

  it('shares on time: relief and medical together, and all orders', () => {
    const row = sweepRowOf(result([], [delivery('medical', 10, 9, 8), delivery('relief', 30, 25, 22), delivery('normal', 60, 40, 30)]), 2);
    expect(row.reliefOnTimeShare).toBeCloseTo(30 / 40);
    expect(row.onTimeShare).toBeCloseTo(60 / 100);
    expect(row).toMatchObject({ delivered: 74, requested: 100 });
    expect(sweepRowOf(result([], []), 2)).toMatchObject({ reliefOnTimeShare: 1, onTimeShare: 1, delivered: 0, requested: 0 });
  });

  it('reads the drones per hub of a run whose drone hubs all have the same number', () => {
    expect(uniformDronesPerHub(result([], []))).toBe(2);
    expect(uniformDronesPerHub(result([], [], { a: 1, b: 2 }))).toBeNull();
  });
});
