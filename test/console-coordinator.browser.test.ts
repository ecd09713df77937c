import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRegionFile } from '../cloud/hubs/region-loader.ts';
import type { EdgeAgent } from '../edge/agent.ts';
import { REGION_FILE, startTestCloud, tempDir, type TestCloud } from './support/cloud-harness.ts';
import { catalogue, LANGS, launchChromium, login, newPage, shotPath, SIZES, textOutsideCatalogue, type Lang } from './support/console-browser.ts';
import { startTestEdge, testEdgeEnv } from './support/edge-harness.ts';
import { waitFor } from './support/ports.ts';

/**
 * Issue 13, items 4 and 5, the coordinator's screen at 1440×900, 1024×768 and 768×1024 in Japanese and
 * English, against a cloud with an edge agent at every hub (they acknowledge mode switches):
 * - the open alarms are on screen without scrolling (they were below the fold at every size), next to
 *   the map and the mode panel;
 * - switching two hubs with the hub picker lists them, by name, as in emergency mode in the mode panel
 *   with their acknowledgement, and leaves nothing selected (the picks and the map's rings stayed);
 * - no table header breaks one character per line (「優先度」 did at 1440×900);
 * - proposals name the proposer, the account that sent it and the hubs; the confirmation and the form's errors are in the language
 *   the console shows now; under `?lang=keys` no text comes from outside the catalogues.
 * Screenshots go to /tmp/shots/coord/ for a person to look at.
 */
const region = loadRegionFile(REGION_FILE);
const dir = tempDir('console-coordinator');
let t: TestCloud;
let agents: EdgeAgent[] = [];
let browser: Browser;
const problems: string[] = [];

/** A different pair of hubs per size and language, so every switch starts from a region in normal mode. */
const PAIRS = [
  ['nomi-terai', 'nomi-kokufu'], ['nomi-neagari', 'nomi-wake'], ['hakusan-tsurugi', 'rs-komatsu-kibagata'],
  ['komatsu-awazu', 'rs-megumi-hakusan'], ['kawakita-chuo', 'rs-yamanaka-yukemuri'], ['hakusan-chiyono', 'nomi-tatsunokuchi'],
];
const hubName = (id: string, lang: Lang) => region.hubs.find((h) => h.id === id)!.name[lang];

