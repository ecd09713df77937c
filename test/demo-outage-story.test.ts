import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir } from './support/cloud-harness.ts';

/**
 * The README's outage story (issue 13, item 6), followed step by step with the commands the README
 * gives — read from its "An outage, step by step" list, so the README and this test cannot drift:
 * `npm start` as a real process, the cloud stopped by its own command while the edge agents and
 * simulated devices keep running and the outboxes grow, the cloud started again, every backlog
 * drained to 0 and every message kept during the outage acknowledged by the cloud, nothing dropped.
 * Before this, there was no command to stop only the cloud: stopping it ended the whole demo.
 */

const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');

/** The numbered steps of the README section, each `n. \`command\` — what it does`. */
function readmeSteps(): string[] {
  const start = readme.indexOf('#### An outage, step by step');
  expect(start, 'README section "An outage, step by step"').toBeGreaterThan(-1);
  const section = readme.slice(start, readme.indexOf('\n#', start + 5));
  return [...section.matchAll(/^\d+\. `([^`]+)`/gm)].map((m) => m[1]!);
}

const dataDir = tempDir('demo-outage');
// Free ports everywhere (0), so the test runs beside a demo on the default ports; a short reconnect
// back-off keeps the test short (a user waits up to the default 30 s).
const env: NodeJS.ProcessEnv = {
  ...process.env, DATA_DIR: dataDir, BIND_HOST: '', HTTP_PORT: '0', MQTT_PORT: '0', MQTT_WS_PORT: 'off',
  EDGE_BASE_MQTT_PORT: '0', EDGE_BASE_HTTP_PORT: '0', UPLINK_BACKOFF_MAX_S: '2', LOG_LEVEL: 'warn', INFLUX_URL: '',
};

/** A README command run in a second terminal: its exit code and output. */
function runStep(command: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const [program, ...args] = command.split(' ') as [string, ...string[]];
    execFile(program, args, { cwd: ROOT, env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

interface OutboxRow { hub: string; link: string; waiting: number; replayed: number; lost: number }

/** The table `npm run demo -- outbox` prints. */
async function readOutbox(command: string): Promise<{ cloud: string; hubs: OutboxRow[]; total: Omit<OutboxRow, 'hub' | 'link'> }> {
  const r = await runStep(command);
  expect(r.code, r.stderr).toBe(0);
  const hubs = [...r.stdout.matchAll(/^(\S+)\s+(up|down|\?)\s+(\d+)\s+(\d+)\s+(\d+)$/gm)].map((m) => ({ hub: m[1]!, link: m[2]!, waiting: Number(m[3]), replayed: Number(m[4]), lost: Number(m[5]) }));
  const t = /^total\s+(\d+)\s+(\d+)\s+(\d+)$/m.exec(r.stdout);
  expect(t, r.stdout).not.toBeNull();
  return { cloud: /^cloud: (.*)$/m.exec(r.stdout)?.[1] ?? '', hubs, total: { waiting: Number(t![1]), replayed: Number(t![2]), lost: Number(t![3]) } };
}

/** Sum of every series of a Prometheus metric. */
function metricSum(text: string, name: string): number {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)).reduce((s, l) => s + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

let demo: ChildProcess | null = null;
afterAll(async () => {
  if (demo && demo.exitCode === null && demo.signalCode === null) {
    const exited = new Promise((r) => demo!.once('exit', r));
    process.kill(-demo.pid!, 'SIGKILL');
    await exited;
  }
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('the README outage story, one command per step', () => {
  it('stops only the cloud, the outboxes grow, the cloud comes back and every backlog drains with nothing lost', async () => {
    const steps = readmeSteps();
    expect(steps).toEqual(['npm start', 'npm run demo -- cloud stop', 'npm run demo -- outbox', 'npm run demo -- cloud start', 'npm run demo -- outbox']);
    const [startDemo, stopCloud, watchOutbox, startCloud, checkDrained] = steps as [string, string, string, string, string];

    // 1. The whole demo, in its own process group as in a terminal (Ctrl-C goes to the group).
    const output: string[] = [];
    const [program, ...args] = startDemo.split(' ') as [string, ...string[]];
    demo = spawn(program, args, { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    demo.stdout!.on('data', (d: Buffer) => output.push(d.toString()));
    demo.stderr!.on('data', (d: Buffer) => output.push(d.toString()));
    await expect.poll(() => output.join(''), { timeout: 40_000, interval: 100 }).toContain('demo is running');
    const apiUrl = /API\s+(http:\/\/127\.0\.0\.1:\d+)\/api\/v1\/hubs/.exec(output.join(''))![1]!;
    const before = await readOutbox(watchOutbox);
    expect(before.cloud).toBe(`running at ${apiUrl}`);
    expect(before.hubs).toHaveLength(13);

    // Default deny: the control endpoint does nothing without the token from the owner-only file.
    const controlFile = path.join(dataDir, 'demo-control.json');
    expect(fs.statSync(controlFile).mode & 0o777).toBe(0o600);
    const { url: controlUrl } = JSON.parse(fs.readFileSync(controlFile, 'utf8')) as { url: string };
    expect(new URL(controlUrl).hostname).toBe('127.0.0.1');
    expect((await fetch(`${controlUrl}/cloud/stop`, { method: 'POST' })).status).toBe(401);
    expect((await fetch(`${controlUrl}/cloud/stop`, { method: 'POST', headers: { authorization: 'Bearer guessed' } })).status).toBe(401);
    expect((await fetch(`${apiUrl}/metrics`)).status).toBe(200);

    // 2. Stop the cloud only.
    const stopped = await runStep(stopCloud);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toContain('cloud stopped');
    await expect(fetch(`${apiUrl}/metrics`)).rejects.toThrow();
    expect(demo.exitCode).toBeNull();
    expect((await runStep(stopCloud)).stdout).toContain('the cloud was already stopped');

    // 3. Watch the outboxes grow: every hub's agent answers, its link is down and its devices keep publishing.
    await expect
      .poll(async () => (await readOutbox(watchOutbox)).hubs.filter((h) => h.link === 'down' && h.waiting > 0).length, { timeout: 30_000, interval: 500 })
      .toBe(13);
    const first = await readOutbox(watchOutbox);
    let queued = first;
    await expect
      .poll(async () => {
        queued = await readOutbox(watchOutbox);
        return queued.total.waiting;
      }, { timeout: 30_000, interval: 500 })
      .toBeGreaterThanOrEqual(Math.max(first.total.waiting + 1, 100));
    expect(queued.cloud).toMatch(/^stopped/);
    expect(queued.total.lost).toBe(0);
    expect(demo.exitCode).toBeNull();

    // 4. Start the cloud again, on the same address.
    const started = await runStep(startCloud);
    expect(started.code, started.stderr).toBe(0);
    expect(started.stdout).toContain(`cloud started at ${apiUrl}`);

    // 5. Every backlog drains to 0; what was queued was replayed (acknowledged by the cloud), nothing was dropped.
    let drained = queued;
    await expect
      .poll(async () => {
        drained = await readOutbox(checkDrained);
        return drained.hubs.every((h) => h.link === 'up' && h.waiting === 0);
      }, { timeout: 30_000, interval: 500 })
      .toBe(true);
    for (const hub of queued.hubs) {
      const after = drained.hubs.find((h) => h.hub === hub.hub)!;
      expect(after.replayed - before.hubs.find((h) => h.hub === hub.hub)!.replayed, hub.hub).toBeGreaterThanOrEqual(hub.waiting);
    }
    expect(drained.total.lost).toBe(0);

    // The cloud's side: every message of the backlog reached it and none was refused.
    const metrics = await (await fetch(`${apiUrl}/metrics`)).text();
    const taken = metricSum(metrics, 'ingest_messages_accepted_total') + metricSum(metrics, 'ingest_duplicates_total');
    expect(taken).toBeGreaterThanOrEqual(queued.total.waiting);
    expect(metricSum(metrics, 'ingest_messages_rejected_total')).toBe(0);
    const login = await fetch(`${apiUrl}/api/v1/auth/login`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'coordinator', password: 'demo-coordinator-pass' }),
    });
    expect(login.status).toBe(200);
    const cookie = login.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
    const hubs = (await (await fetch(`${apiUrl}/api/v1/hubs`, { headers: { cookie } })).json()) as { hubs: { id: string; link: { online: boolean } }[] };
    expect(hubs.hubs.filter((h) => h.link.online).length).toBe(13);

    console.info(`outage story: ${queued.total.waiting} messages waiting when the cloud was started (every hub), ` +
      `${drained.total.replayed - before.total.replayed} replayed and acknowledged, ${drained.total.lost} lost; restarted cloud took ${taken}, refused 0`);

    // Ctrl-C stops everything and the control file goes with the demo.
    // (npm itself ends by the signal, as in a terminal; what counts is that every process of the demo ends.)
    const group = -demo.pid!;
    process.kill(group, 'SIGINT');
    const groupAlive = () => {
      try {
        process.kill(group, 0);
        return true;
      } catch {
        return false;
      }
    };
    await expect.poll(groupAlive, { timeout: 20_000, interval: 100 }).toBe(false);
    expect(fs.existsSync(controlFile)).toBe(false);
    await expect(fetch(`${apiUrl}/metrics`)).rejects.toThrow();
    const none = await runStep(stopCloud);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no demo is running');
  }, 90_000);
});
