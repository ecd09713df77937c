import type { DeviceMessage, RegionFile } from '../../contract/index.ts';
import type { Regions } from '../hubs/regions.ts';

/**
 * The compartments each locker bank has, as declared in the region file. A locker message about a
 * compartment the file does not give that bank is dead-lettered (`unknown_compartment`): a hub
 * cannot invent compartments, so it cannot fill live state, the telemetry store's series or the
 * alarm list with made-up ones (issue 11: 3,200 made-up compartments raised 3,200 alarms).
 * A locker bank that is not in the region file has no known compartments at all. With `Regions`, the
 * banks of a region added while running are known from then on.
 */
export class KnownCompartments {
  private readonly banks = new Map<string, ReadonlySet<string>>();

  constructor(regions: Regions | readonly RegionFile[]) {
    const list = 'hubIds' in regions ? regions.all() : regions;
    for (const r of list) this.add(r);
    // Lives as long as the cloud's `Regions`: no unsubscribe needed.
    if ('hubIds' in regions) regions.onAdded((r) => this.add(r));
  }

  private add(region: RegionFile): void {
    for (const h of region.hubs) for (const l of h.lockers) this.banks.set(key(h.id, l.id), new Set(l.compartments.map((c) => c.id)));
  }

  /** Compartments the message names that the bank does not have (empty for non-locker messages). */
  unknownIn(msg: DeviceMessage): string[] {
    if (msg.type !== 'locker.telemetry' && msg.type !== 'locker.event') return [];
    const known = this.banks.get(key(msg.hub, msg.device));
    const named = msg.type === 'locker.telemetry' ? msg.compartments.map((c) => c.id) : [msg.compartment];
    return known ? named.filter((id) => !known.has(id)) : named;
  }

  /** Whether the region file declares this locker bank. */
  hasBank(hub: string, device: string): boolean {
    return this.banks.has(key(hub, device));
  }
}

const key = (hub: string, device: string) => `${hub}\u0000${device}`;
