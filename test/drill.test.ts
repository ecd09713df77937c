import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runDrill } from '../planning/drill/drill.ts';
import { DEVICE_STEPS, planDrill } from '../planning/drill/drill-plan.ts';
import type { ScenarioReport } from '../planning/scenario-result.ts';
import { loadScenarioFile } from '../planning/scenario-file.ts';
import { openDemoControl, type DemoControl, type HubChange } from '../scripts/demo-control.ts';
import { ROOT, startTestCloud, tempDir, type TestCloud } from './support/cloud-harness.ts';
import { freePorts } from './support/ports.ts';

/**
 * Drill mode (issue 16, item 4) against the real processes: `npm start` (cloud, edge agents, simulated
 * devices), `npm run drill` on a 20-minute scenario at ×60, and this test in the coordinator's seat —
 * it signs in as the demo's coordinator and switches to emergency once the drill's earthquake proposal
 * shows. Also: the demo control channel's new routes refuse what they must.
 *
 * test:postgres — not repeated: the demo runs on its own SQLite and the drill drives the cloud through its
 * API only, so the PostgreSQL pass would run the same thing again.
 */
const SCENARIO = path.join(ROOT, 'planning/drill/fixtures/drill-short.json');

describe('the drill plan of a scenario file', () => {
  it('has the device changes, the proposal, the prompt and the same orders for the same seed', () => {
    const loaded = loadScenarioFile(SCENARIO);
    const steps = planDrill(loaded);
    expect(steps.filter((s) => s.kind === 'link').map((s) => [s.atS, s.kind === 'link' && s.hub, s.kind === 'link' && s.state])).toEqual([[180, 'kawakita-chuo', 'cut'], [720, 'kawakita-chuo', 'restored']]);
    const weather = steps.filter((s) => s.kind === 'weather');
    expect(weather[0]).toMatchObject({ atS: 60, hub: 'nomi-terai', windMps: 11.5, gustMps: 16, rainMmPerH: 12 });
    expect(weather.at(-1)).toMatchObject({ atS: 1200, windMps: 12.5 });
    const proposal = steps.find((s) => s.kind === 'proposal');
    expect(proposal?.kind === 'proposal' && proposal.proposal?.reason).toContain('震度5弱');
    expect(steps.find((s) => s.kind === 'coordinator')).toMatchObject({ atS: 360, action: 'emergency', hubs: 'all' });
    const orders = steps.filter((s) => s.kind === 'order');
    expect(orders.filter((s) => s.kind === 'order' && s.arrival.priority === 'relief').length).toBeGreaterThan(1);
    expect(orders.filter((s) => s.kind === 'order' && s.arrival.priority === 'normal').length).toBeGreaterThan(1);
    expect(planDrill(loaded)).toEqual(steps);
    const other = planDrill({ ...loaded, scenario: { ...loaded.scenario, seed: 8 } }).filter((s) => s.kind === 'order');
    expect(other).not.toEqual(orders);
    // Times never go backwards, and at one instant device changes come first.
    expect(steps.every((s, i) => i === 0 || steps[i - 1]!.atS <= s.atS)).toBe(true);
    expect(steps.filter((s) => s.atS === 120).map((s) => DEVICE_STEPS.has(s.kind))).toEqual([true, true, false]);
  });

  it('takes a hub dark when its backup battery runs out, and back with the grid', () => {
    const loaded = loadScenarioFile(SCENARIO);
    const power = (at: string, state: 'lost' | 'restored', drain = 8) => ({ type: 'power' as const, at, hubs: ['nomi-wake'], state, backupDrainPctPerH: drain });
    const links = (events: typeof loaded.scenario.events) =>
      planDrill({ ...loaded, scenario: { ...loaded.scenario, duration: '6h', events } }).filter((s) => s.kind === 'link').map((s) => s.kind === 'link' && [s.atS, s.state, s.dark ?? false]);
    // 50 %/h for 30 min → 75 %; 30 min of grid recharges 18 % (planning's 36 %/h) → 93 %; then empty 93/50 h later.
    expect(links([power('0m', 'lost', 50), power('30m', 'restored'), power('60m', 'lost', 50), power('5h', 'restored')]))
      .toEqual([[3600 + Math.round((93 / 50) * 3600), 'cut', true], [5 * 3600, 'restored', true]]);
    // A scenario restoration while dark is dropped; the grid's return restores only if the scenario has not cut the link.
    expect(links([{ type: 'link', at: '10m', hubs: ['nomi-wake'], state: 'cut' }, power('0m', 'lost', 100), { type: 'link', at: '2h', hubs: ['nomi-wake'], state: 'restored' }, power('3h', 'restored')]))
      .toEqual([[600, 'cut', false], [3600, 'cut', true], [3 * 3600, 'restored', true]]);
    expect(links([power('0m', 'lost', 10), power('2h', 'restored')])).toEqual([]);
  });

  it('sends a hub\'s weather only when it changes', () => {
    const loaded = loadScenarioFile(SCENARIO);
    const steady = planDrill({ ...loaded, scenario: { ...loaded.scenario, duration: '2h', events: [
      { type: 'weather', hubs: ['nomi-wake', 'nomi-kokufu'], profile: [{ at: '0m', windMps: 3, rainMmPerH: 0 }, { at: '1h', windMps: 3, rainMmPerH: 0 }, { at: '90m', windMps: 6, rainMmPerH: 0 }] },
    ] } });
    expect(steady.map((s) => s.kind === 'weather' && [s.atS, s.hub, s.windMps])).toEqual([
      [0, 'nomi-wake', 3], [0, 'nomi-kokufu', 3], [3900, 'nomi-wake', 3.5], [3900, 'nomi-kokufu', 3.5], [4200, 'nomi-wake', 4], [4200, 'nomi-kokufu', 4],
      [4500, 'nomi-wake', 4.5], [4500, 'nomi-kokufu', 4.5], [4800, 'nomi-wake', 5], [4800, 'nomi-kokufu', 5], [5100, 'nomi-wake', 5.5], [5100, 'nomi-kokufu', 5.5],
      [5400, 'nomi-wake', 6], [5400, 'nomi-kokufu', 6],
    ]);
  });
});

