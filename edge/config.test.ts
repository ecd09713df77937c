import { describe, expect, it } from 'vitest';
import { loadEdgeConfig } from './config.ts';
import { firstCloudUrlIndex } from './uplink.ts';

const base = { HUB_ID: 'nomi-terai', REGION_ID: 'ishikawa-nomi', CLOUD_PASSWORD: 'secret' };

describe('CLOUD_MQTT_URL', () => {
  it('takes one URL, as before', () => {
    expect(loadEdgeConfig({ ...base, CLOUD_MQTT_URL: 'mqtts://cloud.example.jp:8883' }).cloud.urls).toEqual(['mqtts://cloud.example.jp:8883']);
  });

  it('takes a comma-separated list of the nodes of a cluster, in any of the transports', () => {
    const c = loadEdgeConfig({ ...base, CLOUD_MQTT_URL: ' mqtts://cloud-1.example.jp:8883, wss://cloud-2.example.jp/mqtt ,mqtt://10.0.0.3:1883,' });
    expect(c.cloud.urls).toEqual(['mqtts://cloud-1.example.jp:8883', 'wss://cloud-2.example.jp/mqtt', 'mqtt://10.0.0.3:1883']);
    expect(c.cloud.username).toBe('nomi-terai'); // one login for every node
  });

  it('refuses a list with an entry that is no broker URL, naming the variable', () => {
    expect(() => loadEdgeConfig({ ...base, CLOUD_MQTT_URL: 'mqtts://cloud-1.example.jp:8883,https://cloud-2.example.jp' })).toThrow(/CLOUD_MQTT_URL=.*a broker URL/);
    expect(() => loadEdgeConfig({ ...base, CLOUD_MQTT_URL: ' , ' })).toThrow(/CLOUD_MQTT_URL=.*at least one broker URL/);
  });
});

describe('firstCloudUrlIndex', () => {
  it('is stable per hub and spreads the hubs of a region over the nodes', () => {
    const hubs = Array.from({ length: 300 }, (_, i) => `hub-${i}`);
    const counts = [0, 0, 0];
    for (const h of hubs) {
      const i = firstCloudUrlIndex(h, 3);
      expect(firstCloudUrlIndex(h, 3)).toBe(i);
      counts[i]!++;
    }
    for (const n of counts) expect(n).toBeGreaterThan(70); // 100 each on average
    expect(firstCloudUrlIndex('any', 1)).toBe(0);
  });
});
