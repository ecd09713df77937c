import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createRegions } from '../hubs/regions.ts';
import { loadRegionFile } from '../hubs/region-loader.ts';
import { coversCommands, decidePublish, decideSubscribe, decideWill, storedWillRefusal } from './access-policy.ts';

const hub = { hubId: 'nomi-terai', region: 'ishikawa-nomi' };

describe('decidePublish', () => {
  it('allows the hub its own up-link topics; retain only on status', () => {
    expect(decidePublish(hub, 'v1/ishikawa-nomi/nomi-terai/drone/drone-1/telemetry')).toEqual({ ok: true, retainAllowed: false });
    expect(decidePublish(hub, 'v1/ishikawa-nomi/nomi-terai/status')).toEqual({ ok: true, retainAllowed: true });
    expect(decidePublish(hub, 'v1/ishikawa-nomi/nomi-terai/cmd-ack')).toEqual({ ok: true, retainAllowed: false });
  });

  it('lets unknown topics under its own prefix through to be dead-lettered', () => {
    expect(decidePublish(hub, 'v1/ishikawa-nomi/nomi-terai/whatever')).toEqual({ ok: true, retainAllowed: false });
  });

  it('refuses other hubs, other regions, down-link topics and reserved topics', () => {
    expect(decidePublish(hub, 'v1/ishikawa-nomi/nomi-neagari/drone/d/telemetry')).toMatchObject({ ok: false, reason: 'foreign_prefix' });
    expect(decidePublish(hub, 'v1/other-region/nomi-terai/drone/d/telemetry')).toMatchObject({ ok: false, reason: 'foreign_prefix' });
    expect(decidePublish(hub, 'v1/ishikawa-nomi/nomi-terai-x/status')).toMatchObject({ ok: false, reason: 'foreign_prefix' });
    expect(decidePublish(hub, 'v1/ishikawa-nomi/mode')).toMatchObject({ ok: false, reason: 'foreign_prefix' });
    expect(decidePublish(hub, 'v1/ishikawa-nomi/nomi-terai/cmd/locker/locker-a')).toMatchObject({ ok: false, reason: 'downlink_topic' });
    expect(decidePublish(hub, 'v1/ishikawa-nomi/nomi-terai/ack')).toMatchObject({ ok: false, reason: 'downlink_topic' });
    expect(decidePublish(hub, '$SYS/broker/x')).toMatchObject({ ok: false, reason: 'reserved' });
    expect(decidePublish(hub, `v1/ishikawa-nomi/nomi-terai/${'a/'.repeat(10)}x`)).toMatchObject({ ok: false, reason: 'topic_limits' });
    expect(decidePublish(hub, `v1/ishikawa-nomi/nomi-terai/${'a'.repeat(300)}`)).toMatchObject({ ok: false, reason: 'topic_limits' });
  });
});

describe('decideSubscribe', () => {
  it('allows its commands, acks and region mode, and narrower filters of them', () => {
    for (const f of ['v1/ishikawa-nomi/nomi-terai/cmd/#', 'v1/ishikawa-nomi/nomi-terai/cmd/locker/+', 'v1/ishikawa-nomi/nomi-terai/cmd/drone/drone-1', 'v1/ishikawa-nomi/nomi-terai/ack', 'v1/ishikawa-nomi/mode']) {
      expect(decideSubscribe(hub, f), f).toBe(true);
    }
  });

  it('refuses anything wider or foreign', () => {
    for (const f of ['#', 'v1/#', 'v1/+/mode', 'v1/ishikawa-nomi/+/cmd/#', 'v1/ishikawa-nomi/nomi-neagari/cmd/#', 'v1/ishikawa-nomi/nomi-terai/#', 'v1/ishikawa-nomi/nomi-terai/+', 'v1/ishikawa-nomi/nomi-terai/drone/drone-1/telemetry', '$SYS/#', 'v1/other/mode']) {
      expect(decideSubscribe(hub, f), f).toBe(false);
    }
  });
});

describe('coversCommands', () => {
  it('is true for the hub\'s command filters only (the cloud re-delivers pending commands then)', () => {
    for (const f of ['v1/ishikawa-nomi/nomi-terai/cmd/#', 'v1/ishikawa-nomi/nomi-terai/cmd/locker/+', 'v1/ishikawa-nomi/nomi-terai/cmd/drone/drone-1']) {
      expect(coversCommands(hub, f), f).toBe(true);
    }
    for (const f of ['v1/ishikawa-nomi/nomi-terai/ack', 'v1/ishikawa-nomi/mode', 'v1/ishikawa-nomi/nomi-neagari/cmd/#']) {
      expect(coversCommands(hub, f), f).toBe(false);
    }
  });
});

