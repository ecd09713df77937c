import { describe, expect, it } from 'vitest';
import { CommandAck, parseTopic, schemaForTopic, topics, type Command } from '../../contract/index.ts';
import { HubDevices, type DeviceOutput } from './hub-devices.ts';
import { MessageIds } from './message-ids.ts';
import { loadDemoRegion, makeCommand, T0 } from './test-region.ts';

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

describe('HubDevices commands', () => {
  const hub = region.hubs.find((h) => h.id === 'rs-komatsu-kibagata')!;
  const make = () => new HubDevices({ region, hub, seed: 1, ids: new MessageIds('boot1'), startMs: T0 });
  const cmd = (device: string, command: Command['command'], args: Command['args'] = {}, over: Partial<Command> = {}) =>
    makeCommand(hub.id, device, command, args, over);

  it('answers with a contract hub.command-ack that carries its own message id, the command id and the device', () => {
    const devices = make();
    const c = cmd('locker-b', 'locker.unlock', { compartment: 'B02' });
    const { ack, outputs } = devices.command(T0, c);
    expect(CommandAck.parse(ack)).toMatchObject({ type: 'hub.command-ack', hub: hub.id, device: 'locker-b', commandId: c.id, result: 'done', ts: T0 });
    expect(ack.id).not.toBe(c.id);
    // The door event, then the bank's state at once (lockers report on change).
    expect(outputs.map((o) => `${o.kind}/${o.device}/${o.channel}/${o.message.type}`)).toEqual([
      'locker/locker-b/event/locker.event',
      'locker/locker-b/telemetry/locker.telemetry',
    ]);
    const ids = [ack.id, ...outputs.map((o) => o.message.id), ...devices.tick(T0 + 1000, 1).map((o) => o.message.id)];
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('does not execute an expired command', () => {
    const devices = make();
    const c = cmd('locker-a', 'locker.unlock', { compartment: 'A01' }, { expiresAt: T0 - 5000 });
    const { ack, outputs } = devices.command(T0, c);
    expect(ack).toMatchObject({ result: 'expired', detail: 'expired 5 s ago; not executed' });
    expect(outputs).toEqual([]);
    const again = devices.command(T0, cmd('locker-a', 'locker.unlock', { compartment: 'A01' }));
    expect(again.outputs[0]!.message).toMatchObject({ event: 'door_opened' }); // the door was still shut
    // Expiring exactly now is still in time.
    expect(devices.command(T0, cmd('locker-a', 'locker.unlock', { compartment: 'A02' }, { expiresAt: T0 })).ack.result).toBe('done');
  });

  it('rejects commands for unknown devices, for the wrong kind of device, and for another hub', () => {
    const devices = make();
    const cases: [Command, RegExp][] = [
      [cmd('drone-9', 'drone.rtl'), /has no drone "drone-9"/],
      [cmd('locker-z', 'locker.unlock', { compartment: 'A01' }), /has no locker "locker-z"/],
      [cmd('locker-a', 'drone.rtl'), /locker-a is a locker, not a drone/],
      [cmd('wx', 'locker.unlock', { compartment: 'A01' }), /wx is a sensor, not a locker/],
      [cmd('drone-1', 'drone.rtl', {}, { hub: 'nomi-terai' }), /command for hub nomi-terai/],
    ];
    for (const [c, reason] of cases) {
      const { ack, outputs } = devices.command(T0, c);
      expect(CommandAck.parse(ack), c.device).toMatchObject({ result: 'rejected', commandId: c.id, device: c.device, detail: expect.stringMatching(reason) });
      expect(outputs).toEqual([]);
    }
  });

  it('starts a drone mission and reports its first event, or says why not', () => {
    const devices = make();
    // Seed 1 starts drone-1 at 98 % (enough for the 4.5 km to Kokufu) and drone-3 at 56 % (not enough for the 14 km to Shirayamasan).
    const go = devices.command(T0, cmd('drone-1', 'drone.mission', { to: 'nomi-kokufu', payloadKg: 1 }));
    expect(go.ack).toMatchObject({ result: 'done', detail: expect.stringMatching(/^mission drone-1-boot1-m1 to nomi-kokufu$/) });
    expect(go.outputs.map((o) => [o.kind, o.device, o.channel, o.message])).toMatchObject([['drone', 'drone-1', 'event', { type: 'drone.event', event: 'armed' }]]);
    const no = devices.command(T0, cmd('drone-3', 'drone.mission', { to: 'rs-shirayamasan', payloadKg: 1 }));
    expect(no.ack).toMatchObject({ result: 'rejected', detail: expect.stringMatching(/^battery 55\.7 % is too low/) });
    expect(no.outputs).toEqual([]);
  });
  it('never stamps two reports of one locker with the same millisecond (InfluxDB keeps one point per series and time)', () => {
    const hub = region.hubs.find((h) => h.id === 'nomi-kokufu')!;
    const devices = new HubDevices({ region, hub, seed: 1, ids: new MessageIds('boot1'), startMs: T0 });
    const free = hub.lockers[0]!.compartments.map((c) => c.id);
    // Back-to-back reserves of one planning round, handled in one millisecond, then the periodic report at that same time.
    const replies = free
      .map((c, i) => devices.command(T0 + 5_000, makeCommand(hub.id, 'locker-a', 'locker.reserve', { compartment: c, orderId: `order-${i}` })))
      .filter((r) => r.ack.result === 'done') // a compartment may start with a parcel in it
      .slice(0, 3);
    const stamps = [...replies.flatMap((r) => r.outputs), ...devices.tick(T0 + 20_000, 1), ...devices.tick(T0 + 20_000, 0)]
      .filter((o) => o.kind === 'locker' && o.channel === 'telemetry')
      .map((o) => o.message.ts);
    expect(stamps.length).toBeGreaterThanOrEqual(3);
    expect(new Set(stamps).size).toBe(stamps.length);
    expect(stamps.slice(0, 3).map((t) => t - T0)).toEqual([5_000, 5_001, 5_002]);
  });
});
