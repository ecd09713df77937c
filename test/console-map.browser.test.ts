import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRegionFile } from '../cloud/hubs/region-loader.ts';
import { startRegionSimulator, type RegionSimulator } from '../simulators/region-simulator.ts';
import { REGION_FILE, startTestCloud, type TestCloud } from './support/cloud-harness.ts';
import { catalogue, LANGS, launchChromium, login, newPage, shotPath, SIZES, textOutsideCatalogue } from './support/console-browser.ts';

/**
 * Issue 13, item 1: the coordinator's region map in Debian's Chromium at 1440×900, 1024×768 and
 * 768×1024, in Japanese and English. Before, labels covered other hubs' dots (tapping 寺井 picked 根上,
 * 和気 picked 国府), ran off the map, were 7–9 px at 1024 px, and the map had no geography at all.
 * Now: the real coastline and sea; labels that cover no dot and no other label, stay inside the map and
 * are at least 12 px; every hub picked by a tap on its dot or its label — exactly that hub; shelters and
 * no-fly zones identified by tap; pan and zoom that survive live updates.
 */
const region = loadRegionFile(REGION_FILE);
let t: TestCloud;
let sim: RegionSimulator;
let browser: Browser;
const problems: string[] = [];

beforeAll(async () => {
  t = await startTestCloud({ MQTT_WS_PORT: 'off' });
  sim = await startRegionSimulator({
    brokerUrl: t.cloud.urls.mqtt, region, credentials: t.credentials, hubs: ['nomi-terai', 'nomi-wake', 'rs-komatsu-kibagata'], seed: 21, timeScale: 10,
    rates: { droneHz: 1, lockerIntervalS: 2, sensorIntervalS: 2 },
  });
  // An open alarm, for the map to mark its hub.
  await sim.raise('nomi-wake', { kind: 'locker', device: 'locker-a', event: 'tamper', compartment: 'A01' });
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await sim?.stop();
  await t?.stop();
});

type Box = { x: number; y: number; width: number; height: number };

/** What the map shows, measured in the page: label boxes, dot boxes, the map's own box, label font sizes. */
async function measure(page: Page) {
  return page.evaluate(`(() => {
    const box = (el) => { const r = el.getBoundingClientRect(); return { x: r.x, y: r.y, width: r.width, height: r.height }; };
    const svg = document.querySelector('#map svg.region-map');
    return {
      map: box(svg),
      labels: [...svg.querySelectorAll('.label')].map((g) => ({ key: g.getAttribute('data-label-for'), box: box(g.querySelector('rect')),
        fontPx: parseFloat(getComputedStyle(g.querySelector('text')).fontSize) })),
      dots: [...svg.querySelectorAll('.hub-dot, .site-dot')].map((d) => ({ key: (d.closest('[data-hub]')?.getAttribute('data-hub') ?? d.closest('[data-site]')?.getAttribute('data-site')), box: box(d) })),
    };
  })()`) as Promise<{ map: Box; labels: { key: string; box: Box; fontPx: number }[]; dots: { key: string; box: Box }[] }>;
}

const overlap = (a: Box, b: Box) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;
const centre = (b: Box) => ({ x: b.x + b.width / 2, y: b.y + b.height / 2 });
const picked = (page: Page) => page.locator('#map [data-hub][aria-pressed="true"]').evaluateAll((els) => els.map((e) => e.getAttribute('data-hub')));

