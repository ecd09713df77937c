import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEMO_CONTROL_FILE, openDemoControl } from '../../scripts/demo-control.ts';
import { startTestCloud } from '../../test/support/cloud-harness.ts';
import { loadScenarioFile } from '../scenario-file.ts';
import { CloudApiError, serverReason, type CloudApi } from './cloud-api.ts';
import { DrillSetupError, isLoopbackUrl, runDrill, untrustedControlFile } from './drill.ts';
import { readPasswordFile } from './password-file.ts';
import { DrillRecorder } from './recorder.ts';

/**
 * Drill mode's handling of credentials and of what it trusts (issue 16, red-team findings M2, M3, L4,
 * L5, L18): the password never on a command line, the demo's public account only for the demo, a
 * demo control file followed only as the demo writes it, the server's reason kept, and people's
 * actions recorded only for the scenario's region. Fake servers record what reaches them.
 */
const ROOT = path.resolve(import.meta.dirname, '../..');
const SCENARIO = path.join(ROOT, 'planning/drill/fixtures/drill-short.json');

interface Fake { url: string; requests: { method: string; url: string; body: string }[]; server: http.Server }
const servers: http.Server[] = [];
const dirs: string[] = [];
const children: ReturnType<typeof spawn>[] = [];

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'drill-safety-'));
  dirs.push(d);
  return d;
}

/** A server that records every request; `answer` returns false to leave a request hanging. */
async function fakeServer(answer: (req: http.IncomingMessage, body: string, res: http.ServerResponse) => boolean | void): Promise<Fake> {
  const requests: Fake['requests'] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', body });
      answer(req, body, res);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, server };
}

function cli(args: string[], env: NodeJS.ProcessEnv): { child: ReturnType<typeof spawn>; out: string[]; exit: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'planning/drill/drill-cli.ts', ...args], { cwd: ROOT, env: { ...process.env, DRILL_API_TOKEN: '', DRILL_PASSWORD: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const out: string[] = [];
  child.stdout!.on('data', (d: Buffer) => out.push(d.toString()));
  child.stderr!.on('data', (d: Buffer) => out.push(d.toString()));
  return { child, out, exit: new Promise((r) => child.once('exit', (code) => r(code))) };
}

function cmdlinesWith(secret: string): string[] {
  const exposed: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmdline.includes(secret)) exposed.push(`${pid}: ${cmdline.replaceAll('\0', ' ').slice(0, 200)}`);
    } catch {
      // gone, or not ours
    }
  }
  return exposed;
}

