import http from 'node:http';
import { CATALOGUE_PARTS } from './support/console-browser.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCloud, type TestCloud } from './support/cloud-harness.ts';

/** The consoles' files and live feed as served by the cloud (the browser tests drive the pages themselves). */
let t: TestCloud;
beforeAll(async () => {
  t = await startTestCloud({ MQTT_WS_PORT: 'off' });
});
afterAll(async () => t?.stop());

describe('console serving', () => {
  it('serves the pages with their content types and a strict Content-Security-Policy', async () => {
    for (const [path, type] of [['/', 'text/html'], ['/console/app.js', 'text/javascript'], ['/console/styles.css', 'text/css'], ['/console/i18n/ja.json', 'application/json'], ['/console/staff', 'text/html']]) {
      const r = await fetch(`${t.cloud.urls.http}${path}`);
      expect(r.status, path).toBe(200);
      expect(r.headers.get('content-type'), path).toContain(type!);
      expect(r.headers.get('content-security-policy'), path).toContain("script-src 'self'");
      expect(r.headers.get('content-security-policy'), path).not.toContain('unsafe-inline');
    }
    const html = await (await fetch(t.cloud.urls.http)).text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // no inline script
  });

  it('never serves files outside its folder', async () => {
    for (const path of ['/console/../../package.json', '/console/%2e%2e/%2e%2e/package.json', '/console/..%2f..%2fcloud.ts', '/console/nope.js']) {
      const r = await fetch(`${t.cloud.urls.http}${path}`);
      // A path that leaves /console/ matches no route: without a session that is a 401 (nothing is
      // open unless a route says so), with one a 404; never the file.
      expect([401, 404], path).toContain(r.status);
      expect(await r.text(), path).not.toContain('chiiki-drone-logistics');
      expect((await t.api(path)).status, path).toBe(404);
    }
  });

  it('lets a browser revalidate a file instead of downloading it again (ETag → 304, @fastify/static)', async () => {
    const first = await fetch(`${t.cloud.urls.http}/console/app.js`);
    const etag = first.headers.get('etag');
    expect(etag).toBeTruthy();
    expect(first.headers.get('cache-control')).toBe('no-cache');
    // node:http, as fetch adds Cache-Control: no-cache to a conditional request (which forbids a 304).
    const again = await new Promise<number>((resolve, reject) => {
      http.get(`${t.cloud.urls.http}/console/app.js`, { headers: { 'if-none-match': etag! } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      }).on('error', reject);
    });
    expect(again).toBe(304);
  });

  it('has the same keys in both catalogues, each key in one part only', async () => {
    const keys: Record<string, string[]> = { ja: [], en: [] };
    for (const lang of ['ja', 'en']) {
      for (const file of [`${lang}.json`, ...CATALOGUE_PARTS.map((p) => `${lang}.${p}.json`)]) {
        const r = await fetch(`${t.cloud.urls.http}/console/i18n/${file}`);
        expect(r.status, file).toBe(200);
        keys[lang]!.push(...Object.keys((await r.json()) as Record<string, string>));
      }
    }
    expect(new Set(keys.ja).size, 'a key in two parts').toBe(keys.ja!.length);
    expect([...keys.en!].sort()).toEqual([...keys.ja!].sort());
  });

  it('serves the console modules and morphdom as JavaScript', async () => {
    for (const file of ['lib/morph.js', 'staff/staff-view.js', 'coordinator/coordinator-view.js', 'map/region-map.js', 'alarms/alarm-list.js', 'vendor/morphdom.js']) {
      const r = await fetch(`${t.cloud.urls.http}/console/${file}`);
      expect(r.status, file).toBe(200);
      expect(r.headers.get('content-type'), file).toContain('javascript');
    }
  });

  it('gives the consoles every device\'s display name from the region file (names, not ids; issue 13, item 5)', async () => {
    const region = (await (await t.api('/api/v1/region')).json()) as {
      hubs: { id: string; drones: { id: string; name?: { ja: string; en: string } }[]; lockers: { id: string; name?: { ja: string; en: string } }[]; sensors: { id: string; name?: { ja: string; en: string } }[] }[];
    };
    const terai = region.hubs.find((h) => h.id === 'nomi-terai')!;
    expect(terai.drones).toContainEqual(expect.objectContaining({ id: 'drone-1', name: { ja: '配送ドローン1号機', en: 'Delivery drone 1' } }));
    expect(terai.lockers).toContainEqual(expect.objectContaining({ id: 'locker-a', name: { ja: '宅配ロッカーA', en: 'Parcel locker A' } }));
    expect(terai.sensors).toEqual([{ id: 'wx', name: { ja: '気象センサー', en: 'Weather sensor' } }]);
    for (const h of region.hubs) for (const d of [...h.drones, ...h.lockers, ...h.sensors]) expect(d.name?.ja, `${h.id}/${d.id}`).toBeTruthy();
  });

  it('serves the region\'s base map to a session, with its credit line, and 401 without one', async () => {
    expect((await fetch(`${t.cloud.urls.http}/api/v1/region/geography`)).status).toBe(401);
    const r = await t.api('/api/v1/region/geography');
    expect(r.status).toBe(200);
    const geo = (await r.json()) as { region: string; credit: { ja: string; en: string }; coastline: unknown[] };
    expect(geo.region).toBe('ishikawa-nomi');
    expect(geo.credit.en).toContain('GSHHG');
    expect(geo.coastline.length).toBeGreaterThan(0);
  });

  it('needs a session for the live feed and the regions', async () => {
    for (const path of ['/api/v1/events', '/api/v1/region', '/api/v1/regions']) expect((await fetch(`${t.cloud.urls.http}${path}`)).status, path).toBe(401);
    const r = await t.api('/api/v1/events');
    expect(r.headers.get('content-type')).toContain('text/event-stream');
    const reader = r.body!.getReader();
    let text = '';
    while (!text.includes('event: mode')) text += new TextDecoder().decode((await reader.read()).value);
    await reader.cancel();
    expect(text).toContain('event: hubs');
  });
});
