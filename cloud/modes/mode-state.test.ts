import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RegionMode, type Mode } from '../../contract/index.ts';
import {
  ackStatus,
  applySwitch,
  initialDesired,
  isNewerAck,
  modeChanges,
  modeForHub,
  regionModeView,
  toRegionMode,
  type DesiredMode,
  type HubAck,
  type SwitchRequest,
} from './mode-state.ts';

const REGION = 'ishikawa-nomi';
const HUBS = ['hub-a', 'hub-b', 'hub-c', 'hub-d'];
const T = 1_764_000_000_000;
const TIMEOUT = 120_000;

const sw = (mode: Mode, hubs?: string[], reason = 'test'): SwitchRequest => ({ mode, hubs, reason, by: 'coordinator' });

function ack(hub: string, version: number, mode: Mode, over: Partial<HubAck> = {}): HubAck {
  return { hub, region: REGION, version, mode, source: 'cloud', reason: null, ts: T + 1000, receivedAt: T + 1000, msgId: `m-${hub}-${version}`, historical: false, ...over };
}

describe('applySwitch', () => {
  it('starts at version 0 with every hub normal', () => {
    const d = initialDesired(REGION);
    expect(d.version).toBe(0);
    for (const h of HUBS) expect(modeForHub(d, h)).toBe('normal');
  });

  it('switching the region sets its mode and clears every override', () => {
    const d1 = applySwitch(initialDesired(REGION), sw('emergency', ['hub-a', 'hub-b']), T);
    expect(d1).toMatchObject({ version: 1, mode: 'normal', hubs: { 'hub-a': 'emergency', 'hub-b': 'emergency' }, by: 'coordinator', at: T });
    const d2 = applySwitch(d1, sw('emergency'), T + 1);
    expect(d2).toMatchObject({ version: 2, mode: 'emergency', hubs: {} });
    const d3 = applySwitch(d2, sw('normal'), T + 2);
    expect(d3).toMatchObject({ version: 3, mode: 'normal', hubs: {} });
  });

  it('switching some hubs keeps the region mode and the other overrides', () => {
    const d1 = applySwitch(initialDesired(REGION), sw('emergency'), T);
    const d2 = applySwitch(d1, sw('normal', ['hub-c']), T + 1);
    const d3 = applySwitch(d2, sw('normal', ['hub-d']), T + 2);
    expect(d3).toMatchObject({ version: 3, mode: 'emergency', hubs: { 'hub-c': 'normal', 'hub-d': 'normal' } });
    // Back to the region mode: the override says nothing any more and goes.
    const d4 = applySwitch(d3, sw('emergency', ['hub-c']), T + 3);
    expect(d4.hubs).toEqual({ 'hub-d': 'normal' });
    expect(HUBS.map((h) => modeForHub(d4, h))).toEqual(['emergency', 'emergency', 'emergency', 'normal']);
  });

  it('always adds exactly one to the version and gives each hub the mode of the last switch that covered it (property)', () => {
    const switchArb = fc.record({
      mode: fc.constantFrom<Mode>('normal', 'emergency'),
      hubs: fc.option(fc.uniqueArray(fc.constantFrom(...HUBS), { minLength: 1 }), { nil: undefined }),
    });
    fc.assert(fc.property(fc.array(switchArb, { maxLength: 30 }), (switches) => {
      let d = initialDesired(REGION);
      const expected = new Map<string, Mode>(HUBS.map((h) => [h, 'normal']));
      switches.forEach((s, i) => {
        const next = applySwitch(d, { ...s, reason: `r${i}`, by: 'c' }, T + i);
        expect(next.version).toBe(d.version + 1);
        for (const h of s.hubs ?? HUBS) expected.set(h, s.mode);
        // Overrides are exactly the hubs that differ from the region mode.
        for (const m of Object.values(next.hubs)) expect(m).not.toBe(next.mode);
        // Reported changes are exactly the hubs whose mode changed.
        const changed = modeChanges(d, next, HUBS).map((c) => c.hub);
        expect(changed).toEqual(HUBS.filter((h) => modeForHub(d, h) !== modeForHub(next, h)));
        d = next;
        for (const h of HUBS) expect(modeForHub(d, h)).toBe(expected.get(h));
        // What is published is a valid contract message.
        expect(RegionMode.safeParse(toRegionMode(d)).success).toBe(true);
      });
    }));
  });
});

describe('toRegionMode', () => {
  it('refuses the implicit version 0 (it is never published)', () => {
    expect(() => toRegionMode(initialDesired(REGION))).toThrow(/never published/);
  });
});

describe('isNewerAck', () => {
  it('orders by version, then by hub time', () => {
    expect(isNewerAck({ version: 1, ts: 5 }, null)).toBe(true);
    expect(isNewerAck({ version: 2, ts: 1 }, { version: 1, ts: 9 })).toBe(true); // the hub clock jumped back: the version decides
    expect(isNewerAck({ version: 1, ts: 9 }, { version: 2, ts: 1 })).toBe(false); // a replayed older state
    expect(isNewerAck({ version: 2, ts: 9 }, { version: 2, ts: 5 })).toBe(true); // a local switch after applying version 2
    expect(isNewerAck({ version: 2, ts: 5 }, { version: 2, ts: 5 })).toBe(false);
  });
});