describe('the region map', () => {
  for (const size of SIZES) {
    for (const lang of LANGS) {
      it(`${size.name} ${lang}: real coastline; labels clear of dots, of each other and of the edge, ≥ 12 px; a tap on a hub's dot or label picks exactly that hub`, { timeout: 60_000 }, async () => {
        const { context, page } = await newPage(browser, problems, size, { hasTouch: true });
        await login(page, t.cloud.urls.http, 'coordinator', 'demo-coordinator-pass', lang);
        await page.locator('#map .geo .sea').waitFor({ state: 'attached' });
        await page.locator('#map .map-credit').waitFor();
        expect(await page.locator('#map .map-credit').textContent()).toContain('GSHHG');
        await page.locator('#map [data-hub="nomi-wake"].has-alarms').waitFor(); // the open alarm marked on the map
        await page.locator('#map').scrollIntoViewIfNeeded();
        await page.screenshot({ path: shotPath('map', `${size.name}-${lang}`) });

        const m = await measure(page);
        // Every hub has its label; labels cover no dot and no other label, stay inside, and are readable.
        expect(m.labels.filter((l) => l.key.startsWith('hub:')).map((l) => l.key.slice(4)).sort()).toEqual(region.hubs.map((h) => h.id).sort());
        for (const l of m.labels) {
          expect(l.fontPx, l.key).toBeGreaterThanOrEqual(12);
          expect(l.box.x >= m.map.x && l.box.y >= m.map.y && l.box.x + l.box.width <= m.map.x + m.map.width && l.box.y + l.box.height <= m.map.y + m.map.height, `${l.key} inside the map`).toBe(true);
          for (const d of m.dots) expect(overlap(l.box, d.box), `${l.key} covers the dot of ${d.key}`).toBe(false);
        }
        for (const [i, a] of m.labels.entries()) for (const b of m.labels.slice(i + 1)) expect(overlap(a.box, b.box), `${a.key} / ${b.key}`).toBe(false);

        // Tap every hub's dot, then its label: exactly that hub is picked; a second tap unpicks it.
        for (const hub of region.hubs) {
          const dot = m.dots.find((d) => d.key === hub.id)!;
          const label = m.labels.find((l) => l.key === `hub:${hub.id}`)!;
          for (const target of [centre(dot.box), centre(label.box)]) {
            await page.touchscreen.tap(target.x, target.y);
            await expect.poll(() => picked(page), { timeout: 3_000 }).toEqual([hub.id]);
            await page.touchscreen.tap(target.x, target.y);
            await expect.poll(() => picked(page), { timeout: 3_000 }).toEqual([]);
          }
        }

        // A shelter and a no-fly zone are identified by tap (tablets have no hover).
        const shelter = region.landingSites.find((s) => s.kind === 'shelter')!;
        const sDot = m.dots.find((d) => d.key === shelter.id)!;
        await page.touchscreen.tap(centre(sDot.box).x, centre(sDot.box).y);
        await expect.poll(() => page.locator('#map-info').getAttribute('data-info')).toBe(`site:${shelter.id}`);
        expect(await page.locator('#map-info').textContent()).toContain(lang === 'en' ? shelter.name.en : shelter.name.ja);
        const zoneLabel = m.labels.find((l) => l.key.startsWith('zone:'));
        if (zoneLabel) {
          await page.touchscreen.tap(centre(zoneLabel.box).x, centre(zoneLabel.box).y);
          await expect.poll(() => page.locator('#map-info').getAttribute('data-info')).toBe(zoneLabel.key);
          const zone = region.noFlyZones.find((z, i) => `zone:${(z as { id?: string }).id ?? `zone-${i}`}` === zoneLabel.key)!;
          expect(await page.locator('#map-info').textContent()).toContain(lang === 'en' ? zone.name.en : zone.name.ja);
        }
        await page.screenshot({ path: shotPath('map', `${size.name}-${lang}-info`) });
        await context.close();
      });
    }
  }

  it('pans with a drag, zooms with the wheel, the buttons and a pinch, and a live update moves nothing', { timeout: 60_000 }, async () => {
    const { context, page } = await newPage(browser, problems, { width: 1024, height: 768 }, { hasTouch: true });
    await login(page, t.cloud.urls.http, 'coordinator', 'demo-coordinator-pass', 'ja');
    await page.locator('#map .geo .sea').waitFor({ state: 'attached' });
    const dotAt = async () => centre((await page.locator('#map [data-hub="nomi-terai"] .hub-dot').boundingBox())!);
    const zoom = async () => Number(await page.locator('#map svg').getAttribute('data-zoom'));
    const renders = async () => Number(await page.locator('#main').getAttribute('data-renders'));

    const before = await dotAt();
    const svgBox = (await page.locator('#map svg').boundingBox())!;
    const from = { x: svgBox.x + svgBox.width / 2 + 37, y: svgBox.y + svgBox.height / 2 + 41 }; // a spot with nothing on it
    await page.mouse.move(from.x, from.y);
    await page.mouse.down();
    for (let i = 1; i <= 5; i++) await page.mouse.move(from.x + i * 20, from.y + i * 10);
    await page.mouse.up();
    const after = await dotAt();
    expect(after.x - before.x).toBeCloseTo(100, 0);
    expect(after.y - before.y).toBeCloseTo(50, 0);
    expect(await picked(page)).toEqual([]); // a drag is not a tap

    // A live update lands: the map stays where the coordinator put it.
    const r0 = await renders();
    await sim.raise('nomi-terai', { kind: 'locker', device: 'locker-a', event: 'tamper', compartment: 'A02' });
    await expect.poll(renders).toBeGreaterThan(r0);
    expect(await dotAt()).toEqual(after);

    const z0 = await zoom();
    await page.mouse.move(svgBox.x + svgBox.width / 2, svgBox.y + svgBox.height / 2);
    await page.mouse.wheel(0, -400);
    await expect.poll(zoom).toBeGreaterThan(z0);
    const z1 = await zoom();
    await page.locator('#map [data-zoom-in]').click();
    await expect.poll(zoom).toBeGreaterThan(z1);
    await page.locator('#map [data-zoom-reset]').click();
    await expect.poll(zoom).toBe(1);

    // Two fingers moving apart zoom in (pointer events as a touch screen sends them).
    // A string, so this Node-side file needs no DOM types.
    await page.evaluate(`(() => {
      const svg = document.querySelector('#map svg');
      const r = svg.getBoundingClientRect();
      const [cx, cy] = [r.x + r.width / 2, r.y + r.height / 2];
      const ev = (type, id, x) => svg.dispatchEvent(new PointerEvent(type, { pointerId: id, pointerType: 'touch', clientX: x, clientY: cy, bubbles: true, isPrimary: id === 1 }));
      ev('pointerdown', 1, cx - 40);
      ev('pointerdown', 2, cx + 40);
      for (let i = 1; i <= 5; i++) {
        ev('pointermove', 1, cx - 40 - i * 16);
        ev('pointermove', 2, cx + 40 + i * 16);
      }
      ev('pointerup', 1, cx - 120);
      ev('pointerup', 2, cx + 120);
    })()`);
    await expect.poll(zoom).toBeGreaterThan(1.8);
    expect(await picked(page)).toEqual([]); // a pinch is not a tap
    await context.close();
  });

  it('draws the coastline once the base map can be fetched again after a failure (a cloud restart, a dropped link)', async () => {
    const { context, page } = await newPage(browser, problems, { width: 1024, height: 768 });
    let refused = 0;
    await page.route((url) => url.pathname === '/api/v1/region/geography', async (route) => {
      if (refused++ === 0) return route.abort('connectionreset');
      return route.continue();
    });
    await login(page, t.cloud.urls.http, 'coordinator', 'demo-coordinator-pass', 'ja');
    await page.locator('#map [data-hub]').first().waitFor();
    await page.locator('#map .geo .sea').waitFor({ state: 'attached', timeout: 10_000 });
    expect(refused).toBeGreaterThanOrEqual(2);
    // The refused request is the one console error this page may log.
    for (const p of problems.filter((x) => /geography|ERR_CONNECTION_RESET/.test(x))) problems.splice(problems.indexOf(p), 1);
    await context.close();
  });

  it('shows only catalogue text on the map, its legend and a tapped feature\'s details', async () => {
    const { context, page } = await newPage(browser, problems, { width: 1024, height: 768 }, { hasTouch: true });
    await login(page, t.cloud.urls.http, 'coordinator', 'demo-coordinator-pass', 'keys');
    await page.locator('#map .geo .sea').waitFor({ state: 'attached' });
    const dot = centre((await page.locator('#map [data-hub="nomi-wake"] .hub-dot').boundingBox())!);
    await page.touchscreen.tap(dot.x, dot.y);
    await page.locator('#map-info').waitFor();
    expect((await textOutsideCatalogue(page)).filter((x) => !x.includes('⟦'))).toEqual([]);
    // Every map key the page used exists in both catalogues.
    const used = await page.locator('#map, .map-card .legend').evaluateAll((els) => els.map((e) => e.textContent ?? '').join(' '));
    const keys = [...used.matchAll(/⟦(map\.[^⟧]+)⟧/g)].map((x) => x[1]!);
    expect(keys.length).toBeGreaterThan(5);
    for (const lang of LANGS) expect(keys.filter((k) => !(k in catalogue(lang))), lang).toEqual([]);
    await context.close();
  });

  it('logged no console errors', () => {
    expect(problems).toEqual([]);
  });
});
