import { describe, expect, it } from 'vitest';
import { RegionFile } from './region.ts';

/** A one-hub region file; `hub` overrides the hub's fields. */
function regionWith(hub: Record<string, unknown>): unknown {
  return {
    id: 'ishikawa-nomi', name: { ja: '能美', en: 'Nomi' },
    hubs: [{ id: 'nomi-terai', kind: 'community-hall', name: { ja: '寺井', en: 'Terai' }, location: { lat: 36.44, lon: 136.45 }, ...hub }],
  };
}

describe('region file: device display names (issue 13, item 5)', () => {
  it('reads sensors listed by id alone, as files written before display names did', () => {
    const hub = RegionFile.parse(regionWith({ sensors: ['wx', 'power'] })).hubs[0]!;
    expect(hub.sensors).toEqual(['wx', 'power']);
    expect(hub.sensorNames).toEqual({});
  });

  it('reads sensors given with a display name, keeping ids where every consumer expects them', () => {
    const name = { ja: '気象センサー', en: 'Weather sensor' };
    const hub = RegionFile.parse(regionWith({ sensors: [{ id: 'wx', name }, 'power', { id: 'link' }] })).hubs[0]!;
    expect(hub.sensors).toEqual(['wx', 'power', 'link']);
    expect(hub.sensorNames).toEqual({ wx: name });
  });

  it('keeps drones\' and lockers\' display names, and leaves them out when the file has none', () => {
    const hub = RegionFile.parse(regionWith({
      drones: [{ id: 'drone-1', name: { ja: '配送ドローン1号機', en: 'Delivery drone 1' }, model: 'm' }, { id: 'drone-2', model: 'm' }],
      lockers: [{ id: 'locker-a', name: { ja: '宅配ロッカーA', en: 'Parcel locker A' }, compartments: [{ id: 'A01', size: 'S', tempClass: 'ambient' }] }],
    })).hubs[0]!;
    expect(hub.drones.map((d) => d.name?.en)).toEqual(['Delivery drone 1', undefined]);
    expect(hub.lockers[0]!.name).toEqual({ ja: '宅配ロッカーA', en: 'Parcel locker A' });
  });

  it('refuses a display name without both languages, and a device id listed twice with or without a name', () => {
    const halfNamed = RegionFile.safeParse(regionWith({ sensors: [{ id: 'wx', name: { ja: '気象センサー' } }] }));
    expect(halfNamed.success).toBe(false);
    const twice = RegionFile.safeParse(regionWith({ sensors: ['wx', { id: 'wx', name: { ja: '気象', en: 'Weather' } }] }));
    expect(twice.success).toBe(false);
    expect(twice.error?.issues.map((i) => i.message)).toContain('duplicate device id wx at hub nomi-terai');
  });
});

describe('region file: a parsed region reads back the same', () => {
  it('parses its own output (the simulator and the bench hand parsed regions on)', () => {
    const once = RegionFile.parse(regionWith({ sensors: [{ id: 'wx', name: { ja: '気象センサー', en: 'Weather sensor' } }, 'power'] }));
    const twice = RegionFile.parse(JSON.parse(JSON.stringify(once)));
    expect(twice).toEqual(once);
  });

  it('refuses a display name for a sensor the hub does not have', () => {
    const r = RegionFile.safeParse(regionWith({ sensors: ['wx'], sensorNames: { link: { ja: '通信', en: 'Link' } } }));
    expect(r.error?.issues.map((i) => i.message)).toEqual(['display name for unknown sensor link at hub nomi-terai']);
  });
});
