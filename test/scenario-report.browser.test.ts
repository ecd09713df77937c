import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderReport } from '../planning/report/render-report.ts';
import type { ScenarioReport } from '../planning/scenario-result.ts';
import { inProcessRunner, runMainAndSweep } from '../planning/sweep.ts';
import { ROOT, tempDir } from './support/cloud-harness.ts';
import { launchChromium, newPage } from './support/console-browser.ts';

/**
 * The scenario report (issue 16, item 3) in Debian's Chromium: every chart drawn (an SVG with marks, in
 * view, not cut off), the language switch, both languages readable without JavaScript, nothing fetched,
 * markup in names shown as text. Two reports: the renderer's sample fixture (every section filled, a
 * 4-row sweep) and a real planning run of a 3-hour scenario with a 1–2 drones-per-hub sweep.
 * Screenshots at 1024×768 and 768×1024 go to test-artifacts/scenario-report-*.png.
 */
const ARTIFACTS = path.join(ROOT, 'test-artifacts');
const FIXTURES = path.join(ROOT, 'planning/report/fixtures');
const SIZES = [
  { name: '1024x768', width: 1024, height: 768 },
  { name: '768x1024', width: 768, height: 1024 },
] as const;
const ALL_CHARTS = ['relief-time', 'deliveries', 'waiting', 'utilisation', 'landing-battery', 'refusals', 'alarms-by-kind', 'alarms-active', 'link-state', 'backlog', 'mode-acks', 'sweep-time', 'sweep-share'];
const SECTIONS = ['summary', 'relief', 'deliveries', 'waiting', 'drones', 'refusals', 'alarms', 'links', 'modes', 'actions', 'sweep'];

const dir = tempDir('scenario-report');
let browser: Browser;
const problems: string[] = [];
const files: Record<'sample' | 'run' | 'evil', string> = { sample: '', run: '', evil: '' };

function sample(): ScenarioReport {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, 'sample-report.json'), 'utf8')) as ScenarioReport;
}

async function write(name: keyof typeof files, report: ScenarioReport): Promise<void> {
  files[name] = path.join(dir, `${name}.html`);
  fs.writeFileSync(files[name], await renderReport(report));
}

