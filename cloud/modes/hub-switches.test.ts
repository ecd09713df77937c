import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { regionsOfHubs } from '../../test/support/regions-of-hubs.ts';
import { ModeService } from './mode-service.ts';
import { hubSwitches, type SwitchRecord } from './mode-state.ts';
import { createMemoryModeStore } from './mode-store.ts';

/**
 * What hub staff read on the emergency screen (issue 13, item 3): since when their hub is in its
 * mode and the coordinator's reason — the region's newest switch may have been for other hubs.
 */
const T = 1_764_000_000_000;
const MIN = 60_000;
const HUBS = ['hub-a', 'hub-b', 'hub-c'];
let version = 0;
const sw = (at: number, mode: 'normal' | 'emergency', hubs: string[] | null, reason: string): SwitchRecord =>
  ({ kind: 'switch', at, by: 'bousai-1', mode, hubs, reason, version: ++version });
const newestFirst = (...oldestFirst: SwitchRecord[]) => [...oldestFirst].reverse();

describe('hubSwitches', () => {
  it('leaves out hubs no switch named (normal from the start)', () => {
    expect(hubSwitches([], HUBS).size).toBe(0);
    const s = hubSwitches(newestFirst(sw(T, 'emergency', ['hub-a'], 'landslide')), HUBS);
    expect([...s.keys()]).toEqual(['hub-a']);
  });

  it('keeps a hub\'s own since and reason when a later switch names other hubs', () => {
    const s = hubSwitches(newestFirst(sw(T, 'emergency', ['hub-a'], 'landslide at Ōsugi'), sw(T + 30 * MIN, 'emergency', ['hub-b'], 'flood at Tedori river')), HUBS);
    expect(s.get('hub-a')).toMatchObject({ mode: 'emergency', since: T, reason: 'landslide at Ōsugi', previous: 'normal' });
    expect(s.get('hub-b')).toMatchObject({ mode: 'emergency', since: T + 30 * MIN, reason: 'flood at Tedori river' });
  });

  it('keeps since from the first switch into the mode, and takes the newest reason given for the hub', () => {
    const s = hubSwitches(newestFirst(sw(T, 'emergency', null, 'M6.9 earthquake'), sw(T + 60 * MIN, 'emergency', ['hub-a'], 'road to Ōsugi cut as well')), HUBS);
    expect(s.get('hub-a')).toMatchObject({ mode: 'emergency', since: T, reason: 'road to Ōsugi cut as well' });
    expect(s.get('hub-c')).toMatchObject({ mode: 'emergency', since: T, reason: 'M6.9 earthquake' });
  });

  it('tells a return to normal from emergency (the staff screen shows it for a while)', () => {
    const s = hubSwitches(newestFirst(sw(T, 'emergency', null, 'earthquake'), sw(T + 90 * MIN, 'normal', ['hub-b'], 'roads open again')), HUBS);
    expect(s.get('hub-b')).toMatchObject({ mode: 'normal', since: T + 90 * MIN, previous: 'emergency', reason: 'roads open again' });
    expect(s.get('hub-a')).toMatchObject({ mode: 'emergency', since: T });
  });

  it('ignores hubs\' local switches (the hub reports those itself) and hubs of no interest', () => {
    const local: SwitchRecord = { kind: 'local_switch', at: T + MIN, by: 'hub staff at hub-a', mode: 'normal', hubs: ['hub-a'], reason: 'local', version: 1 };
    const s = hubSwitches([local, sw(T, 'emergency', ['hub-a', 'elsewhere'], 'landslide')], HUBS);
    expect(s.get('hub-a')).toMatchObject({ mode: 'emergency', since: T });
    expect(s.has('elsewhere')).toBe(false);
  });

  it('leaves out a hub whose run may start before the oldest entry read when the log was not read to its start', () => {
    const s = hubSwitches(newestFirst(sw(T, 'normal', ['hub-a'], 'over'), sw(T + MIN, 'emergency', ['hub-a', 'hub-b'], 'flood')), HUBS, false);
    expect([...s.keys()]).toEqual(['hub-a']);
  });
});

describe('ModeService.hubSwitches', () => {
  it('answers from the stored audit log, and follows each new switch', async () => {
    let now = T;
    const store = createMemoryModeStore();
    const service = await ModeService.open({
      store, regions: regionsOfHubs({ r: HUBS }), now: () => now, ackTimeoutMs: 120_000, logger: pino({ level: 'silent' }),
      bus: { publishDesired: async () => {}, acknowledge: async () => {} },
    });
    await service.switchMode('r', { mode: 'emergency', hubs: ['hub-a'], reason: 'landslide', by: 'c' });
    now += 10 * MIN;
    await service.switchMode('r', { mode: 'emergency', hubs: ['hub-b'], reason: 'flood', by: 'c' });
    expect((await service.hubSwitches('r')).get('hub-a')).toMatchObject({ since: T, reason: 'landslide' });
    now += 10 * MIN;
    await service.switchMode('r', { mode: 'normal', hubs: ['hub-a'], reason: 'all clear', by: 'c' });
    expect((await service.hubSwitches('r')).get('hub-a')).toMatchObject({ mode: 'normal', since: T + 20 * MIN, previous: 'emergency', reason: 'all clear' });
  });
});
