import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { offsetS } from '../contract/scenario.ts';
import { proposalFromBulletin } from './jma-proposal.ts';
import { checkScenarioAgainstRegion, loadScenarioFile, parseScenario, ScenarioFileError } from './scenario-file.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const REGION = path.join(ROOT, 'config/regions/ishikawa-nomi.json');
const BULLETIN = path.join(ROOT, 'test/fixtures/jma/20240116184225_02245216_VXSE43.xml');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scenario-file-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A small valid scenario; tests change one thing at a time. */
const valid = () => ({
  id: 'small',
  name: { ja: '小さな想定', en: 'A small scenario' },
  region: REGION,
  start: '2026-09-01T06:00:00+09:00',
  duration: '6h',
  events: [
    { type: 'weather', hubs: ['nomi-terai'], profile: [{ at: '0h', windMps: 2 }, { at: '6h', windMps: 3 }] },
    { type: 'earthquake', at: '1h', bulletin: BULLETIN, areaCodes: ['390', '391'] },
    { type: 'link', at: '1h', hubs: ['rs-shirayamasan'], state: 'cut' },
    { type: 'link', at: '3h', hubs: ['rs-shirayamasan'], state: 'restored' },
    { type: 'isolation', at: '1h5m', sites: ['osugi-settlement'], state: 'isolated' },
    { type: 'demand', kind: 'relief', from: '2h', until: '6h', sites: ['osugi-settlement', 'terai-jhs-shelter'], perHour: 1 },
    { type: 'demand', kind: 'normal', from: '0h', until: '6h', hubs: 'all', perHour: 0.5 },
    { type: 'fleet', at: '2h', hub: 'rs-komatsu-kibagata', drones: ['drone-4'], state: 'out_of_service' },
  ] as Record<string, unknown>[],
});

let n = 0;
/** Writes a scenario file (an object as JSON, a string as is) and loads it. */
function load(content: unknown): ReturnType<typeof loadScenarioFile> {
  const file = path.join(dir, `scenario-${++n}.json`);
  fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  return loadScenarioFile(file);
}
/** The problems loading it reports (fails the test if it loads). */
function problemsOf(content: unknown): string[] {
  try {
    load(content);
  } catch (err) {
    expect(err).toBeInstanceOf(ScenarioFileError);
    const problems = (err as ScenarioFileError).problems;
    // Every problem names the file; the error's message lists them all.
    for (const p of problems) {
      expect(p.startsWith(path.join(dir, `scenario-${n}.json`))).toBe(true);
      expect((err as Error).message).toContain(p);
    }
    return problems;
  }
  throw new Error('the scenario loaded without a problem');
}
const withEvent = (e: Record<string, unknown>) => ({ ...valid(), events: [e] });

