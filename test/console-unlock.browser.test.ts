import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OrderStore } from '../cloud/orders/order-store.ts';
import { ROOT, startTestCloud, type TestCloud } from './support/cloud-harness.ts';

/**
 * Issue 12 (3) in the staff console (real headless Chromium, 1024×768): a compartment locked by
 * wrong pickup codes shows a button; pressing it opens the compartment and shows the new code once.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = path.join(ROOT, 'test-artifacts');
const DEST = 'nomi-kokufu';
let t: TestCloud;
let browser: Browser;
let orderId: string;

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  t = await startTestCloud({ MQTT_WS_PORT: 'off' });
  const res = await t.api('/api/v1/orders', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ originHub: 'rs-komatsu-kibagata', destination: { type: 'locker', hub: DEST }, weightKg: 1, priority: 'normal', reference: 'PARCEL-0042' }),
  });
  orderId = ((await res.json()) as { id: string }).id;
  // Put the order where three wrong codes leave it (the full story runs in orders.test.ts).
  const store = (t.cloud.orders as unknown as { o: { store: OrderStore } }).o.store;
  const now = Date.now();
  await store.transition(orderId, 'assigned', now, 'system', 'test', { carrier: 'drone', droneHub: 'rs-komatsu-kibagata', droneId: 'drone-1', lockerId: 'locker-a', compartmentId: 'A04', missionId: `m-${orderId}` });
  await store.transition(orderId, 'in_flight', now, 'system', 'test');
  await store.transition(orderId, 'in_locker', now, 'system', 'test', { pickupHash: 'x', pickupReveal: null });
  await store.update(orderId, now, { wrongCodes: 3, locked: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await t?.stop();
});

describe('staff console: a locked compartment', () => {
  it('shows the lock and a button; pressing it opens the compartment and shows the new code once', async () => {
    const context = await browser.newContext({ viewport: { width: 1024, height: 768 }, locale: 'ja-JP' });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(t.cloud.urls.http);
    await page.locator('#username').fill('staff-terai');
    await page.locator('#password').fill('demo-staff-pass');
    await page.locator('#login-form button[type="submit"]').click();
    await page.locator(`#hub-tabs button[data-hub="${DEST}"]`).click();
    const item = page.locator(`li[data-order-id="${orderId}"]`);
    await item.locator('button.unlock').waitFor({ timeout: 10_000 });
    expect(await item.textContent()).toContain('暗証番号3回誤りでロック中');
    await item.scrollIntoViewIfNeeded();
    await page.screenshot({ path: path.join(ARTIFACTS, 'staff-console-locked-compartment.png') });
    await item.locator('button.unlock').click();
    await item.locator('.pickup-code').waitFor({ timeout: 10_000 });
    const code = (await item.locator('.pickup-code').textContent())!.trim();
    expect(code).toMatch(/^\d{6}$/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'staff-console-unlocked-compartment.png') });
    const order = (await (await t.api(`/api/v1/orders/${orderId}`)).json()) as { compartmentLocked: boolean; audit: { actor: string; reason: string }[] };
    expect(order.compartmentLocked).toBe(false);
    expect(order.audit.at(-1)).toMatchObject({ actor: 'staff-terai', reason: expect.stringContaining('unlocked after 3 wrong pickup codes') });
    expect((await t.cloud.commands.list(DEST, { limit: 10 })).map((c) => [c.command, c.args])).toContainEqual(['locker.unlock', { compartment: 'A04' }]);
    expect(problems).toEqual([]);
    await context.close();
  }, 60_000);
});
