import { describe, expect, it } from 'vitest';
import { backlogWarning, kernelBacklogCap } from './listen-backlog.ts';

describe('the MQTT listen backlog against the kernel cap', () => {
  it('reads net.core.somaxconn, and nothing where it cannot be read or is not a count', () => {
    expect(kernelBacklogCap(() => '4096\n')).toBe(4_096);
    expect(kernelBacklogCap(() => { throw new Error('ENOENT'); })).toBeNull();
    expect(kernelBacklogCap(() => 'many')).toBeNull();
    expect(kernelBacklogCap(() => '0')).toBeNull();
  });

  it('warns, naming both figures and the setting to raise, only when the kernel holds fewer than asked for', () => {
    const warning = backlogWarning(32_768, 4_096);
    expect(warning).toContain('4096');
    expect(warning).toContain('MQTT_LISTEN_BACKLOG 32768');
    expect(warning).toContain('sysctl -w net.core.somaxconn=32768');
    expect(backlogWarning(32_768, 32_768)).toBeNull();
    expect(backlogWarning(4_096, 65_535)).toBeNull();
    expect(backlogWarning(32_768, null)).toBeNull();
  });
});
