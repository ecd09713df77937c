import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ROOT } from './cloud-harness.ts';

/**
 * Shared pieces of the consoles' browser tests: Debian's Chromium through playwright-core (no browser
 * is downloaded), the sizes and languages every console screen is checked at, sign-in, the catalogues
 * as the console merges them, and the "text outside the catalogue" probe used with `?lang=keys`.
 */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const SIZES = [
  { name: '1440x900', width: 1440, height: 900 },
  { name: '1024x768', width: 1024, height: 768 },
  { name: '768x1024', width: 768, height: 1024 },
] as const;
export const LANGS = ['ja', 'en'] as const;
export type Lang = (typeof LANGS)[number];

const I18N = path.join(ROOT, 'cloud/console/public/i18n');
/** The parts besides `<lang>.json`, as cloud/console/public/lib/i18n.js loads them. */
export const CATALOGUE_PARTS = ['staff', 'coord', 'map', 'alarms'] as const;

/** A language's whole catalogue (common part merged with every screen's part), as the console sees it. */
export function catalogue(lang: Lang): Record<string, string> {
  const files = [`${lang}.json`, ...CATALOGUE_PARTS.map((p) => `${lang}.${p}.json`)];
  return Object.assign({}, ...files.map((f) => JSON.parse(fs.readFileSync(path.join(I18N, f), 'utf8')) as Record<string, string>));
}

export async function launchChromium(): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * A page whose console errors, page errors and dialogs land in `problems` (a test ends by expecting
 * it empty). The time zone is not Japan's on purpose: the consoles must still show JST.
 */
export async function newPage(browser: Browser, problems: string[], viewport: { width: number; height: number }, opts: { hasTouch?: boolean } = {}): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport, locale: 'ja-JP', timezoneId: 'Europe/London', hasTouch: opts.hasTouch ?? false });
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('dialog', (d) => {
    problems.push(`dialog opened: ${d.message()}`);
    void d.dismiss();
  });
  return { context, page };
}

/** Signs in through the form; `lang` (ja, en or keys) is passed as `?lang=` and remembered by the console. */
export async function login(page: Page, baseUrl: string, username: string, password: string, lang?: Lang | 'keys'): Promise<void> {
  await page.goto(lang ? `${baseUrl}/?lang=${lang}` : baseUrl);
  await page.locator('#username').fill(username);
  await page.locator('#password').fill(password);
  await page.locator('#login-form button[type="submit"]').click();
}

/** Every visible text node either comes from the catalogue (`⟦key⟧` under ?lang=keys) or is a value marked data-v. */
export async function textOutsideCatalogue(page: Page): Promise<string[]> {
  // A string, so this Node-side file needs no DOM types.
  return page.evaluate<string[]>(`(() => {
    const bad = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const text = (n.textContent || '').trim();
      if (!text) continue;
      const parent = n.parentElement;
      if (!parent || parent.closest('[data-v], script, style')) continue;
      if (/^(⟦[^⟧]+⟧\\s*)+$/.test(text)) continue;
      bad.push(parent.tagName.toLowerCase() + '#' + parent.id + ': ' + text);
    }
    return bad;
  })()`);
}

/** Where screenshots go that a person looks at (not committed). */
export function shotPath(area: string, name: string): string {
  const dir = path.join('/tmp/shots', area);
  fs.mkdirSync(dir, { recursive: true });
  return path.join(dir, `${name}.png`);
}
