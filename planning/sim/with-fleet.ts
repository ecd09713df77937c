import type { DroneSpec, RegionFile } from '../../contract/index.ts';

/**
 * The region with `dronesPerHub` drones (drone-1 … drone-N, the region's first drone spec) at each
 * drone hub: `droneHubs`, else the hubs that have drones in the region file. Unchanged without a count.
 */
export function withFleet(region: RegionFile, dronesPerHub: number | undefined, droneHubs: string[] | undefined): RegionFile {
  if (dronesPerHub === undefined) return region;
  const stationing = new Set(droneHubs ?? region.hubs.filter((h) => h.drones.length > 0).map((h) => h.id));
  const template: DroneSpec | undefined = region.hubs.flatMap((h) => h.drones)[0];
  if (!template) throw new Error(`region ${region.id} has no drone to copy for --drones-per-hub`);
  return {
    ...region,
    hubs: region.hubs.map((h) => {
      if (!stationing.has(h.id)) return h;
      const spec = h.drones[0] ?? template;
      return {
        ...h,
        drones: Array.from({ length: dronesPerHub }, (_, i) => ({
          ...spec, id: `drone-${i + 1}`, name: { ja: `配送ドローン${i + 1}号機`, en: `Delivery drone ${i + 1}` },
        })),
      };
    }),
  };
}
