import fs from 'node:fs';
import type { Browser } from 'playwright-core';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCloud, type Cloud } from '../cloud/cloud.ts';
import { loadCloudConfig } from '../cloud/config.ts';
import { tempDir, testCloudEnv } from './support/cloud-harness.ts';
import { launchChromium, login, newPage, SIZES } from './support/console-browser.ts';

/**
 * Issue 13, item 4, across an outage (item 6): the live feed sends hubs, orders and the mode as they are
 * when a stream opens, but alarms only as they change. When the console's stream reconnects — the cloud
 * restarted, the tablet's link dropped — what changed meanwhile must still reach the screen. Before, a
 * critical alarm raised during the gap never appeared and one acknowledged elsewhere kept its button and
 * its count, while the console said 「ライブ更新中」, until someone reloaded the page.
 */
const SECOND = 'nomi-kokufu';
const dataDir = tempDir('alarms-reconnect');
let cloud: Cloud;
let browser: Browser;
const problems: string[] = [];

const start = (httpPort: string) =>
  startCloud(loadCloudConfig(testCloudEnv(dataDir, { MQTT_WS_PORT: 'off', HTTP_PORT: httpPort })), pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }));

beforeAll(async () => {
  cloud = await start('0');
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await cloud?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('alarms after the live feed reconnects', () => {
  it('shows the alarms as they are now: one raised during the gap appears, one acknowledged meanwhile loses its button', { timeout: 60_000 }, async () => {
    const { context, page } = await newPage(browser, problems, SIZES[2], { hasTouch: true });
    try {
      await login(page, cloud.urls.http, 'staff-terai', 'demo-staff-pass', 'ja');
      await page.locator('#staff-console').waitFor();
      const before = await cloud.alarms.raise({ hub: SECOND, device: 'locker-a', compartment: 'A01', kind: 'tamper', detail: 'tamper at A01' });
      await page.locator(`#hub-tabs button[data-hub="${SECOND}"]`).click();
      const item = (compartment: string) => page.locator('#staff-alarms li.alarm', { has: page.locator('.alarm-compartment', { hasText: compartment }) });
      await item('A01').locator('button.ack').waitFor({ timeout: 10_000 });

      // The cloud restarts on the same address; before the console's stream is back, the alarms change.
      const port = new URL(cloud.urls.http).port;
      await cloud.close();
      cloud = await start(port);
      await cloud.alarms.acknowledge(before.id, 'coordinator', null);
      await cloud.alarms.raise({ hub: SECOND, device: 'locker-a', compartment: 'A02', kind: 'tamper', detail: 'tamper at A02' });

      await item('A02').locator('button.ack').waitFor({ timeout: 20_000 });
      await expect.poll(() => item('A01').locator('button.ack').count(), { timeout: 5_000 }).toBe(0);
      expect(await item('A01').getAttribute('class')).toContain('st-acknowledged');
      expect(await page.locator('#staff-alarm-total').getAttribute('data-open')).toBe('1');
      expect(problems).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
