import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POLICY } from '../cloud/accounts/authorize.ts';
import { ROOT, authedFetch, startTestCloud, tempDir, testCloudEnv, type TestCloud } from './support/cloud-harness.ts';

/**
 * Accounts and roles enforced by the API (issue 5, item 1), over real HTTP against an in-process
 * cloud with the demo accounts (DEMO_CREDENTIALS=true).
 */
const REGION = 'ishikawa-nomi';
let t: TestCloud;
let base: string;

const login = (username: string, password: string) =>
  fetch(`${base}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) });
const cookieOf = (res: Response) => res.headers.get('set-cookie')!.split(';')[0]!;
const as = (token: string) => (p: string, init: RequestInit & { json?: unknown } = {}) =>
  authedFetch(base, token, p, init.json === undefined ? init : { ...init, headers: { 'content-type': 'application/json' }, body: JSON.stringify(init.json) });
const codeOf = async (res: Response) => ({ status: res.status, code: ((await res.json()) as { error?: { code: string } }).error?.code });

beforeAll(async () => {
  t = await startTestCloud();
  base = t.cloud.urls.http;
}, 30_000);
afterAll(async () => t?.stop());

describe('sign-in', () => {
  it('logs in with a session cookie, shows the account at /auth/me, and logs out', async () => {
    const res = await login('staff-terai', 'demo-staff-pass');
    expect(res.status).toBe(200);
    const body = (await res.json()) as { account: unknown; expiresAt: string };
    expect(body.account).toEqual({ username: 'staff-terai', displayName: '寺井地区公民館 スタッフ', role: 'staff', hubs: ['nomi-terai', 'nomi-kokufu'], regions: [REGION] });
    expect(Date.parse(body.expiresAt) - Date.now()).toBeGreaterThan(11.9 * 3_600_000);
    const setCookie = res.headers.get('set-cookie')!;
    expect(setCookie).toMatch(/^chiiki_session=[A-Za-z0-9_-]{40,}; /);
    expect(setCookie.split('; ').slice(1).sort()).toEqual(['HttpOnly', 'Max-Age=43200', 'Path=/', 'SameSite=Strict']); // no Secure over plain http

    const cookie = cookieOf(res);
    const me = await fetch(`${base}/api/v1/auth/me`, { headers: { cookie } });
    expect(me.status).toBe(200);
    expect(((await me.json()) as { account: { username: string } }).account.username).toBe('staff-terai');
    // The cookie's token also works as a bearer token.
    expect((await authedFetch(base, cookie.split('=')[1]!, '/api/v1/auth/me')).status).toBe(200);

    expect((await fetch(`${base}/api/v1/auth/logout`, { method: 'POST', headers: { cookie } })).status).toBe(204);
    expect(await codeOf(await fetch(`${base}/api/v1/auth/me`, { headers: { cookie } }))).toEqual({ status: 401, code: 'unauthenticated' });
  });

  it('refuses a wrong password and an unknown user alike, and counts both', async () => {
    expect(await codeOf(await login('coordinator', 'not-the-password'))).toEqual({ status: 401, code: 'invalid_credentials' });
    expect(await codeOf(await login('nobody-at-all', 'demo-coordinator-pass'))).toEqual({ status: 401, code: 'invalid_credentials' });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/api_logins_total\{result="invalid"\} [2-9]/);
  });

  it('answers 401 without a session on every API route, and keeps /healthz, /metrics and /docs open', async () => {
    for (const p of ['/api/v1/hubs', '/api/v1/hubs/nomi-terai', '/api/v1/alarms', '/api/v1/orders', `/api/v1/regions/${REGION}/mode`, '/api/v1/audit', '/api/v1/no-such-route']) {
      expect({ p, ...(await codeOf(await fetch(`${base}${p}`))) }).toEqual({ p, status: 401, code: 'unauthenticated' });
    }
    const post = await fetch(`${base}/api/v1/regions/${REGION}/mode`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'emergency', reason: 'x' }) });
    expect(await codeOf(post)).toEqual({ status: 401, code: 'unauthenticated' });
    expect(await codeOf(await authedFetch(base, 'made-up-token', '/api/v1/hubs'))).toEqual({ status: 401, code: 'unauthenticated' });
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/metrics`)).status).toBe(200);
    expect((await fetch(`${base}/docs/json`)).status).toBe(200);
  });
});