const post = (url: string, body: unknown) => t.api(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

beforeAll(async () => {
  t = await startTestCloud({ MQTT_WS_PORT: 'off' });
  agents = await Promise.all(region.hubs.map((h) =>
    startTestEdge(testEdgeEnv({ hub: h.id, cloudUrl: t.cloud.urls.mqtt, password: t.credentials[h.id]!.password, dataDir: path.join(dir, h.id) }))));
  await waitFor('every agent connected', () => agents.every((a) => a.uplink.connected), 15_000);
  // Open alarms at hubs without simulated devices (nothing clears them), one of them critical.
  await t.cloud.alarms.raise({ hub: 'nomi-wake', device: 'locker-a', compartment: 'A01', kind: 'compartment_too_warm', detail: 'A01 too warm' });
  await t.cloud.alarms.raise({ hub: 'hakusan-tsurugi', device: 'drone-1', kind: 'drone_failsafe', detail: 'failsafe' });
  await t.cloud.alarms.raise({ hub: 'nomi-neagari', device: 'locker-a', compartment: 'A02', kind: 'door_open_too_long', detail: 'door open' });
  // Relief orders fill the coordinator's order table (its headers must not break per character).
  for (const site of ['kibagata-park-shelter', 'osugi-settlement']) {
    expect((await post('/api/v1/orders', { originHub: 'rs-komatsu-kibagata', destination: { type: 'site', siteId: site }, weightKg: 2, priority: 'relief', reference: `R-${site}` })).status).toBe(201);
  }
  expect((await post(`/api/v1/regions/${region.id}/mode-proposals`, {
    source: 'jma', mode: 'emergency', reason: '震度5強（能美市）', hubs: ['nomi-terai', 'nomi-kokufu'], evidence: { eventId: 'test-1' },
  })).status).toBe(201);
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await Promise.all(agents.map((a) => a.close()));
  await t?.stop();
});

async function signIn(size: { width: number; height: number }, lang: Lang | 'keys'): Promise<Page> {
  const { page } = await newPage(browser, problems, size);
  await login(page, t.cloud.urls.http, 'coordinator', 'demo-coordinator-pass', lang);
  await page.locator('#coordinator-console').waitFor();
  return page;
}

interface Box { top: number; bottom: number; left: number; right: number; width: number; height: number }
const boxOf = (page: Page, selector: string) => page.locator(selector).first().evaluate((e) => {
  const r = e.getBoundingClientRect();
  return { top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width, height: r.height } as Box;
});

/** How many lines each table header's text takes (distinct line boxes of its text). */
// A string, so this Node-side file needs no DOM types.
const headerLines = (page: Page) => page.evaluate<{ text: string; lines: number }[]>(`[...document.querySelectorAll('#coordinator-console th')].map((th) => {
  const range = document.createRange();
  range.selectNodeContents(th);
  const tops = new Set([...range.getClientRects()].filter((r) => r.width > 0).map((r) => Math.round(r.top)));
  return { text: th.textContent, lines: tops.size };
})`);

describe('coordinator console at every size and language', () => {
  for (const [i, size] of SIZES.entries()) {
    for (const [j, lang] of LANGS.entries()) {
      const pair = PAIRS[i * LANGS.length + j]!;
      const text = catalogue(lang);
      it(`${size.name} ${lang}: open alarms, map and mode panel on the first screen; a switch of two hubs lists them in emergency and leaves no selection`, { timeout: 60_000 }, async () => {
        const page = await signIn(size, lang);
        const firstAlarm = '#coord-alarms li.alarm';
        await page.locator(firstAlarm).first().waitFor({ timeout: 10_000 });
        await page.locator('#ack-progress').waitFor();
        await page.locator('#relief-orders table').waitFor({ timeout: 10_000 });
        await page.screenshot({ path: shotPath('coord', `${size.name}-${lang}-first-screen`) });

        // Soft checks: each layout fault is reported, not only the first.
        // Without scrolling: the first open alarm whole, the map's top and most of the width, the mode panel's heading.
        expect.soft(await page.evaluate<number>('window.scrollY')).toBe(0);
        const alarm = await boxOf(page, firstAlarm);
        expect.soft(alarm.top, 'first open alarm below the fold').toBeGreaterThanOrEqual(0);
        expect.soft(alarm.bottom, 'first open alarm below the fold').toBeLessThanOrEqual(size.height);
        const map = await boxOf(page, '#map');
        expect.soft(map.top, 'the map starts in the upper half of the screen').toBeLessThan(size.height / 2);
        expect.soft(map.width * Math.min(map.height, size.height - map.top), 'the map keeps a large area').toBeGreaterThan(0.3 * size.width * size.height);
        const modeHeading = await boxOf(page, '#mode-h');
        expect.soft(modeHeading.bottom, 'mode panel below the fold').toBeLessThanOrEqual(size.height);
        expect.soft(await page.evaluate<number>('document.documentElement.scrollWidth'), 'nothing wider than the screen').toBeLessThanOrEqual(size.width);

        // Table headers: one line each (two at most), never one character per line.
        const headers = await headerLines(page);
        expect(headers.length).toBeGreaterThan(0);
        for (const th of headers) expect.soft(th.lines, `header "${th.text}"`).toBeLessThanOrEqual(2);

        // Proposals name who proposes and the hubs, not ids.
        const proposal = page.locator('#proposals li.proposal').first();
        expect(await proposal.locator('.proposal-source').textContent()).toBe(text['proposals.source.jma']);
        expect(await proposal.locator('.hub-chip').allTextContents()).toEqual([hubName('nomi-terai', lang), hubName('nomi-kokufu', lang)]);
        // The source is what the sender says; the account that sent it is shown beside it (from its credential).
        expect(await proposal.locator('.proposal-by').textContent()).toBe(text['proposals.sentBy']!.replace('{v}', 'test-admin'));
        await proposal.screenshot({ path: shotPath('coord', `${size.name}-${lang}-proposal`) });

        // "Selected hubs" with nothing picked: refused, in the console's language.
        await page.locator('input[name="scope"][value="hubs"]').check();
        await page.locator('#reason').fill(`test ${size.name} ${lang}`);
        await page.locator('#switch-button').click();
        await expect.poll(() => page.locator('#switch-error').textContent()).toBe(text['mode.hubsRequired']);

        // Two hubs picked in the hub picker, confirmed by name, switched.
        for (const hub of pair) await page.locator(`#hub-picker input[value="${hub}"]`).check();
        await expect.poll(() => page.locator('#map [data-hub][aria-pressed="true"]').count()).toBe(2);
        await page.locator('#switch-button').click();
        await page.locator('#confirm-dialog[open]').waitFor();
        expect(await page.locator('#confirm-h').textContent()).toBe(text['mode.confirmTitle']);
        expect(await page.locator('#confirm-body li').allTextContents()).toEqual(pair.map((h) => hubName(h, lang)));
        await page.locator('#confirm-ok').click();

        // The mode panel lists exactly those hubs, by name, each acknowledged by its hub.
        const listed = () => page.locator('#emergency-hubs li').evaluateAll((els) => els.map((e) => `${e.getAttribute('data-hub')}=${e.getAttribute('data-status')}`).sort());
        await expect.poll(listed, { timeout: 15_000 }).toEqual(pair.map((h) => `${h}=acknowledged`).sort());
        expect((await page.locator('#emergency-hubs .hub-name').allTextContents()).sort()).toEqual(pair.map((h) => hubName(h, lang)).sort());
        expect(await page.locator('#emergency-hubs .badge').first().textContent()).toBe(text['ack.acknowledged']);
        // Who switched, by display name (not the username "coordinator").
        expect(await page.locator('#mode-switched-by').textContent()).toBe('能美市 防災担当');
        // Nothing left selected: no ticks in the picker, no rings on the map, the count at 0.
        expect(await page.locator('#hub-picker input:checked').count()).toBe(0);
        expect(await page.locator('#map [data-hub][aria-pressed="true"], #map .hub.selected').count()).toBe(0);
        expect(await page.locator('#picked-count').getAttribute('data-picked')).toBe('0');
        expect(await page.locator('#switch-error').textContent()).toBe('');
        // Viewport shots (a full-page one would stretch the viewport, and with it the map beside the side column).
        await page.locator('#mode-card').scrollIntoViewIfNeeded();
        await page.screenshot({ path: shotPath('coord', `${size.name}-${lang}-after-switch`) });
        await page.locator('#relief-orders').scrollIntoViewIfNeeded();
        await page.screenshot({ path: shotPath('coord', `${size.name}-${lang}-orders`) });

        // Back to normal for the next size (through the API: the switch back is not what is tested here).
        expect((await post(`/api/v1/regions/${region.id}/mode`, { mode: 'normal', reason: 'test reset' })).status).toBe(202);
        await page.locator('#emergency-hubs-none').waitFor({ timeout: 10_000 });
        await page.context().close();
      });
    }
  }

  it('the confirmation is in the language shown now, after a language switch', { timeout: 30_000 }, async () => {
    const page = await signIn({ width: 1024, height: 768 }, 'ja');
    await page.locator('#lang-toggle').click();
    await expect.poll(() => page.locator('#mode-h').textContent()).toBe(catalogue('en')['mode.title']);
    await page.locator('#reason').fill('language check');
    await page.locator('#switch-button').click();
    await page.locator('#confirm-dialog[open]').waitFor();
    expect(await page.locator('#confirm-h').textContent()).toBe(catalogue('en')['mode.confirmTitle']);
    expect(await page.locator('#confirm-cancel').textContent()).toBe(catalogue('en')['common.cancel']);
    await page.locator('#confirm-cancel').click();
    await page.locator('#lang-toggle').click(); // the console remembers the language: leave it Japanese
    await expect.poll(() => page.locator('#mode-h').textContent()).toBe(catalogue('ja')['mode.title']);
    await page.context().close();
  });

  it('"fill in the switch form as proposed" picks the proposal\'s hubs and its reason; nothing is switched until confirmed', { timeout: 30_000 }, async () => {
    const page = await signIn({ width: 1024, height: 768 }, 'en');
    const version = async () => ((await (await t.api(`/api/v1/regions/${region.id}/mode`)).json()) as { desired: { version: number } }).desired.version;
    const before = await version();
    await page.locator('#proposals .proposal-adopt').first().click();
    await expect.poll(() => page.locator('#hub-picker input:checked').evaluateAll((els) => els.map((e) => e.getAttribute('value')).sort())).toEqual(['nomi-kokufu', 'nomi-terai']);
    expect(await page.locator('input[name="scope"][value="hubs"]').isChecked()).toBe(true);
    expect(await page.locator('input[name="mode"][value="emergency"]').isChecked()).toBe(true);
    expect(await page.locator('#reason').inputValue()).toBe('震度5強（能美市）');
    expect(await page.locator('#map [data-hub][aria-pressed="true"]').count()).toBe(2);
    await page.locator('#clear-selection').click();
    await expect.poll(() => page.locator('#hub-picker input:checked').count()).toBe(0);
    expect(await version()).toBe(before);
    await page.context().close();
  });

  it('a switch the cloud refuses or cannot take is explained in the console\'s language', { timeout: 30_000 }, async () => {
    // Its own problem list: the refused requests are logged by the browser on purpose.
    const { page } = await newPage(browser, [], { width: 1024, height: 768 });
    await login(page, t.cloud.urls.http, 'coordinator', 'demo-coordinator-pass', 'ja');
    await page.locator('#coordinator-console').waitFor();
    const ja = catalogue('ja');
    const trySwitch = async () => {
      await page.locator('#reason').fill('通信試験');
      await page.locator('#switch-button').click();
      await page.locator('#confirm-ok').click();
    };
    await page.route('**/api/v1/regions/*/mode', (route) => (route.request().method() === 'POST' ? route.abort('internetdisconnected') : route.continue()));
    await trySwitch();
    await expect.poll(() => page.locator('#switch-error').textContent()).toBe(ja['mode.error.network']);
    await page.unroute('**/api/v1/regions/*/mode');
    await page.route('**/api/v1/regions/*/mode', (route) => (route.request().method() === 'POST'
      ? route.fulfill({ status: 400, contentType: 'application/json', body: JSON.stringify({ error: { code: 'hub_not_in_region', message: 'not hubs of region' } }) })
      : route.continue()));
    await trySwitch();
    await expect.poll(() => page.locator('#switch-error').textContent()).toBe(ja['mode.error.hub_not_in_region']);
    await page.context().close();
  });

  it('a region-wide emergency lists every hub without pushing the map down on a portrait tablet', { timeout: 30_000 }, async () => {
    expect((await post(`/api/v1/regions/${region.id}/mode`, { mode: 'emergency', reason: '大雨特別警報' })).status).toBe(202);
    const page = await signIn({ width: 768, height: 1024 }, 'ja');
    await expect.poll(() => page.locator('#emergency-hubs li').count(), { timeout: 10_000 }).toBe(region.hubs.length);
    await page.screenshot({ path: shotPath('coord', '768x1024-ja-region-wide') });
    const map = await boxOf(page, '#map');
    expect(map.top, 'the map starts in the upper two thirds of the screen').toBeLessThan(1024 * 2 / 3);
    await page.context().close();
    expect((await post(`/api/v1/regions/${region.id}/mode`, { mode: 'normal', reason: 'test reset' })).status).toBe(202);
  });

  it('shows only catalogue text, with hubs in emergency, a proposal and the confirmation open (?lang=keys)', { timeout: 30_000 }, async () => {
    expect((await post(`/api/v1/regions/${region.id}/mode`, { mode: 'emergency', hubs: ['nomi-terai'], reason: 'keys check' })).status).toBe(202);
    const page = await signIn({ width: 768, height: 1024 }, 'keys');
    await page.locator('#emergency-hubs li[data-hub="nomi-terai"]').waitFor({ timeout: 10_000 });
    await page.locator('#coord-alarms li.alarm').first().waitFor();
    await page.locator('#proposals li.proposal').first().waitFor();
    expect(await textOutsideCatalogue(page)).toEqual([]);
    await page.locator('#hub-picker input[value="nomi-wake"]').check();
    await page.locator('#reason').fill('keys');
    await page.locator('#switch-button').click();
    await page.locator('#confirm-dialog[open]').waitFor();
    expect(await textOutsideCatalogue(page)).toEqual([]);
    await page.locator('#confirm-cancel').click();
    await page.context().close();
    expect((await post(`/api/v1/regions/${region.id}/mode`, { mode: 'normal', reason: 'test reset' })).status).toBe(202);
  });

  it('logged no console errors, page errors or dialogs', () => {
    expect(problems).toEqual([]);
  });
});
