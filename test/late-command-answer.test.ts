import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Command, topics } from '../contract/index.ts';
import type { EdgeAgent } from '../edge/agent.ts';
import { startTestCloud, tempDir, type TestCloud } from './support/cloud-harness.ts';
import { deviceLogin, startTestEdge, testEdgeEnv } from './support/edge-harness.ts';
import { connect } from './support/mqtt-client.ts';
import { waitFor } from './support/ports.ts';

/**
 * Issue 12 (5), through the real chain: API → cloud → edge agent (1 s command timeout) → a device
 * that answers `done` 2 s later. The agent answers `failed` (no answer) at 1 s; the device's late
 * `done` reflects what it did and must be what the cloud shows, with the failure kept in its history.
 */
const REGION = 'ishikawa-nomi';
const HUB = 'nomi-terai';
let t: TestCloud;
let agent: EdgeAgent;
const dir = tempDir('late-answer');
let device: Awaited<ReturnType<typeof connect>>;
const answeredAt: number[] = [];

beforeAll(async () => {
  t = await startTestCloud();
  agent = await startTestEdge(testEdgeEnv({ hub: HUB, cloudUrl: t.cloud.urls.mqtt, password: t.credentials[HUB]!.password, dataDir: dir, extra: { COMMAND_TIMEOUT_S: '1' } }));
  await waitFor('the agent connected', () => agent.uplink.connected);
  const login = deviceLogin(agent, 'locker-a');
  device = await connect(agent.localMqttUrl, { username: login.username, password: login.password, clientId: login.clientId });
  await device.subscribeAsync(topics.command(REGION, HUB, 'locker', 'locker-a'), { qos: 1 });
  device.on('message', (_topic, payload) => {
    const cmd = Command.parse(JSON.parse(payload.toString()));
    // A slow device: it does the job, but answers after the agent has given up waiting.
    setTimeout(() => {
      answeredAt.push(Date.now());
      const ack = { v: 1, type: 'hub.command-ack', id: `dev-ack-${cmd.id}`, ts: Date.now(), hub: HUB, device: 'locker-a', commandId: cmd.id, result: 'done', detail: 'opened (late)' };
      void device.publishAsync(topics.commandAck(REGION, HUB), JSON.stringify(ack), { qos: 1 });
    }, 2000);
  });
}, 60_000);

afterAll(async () => {
  await device?.endAsync();
  await agent?.close();
  await t?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('a device that answers after the agent timed out', () => {
  it('is recorded as done (what the device did), the timeout failure kept in the history', async () => {
    const res = await t.api(`/api/v1/hubs/${HUB}/commands`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ device: 'locker-a', command: 'locker.unlock', args: { compartment: 'A01' } }) });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    const get = async () => (await (await t.api(`/api/v1/commands/${id}`)).json()) as { state: string; detail: string | null };
    // First the agent's timeout …
    await expect.poll(get, { timeout: 10_000 }).toMatchObject({ state: 'failed', detail: expect.stringMatching(/did not answer/) });
    // … then the device's late answer wins.
    await expect.poll(get, { timeout: 10_000 }).toMatchObject({ state: 'done', detail: 'opened (late)' });
    expect(answeredAt).toHaveLength(1);
    expect((await t.cloud.commands.history(id)).map((h) => [h.state, h.detail])).toEqual([
      ['failed', expect.stringMatching(/did not answer within 1 s/)],
      ['done', 'opened (late)'],
    ]);
    // The hub agent's own record says the same (its /status and a re-delivered command's `duplicate` answer read it).
    expect(agent.state.command(id)).toMatchObject({ state: 'done', detail: 'opened (late)' });
  }, 30_000);
});