describe('roles', () => {
  let staff: ReturnType<typeof as>;
  let operator: ReturnType<typeof as>;
  let coordinator: ReturnType<typeof as>;
  beforeAll(async () => {
    const tokenOf = async (u: string, p: string) => cookieOf(await login(u, p)).split('=')[1]!;
    staff = as(await tokenOf('staff-terai', 'demo-staff-pass'));
    operator = as(await tokenOf('operator', 'demo-operator-pass'));
    coordinator = as(await tokenOf('coordinator', 'demo-coordinator-pass'));
  });

  it('staff see only their hubs, and another hub answers 403', async () => {
    const hubs = ((await (await staff('/api/v1/hubs')).json()) as { hubs: { id: string }[] }).hubs.map((h) => h.id);
    expect(hubs.sort()).toEqual(['nomi-kokufu', 'nomi-terai']);
    expect((await staff('/api/v1/hubs/nomi-terai')).status).toBe(200);
    expect(await codeOf(await staff('/api/v1/hubs/rs-komatsu-kibagata'))).toEqual({ status: 403, code: 'forbidden' });
    expect(await codeOf(await staff('/api/v1/alarms?hub=rs-komatsu-kibagata'))).toEqual({ status: 403, code: 'forbidden' });
    const mode = (await (await staff(`/api/v1/regions/${REGION}/mode`)).json()) as { hubs: { hub: string }[]; counts: { total: number } };
    expect(mode.hubs.map((h) => h.hub).sort()).toEqual(['nomi-kokufu', 'nomi-terai']);
    expect(mode.counts.total).toBe(2);
    expect(await codeOf(await staff('/api/v1/dead-letters'))).toEqual({ status: 403, code: 'forbidden' });
  });

  it("staff read the region's mode as it concerns their hubs: not other hubs' overrides, nor who switched them and why", async () => {
    type View = { desired: { hubs: Record<string, string>; reason: string; by: string | null }; allAcknowledged: boolean };
    const view = async () => (await (await staff(`/api/v1/regions/${REGION}/mode`)).json()) as View;
    const sw = (hubs: string[], reason: string) => coordinator(`/api/v1/regions/${REGION}/mode`, { method: 'POST', json: { mode: 'emergency', hubs, reason } });
    try {
      expect((await sw(['rs-komatsu-kibagata'], 'only kibagata: water main')).status).toBe(202);
      expect((await view()).desired).toMatchObject({ hubs: {}, reason: '', by: null });
      // The coordinator still sees all of it.
      expect(((await (await coordinator(`/api/v1/regions/${REGION}/mode`)).json()) as View).desired).toMatchObject({ hubs: { 'rs-komatsu-kibagata': 'emergency' }, reason: 'only kibagata: water main', by: 'coordinator' });
      expect((await sw(['nomi-terai'], 'terai: power cut')).status).toBe(202);
      expect((await view()).desired).toMatchObject({ hubs: { 'nomi-terai': 'emergency' }, reason: 'terai: power cut', by: 'coordinator' });
    } finally {
      await coordinator(`/api/v1/regions/${REGION}/mode`, { method: 'POST', json: { mode: 'normal', reason: 'test over' } });
    }
  });

  it('staff may not switch modes or create relief orders; a coordinator may', async () => {
    expect(await codeOf(await staff(`/api/v1/regions/${REGION}/mode`, { method: 'POST', json: { mode: 'emergency', reason: 'test' } }))).toEqual({ status: 403, code: 'forbidden' });
    const relief = { originHub: 'nomi-terai', destination: { type: 'locker', hub: 'nomi-kokufu' }, weightKg: 1, priority: 'relief' };
    expect(await codeOf(await staff('/api/v1/orders', { method: 'POST', json: relief }))).toEqual({ status: 403, code: 'forbidden' });
    const elsewhere = { originHub: 'rs-komatsu-kibagata', destination: { type: 'locker', hub: 'rs-komatsu-kibagata' }, weightKg: 1 };
    expect(await codeOf(await staff('/api/v1/orders', { method: 'POST', json: elsewhere }))).toEqual({ status: 403, code: 'forbidden' });
    const own = await staff('/api/v1/orders', { method: 'POST', json: { ...relief, priority: 'normal', by: 'someone else' } });
    expect(own.status).toBe(201);
    expect(((await own.json()) as { createdBy: string }).createdBy).toBe('staff-terai'); // the account, not the body's `by`

    const sw = await coordinator(`/api/v1/regions/${REGION}/mode`, { method: 'POST', json: { mode: 'emergency', hubs: ['nomi-terai'], reason: '訓練 drill' } });
    expect(sw.status).toBe(202);
    expect(((await sw.json()) as { by: string }).by).toBe('coordinator');
    expect((await coordinator(`/api/v1/regions/${REGION}/mode`, { method: 'POST', json: { mode: 'normal', reason: 'drill over' } })).status).toBe(202);
  });

  it('an operator reads everything and changes nothing', async () => {
    expect((await operator('/api/v1/hubs/rs-komatsu-kibagata')).status).toBe(200);
    expect((await operator('/api/v1/dead-letters')).status).toBe(200);
    expect(await codeOf(await operator(`/api/v1/regions/${REGION}/mode`, { method: 'POST', json: { mode: 'emergency', reason: 'x' } }))).toEqual({ status: 403, code: 'forbidden' });
    expect(await codeOf(await operator('/api/v1/hubs/nomi-terai/commands', { method: 'POST', json: { device: 'locker-a', command: 'locker.unlock', args: { compartment: 'A01' } } }))).toEqual({ status: 403, code: 'forbidden' });
    expect(await codeOf(await operator('/api/v1/audit'))).toEqual({ status: 403, code: 'forbidden' });
  });

  it('only an admin manages accounts, API tokens and hub credentials', async () => {
    expect(await codeOf(await coordinator('/api/v1/accounts'))).toEqual({ status: 403, code: 'forbidden' });
    const created = await t.api('/api/v1/accounts', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'tanaka', role: 'staff', hubs: ['nomi-wake'], displayName: '田中' }) });
    expect(created.status).toBe(201);
    const { password } = (await created.json()) as { password: string };
    expect((await login('tanaka', password)).status).toBe(200);

    const tok = await t.api('/api/v1/accounts/tanaka/tokens', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ label: 'tablet' }) });
    expect(tok.status).toBe(201);
    const tanaka = as(((await tok.json()) as { token: string }).token);
    expect(((await (await tanaka('/api/v1/hubs')).json()) as { hubs: { id: string }[] }).hubs.map((h) => h.id)).toEqual(['nomi-wake']);
    // Promoted: takes effect on the next request.
    expect((await t.api('/api/v1/accounts', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'tanaka', role: 'operator' }) })).status).toBe(200);
    expect((await tanaka('/api/v1/hubs/rs-komatsu-kibagata')).status).toBe(200);

    const cred = await t.api('/api/v1/hubs/nomi-terai/credentials', { method: 'POST' });
    expect(cred.status).toBe(201);
    const c = (await cred.json()) as { username: string; password: string };
    expect(await t.cloud.credentials.verify(c.username, c.password)).toEqual({ hubId: 'nomi-terai', region: REGION });
    expect(await codeOf(await coordinator('/api/v1/hubs/nomi-terai/credentials', { method: 'POST' }))).toEqual({ status: 403, code: 'forbidden' });
  });
});