describe('ackStatus', () => {
  const emergency = applySwitch(initialDesired(REGION), sw('emergency'), T); // version 1 at T

  it('nothing is pending before the first switch: a silent hub is where every agent starts', () => {
    expect(ackStatus(initialDesired(REGION), 'hub-a', null, T, TIMEOUT)).toBe('acknowledged');
  });

  it('pending until the hub acknowledges the version, timed out after the timeout', () => {
    expect(ackStatus(emergency, 'hub-a', null, T + 1000, TIMEOUT)).toBe('pending');
    expect(ackStatus(emergency, 'hub-a', null, T + TIMEOUT - 1, TIMEOUT)).toBe('pending');
    expect(ackStatus(emergency, 'hub-a', null, T + TIMEOUT, TIMEOUT)).toBe('timed_out');
    expect(ackStatus(emergency, 'hub-a', ack('hub-a', 1, 'emergency'), T + 10 * TIMEOUT, TIMEOUT)).toBe('acknowledged');
  });

  it('a hub still on an older cloud version is behind, not diverged', () => {
    const back = applySwitch(emergency, sw('normal'), T + 5000); // version 2, normal
    expect(ackStatus(back, 'hub-a', ack('hub-a', 1, 'emergency'), T + 6000, TIMEOUT)).toBe('pending');
    expect(ackStatus(back, 'hub-a', ack('hub-a', 1, 'emergency'), T + 5000 + TIMEOUT, TIMEOUT)).toBe('timed_out');
    expect(ackStatus(back, 'hub-a', ack('hub-a', 2, 'normal'), T + 6000, TIMEOUT)).toBe('acknowledged');
  });

  it('a local switch to another mode is diverged, whatever the version, and never times out', () => {
    const local = (version: number, mode: Mode) => ack('hub-a', version, mode, { source: 'local', reason: 'flooding' });
    expect(ackStatus(emergency, 'hub-a', local(1, 'normal'), T + 1000, TIMEOUT)).toBe('diverged');
    expect(ackStatus(emergency, 'hub-a', local(0, 'normal'), T + 10 * TIMEOUT, TIMEOUT)).toBe('diverged');
    const quiet = initialDesired(REGION);
    expect(ackStatus(quiet, 'hub-a', local(0, 'emergency'), T, TIMEOUT)).toBe('diverged');
  });

  it('a local switch to the desired mode: acknowledged at the current version, still pending on an older one', () => {
    const local = (version: number) => ack('hub-a', version, 'emergency', { source: 'local' });
    expect(ackStatus(emergency, 'hub-a', local(1), T + 1000, TIMEOUT)).toBe('acknowledged');
    // Switched locally while cut off, before version 1 reached it: the mode agrees, but it has yet to apply version 1.
    expect(ackStatus(emergency, 'hub-a', local(0), T + 1000, TIMEOUT)).toBe('pending');
  });

  it('per-hub overrides: each hub is judged against its own desired mode', () => {
    const some = applySwitch(initialDesired(REGION), sw('emergency', ['hub-b']), T);
    expect(ackStatus(some, 'hub-a', ack('hub-a', 1, 'normal'), T + 1, TIMEOUT)).toBe('acknowledged');
    expect(ackStatus(some, 'hub-b', ack('hub-b', 1, 'normal'), T + 1, TIMEOUT)).toBe('diverged');
    expect(ackStatus(some, 'hub-b', ack('hub-b', 1, 'emergency'), T + 1, TIMEOUT)).toBe('acknowledged');
  });
});

describe('regionModeView', () => {
  it('counts n of N and reports when the last hub confirmed the current version', () => {
    const d: DesiredMode = applySwitch(initialDesired(REGION), sw('emergency'), T);
    const acks = new Map<string, HubAck>([
      ['hub-a', ack('hub-a', 1, 'emergency', { receivedAt: T + 800 })],
      ['hub-b', ack('hub-b', 1, 'emergency', { receivedAt: T + 1200 })],
      ['hub-c', ack('hub-c', 0, 'normal', { source: 'local', receivedAt: T + 5000 })],
    ]);
    const v = regionModeView(d, HUBS, acks, T + 2000, TIMEOUT);
    expect(v.hubs.map((h) => h.status)).toEqual(['acknowledged', 'acknowledged', 'diverged', 'pending']);
    expect(v.counts).toEqual({ total: 4, acknowledged: 2, pending: 1, timedOut: 0, diverged: 1, conflict: 0 });
    expect(v.lastAcknowledgedAt).toBe(T + 1200);
    expect(v.allAcknowledged).toBe(false);

    const later = regionModeView(d, HUBS, acks, T + TIMEOUT, TIMEOUT);
    expect(later.counts).toMatchObject({ pending: 0, timedOut: 1 });

    acks.set('hub-c', ack('hub-c', 1, 'emergency', { receivedAt: T + 9000 }));
    acks.set('hub-d', ack('hub-d', 1, 'emergency', { receivedAt: T + 7000 }));
    const all = regionModeView(d, HUBS, acks, T + 10_000, TIMEOUT);
    expect(all.allAcknowledged).toBe(true);
    expect(all.lastAcknowledgedAt).toBe(T + 9000);
  });

  it('has no confirmation time before the first switch', () => {
    const v = regionModeView(initialDesired(REGION), HUBS, new Map(), T, TIMEOUT);
    expect(v.allAcknowledged).toBe(true);
    expect(v.lastAcknowledgedAt).toBeNull();
  });
});
