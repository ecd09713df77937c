import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PLANNING_TIMING, runScenario } from './run-scenario.ts';
import { scenarioOf, TWO_SETTLEMENTS } from './test-scenario.ts';

const BULLETIN = path.resolve(import.meta.dirname, '../../test/fixtures/jma/20240116184225_02245216_VXSE43.xml');

/**
 * An earthquake bulletin (震度5弱 in 石川県能登, area 390) becomes a proposal through the Node-RED flow's
 * mapping; the coordinator policy accepts it 10 min later. hub-b has lost its grid power just before,
 * with a backup battery that lasts an hour (100 %/h): it goes dark — offline, silent — and acknowledges
 * the emergency mode only once its power (and so its link) is back.
 */
describe('planning mode: an earthquake and a power cut', () => {
  it('switches to emergency through the proposal, holds normal orders, and hears a dark hub only when it is back', async () => {
    const s = scenarioOf(TWO_SETTLEMENTS, {
      id: 'quake', start: '2026-06-01T09:00:00+09:00', duration: '4h', seed: 2,
      coordinator: { acceptProposalsAfterMin: 10, normalWhenClearAfterMin: null },
      events: [
        { type: 'power', at: '5m', hubs: ['hub-b'], state: 'lost', backupDrainPctPerH: 100 },
        { type: 'earthquake', at: '1h', bulletin: 'quake.xml', areaCodes: ['390'], minIntensity: '5-' },
        { type: 'power', at: '3h', hubs: ['hub-b'], state: 'restored' },
        { type: 'demand', kind: 'normal', from: '2h', until: '3h', hubs: ['hub-a'], perHour: 4 },
      ],
    });
    s.bulletins.set('quake.xml', fs.readFileSync(BULLETIN, 'utf8'));
    const r = await runScenario(s);

    expect(r.modes).toHaveLength(1);
    const m = r.modes[0]!;
    expect(m).toMatchObject({ atS: 3600 + 600, mode: 'emergency', by: 'coordinator (policy)', cause: 'jma-proposal', hubs: 2, acknowledged: 2 });
    expect(m.ackS.p50).toBe(PLANNING_TIMING.modeAckDelayMs / 1000);
    // hub-b went dark at 1h05m (an hour of backup) and acknowledged 2 s after its power came back at 3h.
    expect(m.ackS.max).toBe(3 * 3600 - 4200 + PLANNING_TIMING.modeAckDelayMs / 1000);

    const b = r.links.filter((l) => l.hub === 'hub-b');
    expect(b.find((l) => l.atS === 65 * 60)).toEqual({ atS: 3900, hub: 'hub-b', up: false, backlog: 0 });
    expect(b.filter((l) => l.atS > 3900 && l.atS < 3 * 3600).every((l) => !l.up && l.backlog === 0)).toBe(true); // dark: nothing queues
    expect(b.find((l) => l.atS === 3 * 3600 && l.up)).toBeDefined();
    expect(r.alarms.byKind).toContainEqual({ kind: 'hub_offline', raised: 1, cleared: 1 });

    // Emergency mode: normal orders wait, kept (held_emergency), none flown.
    const normal = r.deliveries.find((d) => d.priority === 'normal')!;
    expect(normal.requested).toBeGreaterThan(0);
    expect(normal.delivered).toBe(0);
    expect(r.refusals).toContainEqual({ reason: 'held_emergency', count: normal.requested });
    expect(r.waiting.at(-1)!.byReason).toEqual({ held_emergency: normal.requested });
  });
});
