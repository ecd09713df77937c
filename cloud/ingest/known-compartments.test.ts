import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EXAMPLES, type DeviceMessage } from '../../contract/index.ts';
import { loadRegionFile } from '../hubs/region-loader.ts';
import { createRegions } from '../hubs/regions.ts';
import { KnownCompartments } from './known-compartments.ts';

const region = loadRegionFile(path.resolve(import.meta.dirname, '../../config/regions/ishikawa-nomi.json'));
const known = new KnownCompartments([region]);
const example = (name: string, over: Record<string, unknown> = {}) => ({ ...EXAMPLES.find((e) => e.name === name)!.payload, ...over }) as DeviceMessage;
const compartment = (id: string) => ({ id, size: 'S', tempClass: 'ambient', door: 'closed', occupied: false, reservedFor: null, tempC: 18, fault: 'none' });

describe('KnownCompartments', () => {
  it('knows the compartments of every locker bank in the region file', () => {
    for (const h of region.hubs) {
      for (const l of h.lockers) {
        const msg = example('locker.telemetry', { hub: h.id, device: l.id, compartments: l.compartments.map((c) => compartment(c.id)) });
        expect(known.unknownIn(msg), `${h.id}/${l.id}`).toEqual([]);
      }
    }
  });

  it('names the compartments a bank does not have, in telemetry and events', () => {
    const msg = example('locker.telemetry', { compartments: [compartment('A01'), compartment('X01'), compartment('A99')] });
    expect(known.unknownIn(msg)).toEqual(['X01', 'A99']);
    expect(known.unknownIn(example('locker.event', { compartment: 'Z99' }))).toEqual(['Z99']);
    expect(known.unknownIn(example('locker.event', { compartment: 'A03' }))).toEqual([]);
  });

  it('knows no compartment of a bank or hub that is not in the region file', () => {
    expect(known.hasBank('nomi-terai', 'locker-zz')).toBe(false);
    expect(known.unknownIn(example('locker.event', { device: 'locker-zz', compartment: 'A01' }))).toEqual(['A01']);
    expect(known.unknownIn(example('locker.event', { hub: 'not-in-the-file', compartment: 'A01' }))).toEqual(['A01']);
  });

  it('has nothing to say about other devices', () => {
    expect(known.unknownIn(example('drone.telemetry'))).toEqual([]);
    expect(known.unknownIn(example('sensor.event'))).toEqual([]);
  });
});

describe('KnownCompartments over many regions (issue 14)', () => {
  const second = loadRegionFile(path.resolve(import.meta.dirname, '../../config/regions/ishikawa-kanazawa.json'));
  const bank = second.hubs[0]!;
  const msg = example('locker.telemetry', { hub: bank.id, device: bank.lockers[0]!.id, compartments: bank.lockers[0]!.compartments.map((c) => compartment(c.id)) });

  it('knows the banks of a region added while running, from then on', () => {
    const regions = createRegions([region]);
    const k = new KnownCompartments(regions);
    expect(k.hasBank(bank.id, bank.lockers[0]!.id)).toBe(false);
    expect(k.unknownIn(msg)).toHaveLength(bank.lockers[0]!.compartments.length);
    regions.add(second);
    expect(k.hasBank(bank.id, bank.lockers[0]!.id)).toBe(true);
    expect(k.unknownIn(msg)).toEqual([]);
    expect(k.hasBank('nomi-terai', 'locker-a')).toBe(true);
  });
});