describe('the drill\'s account password (M2)', () => {
  it('comes from DRILL_PASSWORD and is on no process command line while the drill runs', async () => {
    const secret = `Drill-${process.pid}-Secret`;
    let loggedIn!: (body: string) => void;
    const login = new Promise<string>((r) => (loggedIn = r));
    // A cloud that answers /healthz and holds the sign-in: the drill is running and waiting.
    const cloud = await fakeServer((req, body, res) => {
      if (req.url === '/healthz') return void res.end('{"ok":true}');
      if (req.url === '/api/v1/auth/login') return void loggedIn(body);
      res.writeHead(404).end();
    });
    const dir = tmp();
    const run = cli(['planning/drill/fixtures/drill-short.json', '--cloud', cloud.url, '--user', 'coordinator', '--out', path.join(dir, 'x')], { DATA_DIR: dir, DRILL_PASSWORD: secret });
    const body = await Promise.race([login, run.exit.then((code) => `exited ${code}: ${run.out.join('')}`)]);
    expect(JSON.parse(body)).toEqual({ username: 'coordinator', password: secret });
    expect(cmdlinesWith(secret)).toEqual([]);
  }, 60_000);

  it('refuses --password on the command line, saying where the password goes instead, before contacting anything', async () => {
    const cloud = await fakeServer((_req, _body, res) => void res.end('{}'));
    const dir = tmp();
    const run = cli(['planning/drill/fixtures/drill-short.json', '--cloud', cloud.url, '--user', 'coordinator', '--password', 'x', '--out', path.join(dir, 'x')], { DATA_DIR: dir });
    expect(await run.exit).toBe(2);
    expect(run.out.join('')).toContain('set DRILL_PASSWORD, or use --password-file');
    const noPassword = cli(['planning/drill/fixtures/drill-short.json', '--cloud', cloud.url, '--user', 'coordinator', '--out', path.join(dir, 'x')], { DATA_DIR: dir });
    expect(await noPassword.exit).toBe(2);
    expect(noPassword.out.join('')).toContain('--user coordinator needs its password');
    expect(cloud.requests).toEqual([]);
  }, 60_000);

  it('reads --password-file: the first line; warns when others may read it; refuses what it cannot read', () => {
    const dir = tmp();
    const file = path.join(dir, 'pw');
    fs.writeFileSync(file, 'p@ss word\nignored\n', { mode: 0o600 });
    fs.chmodSync(file, 0o600);
    expect(readPasswordFile(file)).toEqual({ password: 'p@ss word', warning: null });
    fs.chmodSync(file, 0o644);
    const open = readPasswordFile(file);
    expect(open).toMatchObject({ password: 'p@ss word' });
    expect('warning' in open && open.warning).toContain('every user');
    fs.chmodSync(file, 0o640);
    expect('warning' in readPasswordFile(file) && (readPasswordFile(file) as { warning: string }).warning).toContain('its group');
    expect(readPasswordFile(path.join(dir, 'missing'))).toEqual({ error: expect.stringContaining('cannot read it (ENOENT)') });
    expect(readPasswordFile(dir)).toEqual({ error: expect.stringContaining('not a regular file') });
    fs.writeFileSync(path.join(dir, 'empty'), '\n');
    expect(readPasswordFile(path.join(dir, 'empty'))).toEqual({ error: expect.stringContaining('first line is empty') });
  });
});

describe('the demo\'s public account (M3)', () => {
  it('is not sent to a cloud that is not the running demo: no credentials → a clear error, nothing sent', async () => {
    const cloud = await fakeServer((req, _body, res) => {
      if (req.url === '/healthz') return void res.end('{"ok":true}');
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":{"code":"unauthorized","message":"no"}}');
    });
    const dir = tmp();
    await expect(runDrill({ scenarioFile: SCENARIO, timeScale: 3600, cloud: cloud.url, dataDir: dir, out: path.join(dir, 'x'), log: () => {} }))
      .rejects.toThrow(DrillSetupError);
    await expect(runDrill({ scenarioFile: SCENARIO, timeScale: 3600, cloud: cloud.url, dataDir: dir, out: path.join(dir, 'x'), log: () => {} }))
      .rejects.toThrow(/no credentials for .*DRILL_PASSWORD.*DRILL_API_TOKEN/);
    expect(cloud.requests).toEqual([]);
    expect(fs.existsSync(path.join(dir, 'x.json'))).toBe(false);
  });

  it('exits 2 from the command line, having sent nothing', async () => {
    const cloud = await fakeServer((_req, _body, res) => void res.end('{}'));
    const dir = tmp();
    const run = cli(['planning/drill/fixtures/drill-short.json', '--cloud', cloud.url, '--out', path.join(dir, 'x')], { DATA_DIR: dir });
    expect(await run.exit).toBe(2);
    expect(run.out.join('')).toContain(`no credentials for ${cloud.url}`);
    expect(cloud.requests).toEqual([]);
  }, 60_000);
});

