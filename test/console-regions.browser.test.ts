import fs from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRegionFile } from '../cloud/hubs/region-loader.ts';
import { ROOT, startTestCloud, tempDir, type TestCloud } from './support/cloud-harness.ts';
import { catalogue, LANGS, launchChromium, login, newPage, shotPath, SIZES, textOutsideCatalogue, type Lang } from './support/console-browser.ts';

/**
 * Issue 14, item 3: one cloud, two regions (REGIONS_DIR with 能美・小松・白山 and 金沢・野々市・河北).
 * A coordinator of both chooses the region in the header; map, hubs, mode panel, orders and alarms follow the
 * choice, which this browser remembers. A single-region account sees no chooser. The console API
 * answers per region (`?region=`) and refuses regions outside the account or unknown.
 * Screenshots of both regions at 1024×768 and 768×1024 in ja and en go to /tmp/shots/regions/.
 */
const CONFIG = path.join(ROOT, 'config/regions');
const nomi = loadRegionFile(path.join(CONFIG, 'ishikawa-nomi.json'));
const kanazawa = loadRegionFile(path.join(CONFIG, 'ishikawa-kanazawa.json'));
const regionsDir = tempDir('console-regions');
let t: TestCloud;
let browser: Browser;
const problems: string[] = [];
const COORD = { username: 'coord-both', password: 'coord-both-test-password' };

beforeAll(async () => {
  for (const f of ['ishikawa-nomi.json', 'ishikawa-nomi.geography.json', 'ishikawa-kanazawa.json']) fs.copyFileSync(path.join(CONFIG, f), path.join(regionsDir, f));
  t = await startTestCloud({ MQTT_WS_PORT: 'off', REGIONS_DIR: regionsDir });
  await t.tokenFor(COORD.username, 'coordinator');
  // One open alarm in each region (no devices run here, so nothing clears them).
  await t.cloud.alarms.raise({ region: kanazawa.id, hub: 'kanazawa-yuwaku', device: 'locker-a', compartment: 'A01', kind: 'compartment_too_warm', detail: 'A01 too warm' });
  await t.cloud.alarms.raise({ region: nomi.id, hub: 'nomi-wake', device: 'locker-a', compartment: 'A02', kind: 'door_open_too_long', detail: 'door open' });
  // One relief order in each region (the order takes its hubs' region).
  const post = (url: string, body: unknown) => t.api(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect((await post('/api/v1/orders', { originHub: 'kanazawa-yuwaku', destination: { type: 'site', siteId: 'yuwaku-settlement' }, weightKg: 2, priority: 'relief', reference: 'R-KANAZAWA' })).status).toBe(201);
  expect((await post('/api/v1/orders', { originHub: 'rs-komatsu-kibagata', destination: { type: 'site', siteId: 'kibagata-park-shelter' }, weightKg: 2, priority: 'relief', reference: 'R-NOMI' })).status).toBe(201);
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await t?.stop();
  fs.rmSync(regionsDir, { recursive: true, force: true });
});

const json = async (r: Response) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> & { error?: { code: string } } });

