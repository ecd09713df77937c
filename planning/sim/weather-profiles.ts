import type { RegionFile } from '../../contract/index.ts';
import type { ScenarioEvent } from '../../contract/scenario.ts';
import type { Weather } from './sim-hub.ts';

/**
 * Each hub's weather at a time: the profile that began last at or before it (the scenario loader refuses
 * profiles that overlap at a hub), interpolated linearly; after its last point, that point. Profiles are
 * sorted by start and found by binary search, so 10,000 weather events stay cheap.
 */
export function weatherProfiles(events: readonly ScenarioEvent[], region: RegionFile, at: (o: string | number) => number): (hub: string, now: number) => Weather | null {
  const byHub = new Map<string, { at: number; w: Weather }[][]>();
  for (const e of events) {
    if (e.type !== 'weather') continue;
    const points = e.profile
      .map((p) => ({ at: at(p.at), w: { windMps: p.windMps, gustMps: p.gustMps ?? p.windMps * 1.4, rainMmPerH: p.rainMmPerH } }))
      .sort((a, b) => a.at - b.at);
    for (const id of e.hubs === 'all' ? region.hubs.map((h) => h.id) : e.hubs) {
      const list = byHub.get(id);
      if (list) list.push(points);
      else byHub.set(id, [points]);
    }
  }
  for (const list of byHub.values()) list.sort((a, b) => a[0]!.at - b[0]!.at);
  return (hub, now) => {
    const profiles = byHub.get(hub);
    if (!profiles) return null;
    const p = profiles[indexAtOrBefore(profiles, now, (x) => x[0]!.at)];
    if (!p) return null;
    const i = indexAtOrBefore(p, now, (x) => x.at);
    if (i === p.length - 1) return p[i]!.w;
    const a = p[i]!;
    const b = p[i + 1]!;
    const f = (now - a.at) / (b.at - a.at);
    const lerp = (x: number, y: number) => x + (y - x) * f;
    return { windMps: lerp(a.w.windMps, b.w.windMps), gustMps: lerp(a.w.gustMps, b.w.gustMps), rainMmPerH: lerp(a.w.rainMmPerH, b.w.rainMmPerH) };
  };
}

/** The index of the last element of `sorted` (ascending by `key`) whose key is at or before `t`; -1 if none. */
function indexAtOrBefore<T>(sorted: readonly T[], t: number, key: (x: T) => number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (key(sorted[mid]!) <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}