describe('the demo control file (L18)', () => {
  const writeControl = (dir: string, url: string, mode: number) => {
    const file = path.join(dir, DEMO_CONTROL_FILE);
    fs.writeFileSync(file, JSON.stringify({ pid: process.pid, url, token: 't'.repeat(43) }), { mode });
    fs.chmodSync(file, mode);
    return file;
  };

  it('is followed only as the demo writes it: a regular file of ours, 0600, its channel on loopback', () => {
    const dir = tmp();
    expect(untrustedControlFile(path.join(dir, DEMO_CONTROL_FILE))).toBeNull(); // none: no demo
    const file = writeControl(dir, 'http://127.0.0.1:9', 0o600);
    expect(untrustedControlFile(file)).toBeNull();
    fs.chmodSync(file, 0o644);
    expect(untrustedControlFile(file)).toContain('mode 644');
    fs.chmodSync(file, 0o620);
    expect(untrustedControlFile(file)).toContain('mode 620');
    writeControl(dir, 'http://203.0.113.7:9', 0o600);
    expect(untrustedControlFile(file)).toContain('not on this machine (http://203.0.113.7:9)');
    fs.rmSync(file);
    fs.symlinkSync(path.join(dir, 'elsewhere'), file);
    expect(untrustedControlFile(file)).toBe('it is not a regular file');
    expect(['http://127.0.0.1:1', 'http://127.8.9.10', 'http://localhost:8080/x', 'http://[::1]:3000'].map(isLoopbackUrl)).toEqual([true, true, true, true]);
    expect(['http://10.0.0.1', 'http://127.0.0.1.evil.example', 'https://example.org', 'not a url'].map(isLoopbackUrl)).toEqual([false, false, false, false]);
  });

  it('a control file others could have written is not followed: its channel gets no request, its cloud no credential', async () => {
    const control = await fakeServer((_req, _body, res) => void res.end(JSON.stringify({ cloud: 'running', cloudHttp: 'http://127.0.0.1:1', hubs: {} })));
    const dir = tmp();
    writeControl(dir, control.url, 0o644);
    const lines: string[] = [];
    await expect(runDrill({ scenarioFile: SCENARIO, timeScale: 3600, dataDir: dir, out: path.join(dir, 'x'), log: (l) => lines.push(l) })).rejects.toThrow(/no running demo/);
    expect(lines.join('\n')).toContain('others may read or write it (mode 644');
    expect(control.requests).toEqual([]);
  });

  it('a demo naming a cloud off this machine is not followed, and nothing is sent there', async () => {
    const control = await fakeServer((_req, _body, res) => void res.end(JSON.stringify({ cloud: 'running', cloudHttp: 'http://203.0.113.7:8080', hubs: {} })));
    const dir = tmp();
    writeControl(dir, control.url, 0o600);
    const lines: string[] = [];
    await expect(runDrill({ scenarioFile: SCENARIO, timeScale: 3600, dataDir: dir, out: path.join(dir, 'x'), log: (l) => lines.push(l) })).rejects.toThrow(/no running demo/);
    expect(lines.join('\n')).toContain('names a cloud that is not on this machine (http://203.0.113.7:8080)');
    expect(control.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /status']);
  });
});

describe('the report\'s --out (L15)', () => {
  it('never replaces the scenario or its region file', async () => {
    const dir = tmp();
    const scenario = path.join(dir, 'mine.json');
    const region = path.join(dir, 'region.json');
    fs.copyFileSync(path.join(ROOT, 'config/regions/ishikawa-nomi.json'), region);
    const text = JSON.stringify({ id: 'mine', name: { ja: '私の', en: 'Mine' }, region: 'region.json', start: '2026-12-05T09:00:00+09:00', duration: '10m', events: [] });
    fs.writeFileSync(scenario, text);
    const cloud = await fakeServer((_req, _body, res) => void res.end('{}'));
    await expect(runDrill({ scenarioFile: scenario, timeScale: 3600, cloud: cloud.url, credential: { token: 'x' }, dataDir: dir, out: path.join(dir, 'mine'), log: () => {} }))
      .rejects.toThrow(/would overwrite the scenario file/);
    await expect(runDrill({ scenarioFile: scenario, timeScale: 3600, cloud: cloud.url, credential: { token: 'x' }, dataDir: dir, out: path.join(dir, 'region'), log: () => {} }))
      .rejects.toThrow(/would overwrite the region file/);
    expect(fs.readFileSync(scenario, 'utf8')).toBe(text);
    expect(cloud.requests).toEqual([]);
  });
});

describe('the server\'s reason (L5)', () => {
  it('is kept in the drill\'s error: code and message', async () => {
    expect(serverReason({ error: { code: 'invalid_credentials', message: 'wrong user or password' } })).toEqual({ code: 'invalid_credentials', message: 'wrong user or password' });
    expect(serverReason({ error: 'unauthorized', message: 'no' })).toEqual({ code: 'unauthorized', message: 'no' });
    expect(serverReason('<html>')).toEqual({ code: null, message: null });
    const cloud = await fakeServer((req, _body, res) => {
      if (req.url === '/healthz') return void res.end('{"ok":true}');
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":{"code":"invalid_credentials","message":"wrong user or password"}}');
    });
    const dir = tmp();
    const err = await runDrill({ scenarioFile: SCENARIO, timeScale: 3600, cloud: cloud.url, credential: { user: 'coordinator', password: 'x' }, dataDir: dir, out: path.join(dir, 'x'), log: () => {} })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CloudApiError);
    expect((err as CloudApiError).code).toBe('invalid_credentials');
    expect((err as CloudApiError).message).toContain('refused: 401 invalid_credentials wrong user or password');
    const token = await runDrill({ scenarioFile: SCENARIO, timeScale: 3600, cloud: cloud.url, credential: { token: 'x' }, dataDir: dir, out: path.join(dir, 'x'), log: () => {} })
      .catch((e: unknown) => e);
    expect((token as CloudApiError).message).toBe('GET /api/v1/auth/me: 401 invalid_credentials wrong user or password');
  });
});

