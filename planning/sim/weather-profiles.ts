import type { RegionFile } from '../../contract/index.ts';
import type { ScenarioEvent } from '../../contract/scenario.ts';
import type { Weather } from './sim-hub.ts';

/** Each hub's weather at a time: the last weather event naming the hub whose profile has begun, interpolated linearly. */
export function weatherProfiles(events: readonly ScenarioEvent[], region: RegionFile, at: (o: string | number) => number): (hub: string, now: number) => Weather | null {
  const byHub = new Map<string, { at: number; w: Weather }[][]>();
  for (const e of events) {
    if (e.type !== 'weather') continue;
    const points = e.profile
      .map((p) => ({ at: at(p.at), w: { windMps: p.windMps, gustMps: p.gustMps ?? p.windMps * 1.4, rainMmPerH: p.rainMmPerH } }))
      .sort((a, b) => a.at - b.at);
    for (const id of e.hubs === 'all' ? region.hubs.map((h) => h.id) : e.hubs) byHub.set(id, [...(byHub.get(id) ?? []), points]);
  }
  return (hub, now) => {
    const profiles = byHub.get(hub);
    if (!profiles) return null;
    for (let i = profiles.length - 1; i >= 0; i--) {
      const p = profiles[i]!;
      if (p[0]!.at > now) continue;
      const j = p.findIndex((x) => x.at > now);
      if (j === -1) return p.at(-1)!.w;
      const a = p[j - 1]!;
      const b = p[j]!;
      const f = (now - a.at) / (b.at - a.at);
      const lerp = (x: number, y: number) => x + (y - x) * f;
      return { windMps: lerp(a.w.windMps, b.w.windMps), gustMps: lerp(a.w.gustMps, b.w.gustMps), rainMmPerH: lerp(a.w.rainMmPerH, b.w.rainMmPerH) };
    }
    return null;
  };
}
