import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { runScenario } from './run-scenario.ts';
import { scenarioOf, TWO_SETTLEMENTS } from './test-scenario.ts';

/**
 * hub-b's link is cut for an hour: the production alarm service raises hub_offline (after its 60 s
 * grace) and clears it when the hub is back; meanwhile the hub's messages queue as backlog, and on
 * restore they all reach the cloud — the run's closing log counts what each hub sent and what the cloud got.
 */
describe('planning mode: a cut link', () => {
  it('raises hub_offline, builds a backlog and drains it on restore without losing a message', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const l of String(chunk).split('\n')) if (l.includes('"component":"planning"')) lines.push(JSON.parse(l));
        done();
      },
    });
    const r = await runScenario(scenarioOf(TWO_SETTLEMENTS, {
      id: 'cut', start: '2026-06-01T09:00:00+09:00', duration: '3h', seed: 11,
      events: [
        { type: 'link', at: '30m', hubs: ['hub-b'], state: 'cut' },
        { type: 'link', at: '1h30m', hubs: ['hub-b'], state: 'restored' },
      ],
    }), { logger: pino({ level: 'info' }, sink) });

    expect(r.alarms.byKind).toContainEqual({ kind: 'hub_offline', raised: 1, cleared: 1 });
    const active = (atS: number) => r.alarms.active.filter((a) => a.atS <= atS).at(-1)?.count ?? 0;
    expect(active(1800 + 90)).toBe(1); // raised within the grace period plus one link check
    expect(active(5400 + 30)).toBe(0);

    const b = r.links.filter((l) => l.hub === 'hub-b');
    expect(b.find((l) => l.atS === 1800)).toEqual({ atS: 1800, hub: 'hub-b', up: false, backlog: 0 });
    const during = b.filter((l) => l.atS > 1800 && l.atS < 5400);
    expect(during.length).toBeGreaterThan(0);
    expect(during.every((l) => !l.up && l.backlog > 0)).toBe(true);
    expect(Math.max(...during.map((l) => l.backlog))).toBeGreaterThan(60); // an hour of sensor readings alone is 60
    const back = b.find((l) => l.atS === 5400)!;
    expect(back).toEqual({ atS: 5400, hub: 'hub-b', up: true, backlog: 0 });
    expect(r.links.filter((l) => l.hub === 'hub-a').every((l) => l.up && l.backlog === 0)).toBe(true);

    const end = lines.find((l) => l.msg === 'planning run ended') as { hubs: Record<string, { sent: number; delivered: number; fromBacklog: number; backlog: number; droppedDark: number }> } | undefined;
    expect(end).toBeDefined();
    const hubB = end!.hubs['hub-b']!;
    expect(hubB.fromBacklog).toBeGreaterThan(60);
    expect(hubB.backlog).toBe(0);
    expect(hubB.droppedDark).toBe(0);
    expect(hubB.delivered).toBe(hubB.sent);
    expect(r.run.deviceMessages).toBe(Object.values(end!.hubs).reduce((n, h) => n + h.delivered, 0));
  });
});
