import { describe, expect, it } from 'vitest';
import { LockerEvent, LockerTelemetry, type Command, type LockerBankSpec } from '../../contract/index.ts';
import { LockerModel, type LockerParams } from './locker-model.ts';
import { MessageIds } from './message-ids.ts';
import { createRng } from './seeded-rng.ts';
import { loadDemoRegion, makeCommand, T0 } from './test-region.ts';

const region = loadDemoRegion();
const bank: LockerBankSpec = region.hubs.find((h) => h.id === 'rs-komatsu-kibagata')!.lockers[0]!;

function makeLocker(seed = 1, params?: Partial<LockerParams>): LockerModel {
  return new LockerModel({ hubId: 'rs-komatsu-kibagata', spec: bank, rng: createRng(seed), ids: new MessageIds('boot1'), params });
}

/** Runs a locker bank for `hours`, 1 s steps, telemetry every 10 s. */
function run(locker: LockerModel, hours: number): { telemetry: LockerTelemetry[]; events: LockerEvent[] } {
  const telemetry: LockerTelemetry[] = [];
  const events: LockerEvent[] = [];
  for (let s = 1; s <= hours * 3600; s++) {
    const now = T0 + s * 1000;
    events.push(...locker.step(now, 1));
    if (s % 10 === 0) telemetry.push(locker.telemetry(now));
  }
  return { telemetry, events };
}

describe('LockerModel', () => {
  const { telemetry, events } = run(makeLocker(), 2);

  it('emits only messages that pass the contract schemas', () => {
    for (const m of telemetry) expect(LockerTelemetry.safeParse(m).error).toBeUndefined();
    for (const m of events) expect(LockerEvent.safeParse(m).error).toBeUndefined();
    expect(telemetry[0]!.compartments.map((c) => c.id)).toEqual(bank.compartments.map((c) => c.id));
  });

  it('fills and empties compartments, opening doors briefly', () => {
    const changed = (pick: (c: LockerTelemetry['compartments'][number]) => unknown) =>
      bank.compartments.filter((spec) => new Set(telemetry.map((t) => pick(t.compartments.find((c) => c.id === spec.id)!))).size > 1).length;
    expect(changed((c) => c.occupied)).toBeGreaterThan(2);
    expect(changed((c) => c.reservedFor)).toBeGreaterThan(2);
    const kinds = new Set(events.map((e) => e.event));
    for (const k of ['door_opened', 'door_closed', 'parcel_loaded', 'pickup'] as const) expect(kinds).toContain(k);
    // Most of the time every door is shut.
    const allShut = telemetry.filter((t) => t.compartments.every((c) => c.door === 'closed')).length;
    expect(allShut / telemetry.length).toBeGreaterThan(0.8);
    // Pickups carry the typed code and the order they were for.
    for (const e of events.filter((x) => x.event === 'pickup')) {
      expect(e.pickupCode).toMatch(/^[0-9]{6}$/);
      expect(e.orderId).toMatch(/^order-/);
    }
  });

  it('pairs every door_opened with a door_closed, in order, per compartment', () => {
    const open = new Set<string>();
    for (const e of events) {
      if (e.event === 'door_opened') {
        expect(open.has(e.compartment)).toBe(false);
        open.add(e.compartment);
      }
      if (e.event === 'door_closed') {
        expect(open.has(e.compartment)).toBe(true);
        open.delete(e.compartment);
      }
    }
  });

  it('holds chilled and frozen compartments at their set points', () => {
    const temps = (cls: string) => telemetry.flatMap((t) => t.compartments.filter((c) => c.tempClass === cls).map((c) => c.tempC!));
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    expect(median(temps('chilled'))).toBeGreaterThan(3);
    expect(median(temps('chilled'))).toBeLessThan(7);
    expect(median(temps('frozen'))).toBeGreaterThan(-20);
    expect(median(temps('frozen'))).toBeLessThan(-16);
  });

  it('reports a door left open too long once, after the limit, then the door closing', () => {
    const locker = makeLocker(3, { leftOpenChance: 1 });
    const { events: ev } = run(locker, 2);
    const tooLong = ev.filter((e) => e.event === 'door_open_too_long');
    expect(tooLong.length).toBeGreaterThan(0);
    for (const alarm of tooLong) {
      expect(alarm.severity).toBe('warning');
      const i = ev.indexOf(alarm);
      const opened = ev.slice(0, i).findLast((e) => e.compartment === alarm.compartment && e.event === 'door_opened')!;
      expect(alarm.ts - opened.ts).toBeGreaterThanOrEqual(120_000);
      const next = ev.slice(i + 1).find((e) => e.compartment === alarm.compartment && e.event.startsWith('door_'));
      if (next) expect(next.event).toBe('door_closed');
    }
  });

  it('raises temperature_out_of_range when cooling fails, once per excursion', () => {
    const locker = makeLocker(4, { coolingFailuresPerHour: 2 });
    const { events: ev, telemetry: tel } = run(locker, 2);
    const alarms = ev.filter((e) => e.event === 'temperature_out_of_range');
    expect(alarms.length).toBeGreaterThan(0);
    for (const a of alarms) {
      const spec = bank.compartments.find((c) => c.id === a.compartment)!;
      expect(spec.tempClass).not.toBe('ambient');
      expect(a.tempC).toBeGreaterThan(spec.tempClass === 'chilled' ? 10 : -15);
    }
    expect(tel.some((t) => t.compartments.some((c) => c.tempClass === 'chilled' && c.tempC! > 10))).toBe(true);
    // With default settings such alarms are rare: a few per bank per day at most.
    const defaults = run(makeLocker(4), 24).events.filter((e) => e.event === 'temperature_out_of_range').length;
    expect(defaults).toBeLessThan(40);
  });

  it('forces door_open_too_long for a compartment and shows the door open', () => {
    const locker = makeLocker();
    const e = locker.force(T0, 'door_open_too_long', 'A03');
    expect(LockerEvent.parse(e)).toMatchObject({ event: 'door_open_too_long', compartment: 'A03', severity: 'warning' });
    expect(locker.telemetry(T0).compartments.find((c) => c.id === 'A03')!.door).toBe('open');
    // It does not repeat the alarm for the same opening, and the door closes later.
    const later = run(locker, 0.5).events.filter((x) => x.compartment === 'A03');
    expect(later.filter((x) => x.event === 'door_open_too_long')).toHaveLength(0);
    expect(later[0]?.event).toBe('door_closed');
    expect(() => locker.force(T0, 'tamper', 'Z99')).toThrow(/no compartment Z99/);
  });

  it('gives the same output for the same seed', () => {
    expect(run(makeLocker(9), 0.5)).toEqual(run(makeLocker(9), 0.5));
    expect(run(makeLocker(10), 0.5).events).not.toEqual(run(makeLocker(9), 0.5).events);
  });
});