describe('the demo control channel\'s hub routes (default deny)', () => {
  let control: DemoControl | null = null;
  let dir: string | null = null;
  afterAll(async () => {
    await control?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses without the token, for an unknown hub, a bad or oversized body; passes a checked change on', async () => {
    const calls: [string, HubChange][] = [];
    dir = tempDir('drill-control');
    control = await openDemoControl(dir, {
      status: () => ({ cloud: 'running', cloudHttp: 'http://127.0.0.1:1', hubs: {} }),
      stopCloud: async () => ({ cloud: 'stopped', changed: true }),
      startCloud: async () => ({ cloud: 'running', changed: true }),
      hubs: { ids: () => ['nomi-terai'], change: async (hub, change) => (calls.push([hub, change]), { hub, ok: true }) },
    });
    const { url, token } = JSON.parse(fs.readFileSync(control.file, 'utf8')) as { url: string; token: string };
    const post = (route: string, body: string, auth: string | null = `Bearer ${token}`) =>
      fetch(`${url}${route}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(auth === null ? {} : { authorization: auth }) }, body });
    const weather = JSON.stringify({ windMps: 12 });

    expect((await post('/hubs/nomi-terai/weather', weather, null)).status).toBe(401);
    expect((await post('/hubs/nomi-terai/weather', weather, 'Bearer guessed')).status).toBe(401);
    expect((await post('/hubs/nomi-terai/link', '{"state":"cut"}', `Bearer ${token}x`)).status).toBe(401);
    expect((await post('/hubs/elsewhere/weather', weather)).status).toBe(404);
    expect((await post('/hubs/nomi-terai/volcano', weather)).status).toBe(404);
    expect((await fetch(`${url}/hubs/nomi-terai/weather`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(404);
    const bad = await post('/hubs/nomi-terai/weather', JSON.stringify({ windMps: 'strong' }));
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toContain('windMps');
    expect((await post('/hubs/nomi-terai/weather', 'not json')).status).toBe(400);
    expect((await post('/hubs/nomi-terai/weather', JSON.stringify({ windMps: 12, by: 'someone' }))).status).toBe(400);
    expect((await post('/hubs/nomi-terai/power', JSON.stringify({ state: 'lost' }))).status).toBe(400);
    expect((await post('/hubs/nomi-terai/link', JSON.stringify({ state: 'down' }))).status).toBe(400);
    expect((await post('/hubs/nomi-terai/fleet', JSON.stringify({ state: 'out_of_service', drones: ['Drone 1!'] }))).status).toBe(400);
    expect((await post('/hubs/nomi-terai/weather', JSON.stringify({ windMps: 12, pad: 'x'.repeat(20_000) }))).status).toBe(413);
    expect(calls).toEqual([]);

    expect((await post('/hubs/nomi-terai/weather', JSON.stringify({ windMps: 12, rainMmPerH: 5 }))).status).toBe(200);
    expect((await post('/hubs/nomi-terai/link', JSON.stringify({ state: 'cut' }))).status).toBe(200);
    expect(calls).toEqual([['nomi-terai', { kind: 'weather', body: { windMps: 12, rainMmPerH: 5 } }], ['nomi-terai', { kind: 'link', body: { state: 'cut' } }]]);
  });
});

describe('a drill against a system without the demo\'s control channel, ended by Ctrl-C', () => {
  let tc: TestCloud | null = null;
  let dir: string | null = null;
  afterAll(async () => {
    await tc?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('skips the device and link steps saying so, posts what the API takes, and still writes the report', async () => {
    tc = await startTestCloud();
    dir = tempDir('drill-nodemo');
    // A scenario of a region the system does not serve is refused before anything is played.
    const elsewhere = path.join(dir, 'elsewhere.json');
    fs.writeFileSync(elsewhere, JSON.stringify({
      id: 'elsewhere', name: { ja: '別の地域', en: 'Elsewhere' }, region: path.join(ROOT, 'config/regions/ishikawa-kanazawa.json'),
      start: '2026-12-05T09:00:00+09:00', duration: '10m', events: [],
    }));
    await expect(runDrill({ scenarioFile: elsewhere, timeScale: 60, cloud: tc.cloud.urls.http, credential: { token: tc.token }, dataDir: dir, out: path.join(dir, 'x'), log: () => {} }))
      .rejects.toThrow(/does not serve region ishikawa-kanazawa/);
    expect(fs.existsSync(path.join(dir, 'x.json'))).toBe(false);
    const lines: string[] = [];
    const controller = new AbortController();
    const out = path.join(dir, 'early');
    const outcome = await runDrill({
      scenarioFile: SCENARIO, timeScale: 60, cloud: tc.cloud.urls.http, credential: { token: tc.token }, dataDir: dir, out, pollS: 1,
      signal: controller.signal,
      log: (line) => {
        lines.push(line);
        // Ctrl-C once the bulletin's proposal went out (+4 min of 20).
        if (line.includes('emergency mode proposed') && !line.includes('FAILED')) controller.abort();
      },
    });
    const printed = lines.join('\n');
    expect(printed).toContain('weather, power, link and fleet events are not playable here and will be skipped');
    expect(outcome.endedEarly).toBe(true);
    expect(outcome.failed).toEqual([]);
    expect(outcome.skipped.some((l) => l.includes('cloud link cut at kawakita-chuo'))).toBe(true);
    expect(outcome.skipped.some((l) => l.includes('weather at nomi-terai'))).toBe(true);
    expect(outcome.skipped.every((l) => lines.some((x) => x.startsWith(l) && x.endsWith('not playable here (no demo control), skipped')))).toBe(true);
    const proposals = (await (await tc.api('/api/v1/regions/ishikawa-nomi/mode-proposals')).json()) as { proposals: { reason: string }[] };
    expect(proposals.proposals.filter((p) => p.reason.startsWith('【訓練 DRILL】'))).toHaveLength(1);
    const played = lines.filter((l) => / order from /.test(l) && !l.includes('FAILED')).length;
    expect(played).toBeGreaterThan(0);
    expect(outcome.result.deliveries.reduce((n, d) => n + d.requested, 0)).toBe(played);
    expect(JSON.parse(fs.readFileSync(`${out}.json`, 'utf8')).result.kind).toBe('drill');
    expect(fs.readFileSync(`${out}.html`, 'utf8')).toContain('<svg');
  }, 40_000);
});

describe('a drill against `npm start`', () => {
  let dataDir: string | null = null;
  let demo: ChildProcess | null = null;
  let drill: ChildProcess | null = null;
  afterAll(async () => {
    for (const p of [drill, demo]) {
      if (p && p.exitCode === null && p.signalCode === null) {
        const exited = new Promise((r) => p.once('exit', r));
        process.kill(-p.pid!, 'SIGKILL');
        await exited;
      }
    }
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('plays wind, a link cut, orders and a bulletin; records the coordinator\'s switch and its acknowledgements', async () => {
    const [httpPort, mqttPort] = await freePorts(2);
    dataDir = tempDir('drill-demo');
    const env: NodeJS.ProcessEnv = {
      ...process.env, DATA_DIR: dataDir, BIND_HOST: '', HTTP_PORT: String(httpPort), MQTT_PORT: String(mqttPort), MQTT_WS_PORT: 'off',
      EDGE_BASE_MQTT_PORT: '0', EDGE_BASE_HTTP_PORT: '0', UPLINK_BACKOFF_MAX_S: '2', ALARM_HUB_OFFLINE_GRACE_S: '2', SIM_TIME_SCALE: '60',
      LOG_LEVEL: 'warn', INFLUX_URL: '',
    };
    const output: string[] = [];
    demo = spawn('npm', ['start'], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    demo.stdout!.on('data', (d: Buffer) => output.push(d.toString()));
    demo.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
    await expect.poll(() => output.join(''), { timeout: 40_000, interval: 100 }).toContain('demo is running');
    const api = `http://127.0.0.1:${httpPort}`;

    // The coordinator's seat: the console's API, signed in as the demo's coordinator.
    const login = await fetch(`${api}/api/v1/auth/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'coordinator', password: 'demo-coordinator-pass' }),
    });
    expect(login.status).toBe(200);
    const cookie = login.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
    const get = async <T>(p: string): Promise<T> => {
      const res = await fetch(`${api}${p}`, { headers: { cookie } });
      expect(res.status, p).toBe(200);
      return (await res.json()) as T;
    };
    type Hub = { deviceStates: { device: string; kind: string; telemetry: Record<string, unknown> | null }[] };
    const telemetry = async (hub: string, device: string) => (await get<Hub>(`/api/v1/hubs/${hub}`)).deviceStates.find((d) => d.device === device)?.telemetry ?? null;

    const out = path.join(dataDir, 'report', 'drill');
    const drillOut: string[] = [];
    drill = spawn('npm', ['run', 'drill', '--', SCENARIO, '--time-scale', '60', '--poll', '1', '--out', out], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    drill.stdout!.on('data', (d: Buffer) => drillOut.push(d.toString()));
    drill.stderr!.on('data', (d: Buffer) => drillOut.push(d.toString()));
    const drillExit = new Promise<number | null>((r) => drill!.once('exit', (code) => r(code)));

    // The drill's devices, seen through the cloud: wind above the limit at nomi-terai, a drone out of service.
    await expect.poll(async () => Number((await telemetry('nomi-terai', 'wx'))?.windSpeedMps ?? 0), { timeout: 15_000, interval: 500 }).toBeGreaterThanOrEqual(11.5);
    expect((await telemetry('nomi-terai', 'wx'))?.windGustMps).toBeGreaterThanOrEqual(16);
    await expect.poll(async () => (await telemetry('rs-megumi-hakusan', 'drone-2'))?.flightState, { timeout: 15_000, interval: 500 }).toBe('fault');
    await expect.poll(async () => (await telemetry('rs-shirayamasan', 'wx'))?.gridPowerUp, { timeout: 15_000, interval: 500 }).toBe(false);

    // The earthquake proposal shows on the coordinator's console; the coordinator decides and switches.
    type Proposals = { proposals: { source: string; reason: string; state: string }[] };
    await expect.poll(async () => (await get<Proposals>('/api/v1/regions/ishikawa-nomi/mode-proposals')).proposals.filter((p) => p.reason.includes('DRILL')).length, { timeout: 15_000, interval: 250 }).toBe(1);
    const switched = await fetch(`${api}/api/v1/regions/ishikawa-nomi/mode`, {
      method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'emergency', reason: '訓練: 緊急地震速報を受けて' }),
    });
    expect(switched.status).toBe(202);

    // The link of kawakita-chuo goes down (hub_offline raised) and comes back (cleared).
    type Alarms = { alarms: { hub: string; kind: string; state: string }[] };
    const offline = async () => (await get<Alarms>('/api/v1/alarms?kind=hub_offline&hub=kawakita-chuo')).alarms;
    await expect.poll(async () => (await offline()).length, { timeout: 20_000, interval: 500 }).toBeGreaterThan(0);
    await expect.poll(async () => (await offline()).every((a) => a.state === 'cleared'), { timeout: 25_000, interval: 500 }).toBe(true);

    expect(await drillExit, drillOut.join('')).toBe(0);
    const printed = drillOut.join('');
    expect(printed).toContain('scenario expects: switch the region to emergency now');
    expect(printed).not.toContain('not playable');
    // The demo's devices and the drill run at the same pace (×60): no clock warning; the demo found on
    // DATA_DIR is followed (its control file is ours and 0600) and its own account used without credentials.
    expect(printed).not.toContain('WARNING');
    expect(printed).not.toContain('not following');

    // Orders exist in the cloud, made by the drill's account.
    type Orders = { orders: { priority: string; reference: string | null; createdBy: string }[] };
    const orders = (await get<Orders>('/api/v1/orders?limit=500')).orders.filter((o) => o.reference?.startsWith('drill drill-short'));
    const planned = planDrill(loadScenarioFile(SCENARIO)).filter((s) => s.kind === 'order');
    expect(orders.length).toBe(planned.length);
    expect(orders.filter((o) => o.priority === 'relief').length).toBeGreaterThan(0);
    expect(orders.filter((o) => o.priority === 'normal').length).toBeGreaterThan(0);
    expect(new Set(orders.map((o) => o.createdBy))).toEqual(new Set(['admin']));

    // The report: the coordinator's switch with the right user and acknowledgements; the link's cut and return; the HTML.
    const report = JSON.parse(fs.readFileSync(`${out}.json`, 'utf8')) as ScenarioReport;
    const r = report.result;
    expect(r.kind).toBe('drill');
    expect(r.run.timeScale).toBe(60);
    expect(r.coordinatorActions).toContainEqual(expect.objectContaining({ action: 'switch to emergency', by: 'coordinator' }));
    expect(r.coordinatorActions).toContainEqual(expect.objectContaining({ action: 'expected: switch to emergency', by: 'scenario' }));
    expect(r.modes).toHaveLength(1);
    expect(r.modes[0]).toMatchObject({ mode: 'emergency', by: 'coordinator', hubs: 13 });
    expect(r.modes[0]!.acknowledged).toBeGreaterThan(0);
    expect(r.modes[0]!.cause).toContain('proposal');
    const kawakita = r.links.filter((l) => l.hub === 'kawakita-chuo');
    const down = kawakita.findIndex((l) => !l.up);
    expect(down).toBeGreaterThan(-1);
    expect(kawakita.slice(down).some((l) => l.up)).toBe(true);
    expect(r.alarms.byKind.find((k) => k.kind === 'hub_offline')?.raised).toBeGreaterThan(0);
    expect(r.deliveries.reduce((n, d) => n + d.requested, 0)).toBe(planned.length);
    expect(r.relief.find((s) => s.site === 'osugi-settlement')?.isolatedAtS).toBe(120);
    const html = fs.readFileSync(`${out}.html`, 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain('A short drill (test)');

    // The drill put the demo back: the wind at nomi-terai is the simulator's own again.
    await expect.poll(async () => Number((await telemetry('nomi-terai', 'wx'))?.windSpeedMps ?? 99), { timeout: 15_000, interval: 500 }).toBeLessThan(11.5);
    console.info(`drill: ${planned.length} orders, switch acknowledged by ${r.modes[0]!.acknowledged}/13 hubs (p50 ${r.modes[0]!.ackS.p50} s), ` +
      `${kawakita.length} link samples at kawakita-chuo, report ${fs.statSync(`${out}.html`).size} bytes`);

    const group = -demo.pid!;
    process.kill(group, 'SIGINT');
    await new Promise((resolve) => demo!.once('exit', resolve));
  }, 110_000);
});
