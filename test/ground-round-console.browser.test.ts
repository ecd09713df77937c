import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, startTestCloud, type TestCloud } from './support/cloud-harness.ts';

/**
 * Issue 12, defect 2: the hub staff console's "by bus" list, in real headless Chromium (Debian's
 * `chromium` via playwright-core) at 1024×768. nomi-kokufu has no drone, so an order from it goes on
 * the Nomi bus; staff-terai (hubs nomi-terai and nomi-kokufu) record it loaded. The screenshot goes
 * to test-artifacts/.
 */
const JA = JSON.parse(fs.readFileSync(path.join(ROOT, 'cloud/console/public/i18n/ja.json'), 'utf8')) as Record<string, string>;
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = path.join(ROOT, 'test-artifacts');
let t: TestCloud;
let browser: Browser;
const problems: string[] = [];

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  t = await startTestCloud({ MQTT_WS_PORT: 'off' });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
});
afterAll(async () => {
  await browser?.close();
  await t?.stop();
});

describe('hub staff console: orders on a ground round', () => {
  it('lists the bus order at its origin hub; "loaded on the bus" records it on board, by the signed-in account', async () => {
    const created = await t.api('/api/v1/orders', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ originHub: 'nomi-kokufu', destination: { type: 'locker', hub: 'nomi-wake' }, weightKg: 3, reference: 'BUS-0001' }) });
    const order = (await created.json()) as { id: string };
    await expect.poll(async () => ((await (await t.api(`/api/v1/orders/${order.id}`)).json()) as { state: string }).state).toBe('assigned');

    const context = await browser.newContext({ viewport: { width: 1024, height: 768 }, locale: 'ja-JP', timezoneId: 'Europe/London' });
    const page = await context.newPage();
    page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    await page.goto(t.cloud.urls.http);
    await page.locator('#username').fill('staff-terai');
    await page.locator('#password').fill('demo-staff-pass');
    await page.locator('#login-form button[type="submit"]').click();
    await page.locator('#staff-console').waitFor();
    await page.locator('#hub-tabs button[data-hub="nomi-kokufu"]').click();

    const item = page.locator(`#staff-orders li[data-round-order][data-order-id="${order.id}"]`);
    await item.waitFor({ timeout: 10_000 });
    expect(await item.locator('.badge').textContent()).toBe(JA['orderState.assigned']);
    expect(await item.textContent()).toContain('BUS-0001');
    expect(await item.textContent()).toContain('のみバス 寺井・辰口線（貨客混載）'); // the round's name from the region file
    expect(await item.locator('button').allTextContents()).toEqual([JA['orders.round.loaded'], JA['orders.round.failed']]);
    await item.screenshot({ path: path.join(ARTIFACTS, 'staff-ground-round-before.png') });
    await item.locator('button', { hasText: JA['orders.round.loaded']! }).click();
    await expect.poll(() => item.locator('.badge').textContent()).toBe(JA['orderState.on_board']);
    // At the origin hub, once on board only "failed" is left (delivered is for the destination's staff).
    expect(await item.locator('button').allTextContents()).toEqual([JA['orders.round.failed']]);
    await page.screenshot({ path: path.join(ARTIFACTS, 'staff-ground-round.png'), fullPage: true });

    const audit = ((await (await t.api(`/api/v1/orders/${order.id}`)).json()) as { audit: { to: string; actor: string }[] }).audit;
    expect(audit.at(-1)).toMatchObject({ to: 'on_board', actor: 'staff-terai' });
    expect(problems).toEqual([]);
    await context.close();
  });
});
