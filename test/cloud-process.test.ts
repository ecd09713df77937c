import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, spawnCloud, tempDir, testCloudEnv } from './support/cloud-harness.ts';
import { freePort } from './support/ports.ts';

/** The cloud process as an operator starts and stops it. */
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function runCloud(env: Record<string, string>): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'cloud/main.ts')], { cwd: ROOT, env: { ...process.env, ...env } });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.on('data', (d) => (stdout += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, stdout });
    });
  });
}

describe('cloud process', () => {
  it('stops at start-up on a bad setting, naming the variable', async () => {
    const dir = tempDir('cfg');
    dirs.push(dir);
    const r = await runCloud(testCloudEnv(dir, { HTTP_PORT: 'eighty', SQLITE_SYNC: 'sometimes' }));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/HTTP_PORT="eighty"/);
    expect(r.stderr).toMatch(/SQLITE_SYNC="sometimes"/);
  });

  it('stops with a clear message when INFLUX_URL points at nothing', async () => {
    const dir = tempDir('cfg');
    dirs.push(dir);
    const port = await freePort();
    const r = await runCloud(testCloudEnv(dir, { INFLUX_URL: `http://127.0.0.1:${port}`, LOG_LEVEL: 'error' }));
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toContain(`127.0.0.1:${port}`);
    expect(r.stdout + r.stderr).toMatch(/unreachable|cannot reach|ECONNREFUSED/i);
  });

  it('shuts down cleanly on SIGTERM and writes demo credentials with mode 0600', async () => {
    const dir = tempDir('cfg');
    dirs.push(dir);
    const proc = await spawnCloud(testCloudEnv(dir));
    const creds = path.join(dir, 'credentials.json');
    expect(fs.statSync(creds).mode & 0o777).toBe(0o600);
    const hubs = JSON.parse(fs.readFileSync(creds, 'utf8'));
    expect(Object.keys(hubs).length).toBeGreaterThanOrEqual(8);
    expect(Object.values(hubs)[0]).toEqual({ username: expect.any(String), password: expect.any(String) });
    const started = Date.now();
    expect(await proc.kill('SIGTERM')).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
