import type { RegionFile } from '../../contract/index.ts';

type RegionHub = RegionFile['hubs'][number];

/**
 * The regions one cloud serves (issue 14, item 3). Every service looks regions and hubs up here
 * when it needs them (never keeps its own copy from start-up), so a region added while running
 * (`add`) is served at once without restarting anything that serves the others.
 * A hub id is unique across all regions (credentials, dedupe and audit key on it).
 */
export interface Regions {
  /** Every region, in the order they were loaded. */
  all(): readonly RegionFile[];
  get(id: string): RegionFile | undefined;
  has(id: string): boolean;
  /** The region of a hub of any region's file. */
  regionOfHub(hub: string): RegionFile | undefined;
  /** A hub of any region's file. */
  hub(hub: string): RegionHub | undefined;
  /** The hubs of a region (empty for an unknown region). */
  hubIds(region: string): string[];
  /** Adds a region; throws if its id or one of its hub ids is already served. */
  add(region: RegionFile): void;
  /** Called after a region is added; returns an unsubscribe function. */
  onAdded(fn: (region: RegionFile) => void): () => void;
}

export function createRegions(initial: readonly RegionFile[]): Regions {
  const byId = new Map<string, RegionFile>();
  const hubs = new Map<string, { hub: RegionHub; region: RegionFile }>();
  const listeners = new Set<(r: RegionFile) => void>();
  const add = (r: RegionFile) => {
    if (byId.has(r.id)) throw new Error(`region ${r.id} is already served`);
    const clash = r.hubs.find((h) => hubs.has(h.id));
    if (clash) throw new Error(`hub ${clash.id} of region ${r.id} is already a hub of region ${hubs.get(clash.id)!.region.id}; hub ids must be unique across regions`);
    byId.set(r.id, r);
    for (const h of r.hubs) hubs.set(h.id, { hub: h, region: r });
  };
  for (const r of initial) add(r);
  return {
    all: () => [...byId.values()],
    get: (id) => byId.get(id),
    has: (id) => byId.has(id),
    regionOfHub: (hub) => hubs.get(hub)?.region,
    hub: (hub) => hubs.get(hub)?.hub,
    hubIds: (region) => byId.get(region)?.hubs.map((h) => h.id) ?? [],
    add: (r) => {
      add(r);
      for (const fn of listeners) fn(r);
    },
    onAdded: (fn) => {
      listeners.add(fn);
      return () => void listeners.delete(fn);
    },
  };
}
