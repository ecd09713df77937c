import type { DeliveryRow, ScenarioResult, SweepRow } from '../scenario-result.ts';

/**
 * One row of the capacity-planning table from a run's figures (issue 16, item 3). Time to first relief
 * is taken over the relief sites that asked: a site that never received any counts as "never", so the
 * worst is null as soon as one site went without, and the median is null when at least half did
 * (the middle of the sorted list is then "never"). Shares are of requested orders; with nothing
 * requested a share is 1 (nothing was late).
 */
export function sweepRowOf(result: ScenarioResult, dronesPerHub: number): SweepRow {
  const asked = result.relief.filter((s) => s.firstRequestAtS !== null);
  const times = asked.map((s) => s.timeToFirstReliefS ?? Number.POSITIVE_INFINITY).sort((a, b) => a - b);
  const sitesWithout = times.filter((x) => x === Number.POSITIVE_INFINITY).length;
  const finite = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? null : x);
  let median: number | null = null;
  if (times.length > 0) {
    const mid = times.length / 2;
    median = times.length % 2 === 1 ? finite(times[Math.floor(mid)]) : mean(finite(times[mid - 1]), finite(times[mid]));
  }
  const relief = result.deliveries.filter((d) => d.priority === 'relief' || d.priority === 'medical');
  return {
    dronesPerHub,
    timeToFirstReliefS: { median, max: times.length === 0 ? null : finite(times[times.length - 1]), sitesWithout },
    reliefOnTimeShare: share(relief),
    onTimeShare: share(result.deliveries),
    delivered: sum(result.deliveries, 'delivered'),
    requested: sum(result.deliveries, 'requested'),
  };
}

/** Drones per hub of a run, when every drone hub has the same number (else null). */
export function uniformDronesPerHub(result: ScenarioResult): number | null {
  const counts = new Set(Object.values(result.scenario.fleet).filter((n) => n > 0));
  return counts.size === 1 ? [...counts][0]! : null;
}

function mean(a: number | null, b: number | null): number | null {
  return a === null || b === null ? null : (a + b) / 2;
}

function sum(rows: DeliveryRow[], key: 'delivered' | 'requested' | 'onTime'): number {
  return rows.reduce((acc, r) => acc + r[key], 0);
}

function share(rows: DeliveryRow[]): number {
  const requested = sum(rows, 'requested');
  return requested === 0 ? 1 : sum(rows, 'onTime') / requested;
}