describe('the role table', () => {
  it('has a row for every API route the cloud serves (a new route must be placed in it)', async () => {
    const spec = (await (await fetch(`${base}/docs/json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    const served = Object.entries(spec.paths).filter(([p]) => p.startsWith('/api/v1/') && p !== '/api/v1/auth/login')
      .flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ':$1')}`));
    expect(served.length).toBeGreaterThan(25);
    expect(served.filter((k) => !(k in POLICY))).toEqual([]);
  });
});

describe('audit', () => {
  it('records every mutating call with the account, and shows it to coordinators', async () => {
    const res = await t.api('/api/v1/orders', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ originHub: 'nomi-terai', destination: { type: 'site', siteId: 'nope' }, weightKg: 1, by: 'spoofed' }) });
    expect(res.status).toBe(400);
    await fetch(`${base}/api/v1/orders`, { method: 'POST' }); // no session
    const coordinator = await t.tokenFor('audit-reader', 'coordinator');
    type Entry = { account: string | null; role: string | null; method: string; route: string | null; path: string; status: number };
    const read = async () => ((await (await authedFetch(base, coordinator, '/api/v1/audit?limit=500')).json()) as { entries: Entry[] }).entries;
    // The entry is written in onResponse, after the answer is sent (on PostgreSQL at load, later still): poll for it.
    await expect.poll(async () => (await read())[0], { timeout: 10_000, interval: 50 }).toMatchObject({ account: null, method: 'POST', path: '/api/v1/orders', status: 401 });
    const entries = await read();
    expect(entries[1]).toMatchObject({ account: 'test-admin', role: 'admin', method: 'POST', route: '/api/v1/orders', path: '/api/v1/orders', status: 400 });
    expect(entries.some((e) => e.account === 'staff-terai' && e.route === '/api/v1/regions/:regionId/mode' && e.status === 403)).toBe(true);
    expect(entries.some((e) => e.account === 'coordinator' && e.route === '/api/v1/regions/:regionId/mode' && e.status === 202)).toBe(true);
    expect(entries.some((e) => e.route === '/api/v1/auth/login' && e.status === 401 && e.account === null)).toBe(true);
    expect(entries.every((e) => e.method !== 'GET')).toBe(true);
  });
});

