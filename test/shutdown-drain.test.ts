import { afterEach, describe, expect, it } from 'vitest';
import { EXAMPLES, topics } from '../contract/index.ts';
import { startTestCloud, type TestCloud } from './support/cloud-harness.ts';
import { connect } from './support/mqtt-client.ts';

/**
 * Issue 12, defect 8: mission events reach the orders on the orders' own chain after ingest stored
 * them; a graceful shutdown must let that chain finish before the database closes (before, the
 * cloud closed under a mission event still being applied: the order never advanced).
 */
const REGION = 'ishikawa-nomi';
const HUB = 'rs-komatsu-kibagata';
let t: TestCloud | null = null;
afterEach(async () => {
  await t?.stop();
  t = null;
});

describe('graceful shutdown', () => {
  it('waits for the mission events ingest handed to the orders before closing the database', async () => {
    t = await startTestCloud();
    const orders = t.cloud.orders as unknown as { missionEvent: (hub: string, drone: string, missionId: string, event: string, ts: number) => Promise<void> };
    const applied: string[] = [];
    let started = false;
    // A slow step on the orders' chain (a real one hashes a pickup code or writes the flight log).
    orders.missionEvent = async (_hub, _drone, missionId, event) => {
      started = true;
      await new Promise((r) => setTimeout(r, 400));
      applied.push(`${missionId}:${event}`);
    };
    const cred = t.credentials[HUB]!;
    const hub = await connect(t.cloud.urls.mqtt, { username: cred.username, password: cred.password, clientId: `${HUB}.agent` });
    const event = { ...EXAMPLES.find((e) => e.name === 'drone.event')!.payload, hub: HUB, id: 'drone-1-drain-000001', ts: Date.now(), event: 'takeoff', severity: 'info' };
    await hub.publishAsync(topics.device(REGION, HUB, 'drone', 'drone-1', 'event'), JSON.stringify(event), { qos: 1 }); // PUBACK: stored
    await hub.endAsync();
    await expect.poll(() => started).toBe(true);
    const appliedWhenClosed = await t.cloud.close().then(() => [...applied]);
    expect(appliedWhenClosed).toEqual(['mission-0007:takeoff']);
  });
});
