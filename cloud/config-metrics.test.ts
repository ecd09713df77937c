import { describe, expect, it } from 'vitest';
import { ConfigError, loadCloudConfig } from './config.ts';

describe('EVENT_LOOP_RESOLUTION_MS', () => {
  it('defaults to 10 ms, takes 1 ms, and refuses what is not a whole number of ms from 1 to 1,000, naming the variable', () => {
    expect(loadCloudConfig({}).eventLoopResolutionMs).toBe(10);
    expect(loadCloudConfig({ EVENT_LOOP_RESOLUTION_MS: '1' }).eventLoopResolutionMs).toBe(1);
    for (const bad of ['0', '-1', '1.5', '1001', 'fast']) {
      expect(() => loadCloudConfig({ EVENT_LOOP_RESOLUTION_MS: bad }), bad).toThrow(ConfigError);
      expect(() => loadCloudConfig({ EVENT_LOOP_RESOLUTION_MS: bad }), bad).toThrow(/EVENT_LOOP_RESOLUTION_MS/);
    }
  });

});

describe('MQTT_LISTEN_BACKLOG', () => {
  it('defaults to 32,768 (13,800 hubs reconnecting to a restarted cloud fit in its accept queue), takes another size, and refuses what is not a whole number from 1 to 65,535, naming the variable', () => {
    expect(loadCloudConfig({}).mqtt.listenBacklog).toBe(32_768);
    expect(loadCloudConfig({ MQTT_LISTEN_BACKLOG: '511' }).mqtt.listenBacklog).toBe(511);
    for (const bad of ['0', '-1', '1.5', '65536', 'deep']) {
      expect(() => loadCloudConfig({ MQTT_LISTEN_BACKLOG: bad }), bad).toThrow(ConfigError);
      expect(() => loadCloudConfig({ MQTT_LISTEN_BACKLOG: bad }), bad).toThrow(/MQTT_LISTEN_BACKLOG/);
    }
  });
});
