import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestCloud, tempDir } from './support/cloud-harness.ts';
import { spawnEdge, testEdgeEnv, type EdgeProcess } from './support/edge-harness.ts';
import { waitFor } from './support/ports.ts';

/** Restarts of the real agent process (edge/main.ts) with work left open [issue 12]. */
const HUB = 'nomi-terai';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface CommandBody { id: string; state: string; detail: string | null }

describe('edge agent restarted with a command the device has not answered', () => {
  it('does not crash on start, and the cloud records the command failed with the restart as its reason', async () => {
    const t = await startTestCloud();
    cleanups.push(() => t.stop());
    const edgeDir = tempDir('restart-edge');
    cleanups.push(() => fs.rmSync(edgeDir, { recursive: true, force: true }));
    // A long command timeout: the device (absent) never answers, and the agent's own timer must not decide.
    const env = testEdgeEnv({ hub: HUB, cloudUrl: t.cloud.urls.mqtt, password: t.credentials[HUB]!.password, dataDir: edgeDir, extra: { COMMAND_TIMEOUT_S: '120' } });
    let edge: EdgeProcess = await spawnEdge(env);
    cleanups.push(() => edge.kill('SIGKILL'));
    const status = async () => (await (await fetch(`${edge.urls.http}/status`)).json()) as { uplink: { connected: boolean } };
    await waitFor('the agent connected', async () => (await status()).uplink.connected);

    const res = await t.api(`/api/v1/hubs/${HUB}/commands`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ device: 'locker-a', command: 'locker.unlock', args: { compartment: 'A01' } }),
    });
    expect(res.status).toBe(202);
    const cmd = (await res.json()) as CommandBody;
    const metric = async () => (await (await fetch(`${edge.urls.http}/metrics`)).text()).match(/^edge_commands_total\{result="relayed"\} (\d+)/m)?.[1];
    await waitFor('the agent relayed the command', async () => (await metric()) === '1');

    expect(await edge.kill('SIGKILL')).toBe(null);
    edge = await spawnEdge(env);
    const get = async () => (await (await t.api(`/api/v1/commands/${cmd.id}`)).json()) as CommandBody;
    // The restarted agent also answers the command the cloud sends it again on subscribing: `duplicate`
    // ("already relayed"), which fills a pending command for a moment and gives way to the result
    // (nextCommandState). Which of the two the cloud stores first is a race; the result is what counts.
    const answered = await waitFor('the command answered', async () => {
      const c = await get();
      return ['sent', 'pending', 'duplicate'].includes(c.state) ? null : c;
    }, 15_000);
    expect(answered.state).toBe('failed');
    expect(answered.detail).toMatch(/restarted before the device answered/);
    // Still alive a moment later (the old code died of an unhandled rejection right after start).
    await waitFor('the agent still serving', async () => (await status()).uplink.connected);
    expect(edge.child.exitCode).toBe(null);
    expect(edge.output.join('\n')).not.toMatch(/ReferenceError|Cannot access 'uplink' before initialization/);
  }, 60_000);
});
