import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, startTestCloud, tempDir, type TestCloud } from './support/cloud-harness.ts';
import { freePort, waitFor } from './support/ports.ts';

/**
 * The Node-RED flows (flows/flows.json with flows/settings.cjs) in a real Node-RED runtime, as its
 * own process, against a real cloud — talking to it only over the HTTP API — and a local webhook.
 * JMA bulletins: test/fixtures/jma (出典：気象庁防災情報XML, CC BY 4.0).
 */
const FIXTURES = path.join(ROOT, 'test/fixtures/jma');
const ABOVE = fs.readFileSync(path.join(FIXTURES, '20240116184225_02245216_VXSE43.xml'), 'utf8'); // 能登 390: forecast 震度5弱
const BELOW = fs.readFileSync(path.join(FIXTURES, '32-39_11_05_120615_VXSE53.xml'), 'utf8'); // 能登/加賀: 震度3
const REGION = 'ishikawa-nomi';

interface Posted { path: string; body: Record<string, unknown> }

/** Loopback server: the alarm and escalation webhooks, and the hazard feed. */
async function startWebhook(port = 0) {
  const state = { answer: 200, posted: [] as Posted[], refused: 0, bulletin: BELOW, feedReads: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'GET' && req.url === '/feed.xml') {
        state.feedReads += 1;
        res.writeHead(200, { 'content-type': 'application/xml' }).end(state.bulletin);
        return;
      }
      if (state.answer !== 200) {
        state.refused += 1;
        res.writeHead(state.answer).end('down for maintenance');
        return;
      }
      state.posted.push({ path: req.url!, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return { state, url, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** Node-RED as its own process, in a temp userDir holding copies of flows.json and settings.cjs. */
async function startNodeRed(userDir: string, env: Record<string, string>) {
  const port = await freePort();
  const child: ChildProcess = spawn(process.execPath, [
    path.join(ROOT, 'node_modules/node-red/red.js'), '--userDir', userDir, '--settings', path.join(userDir, 'settings.cjs'), 'flows.json',
  ], { cwd: userDir, env: { PATH: process.env.PATH ?? '', HOME: userDir, NODE_RED_PORT: String(port), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  for (const s of [child.stdout!, child.stderr!]) readline.createInterface({ input: s }).on('line', (l) => output.push(l));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitFor(`Node-RED to start its flows:\n${output.join('\n')}`, async () => {
    if (child.exitCode !== null) throw new Error(`Node-RED exited:\n${output.join('\n')}`);
    const res = await fetch(`http://127.0.0.1:${port}/settings`);
    return res.ok && output.some((l) => l.includes('Started flows'));
  }, 30_000, 100);
  return {
    output,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

describe('Node-RED flows (real runtime)', () => {
  let cloud: TestCloud;
  let hook: Awaited<ReturnType<typeof startWebhook>>;
  let userDir: string;
  let env: Record<string, string>;
  let red: Awaited<ReturnType<typeof startNodeRed>> | null = null;
  const alarmPosts = () => hook.state.posted.filter((p) => p.path === '/alarms').map((p) => p.body);
  const proposals = async () => {
    const res = await cloud.api(`/api/v1/regions/${REGION}/mode-proposals?state=open`);
    expect(res.status).toBe(200);
    return ((await res.json()) as { proposals: { source: string; eventId: string; evidence: Record<string, unknown> }[] }).proposals;
  };
  const raise = (compartment: string) =>
    cloud.cloud.alarms.raise({ hub: 'nomi-terai', device: 'locker-a', compartment, kind: 'door_open_too_long', detail: `door ${compartment} open` });

  beforeAll(async () => {
    cloud = await startTestCloud();
    hook = await startWebhook();
    userDir = tempDir('node-red');
    fs.copyFileSync(path.join(ROOT, 'flows/flows.json'), path.join(userDir, 'flows.json'));
    fs.copyFileSync(path.join(ROOT, 'flows/settings.cjs'), path.join(userDir, 'settings.cjs'));
    env = {
      CLOUD_API_URL: cloud.cloud.urls.http, CLOUD_API_TOKEN: await cloud.tokenFor('node-red', 'coordinator'), REGION_ID: REGION,
      ALARM_WEBHOOK_URL: `${hook.url}/alarms`, ALARM_POLL_S: '0.5', ALARM_RETRY_MAX_S: '1',
      ESCALATION_WEBHOOK_URL: `${hook.url}/escalations`, HUB_OFFLINE_ESCALATE_S: '60', HUB_POLL_S: '1',
      HAZARD_FEED_URL: `${hook.url}/feed.xml`, HAZARD_POLL_S: '0.5', HAZARD_MIN_INTENSITY: '5-', HAZARD_AREA_CODES: '390,391',
      NODE_RED_LOG_LEVEL: 'info', // 'Started flows' is logged at info
    };
    red = await startNodeRed(userDir, env);
  }, 60_000);

  afterAll(async () => {
    await red?.stop();
    await hook?.close();
    await cloud?.stop();
    if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
  });

  it('posts a new alarm to the webhook once', async () => {
    const alarm = await raise('A01');
    const posted = await waitFor('the alarm at the webhook', () => alarmPosts().find((b) => b.id === alarm.id));
    expect(posted).toMatchObject({ type: 'alarm', kind: 'door_open_too_long', hub: 'nomi-terai', severity: 'warning', compartment: 'A01' });
    expect(posted.text).toContain('door_open_too_long at nomi-terai/locker-a/A01');
    await new Promise((r) => setTimeout(r, 1500)); // several polls later: still once
    expect(alarmPosts().filter((b) => b.id === alarm.id)).toHaveLength(1);
  });

  it('delivers an alarm raised while the webhook was down, once, after it comes back', async () => {
    hook.state.answer = 503;
    const alarm = await raise('A02');
    await waitFor('retries against the down webhook', () => hook.state.refused >= 3, 15_000);
    expect(alarmPosts().some((b) => b.id === alarm.id)).toBe(false);
    hook.state.answer = 200;
    await waitFor('the alarm after the outage', () => alarmPosts().some((b) => b.id === alarm.id), 10_000);
    await new Promise((r) => setTimeout(r, 1500));
    expect(alarmPosts().filter((b) => b.id === alarm.id)).toHaveLength(1);
  });

  it('after a restart of Node-RED, neither repeats delivered alarms nor loses one raised meanwhile', async () => {
    await red!.stop();
    red = null;
    const alarm = await raise('A03');
    const before = alarmPosts().length;
    red = await startNodeRed(userDir, env);
    await waitFor('the alarm raised while Node-RED was down', () => alarmPosts().some((b) => b.id === alarm.id), 10_000);
    await new Promise((r) => setTimeout(r, 1500));
    expect(alarmPosts().slice(before).map((b) => b.id)).toEqual([alarm.id]);
  }, 40_000);

  it('proposes emergency mode for a JMA bulletin at or above the threshold in our areas, and nothing below it', async () => {
    // Below: the 2011 bulletin observed 震度3 in 能登 (390) and 加賀 (391).
    hook.state.bulletin = BELOW;
    const reads = hook.state.feedReads;
    await waitFor('Node-RED to read the feed a few times', () => hook.state.feedReads >= reads + 3, 10_000);
    expect(await proposals()).toEqual([]);

    // Above: the 2024 EEW forecast 震度4–5弱 in 能登 (390); threshold 5-.
    hook.state.bulletin = ABOVE;
    const [p] = await waitFor('a mode proposal', async () => ((await proposals()).length > 0 ? proposals() : null), 10_000);
    expect(p).toMatchObject({ source: 'jma', mode: 'emergency', eventId: '20240116184216', state: 'open' });
    expect(p!.evidence).toMatchObject({
      eventId: '20240116184216', intensity: '5-', forecast: true, area: { code: '390', name: '石川県能登' }, reportTime: '2024-01-16T18:42:25+09:00',
    });
    // Read again and again: still one proposal; and the proposal did not switch the mode.
    const again = hook.state.feedReads;
    await waitFor('more reads of the feed', () => hook.state.feedReads >= again + 3, 10_000);
    expect(await proposals()).toHaveLength(1);
    const mode = (await (await cloud.api(`/api/v1/regions/${REGION}/mode`)).json()) as { desired: { mode: string; version: number } };
    expect(mode.desired).toMatchObject({ mode: 'normal', version: 0 });
  });
});