describe('console API over two regions', () => {
  it('lists the regions an account may see, with names and hub counts', async () => {
    const all = await json(await t.api('/api/v1/regions'));
    expect(all.body.regions).toEqual([
      { id: kanazawa.id, name: kanazawa.name, hubCount: kanazawa.hubs.length },
      { id: nomi.id, name: nomi.name, hubCount: nomi.hubs.length },
    ]);
    const staff = await t.tokenFor('staff-wake', 'staff', ['nomi-wake']);
    const asStaff = (p: string) => fetch(`${t.cloud.urls.http}${p}`, { headers: { authorization: `Bearer ${staff}` } });
    expect((await json(await asStaff('/api/v1/regions'))).body.regions).toEqual([{ id: nomi.id, name: nomi.name, hubCount: nomi.hubs.length }]);
    // Staff get their hubs' region by default, and no other.
    expect((await json(await asStaff('/api/v1/region'))).body.id).toBe(nomi.id);
    expect(await json(await asStaff(`/api/v1/region?region=${kanazawa.id}`))).toMatchObject({ status: 403, body: { error: { code: 'region_not_allowed' } } });
  });

  it('answers GET /api/v1/region and its base map per region; 404 for an unknown region', async () => {
    const k = await json(await t.api(`/api/v1/region?region=${kanazawa.id}`));
    expect(k.status).toBe(200);
    expect((k.body.hubs as { id: string }[]).map((h) => h.id)).toEqual(kanazawa.hubs.map((h) => h.id));
    expect(k.body.baseMap).toBeNull(); // no kanazawa geography file
    const n = await json(await t.api(`/api/v1/region?region=${nomi.id}`));
    expect(n.body.baseMap).toBe(`/api/v1/region/geography?region=${nomi.id}`);
    expect((await t.api(n.body.baseMap as string)).status).toBe(200);
    expect(await json(await t.api(`/api/v1/region/geography?region=${kanazawa.id}`))).toMatchObject({ status: 404, body: { error: { code: 'geography_not_found' } } });
    for (const p of ['/api/v1/region?region=toyama-west', '/api/v1/region/geography?region=toyama-west']) {
      expect(await json(await t.api(p)), p).toMatchObject({ status: 404, body: { error: { code: 'region_not_found' } } });
    }
    // Without ?region=: the first region loaded (file names in order).
    expect((await json(await t.api('/api/v1/region'))).body.id).toBe(kanazawa.id);
  });

  it('keeps a coordinator scoped to one region to it: one region listed, the other refused', async () => {
    const token = await t.tokenFor('coord-nomi', 'coordinator', [], [nomi.id]);
    const as = (p: string) => fetch(`${t.cloud.urls.http}${p}`, { headers: { authorization: `Bearer ${token}` } });
    expect((await json(await as('/api/v1/regions'))).body.regions).toEqual([{ id: nomi.id, name: nomi.name, hubCount: nomi.hubs.length }]);
    expect((await json(await as('/api/v1/region'))).body.id).toBe(nomi.id);
    for (const p of [`/api/v1/region?region=${kanazawa.id}`, `/api/v1/region/geography?region=${kanazawa.id}`]) {
      expect(await json(await as(p)), p).toMatchObject({ status: 403, body: { error: { code: 'region_not_allowed' } } });
    }
  });
});

const TWO_SIZES = SIZES.filter((s) => s.name !== '1440x900');

async function signIn(size: { width: number; height: number }, lang: Lang | 'keys', who = COORD): Promise<Page> {
  const { page } = await newPage(browser, problems, size);
  await login(page, t.cloud.urls.http, who.username, who.password, lang);
  await page.locator(who === COORD ? '#coordinator-console' : '#main form, #main section').first().waitFor();
  return page;
}

/** What the coordinator console shows now: the region in the map's title, the hubs it can pick, the open alarms' hubs. */
const shown = (page: Page) => page.evaluate<{ title: string; picks: string[]; alarmHubs: string[]; chosen: string; options: string[]; orders: string[]; modeTotal: string }>(`(() => ({
  orders: [...document.querySelectorAll('#relief-orders .ref')].map((e) => e.textContent),
  modeTotal: document.querySelector('#ack-progress')?.dataset.total ?? '',
  title: document.querySelector('#map-h .region-name')?.textContent ?? '',
  picks: [...document.querySelectorAll('#coordinator-console input[name="hub"]')].map((i) => i.value),
  alarmHubs: [...document.querySelectorAll('#coord-alarms li.alarm')].map((li) => li.textContent),
  chosen: document.querySelector('#region-select')?.value ?? '',
  options: [...document.querySelectorAll('#region-select option')].map((o) => o.value),
}))()`);