describe('people\'s actions in the drill report (L4)', () => {
  it('are those of the scenario\'s region only: its hubs, its orders and alarms, orders created in it', async () => {
    const loaded = loadScenarioFile(SCENARIO);
    const t0 = Date.now() - 1000;
    const at = new Date().toISOString();
    const order = (id: string, region: string, createdBy: string) => ({
      id, region, originHub: 'nomi-terai', destination: { type: 'locker', hub: 'nomi-terai' }, priority: 'normal', deadline: null, state: 'pending',
      createdAt: at, createdBy, updatedAt: at, carrier: null, waitReasons: null,
    });
    const entry = (id: number, account: string, route: string, p = route) => ({ id, at, account, role: 'coordinator', method: 'POST', route, path: p, status: 200 });
    const audit = [
      entry(11, 'nomi-coord', '/api/v1/hubs/:hubId/commands', '/api/v1/hubs/nomi-terai/commands'),
      entry(12, 'kz-coord', '/api/v1/hubs/:hubId/commands', '/api/v1/hubs/kanazawa-nonoichi/commands'),
      entry(13, 'kz-coord', '/api/v1/regions/:regionId/mode-proposals', '/api/v1/regions/ishikawa-kanazawa/mode-proposals'),
      entry(14, 'nomi-coord', '/api/v1/orders/:orderId/cancel', '/api/v1/orders/o-nomi/cancel'),
      entry(15, 'kz-coord', '/api/v1/orders/:orderId/cancel', '/api/v1/orders/o-kz/cancel'),
      entry(16, 'kz-coord', '/api/v1/orders'),
      entry(17, 'nomi-coord', '/api/v1/orders'),
      entry(18, 'root', '/api/v1/accounts'),
      entry(19, 'nomi-coord', '/api/v1/alarms/:alarmId/ack', '/api/v1/alarms/a-nomi/ack'),
      entry(20, 'kz-coord', '/api/v1/alarms/:alarmId/ack', '/api/v1/alarms/a-kz/ack'),
      entry(21, 'drill', '/api/v1/orders'),
    ].reverse();
    let auditRead = false;
    const regionOrders = [order('o-nomi', 'ishikawa-nomi', 'someone'), order('o-nomi2', 'ishikawa-nomi', 'nomi-coord')];
    const answers: [RegExp, () => unknown][] = [
      [/\/mode\/history/, () => ({ entries: [] })],
      [/\/mode$/, () => ({ desired: { version: 0, mode: 'normal' }, hubs: [] })],
      [/^\/api\/v1\/orders\?limit/, () => ({ orders: [...regionOrders, order('o-kz', 'ishikawa-kanazawa', 'kz-coord')] })],
      [/^\/api\/v1\/orders\/o-kz$/, () => ({ ...order('o-kz', 'ishikawa-kanazawa', 'kz-coord'), audit: [], flights: [] })],
      [/^\/api\/v1\/orders\/(o-nomi2?)$/, () => ({ ...regionOrders[0]!, audit: [], flights: [] })],
      [/^\/api\/v1\/alarms\?/, () => ({ alarms: [] })],
      [/^\/api\/v1\/alarms\/a-nomi$/, () => ({ id: 'a-nomi', region: 'ishikawa-nomi' })],
      [/^\/api\/v1\/alarms\/a-kz$/, () => ({ id: 'a-kz', region: 'ishikawa-kanazawa' })],
      [/^\/api\/v1\/audit\?limit=1$/, () => ({ entries: [{ ...entry(10, 'x', '/api/v1/x') }] })],
      [/^\/api\/v1\/audit/, () => (auditRead ? { entries: audit } : ((auditRead = true), { entries: [] }))],
      [/^\/api\/v1\/hubs$/, () => ({ hubs: [] })],
      [/^\/api\/v1\/hubs\//, () => ({ deviceStates: [] })],
    ];
    const api: CloudApi = {
      baseUrl: 'http://fake', username: 'drill',
      get: async <T,>(p: string) => {
        const a = answers.find(([re]) => re.test(p));
        if (!a) throw new Error(`unexpected GET ${p}`);
        return a[1]() as T;
      },
      post: async () => { throw new Error('no posts'); },
      close: async () => {},
    };
    const logs: string[] = [];
    const recorder = new DrillRecorder({ api, scenario: loaded.scenario, region: loaded.region, timeScale: 60, t0, edgeStatus: null, log: (l) => logs.push(l) });
    await recorder.start();
    await recorder.finish();
    const actions = recorder.result({ wallMs: 1000 }).coordinatorActions.filter((a) => a.by !== 'scenario');
    expect(logs.filter((l) => l.includes('reads failed'))).toEqual([]);
    expect(actions.map((a) => a.detail)).toEqual(['/api/v1/hubs/nomi-terai/commands', '/api/v1/orders/o-nomi/cancel', '/api/v1/orders', '/api/v1/alarms/a-nomi/ack']);
    expect(new Set(actions.map((a) => a.by))).toEqual(new Set(['nomi-coord']));
  });
});

describe('a demo whose devices run at another time scale than the drill (L6)', () => {
  it('is said clearly when the drill starts and again at its end', async () => {
    const tc = await startTestCloud();
    const dir = tmp();
    const changes: string[] = [];
    const control = await openDemoControl(dir, {
      status: () => ({ cloud: 'running', cloudHttp: tc.cloud.urls.http, hubs: {}, simTimeScale: 1 }),
      stopCloud: async () => ({ cloud: 'stopped', changed: true }),
      startCloud: async () => ({ cloud: 'running', changed: true }),
      hubs: { ids: () => loadScenarioFile(SCENARIO).region.hubs.map((h) => h.id), change: async (hub, change) => (changes.push(`${hub} ${change.kind}`), { hub, ok: true }) },
    });
    try {
      const lines: string[] = [];
      const outcome = await runDrill({ scenarioFile: SCENARIO, timeScale: 3600, credential: { token: tc.token }, dataDir: dir, out: path.join(dir, 'x'), pollS: 0.2, log: (l) => lines.push(l) });
      const warning = 'WARNING: the demo\'s devices run at time scale ×1 (SIM_TIME_SCALE), the drill at ×3600';
      const at = lines.map((l, i) => (l.startsWith(warning) ? i : -1)).filter((i) => i >= 0);
      expect(at).toHaveLength(2);
      expect(at[0]).toBeLessThan(lines.findIndex((l) => l.startsWith('drill "')));
      expect(at[1]).toBe(lines.length - 1);
      expect(lines[at[1]!]).toContain('start the demo with SIM_TIME_SCALE=3600, or run the drill with --time-scale 1');
      // The demo's own channel was used (its devices were driven), with the drill's credential.
      expect(outcome.skipped).toEqual([]);
      expect(changes.some((c) => c.endsWith(' link'))).toBe(true);
    } finally {
      await control.close();
      await tc.stop();
    }
  }, 60_000);
});