describe('LockerModel commands', () => {
  const cmd = (command: Command['command'], args: Command['args']) => makeCommand('rs-komatsu-kibagata', bank.id, command, args);
  const compartment = (locker: LockerModel, id: string) => locker.telemetry(T0).compartments.find((c) => c.id === id)!;
  /** A locker whose doors stay shut and whose compartments fill only when told (no random life). */
  const quiet = () => makeLocker(1, { reservationsPerHour: 0, meanLoadS: 1e12, meanPickupS: 1e12, leftOpenChance: 0 });

  it('unlock opens the door at once with a door_opened event; it closes later as any door does', () => {
    const locker = quiet();
    const before = compartment(locker, 'A05');
    const out = locker.handle(T0, cmd('locker.unlock', { compartment: 'A05' }));
    expect(out).toMatchObject({ result: 'done', changed: true });
    expect(out.events).toHaveLength(1);
    expect(LockerEvent.parse(out.events[0])).toMatchObject({ event: 'door_opened', compartment: 'A05', ts: T0 });
    expect(compartment(locker, 'A05').door).toBe('open');
    const later = run(locker, 0.1).events.filter((e) => e.compartment === 'A05');
    expect(later.map((e) => e.event)).toEqual(['door_closed']);
    // A remote unlock does not invent a delivery or a pickup.
    expect(compartment(locker, 'A05')).toMatchObject({ door: 'closed', occupied: before.occupied, reservedFor: before.reservedFor });
  });

  it('answers a repeated unlock without a second door_opened', () => {
    const locker = quiet();
    locker.handle(T0, cmd('locker.unlock', { compartment: 'A01' }));
    const again = locker.handle(T0 + 1000, cmd('locker.unlock', { compartment: 'A01' }));
    expect(again).toMatchObject({ result: 'done', events: [], changed: false });
    expect(again.detail).toMatch(/already open/);
  });

  it('rejects an unknown compartment or bad arguments, naming the problem, and changes nothing', () => {
    const locker = quiet();
    const before = locker.telemetry(T0).compartments;
    expect(locker.handle(T0, cmd('locker.unlock', { compartment: 'Z99' }))).toMatchObject({ result: 'rejected', detail: expect.stringMatching(/no compartment Z99/) });
    expect(locker.handle(T0, cmd('locker.unlock', {}))).toMatchObject({ result: 'rejected', detail: expect.stringMatching(/args\.compartment/) });
    expect(locker.handle(T0, cmd('locker.reserve', { compartment: 'A01', orderId: 7 }))).toMatchObject({ result: 'rejected', detail: expect.stringMatching(/args\.orderId/) });
    expect(locker.handle(T0, cmd('drone.rtl', {}))).toMatchObject({ result: 'rejected', detail: expect.stringMatching(/locker bank/) });
    expect(locker.telemetry(T0).compartments).toEqual(before);
  });

  it('reserves a free compartment for an order and releases it', () => {
    const locker = quiet();
    const free = locker.telemetry(T0).compartments.find((c) => !c.occupied && c.reservedFor === null)!;
    expect(locker.handle(T0, cmd('locker.reserve', { compartment: free.id, orderId: 'order-42' }))).toMatchObject({ result: 'done', changed: true, events: [] });
    expect(compartment(locker, free.id).reservedFor).toBe('order-42');
    // The same reservation again is fine; another order is not.
    expect(locker.handle(T0, cmd('locker.reserve', { compartment: free.id, orderId: 'order-42' }))).toMatchObject({ result: 'done', changed: false });
    expect(locker.handle(T0, cmd('locker.reserve', { compartment: free.id, orderId: 'order-43' }))).toMatchObject({
      result: 'rejected',
      detail: expect.stringMatching(/reserved for order-42/),
    });
    expect(locker.handle(T0, cmd('locker.release', { compartment: free.id }))).toMatchObject({ result: 'done', changed: true });
    expect(compartment(locker, free.id).reservedFor).toBeNull();
    expect(locker.handle(T0, cmd('locker.release', { compartment: free.id }))).toMatchObject({ result: 'done', changed: false, detail: expect.stringMatching(/was not reserved/) });
  });

  it('refuses to reserve a compartment that holds a parcel', () => {
    const locker = quiet();
    const full = locker.telemetry(T0).compartments.find((c) => c.occupied)!;
    locker.handle(T0, cmd('locker.release', { compartment: full.id }));
    expect(locker.handle(T0, cmd('locker.reserve', { compartment: full.id, orderId: 'order-9' }))).toMatchObject({ result: 'rejected', detail: expect.stringMatching(/holds a parcel/) });
  });
});
