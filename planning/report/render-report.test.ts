import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ScenarioReport } from '../scenario-result.ts';
import { renderReport, reportFigures } from './render-report.ts';

const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/sample-report.json');
const sample = (): ScenarioReport => JSON.parse(fs.readFileSync(FIXTURE, 'utf8')) as ScenarioReport;

const SECTIONS = ['summary', 'relief', 'deliveries', 'waiting', 'drones', 'refusals', 'alarms', 'links', 'modes', 'actions', 'sweep'];
const CHARTS = ['relief-time', 'deliveries', 'waiting', 'utilisation', 'landing-battery', 'refusals', 'alarms-by-kind', 'alarms-active', 'link-state', 'backlog', 'mode-acks', 'sweep-time', 'sweep-share'];

/** The part of the report in one language. */
function article(html: string, lang: 'ja' | 'en'): string {
  const m = new RegExp(`<article id="${lang}"[\\s\\S]*?</article>`).exec(html);
  if (!m) throw new Error(`no ${lang} article`);
  return m[0];
}
const charts = (part: string) => [...part.matchAll(/<figure class="chart" data-chart="([a-z-]+)"><svg /g)].map((m) => m[1]);
const empties = (part: string) => [...part.matchAll(/data-empty="([a-z-]+)"/g)].map((m) => m[1]);