describe('regions (issue 14, item 3)', () => {
  const dir = path.resolve(import.meta.dirname, '../../config/regions');
  const served = createRegions([loadRegionFile(path.join(dir, 'ishikawa-nomi.json')), loadRegionFile(path.join(dir, 'ishikawa-kanazawa.json'))]);
  const kanazawa = { hubId: 'kanazawa-yuwaku', region: 'ishikawa-kanazawa' };

  it('lets a hub of each served region use its own region\'s topics', () => {
    expect(decidePublish(hub, 'v1/ishikawa-nomi/nomi-terai/status', served)).toEqual({ ok: true, retainAllowed: true });
    expect(decidePublish(kanazawa, 'v1/ishikawa-kanazawa/kanazawa-yuwaku/drone/drone-1/telemetry', served)).toEqual({ ok: true, retainAllowed: false });
    expect(decideSubscribe(kanazawa, 'v1/ishikawa-kanazawa/mode', served)).toBe(true);
    expect(decideSubscribe(kanazawa, 'v1/ishikawa-kanazawa/kanazawa-yuwaku/cmd/#', served)).toBe(true);
  });

  it('refuses another served region\'s topics, even with its own hub id in them', () => {
    for (const t of ['v1/ishikawa-nomi/kanazawa-yuwaku/status', 'v1/ishikawa-nomi/nomi-terai/status', 'v1/ishikawa-nomi/mode']) {
      expect(decidePublish(kanazawa, t, served), t).toMatchObject({ ok: false, reason: 'foreign_prefix' });
    }
    for (const f of ['v1/ishikawa-nomi/mode', 'v1/ishikawa-nomi/kanazawa-yuwaku/cmd/#', 'v1/ishikawa-nomi/nomi-terai/cmd/#', 'v1/+/mode', 'v1/+/kanazawa-yuwaku/cmd/#']) {
      expect(decideSubscribe(kanazawa, f, served), f).toBe(false);
    }
    expect(decideSubscribe(hub, 'v1/ishikawa-kanazawa/mode', served)).toBe(false);
  });

  it('refuses everything to a hub whose credential names a region the cloud does not serve', () => {
    const stray = { hubId: 'toyama-1', region: 'toyama-west' };
    expect(decidePublish(stray, 'v1/toyama-west/toyama-1/status', served)).toEqual({ ok: false, reason: 'unknown_region' });
    expect(decidePublish(stray, 'v1/toyama-west/toyama-1/drone/d/telemetry', served)).toEqual({ ok: false, reason: 'unknown_region' });
    for (const f of ['v1/toyama-west/mode', 'v1/toyama-west/toyama-1/cmd/#', 'v1/toyama-west/toyama-1/ack']) {
      expect(decideSubscribe(stray, f, served), f).toBe(false);
      expect(decideSubscribe(stray, f), `${f} without a region check`).toBe(true);
    }
  });
});

describe('decideWill', () => {
  it('allows the hub its own status topic only', () => {
    expect(decideWill(hub, 'v1/ishikawa-nomi/nomi-terai/status')).toEqual({ ok: true });
    expect(decideWill(hub, 'v1/ishikawa-nomi/nomi-terai/drone/drone-1/event')).toEqual({ ok: false, reason: 'not_status' });
    expect(decideWill(hub, 'v1/ishikawa-nomi/nomi-terai/whatever')).toEqual({ ok: false, reason: 'not_status' });
  });

  it("refuses another hub's or region's status, down-link and reserved topics, as a publish would", () => {
    expect(decideWill(hub, 'v1/ishikawa-nomi/nomi-neagari/status')).toEqual({ ok: false, reason: 'foreign_prefix' });
    expect(decideWill(hub, 'v1/ishikawa-kanazawa/nomi-terai/status')).toEqual({ ok: false, reason: 'foreign_prefix' });
    expect(decideWill(hub, 'v1/ishikawa-nomi/nomi-terai/ack')).toEqual({ ok: false, reason: 'downlink_topic' });
    expect(decideWill(hub, '$SYS/x/heartbeat')).toEqual({ ok: false, reason: 'reserved' });
    expect(decideWill(hub, 'v1/ishikawa-nomi/nomi-terai/status', { has: () => false })).toEqual({ ok: false, reason: 'unknown_region' });
  });
});

describe('storedWillRefusal', () => {
  it("lets a status will through only with a client id of the hub its topic names", () => {
    expect(storedWillRefusal({ topic: 'v1/ishikawa-nomi/nomi-terai/status', clientId: 'nomi-terai' })).toBeNull();
    expect(storedWillRefusal({ topic: 'v1/ishikawa-nomi/nomi-terai/status', clientId: 'nomi-terai.agent' })).toBeNull();
    expect(storedWillRefusal({ topic: 'v1/ishikawa-nomi/nomi-terai/status', clientId: 'nomi-neagari.agent' })).toBe('foreign_client_id');
    expect(storedWillRefusal({ topic: 'v1/ishikawa-nomi/nomi-terai/status', clientId: 'nomi-terai-x' })).toBe('foreign_client_id');
    expect(storedWillRefusal({ topic: 'v1/ishikawa-nomi/nomi-terai/status' })).toBe('foreign_client_id');
    expect(storedWillRefusal({ topic: 'v1/ishikawa-nomi/nomi-terai/status', clientId: 42 })).toBe('foreign_client_id');
    expect(storedWillRefusal({ topic: 'v1/ishikawa-nomi/nomi-terai/cmd-ack', clientId: 'nomi-terai' })).toBe('not_status');
    expect(storedWillRefusal({ topic: '$SYS/x/heartbeat', clientId: 'nomi-terai' })).toBe('not_status');
  });
});
