import { describe, expect, it } from 'vitest';
import { backlogWarning, kernelBacklogCap } from './listen-backlog.ts';

describe('the MQTT listen backlog against the kernel cap', () => {
  it('reads net.core.somaxconn, and nothing where it cannot be read or is not a count', () => {
    expect(kernelBacklogCap(() => '4096\n')).toBe(4_096);
    expect(kernelBacklogCap(() => { throw new Error('ENOENT'); })).toBeNull();
    expect(kernelBacklogCap(() => 'many')).toBeNull();
    expect(kernelBacklogCap(() => '0')).toBeNull();
  });

  it('warns, naming the figures and the setting to raise, only when the kernel holds fewer than asked for and than the cloud has hubs', () => {
    const warning = backlogWarning(32_768, 4_096, 13_800);
    expect(warning).toContain('only 4096 connections');
    expect(warning).toContain('13800 hubs');
    expect(warning).toContain('MQTT_LISTEN_BACKLOG 32768');
    expect(warning).toContain('sysctl -w net.core.somaxconn=32768');
    expect(warning).toContain('--sysctl'); // a container has its own: the host's setting does not reach it
    expect(backlogWarning(32_768, 32_768, 13_800)).toBeNull();
    expect(backlogWarning(4_096, 65_535, 13_800)).toBeNull();
    // A queue shorter than asked for, but long enough for every hub: the demo's 13 hubs on a common host.
    expect(backlogWarning(32_768, 4_096, 13)).toBeNull();
    expect(backlogWarning(32_768, 4_096, 4_096)).toBeNull();
    expect(backlogWarning(32_768, 4_096, 4_097)).not.toBeNull();
    // An operator who asked for less than the hubs, within the kernel's cap, gets what was asked for.
    expect(backlogWarning(1_024, 4_096, 13_800)).toBeNull();
    expect(backlogWarning(32_768, null, 13_800)).toBeNull();
  });
});