describe('the coordinator console with two regions', () => {
  for (const size of TWO_SIZES) {
    for (const lang of LANGS) {
      const text = catalogue(lang);
      it(`${size.name} ${lang}: the header's chooser switches map, hubs, mode panel, orders and alarms to the region chosen, and is remembered`, { timeout: 60_000 }, async () => {
        const page = await signIn(size, lang);
        const yuwaku = kanazawa.hubs.find((h) => h.id === 'kanazawa-yuwaku')!.name[lang];
        const wake = nomi.hubs.find((h) => h.id === 'nomi-wake')!.name[lang];
        await page.locator('#region-select').waitFor();
        await expect.poll(async () => (await shown(page)).alarmHubs.join(' '), { timeout: 10_000 }).toContain(yuwaku);
        let s = await shown(page);
        expect(s.options).toEqual([kanazawa.id, nomi.id]);
        expect(s.chosen).toBe(kanazawa.id);
        expect(s.title).toBe(kanazawa.name[lang]);
        expect(s.picks).toEqual(kanazawa.hubs.map((h) => h.id));
        expect(s.alarmHubs.join(' ')).not.toContain(wake);
        await expect.poll(async () => (await shown(page)).orders).toEqual(['R-KANAZAWA']);
        expect((await shown(page)).modeTotal).toBe(String(kanazawa.hubs.length));
        expect(await page.locator('label[for="region-select"]').textContent()).toBe(text['region.choose']);
        await page.screenshot({ path: shotPath('regions', `${size.name}-${lang}-${kanazawa.id}`) });

        await page.locator('#region-select').selectOption(nomi.id);
        await expect.poll(async () => (await shown(page)).title).toBe(nomi.name[lang]);
        await expect.poll(async () => (await shown(page)).alarmHubs.join(' '), { timeout: 10_000 }).toContain(wake);
        s = await shown(page);
        expect(s.picks).toEqual(nomi.hubs.map((h) => h.id));
        expect(s.alarmHubs.join(' ')).not.toContain(yuwaku);
        expect(s.orders).toEqual(['R-NOMI']);
        await expect.poll(async () => (await shown(page)).modeTotal).toBe(String(nomi.hubs.length));
        await page.locator('#map svg .geo').waitFor(); // nomi's base map, fetched for the region chosen
        await page.waitForTimeout(300);
        expect.soft(await page.evaluate<number>('document.documentElement.scrollWidth'), 'nothing wider than the screen').toBeLessThanOrEqual(size.width);
        await page.screenshot({ path: shotPath('regions', `${size.name}-${lang}-${nomi.id}`) });

        // Remembered by this browser: a reload shows the region chosen.
        await page.reload();
        await page.locator('#coordinator-console').waitFor();
        await expect.poll(async () => (await shown(page)).title).toBe(nomi.name[lang]);
        expect((await shown(page)).chosen).toBe(nomi.id);
        await page.context().close();
        expect(problems).toEqual([]);
      });
    }
  }

  it('shows no chooser to an account of one region, and nothing outside the catalogues with it', { timeout: 60_000 }, async () => {
    const staff = { username: 'staff-wake', password: 'staff-wake-test-password' };
    await t.tokenFor(staff.username, 'staff', ['nomi-wake']);
    const page = await signIn({ width: 1024, height: 768 }, 'ja', staff);
    await page.waitForTimeout(500);
    expect(await page.locator('#region-select').count()).toBe(0);
    await page.context().close();

    const keys = await signIn({ width: 1024, height: 768 }, 'keys');
    await keys.locator('#region-select').waitFor();
    expect(await textOutsideCatalogue(keys)).toEqual([]);
    await keys.context().close();
    expect(problems).toEqual([]);
  });

  it('shows no chooser to a coordinator scoped to one region', { timeout: 60_000 }, async () => {
    const scoped = { username: 'coord-nomi', password: 'coord-nomi-test-password' };
    await t.tokenFor(scoped.username, 'coordinator', [], [nomi.id]);
    const { page } = await newPage(browser, problems, { width: 1024, height: 768 });
    await login(page, t.cloud.urls.http, scoped.username, scoped.password, 'en');
    await page.locator('#coordinator-console').waitFor();
    await expect.poll(async () => (await shown(page)).title).toBe(nomi.name.en);
    expect(await page.locator('#region-select').count()).toBe(0);
    await page.context().close();
    expect(problems).toEqual([]);
  });
});
