import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { loadCloudConfig } from '../cloud/config.ts';
import { spawnCloud, tempDir, testCloudEnv, type CloudProcess } from './support/cloud-harness.ts';

/**
 * Safe defaults (issue 11, item 6): public demo passwords never face a network by accident. With demo
 * accounts on, every listener of the real cloud process binds to loopback unless BIND_HOST says
 * otherwise, and the start-up line says where it listens.
 */

/** Every TCP listen address of a process, from the kernel's socket table (`ss`). */
function listenAddresses(pid: number): string[] {
  const out = execFileSync('ss', ['-Hltnp'], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter((l) => l.includes(`pid=${pid},`))
    .map((l) => l.trim().split(/\s+/)[3]!)
    .map((local) => local.slice(0, local.lastIndexOf(':')));
}

describe('safe defaults of the cloud', () => {
  let proc: CloudProcess | null = null;
  let dir: string | null = null;
  afterEach(async () => {
    await proc?.kill();
    proc = null;
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('binds to loopback while demo accounts are on, to all interfaces without them, and as told when BIND_HOST is set', () => {
    const base = { DATA_DIR: '/tmp/x' };
    expect(loadCloudConfig({ ...base, DEMO_CREDENTIALS: 'true' }).bindHost).toBe('127.0.0.1');
    expect(loadCloudConfig({ ...base, DEMO_ACCOUNTS: 'true' }).bindHost).toBe('127.0.0.1');
    expect(loadCloudConfig({ ...base, DEMO_CREDENTIALS: 'true', DEMO_ACCOUNTS: 'false' }).bindHost).toBe('0.0.0.0');
    expect(loadCloudConfig(base).bindHost).toBe('0.0.0.0');
    const told = loadCloudConfig({ ...base, DEMO_ACCOUNTS: 'true', BIND_HOST: '0.0.0.0' });
    expect({ bindHost: told.bindHost, exposedDemo: told.exposedDemo }).toEqual({ bindHost: '0.0.0.0', exposedDemo: true });
    expect(loadCloudConfig({ ...base, DEMO_ACCOUNTS: 'true' }).exposedDemo).toBe(false);
  });

  it('the real process with demo accounts and no BIND_HOST listens on 127.0.0.1 only (HTTP, MQTT, MQTT/WS) and says so', async () => {
    dir = tempDir('safe-defaults');
    const { BIND_HOST: _, ...env } = testCloudEnv(dir, { DEMO_ACCOUNTS: 'true', LOG_LEVEL: 'info' });
    // spawnCloud merges process.env: make sure no BIND_HOST leaks in from the environment of the test run.
    proc = await spawnCloud({ ...env, BIND_HOST: '' });
    const addresses = listenAddresses(proc.child.pid!);
    expect(addresses.length).toBeGreaterThanOrEqual(3);
    expect(addresses.filter((a) => a !== '127.0.0.1')).toEqual([]);
    const out = proc.output;
    await expect.poll(() => out.some((l) => l.includes('listening on 127.0.0.1 (this machine only)'))).toBe(true);
  });

  it('warns loudly when demo accounts are told to face the network', async () => {
    dir = tempDir('safe-defaults');
    proc = await spawnCloud(testCloudEnv(dir, { DEMO_ACCOUNTS: 'true', BIND_HOST: '0.0.0.0', LOG_LEVEL: 'info', MQTT_WS_PORT: 'off' }));
    expect(listenAddresses(proc.child.pid!)).toContain('0.0.0.0');
    const out = proc.output;
    await expect.poll(() => out.some((l) => l.includes('DEMO ACCOUNTS WITH PUBLIC PASSWORDS ARE ON'))).toBe(true);
  });
});
