import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRegionFile } from '../cloud/hubs/region-loader.ts';
import type { EdgeAgent } from '../edge/agent.ts';
import { startRegionSimulator, type RegionSimulator } from '../simulators/region-simulator.ts';
import { REGION_FILE, ROOT, startTestCloud, tempDir, type TestCloud } from './support/cloud-harness.ts';
import { deviceLoginsOf, startTestEdge, testEdgeEnv } from './support/edge-harness.ts';
import { textOutsideCatalogue } from './support/console-browser.ts';
import { waitFor } from './support/ports.ts';

/**
 * The two web consoles in real headless Chromium (Debian's `chromium`, driven by playwright-core —
 * no browser is downloaded) against a running system: the cloud, an edge agent at every hub of the
 * region, and simulated devices at three hubs behind their agents. Screenshots go to test-artifacts/.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = path.join(ROOT, 'test-artifacts');
const REGION = 'ishikawa-nomi';
const MARKUP = '<img src=x onerror=alert(1)>';
const STAFF_HUBS = ['nomi-terai', 'nomi-kokufu'];
const SWITCHED = ['nomi-wake', 'hakusan-tsurugi'];

// A copy of the region file in which a hub's name carries markup, as a careless edit or a hostile
// import might: it must be shown as text.
const dir = tempDir('console');
const regionCopy = path.join(dir, 'region.json');
const raw = JSON.parse(fs.readFileSync(REGION_FILE, 'utf8')) as { hubs: { id: string; name: { ja: string; en: string } }[] };
const kokufu = raw.hubs.find((h) => h.id === 'nomi-kokufu')!;
kokufu.name = { ja: `${MARKUP}国府地区公民館`, en: `${MARKUP}Kokufu Hall` };
fs.writeFileSync(regionCopy, JSON.stringify(raw));
const region = loadRegionFile(regionCopy);

let t: TestCloud;
let agents: EdgeAgent[] = [];
let sim: RegionSimulator;
let browser: Browser;
const problems: string[] = [];

async function newPage(viewport: { width: number; height: number }): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport, locale: 'ja-JP', timezoneId: 'Europe/London' }); // not Japan: dates must still show JST
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('dialog', (d) => {
    problems.push(`dialog opened: ${d.message()}`); // alert(1) from injected markup would land here
    void d.dismiss();
  });
  return { context, page };
}

async function login(page: Page, username: string, password: string) {
  await page.goto(t.cloud.urls.http);
  await page.locator('#username').fill(username);
  await page.locator('#password').fill(password);
  await page.locator('#login-form button[type="submit"]').click();
}


beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  t = await startTestCloud({ REGION_FILE: regionCopy, MQTT_WS_PORT: 'off' });
  agents = await Promise.all(region.hubs.map((h) =>
    startTestEdge(testEdgeEnv({ hub: h.id, cloudUrl: t.cloud.urls.mqtt, password: t.credentials[h.id]!.password, dataDir: path.join(dir, h.id) }))));
  await waitFor('every agent connected', () => agents.every((a) => a.uplink.connected), 15_000);
  const local = Object.fromEntries(agents.map((a) => [a.hubId, a.localMqttUrl]));
  sim = await startRegionSimulator({
    brokerUrl: t.cloud.urls.mqtt, brokerUrlFor: (hub) => local[hub]!, region, hubs: [...STAFF_HUBS, 'rs-komatsu-kibagata'], publishStatus: false,
    deviceLogins: deviceLoginsOf(agents),
    seed: 11, timeScale: 5, rates: { droneHz: 1, lockerIntervalS: 1, sensorIntervalS: 1 },
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await sim?.stop();
  await Promise.all(agents.map((a) => a.close()));
  await t?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('hub staff console', () => {
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    ({ context, page } = await newPage({ width: 1024, height: 768 }));
    await login(page, 'staff-terai', 'demo-staff-pass');
    await page.locator('#staff-console').waitFor();
  });
  afterAll(async () => context?.close());

  it('shows only the account\'s hubs, live lockers, and no mode switch; the API refuses a switch with 403', async () => {
    const tabs = await page.locator('#hub-tabs button').evaluateAll((els) => els.map((e) => e.getAttribute('data-hub')));
    expect(tabs).toEqual(STAFF_HUBS);
    await page.locator('#staff-lockers [data-compartment="A01"]').waitFor({ timeout: 10_000 });
    await expect.poll(() => page.locator('#link-state').textContent(), { timeout: 10_000 }).toBe('回線：接続中');
    expect(await page.locator('#mode-form, #switch-button').count()).toBe(0);

    // The same session, called directly (outside the page, so the browser logs no failed request).
    const cookie = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
    const res = await fetch(`${t.cloud.urls.http}/api/v1/regions/${REGION}/mode`, {
      method: 'POST', headers: { 'content-type': 'application/json', cookie }, body: JSON.stringify({ mode: 'emergency', reason: 'staff try' }),
    });
    expect(res.status).toBe(403);
    const hubs = (await (await fetch(`${t.cloud.urls.http}/api/v1/hubs`, { headers: { cookie } })).json()) as { hubs: { id: string }[] };
    expect(hubs.hubs.map((h) => h.id).sort()).toEqual([...STAFF_HUBS].sort());
  });

  it('shows a compartment alarm from a device within seconds, literally, and acknowledges it', async () => {
    const detail = `${MARKUP} 扉が開いたまま 180 秒`;
    const started = Date.now();
    await sim.raise('nomi-terai', { kind: 'locker', device: 'locker-a', event: 'door_open_too_long', compartment: 'A01', detail });
    const item = page.locator('#staff-alarms li.alarm[data-kind="door_open_too_long"]', { has: page.locator('.alarm-compartment', { hasText: 'A01' }) });
    await item.waitFor({ timeout: 10_000 });
    const elapsed = Date.now() - started;
    console.log(`console: simulator raise → alarm visible in the staff console: ${elapsed} ms`);
    expect(elapsed).toBeLessThan(5_000);
    // The headline is the catalogue's; the device's own text is one tap away, literally.
    await item.locator('.alarm-device-toggle').click();
    expect(await item.locator('.alarm-device-detail').textContent()).toContain(MARKUP);
    expect(await page.locator('main img').count()).toBe(0);

    const id = (await item.getAttribute('data-alarm-id'))!;
    await page.screenshot({ path: path.join(ARTIFACTS, 'staff-console.png'), fullPage: true });
    await item.locator('button.ack').click();
    await page.locator(`#staff-alarms li[data-alarm-id="${id}"] .acked`).waitFor({ timeout: 5_000 });
    const alarm = (await (await t.api(`/api/v1/alarms/${id}`)).json()) as { state: string; acknowledgedBy: string };
    expect(alarm).toMatchObject({ state: 'acknowledged', acknowledgedBy: 'staff-terai' });
  });

  it('shows a hub name carrying markup as text', async () => {
    await page.locator('#hub-tabs button[data-hub="nomi-kokufu"]').click();
    await expect.poll(() => page.locator('#hub-header h2').textContent()).toBe(`${MARKUP}国府地区公民館`);
    expect(await page.locator('#hub-tabs button[data-hub="nomi-kokufu"]').textContent()).toContain(MARKUP);
    expect(await page.locator('img').count()).toBe(0);
    await page.locator('#hub-tabs button[data-hub="nomi-terai"]').click();
  });

  it('switches language, remembers it, and shows only catalogue text', async () => {
    await expect.poll(() => page.locator('#alarms-h').textContent()).toBe('この拠点のアラーム');
    await page.locator('#lang-toggle').click();
    await expect.poll(() => page.locator('#alarms-h').textContent()).toBe('Alarms at this hub');
    expect(await page.locator('#lockers-h').textContent()).toBe('Lockers');
    await page.reload();
    await expect.poll(() => page.locator('#alarms-h').textContent(), { timeout: 10_000 }).toBe('Alarms at this hub');
    expect(await page.locator('html').getAttribute('lang')).toBe('en');
    await page.locator('#lang-toggle').click();
    await expect.poll(() => page.locator('#alarms-h').textContent()).toBe('この拠点のアラーム');

    await page.goto(`${t.cloud.urls.http}/console/staff?lang=keys`);
    await page.locator('#staff-lockers [data-compartment="A01"]').waitFor({ timeout: 10_000 });
    expect(await textOutsideCatalogue(page)).toEqual([]);
  });
});

describe('coordinator console', () => {
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    ({ context, page } = await newPage({ width: 768, height: 1024 }));
    await login(page, 'coordinator', 'demo-coordinator-pass');
    await page.locator('#coordinator-console').waitFor();
  });
  afterAll(async () => context?.close());

  it('draws the region map from region data', async () => {
    await expect.poll(() => page.locator('#map g.hub').count(), { timeout: 10_000 }).toBe(region.hubs.length);
    expect(await page.locator('#map g.site').count()).toBe(region.landingSites.length);
    expect(await page.locator('#map polygon.nofly').count()).toBe(region.noFlyZones.length);
    expect(await page.locator('#map polyline.route').count()).toBe(region.reliefRoutes.length);
    expect(await page.locator('#map [data-label-for="hub:nomi-kokufu"] text').textContent()).toBe(`${MARKUP}国府地区公民館`);
    // This copy of the region has no base map next to it: the map draws without one and asks for none.
    expect(await page.locator('#map .geo').count()).toBe(0);
    expect(await page.locator('img').count()).toBe(0);
  });

  it('switches two hubs to emergency with a reason and confirmation, sees every acknowledgement, switches back', async () => {
    for (const hub of SWITCHED) await page.locator(`#hub-picker input[value="${hub}"]`).check();
    await page.locator('#switch-button').click();
    await expect.poll(() => page.locator('#switch-error').textContent()).toBe('理由を入力してください。'); // a reason is required
    expect(await page.locator('#confirm-dialog').isVisible()).toBe(false);
    await page.locator('#reason').fill(`土砂災害警戒情報 ${MARKUP}`);
    await page.locator('#switch-button').click();
    await page.locator('#confirm-dialog').waitFor();
    expect(await page.locator('#confirm-body').textContent()).toContain(MARKUP);
    const started = Date.now();
    await page.locator('#confirm-ok').click();

    await page.locator('#ack-progress[data-acknowledged="13"][data-total="13"]').waitFor({ timeout: 15_000 });
    console.log(`console: coordinator switch → all ${region.hubs.length} acknowledgements shown: ${Date.now() - started} ms`);
    const view = (await (await t.api(`/api/v1/regions/${REGION}/mode`)).json()) as { desired: { version: number; hubs: Record<string, string> } };
    expect(view.desired).toMatchObject({ version: 1, hubs: { 'nomi-wake': 'emergency', 'hakusan-tsurugi': 'emergency' } });
    await expect.poll(() => page.locator('#map g.hub.emergency').evaluateAll((els) => els.map((e) => e.getAttribute('data-hub')).sort())).toEqual([...SWITCHED].sort());
    // The mode panel lists the two hubs in emergency mode, and the switch left nothing selected.
    expect((await page.locator('#emergency-hubs li').evaluateAll((els) => els.map((e) => e.getAttribute('data-hub')))).sort()).toEqual([...SWITCHED].sort());
    expect(await page.locator('#hub-picker input:checked, #map g.hub.selected').count()).toBe(0);
    expect(await page.locator('#mode-status q').textContent()).toBe(`土砂災害警戒情報 ${MARKUP}`);
    await page.screenshot({ path: path.join(ARTIFACTS, 'coordinator-console.png'), fullPage: true });
    await page.setViewportSize({ width: 1024, height: 768 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'coordinator-console-landscape.png'), fullPage: true });

    await page.locator('input[name="mode"][value="normal"]').check();
    await page.locator('input[name="scope"][value="region"]').check();
    await page.locator('#reason').fill('警戒解除');
    await page.locator('#switch-button').click();
    await page.locator('#confirm-ok').click();
    await expect.poll(async () => (await (await t.api(`/api/v1/regions/${REGION}/mode`)).json() as { desired: { version: number } }).desired.version).toBe(2);
    await page.locator('#ack-progress[data-acknowledged="13"][data-total="13"]').waitFor({ timeout: 15_000 });
    await expect.poll(() => page.locator('#map g.hub.emergency').count()).toBe(0);
  });

  it('shows only catalogue text', async () => {
    await page.goto(`${t.cloud.urls.http}/console/coordinator?lang=keys`);
    await expect.poll(() => page.locator('#map g.hub').count(), { timeout: 10_000 }).toBe(region.hubs.length);
    await page.locator('#ack-progress').waitFor();
    expect(await textOutsideCatalogue(page)).toEqual([]);
  });
});

describe('sign-in', () => {
  it('says why a sign-in failed, in the language shown, and keeps saying it after a switch of language', async () => {
    const { context, page } = await newPage({ width: 768, height: 1024 });
    await login(page, 'coordinator', 'not-the-password');
    const error = page.locator('#login-error');
    // A refused sign-in takes a password check at OWASP's scrypt cost (~180 ms quiet; seconds on a loaded machine).
    await expect.poll(() => error.textContent(), { timeout: 15_000 }).toBe('ユーザー名またはパスワードが違います。');
    await page.locator('#lang-toggle').click();
    await expect.poll(() => error.textContent()).toBe('Wrong user name or password.');
    await context.close();
    // The refused sign-in itself is the one console error this page may log (the browser reports the 401).
    const mine = problems.filter((p) => /401/.test(p));
    expect(mine.length).toBeLessThanOrEqual(1);
    for (const p of mine) problems.splice(problems.indexOf(p), 1);
  });
});

describe('every page', () => {
  it('logged no console errors, page errors or dialogs', () => {
    expect(problems).toEqual([]);
  });
});
