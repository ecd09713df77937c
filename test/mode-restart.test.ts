import fs from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { topics } from '../contract/index.ts';
import { startTestCloud, tempDir, type TestCloud } from './support/cloud-harness.ts';
import { connect } from './support/mqtt-client.ts';

/**
 * Issue 13 (5): "mode: not reported" after every cloud restart, although the region's mode API said
 * every hub had acknowledged. A hub acknowledges only when its mode changes, so the cloud must keep
 * what each hub last acknowledged across its own restart.
 */
const REGION = 'ishikawa-nomi';
const HUB = 'nomi-terai';
const dir = tempDir('mode-restart');
let second: TestCloud | null = null;
afterAll(async () => {
  await second?.cloud.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

interface HubBody { mode: { mode: string; version: number; source: string; reason: string | null } | null }

describe('a hub\'s acknowledged mode', () => {
  it('is still shown after the cloud restarts, with no new acknowledgement', async () => {
    const first = await startTestCloud({}, dir);
    const switched = await first.api(`/api/v1/regions/${REGION}/mode`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'emergency', reason: '地震 — earthquake drill' }),
    });
    expect(switched.status).toBe(202);
    const cred = first.credentials[HUB]!;
    const hub = await connect(first.cloud.urls.mqtt, { username: cred.username, password: cred.password, clientId: `${HUB}.mode-test` });
    const ack = { v: 1, type: 'hub.mode-ack', id: 'mode-ack-restart-1', ts: Date.now(), hub: HUB, version: 1, mode: 'emergency', source: 'cloud', reason: '地震 — earthquake drill' };
    await hub.publishAsync(topics.modeAck(REGION, HUB), JSON.stringify(ack), { qos: 1 });
    await hub.endAsync();
    const shown = async (t: TestCloud) => ((await (await t.api(`/api/v1/hubs/${HUB}`)).json()) as HubBody).mode;
    await expect.poll(() => shown(first)).toMatchObject({ mode: 'emergency', version: 1 });
    await first.cloud.close();

    second = await startTestCloud({}, dir);
    expect(await shown(second)).toMatchObject({ mode: 'emergency', version: 1, source: 'cloud', reason: '地震 — earthquake drill' });
    // Restored, not heard from: the hub's link is not made to look alive by it.
    const link = ((await (await second.api(`/api/v1/hubs/${HUB}`)).json()) as { link: { online: boolean; lastSeen: string | null } }).link;
    expect(link).toMatchObject({ online: false, lastSeen: null });
  }, 30_000);
});
