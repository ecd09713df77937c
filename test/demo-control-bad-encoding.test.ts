// Red-team finding (issue 16): a malformed percent-escape in the hub id threw URIError out of the control
// channel's request listener — an uncaught exception that ended `npm start` (cloud, agents, simulator).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openDemoControl, type DemoControl } from '../scripts/demo-control.ts';

describe('demo control: a malformed percent-escape in the hub id', () => {
  let control: DemoControl | null = null;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'redteam-control-'));
  afterAll(async () => {
    await control?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('is answered 400/404, and the process keeps running', async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => void uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      control = await openDemoControl(dir, {
        status: () => ({ cloud: 'running', cloudHttp: 'http://127.0.0.1:1', hubs: {} }),
        stopCloud: async () => ({ cloud: 'stopped', changed: true }),
        startCloud: async () => ({ cloud: 'running', changed: true }),
        hubs: { ids: () => ['nomi-terai'], change: async (hub) => ({ hub }) },
      });
      const { url, token } = JSON.parse(fs.readFileSync(control.file, 'utf8')) as { url: string; token: string };
      const res = await fetch(`${url}/hubs/%E0%A4%A/weather`, {
        method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"windMps":12}',
        signal: AbortSignal.timeout(3000),
      }).then((r) => r.status, (err: Error) => `no answer: ${err.message}`);
      expect(res === 400 || res === 404, `status ${res}`).toBe(true);
      expect(uncaught.map(String)).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });
});
