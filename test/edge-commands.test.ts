import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { topics } from '../contract/index.ts';
import { loadRegionFile } from '../cloud/hubs/region-loader.ts';
import type { EdgeAgent } from '../edge/agent.ts';
import { startRegionSimulator, type RegionSimulator } from '../simulators/region-simulator.ts';
import { REGION_FILE, startTestCloud, tempDir, type TestCloud } from './support/cloud-harness.ts';
import { deviceLoginsOf, startTestEdge, testEdgeEnv } from './support/edge-harness.ts';
import { waitFor } from './support/ports.ts';

/**
 * Commands down to devices through the real chain: API → cloud broker → edge agent → simulated
 * locker/drone → acknowledgement → edge outbox → cloud → API.
 */
const HUB = 'nomi-terai';
let t: TestCloud;
let agent: EdgeAgent;
let sim: RegionSimulator;
const dir = tempDir('edge-cmd');

interface CommandBody { id: string; state: string; detail: string | null }

beforeAll(async () => {
  t = await startTestCloud();
  agent = await startTestEdge(testEdgeEnv({ hub: HUB, cloudUrl: t.cloud.urls.mqtt, password: t.credentials[HUB]!.password, dataDir: dir }));
  sim = await startRegionSimulator({
    brokerUrl: agent.localMqttUrl, region: loadRegionFile(REGION_FILE), hubs: [HUB], publishStatus: false, seed: 3, deviceLogins: deviceLoginsOf([agent]),
    rates: { droneHz: 1, lockerIntervalS: 2, sensorIntervalS: 2 },
  });
  await waitFor('the agent connected', () => agent.uplink.connected);
});
afterAll(async () => {
  await sim?.stop();
  await agent?.close();
  await t?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function post(body: object): Promise<CommandBody> {
  const res = await t.api(`/api/v1/hubs/${HUB}/commands`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(res.status).toBe(202);
  return (await res.json()) as CommandBody;
}
const get = async (id: string) => (await (await t.api(`/api/v1/commands/${id}`)).json()) as CommandBody;

describe('commands to devices via the edge agent', () => {
  it('unlocks a compartment: the locker opens the door and the API shows the command done', async () => {
    const cmd = await post({ device: 'locker-a', command: 'locker.unlock', args: { compartment: 'A01' } });
    const done = await waitFor('the command done', async () => ((await get(cmd.id)).state === 'done' ? get(cmd.id) : null), 10_000);
    expect(done.state).toBe('done');
    await waitFor('the door_opened event in live state', async () => {
      const h = (await (await t.api(`/api/v1/hubs/${HUB}`)).json()) as { deviceStates: { device: string; lastEvent: { event: string; compartment?: string } | null }[] };
      const ev = h.deviceStates.find((d) => d.device === 'locker-a')!.lastEvent;
      return ev?.event === 'door_opened' && ev.compartment === 'A01';
    }, 10_000);
  });

  it('executes a command id at most once, even when the cloud delivers it again', async () => {
    const before = sim.stats().byHub[HUB]!.commands;
    const cmd = await post({ device: 'locker-a', command: 'locker.unlock', args: { compartment: 'A02' } });
    await waitFor('done', async () => (await get(cmd.id)).state === 'done', 10_000);
    // The cloud re-delivers the same command (e.g. after the hub reconnected).
    const again = { v: 1, type: 'hub.command', id: cmd.id, ts: Date.now(), hub: HUB, device: 'locker-a', command: 'locker.unlock', expiresAt: Date.now() + 60_000, args: { compartment: 'A02' } };
    await t.cloud.broker.publish(topics.command('ishikawa-nomi', HUB, 'locker', 'locker-a'), JSON.stringify(again), { qos: 1 });
    await new Promise((r) => setTimeout(r, 1000));
    expect(sim.stats().byHub[HUB]!.commands - before).toBe(1); // the device saw it once
    expect(agent.state.command(cmd.id)?.state).toBe('done');
    expect((await get(cmd.id)).state).toBe('done'); // a later "duplicate" answer does not overwrite the result
  });

  it('does not execute an expired command', async () => {
    const before = sim.stats().byHub[HUB]!.commands;
    const stale = { v: 1, type: 'hub.command', id: 'cmd-stale-1', ts: Date.now() - 120_000, hub: HUB, device: 'locker-a', command: 'locker.unlock', expiresAt: Date.now() - 60_000, args: { compartment: 'A03' } };
    await t.cloud.broker.publish(topics.command('ishikawa-nomi', HUB, 'locker', 'locker-a'), JSON.stringify(stale), { qos: 1 });
    await waitFor('recorded as expired at the hub', () => agent.state.command('cmd-stale-1')?.state === 'expired');
    expect(sim.stats().byHub[HUB]!.commands - before).toBe(0);
  });

  it('a rejected command comes back with the device’s reason', async () => {
    const cmd = await post({ device: 'locker-a', command: 'locker.unlock', args: { compartment: 'Z99' } });
    const r = await waitFor('rejected', async () => ((await get(cmd.id)).state === 'rejected' ? get(cmd.id) : null), 10_000);
    expect(r.detail).toMatch(/Z99/);
  });
});