describe('loadScenarioFile: what a person writing a scenario reads when it is wrong', () => {
  it('loads a valid file: defaults filled, the region and the bulletin read', () => {
    const l = load(valid());
    expect(l.region.id).toBe('ishikawa-nomi');
    expect(l.regionFile).toBe(REGION);
    expect(l.scenario.seed).toBe(1);
    expect(l.scenario.coordinator).toEqual({ acceptProposalsAfterMin: 10, normalWhenClearAfterMin: null });
    expect(l.bulletins.get(BULLETIN)).toContain('<Report');
  });

  it('malformed JSON: line and column of the mistake', () => {
    const text = JSON.stringify(valid(), null, 2).replace('"duration": "6h",', '"duration": "6h"');
    expect(text.split('\n')[9]).toBe('  "events": [');
    const [p, ...rest] = problemsOf(text);
    expect(rest).toEqual([]);
    expect(p).toMatch(/not valid JSON: .* at line 10, column 3: "events": \[/);
  });

  it('a missing field, a wrong type and an unknown key are each named by their JSON path, all at once', () => {
    const { duration: _d, ...noDuration } = valid();
    const bad = { ...noDuration, colour: 'red', events: [{ type: 'demand', kind: 'normal', from: '0h', until: '1h', hubs: 'all', perHour: '2' }] };
    const problems = problemsOf(bad);
    expect(problems).toHaveLength(3);
    expect(problems.join('\n')).toContain('duration: missing — Offset from the scenario start: "36h", "1h30m", "90m", "45s", or seconds');
    expect(problems.join('\n')).toContain('events[0].perHour: expected number, got string "2"');
    expect(problems.join('\n')).toMatch(/colour: unknown key "colour" — allowed here: \$schema, id, name, .*events/);
  });

  it('an unknown event type lists the types there are', () => {
    const [p] = problemsOf(withEvent({ type: 'tsunami', at: '1h' }));
    expect(p).toContain('events[0].type: is "tsunami" — expected one of "weather", "earthquake", "link", "power", "isolation", "demand", "coordinator", "fleet"');
  });

  it('an unknown key inside an event lists the keys that event takes', () => {
    const [p] = problemsOf(withEvent({ type: 'link', at: '1h', hubs: ['nomi-terai'], state: 'cut', duration: '2h' }));
    expect(p).toContain('events[0].duration: unknown key "duration" — allowed here: type, at, hubs, state');
  });

  it('a bad offset ("3x", "", 1.5) says what an offset looks like', () => {
    const problems = problemsOf({ ...valid(), duration: 1.5, events: [{ type: 'link', at: '3x', hubs: ['nomi-terai'], state: 'cut' }, { type: 'link', at: '', hubs: ['nomi-terai'], state: 'restored' }] });
    expect(problems).toHaveLength(3);
    expect(problems[0]).toContain('duration: expected a whole number, got number 1.5');
    expect(problems[1]).toContain('events[0].at: an offset such as "36h", "1h30m", "90m" or "45s" (got "3x")');
    expect(problems[2]).toContain('events[1].at: an offset such as "36h", "1h30m", "90m" or "45s" (got "")');
  });

  it('relief demand naming hubs instead of sites', () => {
    const problems = problemsOf(withEvent({ type: 'demand', kind: 'relief', from: '0h', until: '2h', hubs: ['rs-shirayamasan'], perHour: 1 }));
    expect(problems.join('\n')).toContain('events[0].hubs: relief demand comes from shelters and settlements: name their landing sites in "sites", not hubs');
    expect(problems.join('\n')).toContain('events[0].sites: relief demand needs "sites"');
  });

  it('normal demand\'s destinations: an unknown hub is named; relief demand takes none', () => {
    const unknown = problemsOf(withEvent({ type: 'demand', kind: 'normal', from: '0h', until: '2h', hubs: ['nomi-terai'], destinations: ['nomi-neagari', 'nomi-negari'], perHour: 1 }));
    expect(unknown).toHaveLength(1);
    expect(unknown[0]).toMatch(/events\[0\]\.destinations\[1\]: unknown hub "nomi-negari" — region ishikawa-nomi has: /);
    const relief = problemsOf(withEvent({ type: 'demand', kind: 'relief', from: '0h', until: '2h', sites: ['osugi-settlement'], destinations: ['nomi-terai'], perHour: 1 }));
    expect(relief.join('\n')).toContain('events[0].destinations: relief demand goes to the asking sites: "destinations" is for normal orders only');
  });

  it('an unknown hub, landing site or drone is named with what the region has', () => {
    const problems = problemsOf({
      ...valid(),
      events: [
        { type: 'link', at: '1h', hubs: ['nomi-terai', 'nomi-teria'], state: 'cut' },
        { type: 'demand', kind: 'medical', from: '1h', until: '2h', sites: ['osugi'], perHour: 1 },
        { type: 'fleet', at: '1h', hub: 'rs-shirayamasan', drones: ['drone-3'], state: 'out_of_service' },
      ],
    });
    expect(problems).toHaveLength(3);
    expect(problems[0]).toMatch(/events\[0\]\.hubs\[1\]: unknown hub "nomi-teria" — region ishikawa-nomi has: nomi-terai, .*rs-shirayamasan/);
    expect(problems[1]).toMatch(/events\[1\]\.sites\[0\]: unknown landing site "osugi" — medical demand comes from the region's shelters and settlements: .*osugi-settlement/);
    expect(problems[2]).toContain('events[2].drones[0]: unknown drone "drone-3" at hub rs-shirayamasan — it has: drone-1, drone-2');
  });

  it('a timeline that cannot happen: after the end, until before from, weather out of order, restoring what was never cut, isolating a shelter', () => {
    const problems = problemsOf({
      ...valid(),
      events: [
        { type: 'coordinator', at: '7h', action: 'emergency' },
        { type: 'demand', kind: 'normal', from: '3h', until: '2h', hubs: 'all', perHour: 1 },
        { type: 'weather', hubs: 'all', profile: [{ at: '2h', windMps: 3 }, { at: '1h', windMps: 4 }] },
        { type: 'power', at: '1h', hubs: ['nomi-wake'], state: 'restored' },
        { type: 'isolation', at: '1h', sites: ['terai-jhs-shelter'], state: 'isolated' },
      ],
    });
    expect(problems.map((p) => p.slice(p.indexOf(': ') + 2))).toEqual([
      'events[0].at: "7h" is after the end of the scenario (duration "6h")',
      'events[1].until: "2h" is not after from ("3h"); demand runs from "from" until a later "until"',
      'events[2].profile[1].at: "1h" is not after the previous point (weather points must be in time order, each later than the last)',
      'events[4].sites[0]: "terai-jhs-shelter" is a shelter, not an isolated-settlement — settlements that may be cut off: osugi-settlement, kawachi-uchio-settlement, kawachi-fukuoka-settlement, nishimata-settlement',
      'events[3]: restores power that is not lost at hub nomi-wake',
    ]);
  });

  it('two weather profiles over the same hub at the same time, and a drone hub without drones', () => {
    const problems = problemsOf({
      ...valid(),
      fleet: { droneHubs: ['nomi-terai', 'nomi-wake'] },
      events: [
        { type: 'weather', hubs: 'all', profile: [{ at: '0h', windMps: 3 }, { at: '6h', windMps: 4 }] },
        { type: 'weather', hubs: ['rs-shirayamasan'], profile: [{ at: '2h', windMps: 12 }] },
      ],
    });
    expect(problems).toHaveLength(2);
    expect(problems[0]).toContain('fleet.droneHubs[1]: hub "nomi-wake" has no drones in the region file — set fleet.dronesPerHub to station drones there, or pick a hub with drones: nomi-terai, nomi-tatsunokuchi');
    expect(problems[1]).toContain('events[1].hubs: hub rs-shirayamasan already has weather from events[0] over the same time');
  });

  it('loads a file at the schema\'s limit of 10,000 events (red-team: the overlap check was quadratic and never finished)', () => {
    const events: Record<string, unknown>[] = Array.from({ length: 10_000 }, (_, i) => ({ type: 'weather', hubs: 'all', profile: [{ at: i * 17, windMps: i % 20 }] }));
    expect(load({ ...valid(), duration: '48h', events }).scenario.events).toHaveLength(10_000);
    // …and still finds an overlap among them, naming both events.
    events.push({ type: 'weather', hubs: ['nomi-terai'], profile: [{ at: 100, windMps: 3 }, { at: 200, windMps: 4 }] });
    const problems = problemsOf({ ...valid(), duration: '48h', events: events.slice(-10_000) });
    expect(problems.join('\n')).toMatch(/events\[\d+\]\.hubs: hub nomi-terai already has weather from events\[\d+\] over the same time/);
  }, 60_000);

  it('a FIFO as region or bulletin is refused, not read (red-team: the loader hung on it)', () => {
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const problems = problemsOf({ ...valid(), region: fifo, events: [{ type: 'earthquake', at: '1h', bulletin: fifo, areaCodes: ['390'] }] });
    expect(problems.join('\n')).toContain(`region: ${fifo} is not a regular file`);
    expect(problems.join('\n')).toContain(`events[0].bulletin: ${fifo} is not a regular file`);
    fs.rmSync(fifo);
  });

  it('a missing bulletin and a missing region file, with the paths resolved against the scenario file', () => {
    const problems = problemsOf({ ...valid(), region: 'regions/nowhere.json', events: [{ type: 'earthquake', at: '1h', bulletin: 'bulletins/quake.xml', areaCodes: ['390'] }] });
    expect(problems).toEqual([
      expect.stringContaining(`region: the region file ${path.join(dir, 'regions/nowhere.json')} does not exist (the path is relative to the scenario file)`),
      expect.stringContaining(`events[0].bulletin: the bulletin ${path.join(dir, 'bulletins/quake.xml')} does not exist (expected a JMA XML bulletin, path relative to the scenario file)`),
    ]);
  });

  it('a bulletin that is not XML, or not a JMA report', () => {
    fs.writeFileSync(path.join(dir, 'not-xml.xml'), '{"quake": true}');
    fs.writeFileSync(path.join(dir, 'not-jma.xml'), '<?xml version="1.0"?><rss><channel/></rss>');
    const problems = problemsOf({ ...valid(), events: [{ type: 'earthquake', at: '1h', bulletin: 'not-xml.xml', areaCodes: ['390'] }, { type: 'earthquake', at: '2h', bulletin: 'not-jma.xml', areaCodes: ['390'] }] });
    expect(problems).toHaveLength(2);
    expect(problems[0]).toContain(`events[0].bulletin: ${path.join(dir, 'not-xml.xml')} cannot be read as the flow reads it: the bulletin is not well-formed XML`);
    expect(problems[1]).toContain(`events[1].bulletin: ${path.join(dir, 'not-jma.xml')} is not a JMA report (no <Report> element`);
  });

  it('a value outside a fixed list names the values allowed', () => {
    const problems = problemsOf({ ...valid(), events: [{ type: 'link', at: '1h', hubs: 'every', state: 'broken' }] });
    expect(problems).toEqual([
      expect.stringContaining('events[0].hubs: got "every", expected "all" — Hub ids, or "all"'),
      expect.stringContaining('events[0].state: got "broken", expected one of "cut", "restored"'),
    ]);
  });

  it('a region file that does not validate: the region loader\'s own message', () => {
    const region = JSON.parse(fs.readFileSync(REGION, 'utf8')) as { hubs: { id: string }[] };
    region.hubs[0]!.id = 'Not An Id';
    const regionFile = path.join(dir, 'bad-region.json');
    fs.writeFileSync(regionFile, JSON.stringify(region));
    const [p, ...rest] = problemsOf({ ...valid(), region: 'bad-region.json' });
    expect(rest).toEqual([]);
    expect(p).toContain(`region: invalid region file ${regionFile}`);
    expect(p).toContain('hubs.0.id');
  });

  it('a file that cannot be read', () => {
    expect(() => loadScenarioFile(path.join(dir, 'absent.json'))).toThrow(/absent\.json: cannot read the file \(ENOENT\)/);
  });
});

describe('parseScenario and checkScenarioAgainstRegion on their own', () => {
  it('parseScenario fills defaults; checkScenarioAgainstRegion finds nothing wrong in a valid timeline', () => {
    const l = load(valid());
    const s = parseScenario(valid(), 'x.json');
    expect(s.events[1]).toMatchObject({ type: 'earthquake', minIntensity: '5-' });
    expect(checkScenarioAgainstRegion(s, l.region)).toEqual([]);
  });
});

describe('the shipped scenarios', () => {
  const SHIPPED = ['normal-day', 'typhoon-day', 'noto-earthquake'].map((id) => ({ id, file: path.join(ROOT, 'scenarios', `${id}.json`) }));

  it.each(SHIPPED)('$id loads with zero problems, its id matching its file name, in both languages', ({ id, file }) => {
    const l = loadScenarioFile(file);
    expect(l.scenario.id).toBe(id);
    expect(l.region.id).toBe('ishikawa-nomi');
    expect(l.scenario.name.ja).not.toBe(l.scenario.name.en);
    expect(l.scenario.description?.ja.length).toBeGreaterThan(50);
    expect(l.scenario.description?.en.length).toBeGreaterThan(50);
  });

  it('the typhoon keeps wind above the drones\' limit for hours at every hub, with an emergency before the peak and back after', () => {
    const { scenario, region } = loadScenarioFile(SHIPPED[1]!.file);
    const limit = Math.min(...region.hubs.flatMap((h) => h.drones.map((d) => d.windLimitMps)));
    const weather = scenario.events.filter((e) => e.type === 'weather');
    const covered = new Set(weather.flatMap((w) => (w.hubs === 'all' ? region.hubs.map((h) => h.id) : w.hubs)));
    expect(covered.size).toBe(region.hubs.length);
    for (const w of weather) {
      const above = w.profile.filter((p) => p.windMps > limit).map((p) => offsetS(p.at));
      expect(Math.max(...above) - Math.min(...above)).toBeGreaterThanOrEqual(12 * 3600);
      const peak = w.profile.reduce((a, b) => (b.windMps > a.windMps ? b : a));
      expect(peak.windMps).toBeGreaterThanOrEqual(20);
      const switches = scenario.events.filter((e) => e.type === 'coordinator');
      expect(switches.map((e) => e.action)).toEqual(['emergency', 'normal']);
      expect(offsetS(switches[0]!.at)).toBeLessThan(offsetS(peak.at));
      expect(offsetS(switches[1]!.at)).toBeGreaterThan(offsetS(peak.at));
    }
  });

  it('the earthquake proposes emergency through the flow\'s mapping, cuts 3 links, 2 hubs\' power and isolates 4 settlements', () => {
    const { scenario, region, bulletins } = loadScenarioFile(SHIPPED[2]!.file);
    const quake = scenario.events.find((e) => e.type === 'earthquake')!;
    const proposal = proposalFromBulletin(bulletins.get(quake.bulletin)!, { areaCodes: quake.areaCodes, minIntensity: quake.minIntensity, regionId: region.id });
    expect(proposal).toMatchObject({ source: 'jma', mode: 'emergency', evidence: { intensity: '5-', area: { code: '390' } } });
    const hubsOf = (type: 'link' | 'power', state: string) => scenario.events.flatMap((e) => (e.type === type && e.state === state && e.hubs !== 'all' ? e.hubs : []));
    expect(new Set(hubsOf('link', 'cut')).size).toBe(3);
    expect(new Set(hubsOf('power', 'lost')).size).toBe(2);
    const isolated = new Set(scenario.events.flatMap((e) => (e.type === 'isolation' && e.state === 'isolated' ? e.sites : [])));
    expect(isolated.size).toBe(4);
    expect(offsetS(scenario.duration)).toBe(48 * 3600);
    const relief = scenario.events.filter((e) => e.type === 'demand' && e.kind === 'relief');
    expect(Math.max(...relief.map((e) => (e.type === 'demand' ? offsetS(e.until) : 0)))).toBe(48 * 3600);
  });
});
