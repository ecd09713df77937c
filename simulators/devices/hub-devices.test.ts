import { describe, expect, it } from 'vitest';
import { parseTopic, schemaForTopic, topics } from '../../contract/index.ts';
import { HubDevices, type DeviceOutput } from './hub-devices.ts';
import { MessageIds } from './message-ids.ts';
import { loadDemoRegion, T0 } from './test-region.ts';

const region = loadDemoRegion();

function runHub(hubId: string, seconds: number, opts: { seed?: number; timeScale?: number } = {}): DeviceOutput[] {
  const hub = region.hubs.find((h) => h.id === hubId)!;
  const devices = new HubDevices({ region, hub, seed: opts.seed ?? 1, ids: new MessageIds('boot1'), startMs: T0 });
  const out: DeviceOutput[] = [];
  for (let s = 0; s < seconds; s++) out.push(...devices.tick(T0 + s * 1000, opts.timeScale ?? 1));
  return out;
}

describe('HubDevices', () => {
  it('sends, for every hub, only contract messages on its own contract topics, with ids unique per hub', () => {
    for (const hub of region.hubs) {
      const out = runHub(hub.id, 1200, { timeScale: 5 });
      const ids = new Set<string>();
      for (const o of out) {
        const topic = topics.device(region.id, hub.id, o.kind, o.device, o.channel);
        const parsed = parseTopic(topic);
        expect(parsed, topic).not.toBeNull();
        const result = schemaForTopic(parsed!).safeParse(o.message);
        expect(result.error, `${topic} ${JSON.stringify(o.message)}`).toBeUndefined();
        expect(o.message.hub).toBe(hub.id);
        expect(o.message.device).toBe(o.device);
        expect(ids.has(o.message.id)).toBe(false);
        ids.add(o.message.id);
      }
    }
  });

  it('reports at the default rates: drones 1 Hz, lockers every 10 s (and on change), sensors every 5 s', () => {
    const out = runHub('rs-komatsu-kibagata', 600);
    const count = (kind: string, device: string) => out.filter((o) => o.channel === 'telemetry' && o.kind === kind && o.device === device).length;
    // First reports are spread over one period, so a 600 s window holds 599 or 600 one-second reports.
    for (const d of ['drone-1', 'drone-2', 'drone-3', 'drone-4']) expect(count('drone', d)).toBeGreaterThanOrEqual(599);
    for (const d of ['drone-1', 'drone-2', 'drone-3', 'drone-4']) expect(count('drone', d)).toBeLessThanOrEqual(600);
    expect(count('sensor', 'wx')).toBeGreaterThanOrEqual(119);
    expect(count('sensor', 'wx')).toBeLessThanOrEqual(120);
    for (const l of ['locker-a', 'locker-b']) {
      expect(count('locker', l)).toBeGreaterThanOrEqual(60);
      expect(count('locker', l)).toBeLessThan(100);
    }
  });

  it('spreads first reports over the period instead of sending them all at start', () => {
    const first = runHub('rs-komatsu-kibagata', 10).filter((o) => o.channel === 'telemetry' && o.kind !== 'drone');
    expect(new Set(first.map((o) => o.message.ts)).size).toBeGreaterThan(1);
  });

  it('raises a forced event at a named device and refuses unknown devices', () => {
    const hub = region.hubs.find((h) => h.id === 'nomi-terai')!;
    const devices = new HubDevices({ region, hub, seed: 1, ids: new MessageIds('boot1'), startMs: T0 });
    const out = devices.raise(T0, { kind: 'locker', device: 'locker-a', event: 'door_open_too_long', compartment: 'A03' });
    expect(out).toMatchObject({ kind: 'locker', device: 'locker-a', channel: 'event', message: { event: 'door_open_too_long', compartment: 'A03' } });
    expect(() => devices.raise(T0, { kind: 'drone', device: 'drone-9', event: 'fault' })).toThrow(/no drone "drone-9"/);
    expect(() => devices.raise(T0, { kind: 'sensor', device: 'wx', event: 'wind_over_limit', value: 7.2 })).not.toThrow();
  });

  it('is deterministic for a seed', () => {
    expect(runHub('rs-megumi-hakusan', 300, { seed: 5 })).toEqual(runHub('rs-megumi-hakusan', 300, { seed: 5 }));
  });
});
