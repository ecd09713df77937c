import { describe, expect, it } from 'vitest';
import { haversineM as distanceM } from '../shared/great-circle.ts';
import { loadDemoRegion } from './devices/test-region.ts';

/** The demo region file config/regions/ishikawa-nomi.json. */
describe('demo region ishikawa-nomi', () => {
  const region = loadDemoRegion();

  it('is a valid region file with community halls and roadside stations around Nomi', () => {
    expect(region.id).toBe('ishikawa-nomi');
    expect(region.hubs.length).toBeGreaterThanOrEqual(9);
    expect(new Set(region.hubs.map((h) => h.kind))).toEqual(new Set(['community-hall', 'roadside-station']));
    const nomiCityHall = { lat: 36.4468, lon: 136.4546 };
    for (const h of region.hubs) {
      expect(distanceM(h.location, nomiCityHall), h.id).toBeLessThan(30_000);
      expect(h.name.ja).toMatch(/公民館|道の駅/);
      expect(h.sensors).toEqual(['wx']);
    }
  });

  it('gives every drone, locker bank and sensor a display name in Japanese and English (consoles show names, not ids)', () => {
    for (const h of region.hubs) {
      for (const d of [...h.drones, ...h.lockers]) {
        expect(d.name?.ja, `${h.id}/${d.id}`).toBeTruthy();
        expect(d.name?.en, `${h.id}/${d.id}`).toBeTruthy();
      }
      for (const s of h.sensors) expect(h.sensorNames[s], `${h.id}/${s}`).toEqual({ ja: '気象センサー', en: 'Weather sensor' });
    }
  });

  it('has at least 12 drones, mostly at roadside stations, and at least 10 locker banks of 6–24 mixed compartments', () => {
    const drones = region.hubs.flatMap((h) => h.drones.map(() => h.kind));
    expect(drones.length).toBeGreaterThanOrEqual(12);
    expect(drones.filter((k) => k === 'roadside-station').length).toBeGreaterThan(drones.length / 2);
    const banks = region.hubs.flatMap((h) => h.lockers);
    expect(banks.length).toBeGreaterThanOrEqual(10);
    for (const b of banks) {
      expect(b.compartments.length).toBeGreaterThanOrEqual(6);
      expect(b.compartments.length).toBeLessThanOrEqual(24);
      expect(new Set(b.compartments.map((c) => c.size)).size).toBe(3);
      expect(new Set(b.compartments.map((c) => c.tempClass)).size).toBe(3);
    }
  });
});