describe('renderReport', () => {
  let html: string;
  beforeAll(async () => {
    html = await renderReport(sample());
  });

  it('has every section and every chart, drawn as inline SVG, in Japanese and in English', () => {
    for (const lang of ['ja', 'en'] as const) {
      const part = article(html, lang);
      expect([...part.matchAll(/data-section="([a-z]+)"/g)].map((m) => m[1])).toEqual(SECTIONS);
      expect(charts(part)).toEqual(CHARTS);
      // Only the drill's coordinator actions are empty in a planning run.
      expect(empties(part)).toEqual(['actions']);
    }
    expect(article(html, 'ja')).toContain('最初の救援までの時間（要請から）');
    expect(article(html, 'en')).toContain('Time to first relief (from the first request)');
    expect(article(html, 'ja')).toContain('小松市 大杉地区（孤立可能性集落）');
    expect(article(html, 'en')).toContain('Ōsugi settlement, Komatsu (may be cut off)');
  });

  it('names no resource elsewhere: no URL, no external script, stylesheet, font or image', () => {
    expect(html).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/<(link|img|iframe|object|embed)\b/i);
    expect(html).not.toMatch(/@import|url\(/i);
    expect(html.match(/<script\b[^>]*>/g)).toEqual(['<script>']); // the inline language switch only
  });

  it('shows times from the start and as clock time in Japan', () => {
    // Ōsugi asked 1 h after a 16:10 JST start and first received relief at +2:25.
    expect(article(html, 'ja')).toContain('+2:25<br><span class="clock">01/01 18:35</span>');
    expect(article(html, 'en')).toContain('+2:25<br><span class="clock">01/01 18:35</span>');
    expect(article(html, 'en')).toContain('2027-01-01 16:10 JST');
  });

  it('marks the main run in the capacity table and says which figures cannot be given', () => {
    const en = article(html, 'en');
    expect(en).toMatch(/<tr class="main-run"><td class="num">2<\/td>/);
    expect(en).toContain('"—" means some site received no relief');
  });

  it('shows names from the files as text: markup in a scenario, region, site or hub name is escaped', async () => {
    const r = sample();
    const evil = '<script>alert(1)</script><img src=x onerror=alert(2)>';
    r.result.scenario.name = { ja: `${evil}地震`, en: `${evil}Quake` };
    r.result.scenario.region.name.en = `${evil}Region`;
    r.result.relief[0]!.name = { ja: `${evil}避難所`, en: `${evil}Shelter` };
    r.result.drones[0]!.hub = `${evil}hub`;
    r.result.scenario.hubs![1]!.name.en = `${evil}Hall`;
    r.result.modes[0]!.cause = `${evil}cause`;
    const out = await renderReport(r);
    expect(out.match(/<script\b[^>]*>/g)).toEqual(['<script>']);
    expect(out).not.toContain('<img');
    expect(out).toContain('&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;Quake');
    expect(out).toContain('&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;Shelter');
  });

  it('says "none" in words where a run has nothing to show, instead of an empty chart', async () => {
    const r = sample();
    r.result.relief = r.result.relief.map((s) => ({ ...s, firstRequestAtS: null, firstReliefAtS: null, timeToFirstReliefS: null, requests: 0, delivered: 0 }));
    r.result.alarms = { byKind: [{ kind: 'tamper', raised: 0, cleared: 0 }], active: [{ atS: 0, count: 0 }] };
    r.result.refusals = [];
    r.result.modes = [];
    r.result.waiting = [{ atS: 0, byReason: {} }];
    delete r.sweep;
    const out = await renderReport(r, { lang: 'en' });
    const en = article(out, 'en');
    expect(empties(en)).toEqual(['relief-time', 'waiting', 'refusals', 'alarms-by-kind', 'mode-acks', 'actions', 'sweep']);
    expect(charts(en)).toEqual(['deliveries', 'utilisation', 'landing-battery', 'link-state', 'backlog']);
    expect(en).toContain('None — No flight was refused.');
    expect(en).toContain('None — No alarm was raised.');
    expect(en).toContain('No capacity sweep was run');
    // The sites are still listed, each marked as not having asked.
    expect(en.match(/no request/g)!.length).toBeGreaterThanOrEqual(r.result.relief.length);
    // English first when asked for.
    expect(out.indexOf('<article id="en"')).toBeLessThan(out.indexOf('<article id="ja"'));
    expect(out).toContain('<html lang="en" data-default-lang="en">');
  });

  it("labels hubs by the region's names, and by id when the run names none", async () => {
    const withNames = article(html, 'en');
    expect(withNames).toContain('<td class="wrap">Roadside Station Komatsu Kibagata</td><td>drone-1</td>');
    expect(withNames).toMatch(/<text[^>]*>Roadside Station Komatsu Kibagata<\/text>/); // the link-state chart's axis
    const r = sample();
    delete r.result.scenario.hubs;
    const withIds = article(await renderReport(r), 'en');
    expect(withIds).toContain('<td class="wrap">rs-komatsu-kibagata</td><td>drone-1</td>');
    expect(withIds).not.toContain('Roadside Station Komatsu Kibagata');
  });

  it('a drill report lists what the coordinators did, with its time scale', async () => {
    const r = sample();
    r.result.kind = 'drill';
    r.result.run.timeScale = 60;
    r.result.coordinatorActions = [{ atS: 1500, action: 'switch_emergency', by: 'coord-<b>nomi</b>', detail: 'all hubs' }];
    const en = article(await renderReport(r), 'en');
    expect(empties(en)).toEqual([]);
    expect(en).toContain('Drill mode (live system)');
    expect(en).toContain('time scale ×60');
    expect(en).toContain('<td>+0:25<br><span class="clock">01/01 16:35</span></td><td>switch_emergency</td><td>coord-&lt;b&gt;nomi&lt;/b&gt;</td>');
  });

  it('draws the link chart of a prefecture-sized run (1,600 hubs: a custom sort overflowed Vega\'s expression compiler)', async () => {
    const big = sample();
    const hubs = Array.from({ length: 1_600 }, (_, i) => `hub-${String(i).padStart(4, '0')}`);
    big.result.links = hubs.flatMap((hub) => [{ atS: 0, hub, up: true, backlog: 0 }, { atS: 3600, hub, up: false, backlog: 5 }]);
    big.result.scenario.hubs = hubs.map((id) => ({ id, name: { ja: id, en: id } }));
    const part = article(await renderReport(big), 'en');
    expect(charts(part)).toContain('link-state');
    const link = /<figure class="chart" data-chart="link-state">([\s\S]*?)<\/figure>/.exec(part)![1]!;
    expect(link).toContain('hub-0000');
    expect(link).toContain('hub-1599');
  }, 60_000);

  it('reportFigures is the report itself, as pretty-printed JSON', () => {
    const r = sample();
    const json = reportFigures(r);
    expect(JSON.parse(json)).toEqual(r);
    expect(json).toContain('\n  "result": {');
  });
});