beforeAll(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await write('sample', sample());

  // A real run: the short scenario at its own fleet (1 per hub) and a sweep of 1–2 per hub.
  const run = inProcessRunner(path.join(FIXTURES, 'short-relief.json'), undefined);
  const outcome = await runMainAndSweep(run, { mainDronesPerHub: 1, sweep: { parameter: 'drones-per-hub', values: [1, 2] }, jobs: 1 });
  await write('run', { result: outcome.main, sweep: { parameter: 'drones-per-hub', rows: outcome.rows } });

  const evil = sample();
  evil.result.scenario.name = { ja: '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">地震', en: '<script>window.__pwned = 1</script>Quake' };
  evil.result.relief[0]!.name.ja = '<img src=x onerror="window.__pwned = 3">避難所';
  evil.result.modes[0]!.cause = '<b onmouseover="window.__pwned = 4">cause</b>';
  await write('evil', evil);

  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Opens a report; any request that is not the file itself is recorded as a problem (the report must fetch nothing). */
async function open(file: string, viewport: { width: number; height: number }, opts: { javaScript?: boolean } = {}): Promise<Page> {
  const { context, page } = await newPage(browser, problems, viewport);
  if (opts.javaScript === false) {
    await context.close();
    const noJs = await browser.newContext({ viewport, javaScriptEnabled: false, locale: 'ja-JP', timezoneId: 'Europe/London' });
    const p = await noJs.newPage();
    p.on('request', (r) => { if (r.url() !== `file://${file}`) problems.push(`request: ${r.url()}`); });
    await p.goto(`file://${file}`);
    return p;
  }
  page.on('request', (r) => { if (r.url() !== `file://${file}`) problems.push(`request: ${r.url()}`); });
  await page.goto(`file://${file}`);
  return page;
}

interface ChartSeen { id: string; width: number; height: number; right: number; marks: number; texts: number }

/** Each chart in a language's part of the page: its box and how many marks (bars, areas, lines, ticks) it drew. */
async function chartsIn(page: Page, lang: 'ja' | 'en'): Promise<ChartSeen[]> {
  return page.locator(`article#${lang} figure.chart`).evaluateAll((figs) => figs.map((f) => {
    const svg = f.querySelector('svg')!;
    const box = svg.getBoundingClientRect();
    // Data marks (bars, areas, lines, ticks, points) that take up room on screen: a bar that its scale cannot
    // show (from 0 on a log axis) is still a <path>, but 0 px wide. A flat line may be 0 px high.
    const marks = [...svg.querySelectorAll('g.role-mark > *')].filter((m) => !(m.closest('[class*="role-axis"], [class*="role-legend"], [class*="role-title"]')) && m.tagName !== 'text')
      .filter((m) => {
        const b = m.getBoundingClientRect();
        return m.parentElement!.classList.contains('mark-rect') ? b.width > 0.5 && b.height > 0.5 : b.width + b.height > 2;
      });
    return {
      id: f.getAttribute('data-chart')!, width: box.width, height: box.height, right: box.right,
      marks: marks.length, texts: svg.querySelectorAll('text').length,
    };
  }));
}

const visible = (page: Page, lang: 'ja' | 'en') => page.locator(`article#${lang}`).isVisible();

describe('scenario report in Chromium', () => {
  it('draws every chart of the sample report at both tablet sizes, in view and not cut off, in both languages', async () => {
    for (const size of SIZES) {
      const page = await open(files.sample, size);
      expect(await page.evaluate<string | null>('document.documentElement.getAttribute("data-show")')).toBe('ja');
      for (const lang of ['ja', 'en'] as const) {
        if (lang === 'en') await page.locator('.lang-switch a[data-lang="en"]').click();
        expect(await visible(page, lang)).toBe(true);
        const charts = await chartsIn(page, lang);
        expect(charts.map((c) => c.id)).toEqual(ALL_CHARTS);
        for (const c of charts) {
          expect.soft(c.marks, `${lang} ${c.id}: marks`).toBeGreaterThan(0);
          expect.soft(c.width, `${lang} ${c.id}: width`).toBeGreaterThan(200);
          expect.soft(c.height, `${lang} ${c.id}: height`).toBeGreaterThan(60);
          expect.soft(c.right, `${lang} ${c.id}: right edge`).toBeLessThanOrEqual(size.width);
          expect.soft(c.texts, `${lang} ${c.id}: labels`).toBeGreaterThan(3);
        }
        // The page itself never scrolls sideways (wide tables scroll in their own box).
        expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(size.width);
        await page.screenshot({ path: path.join(ARTIFACTS, `scenario-report-${lang}-${size.name}.png`), fullPage: true });
        await page.locator(`article#${lang} [data-section="sweep"]`).screenshot({ path: path.join(ARTIFACTS, `scenario-report-sweep-${lang}-${size.name}.png`) });
      }
      await page.context().close();
    }
    expect(problems).toEqual([]);
  });

  it('switches language: one shows at a time, headings, chart titles and the page language follow', async () => {
    const page = await open(files.sample, SIZES[0]);
    expect(await visible(page, 'ja')).toBe(true);
    expect(await visible(page, 'en')).toBe(false);
    expect(await page.locator('article#ja [data-section="relief"] h3').textContent()).toBe('避難所・孤立集落への最初の救援');
    expect(await page.locator('article#ja figure[data-chart="relief-time"] svg').textContent()).toContain('最初の救援までの時間（要請から）');

    await page.locator('.lang-switch a[data-lang="en"]').click();
    expect(await visible(page, 'en')).toBe(true);
    expect(await visible(page, 'ja')).toBe(false);
    expect(await page.evaluate<string>('document.documentElement.lang')).toBe('en');
    expect(await page.locator('article#en [data-section="relief"] h3').textContent()).toBe('First relief to shelters and isolated settlements');
    expect(await page.locator('article#en figure[data-chart="relief-time"] svg').textContent()).toContain('Time to first relief (from the first request)');
    expect(await page.locator('.lang-switch a[aria-current="true"]').textContent()).toBe('English');

    await page.locator('.lang-switch a[data-lang="ja"]').click();
    expect(await visible(page, 'ja')).toBe(true);
    expect(await visible(page, 'en')).toBe(false);
    await page.context().close();

    // A link to the English part opens on English.
    const { context, page: linked } = await newPage(browser, problems, SIZES[0]);
    await linked.goto(`file://${files.sample}#en`);
    expect(await visible(linked, 'en')).toBe(true);
    expect(await visible(linked, 'ja')).toBe(false);
    await context.close();
    expect(problems).toEqual([]);
  });

  it('without JavaScript shows both languages in full, every chart drawn', async () => {
    const page = await open(files.sample, SIZES[1], { javaScript: false });
    for (const lang of ['ja', 'en'] as const) {
      expect(await visible(page, lang)).toBe(true);
      const charts = await chartsIn(page, lang);
      expect(charts.map((c) => c.id)).toEqual(ALL_CHARTS);
      expect(charts.every((c) => c.marks > 0 && c.width > 0 && c.height > 0)).toBe(true);
    }
    await page.screenshot({ path: path.join(ARTIFACTS, 'scenario-report-no-script-768x1024.png') });
    await page.context().close();
    expect(problems).toEqual([]);
  });

  it('draws the report of a real planning run (3-hour scenario, sweep of 1–2 drones per hub)', async () => {
    const page = await open(files.run, SIZES[0]);
    for (const lang of ['ja', 'en'] as const) {
      if (lang === 'en') await page.locator('.lang-switch a[data-lang="en"]').click();
      const sections = await page.locator(`article#${lang} section`).evaluateAll((els) => els.map((s) => ({
        id: s.getAttribute('data-section'), charts: s.querySelectorAll('figure.chart svg').length, none: s.querySelectorAll('.none').length,
      })));
      expect(sections.map((s) => s.id)).toEqual(SECTIONS);
      // Every section shows a chart, a table (summary) or says in words that there is nothing.
      for (const s of sections.filter((x) => x.id !== 'summary')) expect(s.charts + s.none, s.id!).toBeGreaterThan(0);
      const charts = await chartsIn(page, lang);
      // What this scenario makes happen: relief asked and delivered, a link cut, a mode switch, the sweep.
      expect(charts.map((c) => c.id)).toEqual(expect.arrayContaining(['relief-time', 'deliveries', 'link-state', 'mode-acks', 'sweep-time', 'sweep-share']));
      for (const c of charts) {
        expect.soft(c.marks, `${lang} ${c.id}: marks`).toBeGreaterThan(0);
        expect.soft(c.width, `${lang} ${c.id}: width`).toBeGreaterThan(200);
        expect.soft(c.right, `${lang} ${c.id}: right edge`).toBeLessThanOrEqual(SIZES[0].width);
      }
      expect(await page.locator(`article#${lang} table.sweep tbody tr`).count()).toBe(2);
      await page.screenshot({ path: path.join(ARTIFACTS, `scenario-report-run-${lang}-1024x768.png`), fullPage: true });
    }
    await page.context().close();
    expect(problems).toEqual([]);
  });

  it('shows markup in names as text and runs none of it', async () => {
    const page = await open(files.evil, SIZES[0]);
    expect(await page.locator('header h1 [lang="ja"]').textContent()).toBe('<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">地震');
    await page.locator('article#ja [data-section="modes"] td', { hasText: 'cause' }).first().hover();
    expect(await page.evaluate<number | undefined>('window.__pwned')).toBeUndefined();
    expect(await page.locator('article#ja [data-section="relief"] td').first().textContent()).toBe('<img src=x onerror="window.__pwned = 3">避難所');
    expect(await page.locator('img').count()).toBe(0);
    await page.context().close();
    expect(problems).toEqual([]);
  });
});