describe('first admin, regions and hub credentials from the command line', () => {
  it('`npm run accounts -- create-admin` prints a generated password once, which signs in; `set-regions` and `npm run hub-credentials` work while the cloud runs', async () => {
    const dir = tempDir('create-admin');
    try {
      const cli = (...args: string[]) => execFileSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'cloud/accounts/accounts-cli.ts'), ...args], {
        cwd: ROOT, env: { ...process.env, ...testCloudEnv(dir, { DEMO_CREDENTIALS: 'false' }) }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
      });
      const out = cli('create-admin', 'alice');
      const printed = JSON.parse(out) as { username: string; role: string; password: string };
      expect(printed).toMatchObject({ username: 'alice', role: 'admin' });
      expect(printed.password.length).toBeGreaterThanOrEqual(20);
      const other = await startTestCloud({ DEMO_CREDENTIALS: 'false' }, dir);
      try {
        const res = await fetch(`${other.cloud.urls.http}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: printed.password }) });
        expect(res.status).toBe(200);
        expect(((await res.json()) as { account: { role: string } }).account.role).toBe('admin');
        expect(await other.cloud.accounts.get('admin')).toBeNull(); // no demo accounts without DEMO_CREDENTIALS

        // `set-regions` scopes a coordinator while the cloud runs; the next request sees it (issue 14, item 3).
        const alice = authedFetch.bind(null, other.cloud.urls.http, await other.tokenFor('alice'));
        const made = await alice('/api/v1/accounts', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'bousai', role: 'coordinator' }) });
        expect(made.status).toBe(201);
        const bousai = await other.tokenFor('bousai');
        const regionsOf = async () => ((await (await authedFetch(other.cloud.urls.http, bousai, '/api/v1/auth/me')).json()) as { account: { regions: string[] | null } }).account.regions;
        expect(await regionsOf()).toBeNull();
        expect(JSON.parse(cli('set-regions', 'bousai', REGION))).toEqual({ username: 'bousai', role: 'coordinator', regions: [REGION] });
        expect(await regionsOf()).toEqual([REGION]);
        expect(await codeOf(await authedFetch(other.cloud.urls.http, bousai, '/api/v1/regions/elsewhere/mode'))).toEqual({ status: 403, code: 'region_not_allowed' });
        expect(() => cli('set-regions', 'bousai', 'no-such-region')).toThrow(/not regions of this cloud: no-such-region/);
        expect(() => cli('set-regions', 'alice', REGION)).toThrow(/only coordinators are scoped/);
        JSON.parse(cli('set-regions', 'bousai', 'all'));
        expect(await regionsOf()).toBeNull();

        // `npm run hub-credentials -- set <hub>` while the cloud runs: the new password is checked at the next login.
        const cred = JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'cloud/hub-credentials-cli.ts'), 'set', 'nomi-terai'], {
          cwd: ROOT, env: { ...process.env, ...testCloudEnv(dir, { DEMO_CREDENTIALS: 'false' }) }, encoding: 'utf8',
        })) as { hub: string; region: string; username: string; password: string };
        expect(cred).toMatchObject({ hub: 'nomi-terai', region: REGION, username: 'nomi-terai' });
        expect(await other.cloud.credentials.verify('nomi-terai', cred.password)).toEqual({ hubId: 'nomi-terai', region: REGION });
        execFileSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'cloud/hub-credentials-cli.ts'), 'remove', 'nomi-terai'], {
          cwd: ROOT, env: { ...process.env, ...testCloudEnv(dir, { DEMO_CREDENTIALS: 'false' }) }, encoding: 'utf8',
        });
        expect(await other.cloud.credentials.verify('nomi-terai', cred.password)).toBeNull();
      } finally {
        await other.stop();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  // Before: a hub in no region file was silently given the first region — so a credential made before
  // the hub's region file was added named the wrong region (issue 14 review, F5).
  it('`npm run hub-credentials -- set` takes the region from the region files, refuses a hub in none without an explicit --region, and refuses a --region the files contradict', () => {
    const dir = tempDir('hub-credentials');
    try {
      const env = { ...process.env, ...testCloudEnv(dir, { DEMO_CREDENTIALS: 'false', REGIONS_DIR: path.join(ROOT, 'config/regions') }) };
      const run = (...args: string[]) => {
        try {
          const out = execFileSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'cloud/hub-credentials-cli.ts'), ...args], { cwd: ROOT, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
          return { code: 0, out: JSON.parse(out) as { hub: string; region: string }, err: '' };
        } catch (e) {
          const err = e as { status: number; stderr: string };
          return { code: err.status, out: null, err: err.stderr };
        }
      };
      expect(run('set', 'kanazawa-nonoichi')).toMatchObject({ code: 0, out: { hub: 'kanazawa-nonoichi', region: 'ishikawa-kanazawa' } });
      const unlisted = run('set', 'ghost-hub');
      expect(unlisted.code).toBe(2);
      expect(unlisted.err).toMatch(/ghost-hub is in no region file .*--region <regionId>, one of: ishikawa-kanazawa, ishikawa-nomi/);
      expect(run('set', 'ghost-hub', '--region', REGION)).toMatchObject({ code: 0, out: { hub: 'ghost-hub', region: REGION } });
      const contradicted = run('set', 'kanazawa-nonoichi', '--region', REGION);
      expect(contradicted.code).toBe(2);
      expect(contradicted.err).toMatch(/kanazawa-nonoichi is a hub of region ishikawa-kanazawa.*region_mismatch/);
      expect(run('set', 'ghost-hub', '--region').code).toBe(2);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
