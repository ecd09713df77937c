import path from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HubStatus, ModeAck } from '../../contract/index.ts';
import { loadRegionFile } from '../hubs/region-loader.ts';
import { createRegions } from '../hubs/regions.ts';
import { LiveState, type LiveChange } from './live-state.ts';

const region = loadRegionFile(path.resolve(import.meta.dirname, '../../config/regions/ishikawa-nomi.json'));
const R = region.id;
const HUB = 'nomi-terai';
const T = 1_764_000_000_000;

const status = (state: HubStatus['state'], ts: number, over: Partial<HubStatus> = {}): HubStatus => ({ v: 1, type: 'hub.status', hub: HUB, state, ts, ...over });
const modeAck = (ts: number, over: Partial<ModeAck> = {}): ModeAck => ({
  v: 1, type: 'hub.mode-ack', id: `m-${ts}`, ts, hub: HUB, version: 1, mode: 'emergency', source: 'local', ...over,
});

describe('LiveState link', () => {
  it('is online while connected, offline when the last connection closes', () => {
    const live = new LiveState(region);
    live.connectionOpened(HUB, R, T);
    live.connectionOpened(HUB, R, T + 1);
    live.connectionClosed(HUB, R, T + 2);
    expect(live.hubs.get(HUB)!.link).toMatchObject({ online: true, connections: 1, since: T });
    expect(live.connectedCount()).toBe(1);
    live.connectionClosed(HUB, R, T + 3);
    expect(live.hubs.get(HUB)!.link).toMatchObject({ online: false, connections: 0, since: T + 3 });
    expect(live.connectedCount()).toBe(0);
    live.connectionClosed(HUB, R, T + 4); // a close without an open (never below zero)
    expect(live.connectedCount()).toBe(0);
    live.connectionOpened('unregistered-hub', R, T + 5);
    expect(live.connectedCount()).toBe(1);
  });

  it('goes offline when the hub reports "offline" while still connected, and back online with a newer birth', () => {
    const live = new LiveState(region);
    live.connectionOpened(HUB, R, T);
    live.applyStatus(R, status('online', T), T);
    live.applyStatus(R, status('offline', T + 10), T + 10);
    expect(live.hubs.get(HUB)!.link).toMatchObject({ online: false, connections: 1, since: T + 10 });
    live.applyStatus(R, status('online', T + 20), T + 20);
    expect(live.hubs.get(HUB)!.link).toMatchObject({ online: true, since: T + 20 });
  });

  it('ignores the last will of a dead connection that arrives after the new connection\'s birth', () => {
    const live = new LiveState(region);
    live.connectionOpened(HUB, R, T);
    live.applyStatus(R, status('online', T), T);
    // The link dies unnoticed; the hub reconnects and sends a new birth; then the broker times out the old connection.
    live.connectionOpened(HUB, R, T + 100);
    live.applyStatus(R, status('online', T + 100), T + 100);
    live.connectionClosed(HUB, R, T + 150);
    live.applyStatus(R, status('offline', T), T + 150);
    expect(live.hubs.get(HUB)!.link).toMatchObject({ online: true, connections: 1 });
  });

  it('counts a new connection as a sign of life even when the newest status says "offline"', () => {
    const live = new LiveState(region);
    live.applyStatus(R, status('offline', T), T);
    live.connectionOpened(HUB, R, T + 5);
    expect(live.hubs.get(HUB)!.link.online).toBe(true);
  });

  it('keeps the last reported outbox when a later status carries no figures', () => {
    const live = new LiveState(region);
    live.connectionOpened(HUB, R, T);
    live.applyStatus(R, status('online', T + 1, { outboxDepth: 12, oldestUnsentAgeS: 30.5 }), T + 1);
    live.applyStatus(R, status('offline', T + 2), T + 2);
    expect(live.hubs.get(HUB)!.link.outbox).toEqual({ depth: 12, oldestUnsentAgeS: 30.5, reportedAt: T + 1 });
    expect([...live.linkSamples()].find((s) => s.hub === HUB)).toEqual({ hub: HUB, online: false, outboxDepth: 12, oldestUnsentAgeS: 30.5 });
    expect([...live.linkSamples()]).toHaveLength(region.hubs.length);
  });
});

describe('LiveState mode', () => {
  it('shows the newest mode acknowledgement by hub timestamp', () => {
    const live = new LiveState(region);
    expect(live.hubs.get(HUB)!.mode).toBeNull();
    live.applyModeAck(R, modeAck(T + 10, { mode: 'emergency', version: 2, reason: 'landslide' }), T + 11);
    live.applyModeAck(R, modeAck(T, { mode: 'normal', version: 1 }), T + 12); // replayed, older
    expect(live.hubs.get(HUB)!.mode).toEqual({ mode: 'emergency', version: 2, source: 'local', reason: 'landslide', ts: T + 10, receivedAt: T + 11 });
  });
});

describe('LiveState newest-wins against bad clocks (issue 11)', () => {
  const YEAR_2099 = 4_070_908_800_000;
  const SKEW = 300_000;
  const sensor = (id: string, ts: number) => ({
    v: 1 as const, type: 'sensor.telemetry' as const, id, ts, hub: HUB, device: 'wx', windSpeedMps: 3, windGustMps: 4, windDirDeg: 90,
    rainMmPerH: 0, airTempC: 10, gridPowerUp: true, backupBatteryPct: 100, linkQualityPct: 80,
  });

  it('never shows a reading stamped beyond the allowed skew as the newest, so real readings keep coming through', () => {
    const live = new LiveState(region, { maxFutureSkewMs: SKEW });
    live.applyDeviceMessage(R, 'sensor', sensor('real-1', T), T);
    live.applyDeviceMessage(R, 'sensor', sensor('from-2099', YEAR_2099), T + 1);
    live.applyDeviceMessage(R, 'sensor', sensor('real-2', T + 2), T + 2);
    expect(live.hubs.get(HUB)!.devices.get('wx')!.telemetry!.id).toBe('real-2');
    live.applyDeviceMessage(R, 'sensor', sensor('slightly-ahead', T + 3 + SKEW), T + 3); // within the skew: still a clock, still newest
    expect(live.hubs.get(HUB)!.devices.get('wx')!.telemetry!.id).toBe('slightly-ahead');
  });

  it('lets a plausible reading replace a shown one whose stamp is now too far ahead', () => {
    const shown = new LiveState(region, { maxFutureSkewMs: SKEW });
    shown.applyDeviceMessage(R, 'sensor', sensor('pinned', YEAR_2099), YEAR_2099); // e.g. taken while the cloud's own clock was wrong
    shown.applyDeviceMessage(R, 'sensor', sensor('real', T), T);
    expect(shown.hubs.get(HUB)!.devices.get('wx')!.telemetry!.id).toBe('real');
  });

  it('applies the same rule to hub status and mode acknowledgements', () => {
    const live = new LiveState(region, { maxFutureSkewMs: SKEW });
    live.connectionOpened(HUB, R, T);
    live.applyStatus(R, status('offline', YEAR_2099), T);
    expect(live.hubs.get(HUB)!.link.status).toBeNull();
    live.applyStatus(R, status('online', T), T);
    expect(live.hubs.get(HUB)!.link).toMatchObject({ online: true, status: { ts: T } });
    live.applyModeAck(R, modeAck(YEAR_2099), T);
    expect(live.hubs.get(HUB)!.mode).toBeNull();
    live.applyModeAck(R, modeAck(T, { mode: 'normal' }), T);
    expect(live.hubs.get(HUB)!.mode).toMatchObject({ mode: 'normal', ts: T });
  });
});

describe('LiveState over many regions (issue 14)', () => {
  const second = loadRegionFile(path.resolve(import.meta.dirname, '../../config/regions/ishikawa-kanazawa.json'));

  it('holds the hubs of every region, each with its region', () => {
    const live = new LiveState(createRegions([region, second]));
    expect(live.hubsOf(second.id).map((h) => h.id)).toEqual(second.hubs.map((h) => h.id));
    expect(live.hubsOf(R).map((h) => h.region)).toEqual(region.hubs.map(() => R));
    expect(live.hubs.size).toBe(region.hubs.length + second.hubs.length);
    expect(live.hubsOf('nowhere')).toEqual([]);
  });

  it('takes in a region added while running, keeping the link of its hub that connected first', () => {
    const regions = createRegions([region]);
    const live = new LiveState(regions);
    live.connectionOpened(HUB, R, T);
    const early = second.hubs[0]!.id;
    live.connectionOpened(early, second.id, T); // credentials came before the region file
    expect(live.hubs.get(early)!.registered).toBe(false);
    regions.add(second);
    expect(live.hubsOf(second.id)).toHaveLength(second.hubs.length);
    expect(live.hubs.get(early)).toMatchObject({ registered: true, region: second.id, name: second.hubs[0]!.name, link: { online: true, connections: 1 } });
    expect(live.connectedCount()).toBe(2);
    expect(live.hubs.get(HUB)!.link).toMatchObject({ online: true, connections: 1 });
  });
});

describe('LiveState across cluster nodes (issue 15)', () => {
  it('a hub moving from node A to node B stays online in every order the two nodes\' changes can arrive in', () => {
    // Each node's changes arrive in the order it made them (one Redis connection); across nodes any order.
    const a = [{ node: 'a', n: 1 }, { node: 'a', n: 0 }];
    const b = [{ node: 'b', n: 1 }];
    const orders = [[...a, ...b], [a[0]!, b[0]!, a[1]!], [b[0]!, ...a]];
    for (const order of orders) {
      const live = new LiveState(region);
      order.forEach((e, i) => live.setRemoteConnections(e.node, HUB, R, e.n, T + i));
      expect(live.hubs.get(HUB)!.link, JSON.stringify(order)).toMatchObject({ online: true, connections: 1 });
    }
  });

  it('shows a hub online exactly while some node holds a connection of it, for any interleaving of the nodes\' changes', () => {
    const nodeChanges = fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 8 });
    fc.assert(fc.property(fc.tuple(nodeChanges, nodeChanges, nodeChanges), fc.array(fc.nat(2), { maxLength: 40 }), (perNode, picks) => {
      const live = new LiveState(region);
      const next = [0, 0, 0];
      let t = T;
      const step = (i: number) => live.setRemoteConnections(`n${i}`, HUB, R, perNode[i]![next[i]!++]!, t++);
      for (const p of picks) if (next[p]! < perNode[p]!.length) step(p);
      for (let i = 0; i < 3; i++) while (next[i]! < perNode[i]!.length) step(i);
      const total = perNode.reduce((sum, changes) => sum + (changes.at(-1) ?? 0), 0);
      expect(live.hubs.get(HUB)!.link).toMatchObject({ online: total > 0, connections: total });
    }));
  });

  it('adds other nodes\' connections to its own; its own count alone is what it reports as connected here', () => {
    const live = new LiveState(region);
    live.connectionOpened(HUB, R, T);
    live.setRemoteConnections('b', HUB, R, 1, T + 1);
    live.connectionClosed(HUB, R, T + 2);
    expect(live.hubs.get(HUB)!.link).toMatchObject({ online: true, connections: 1 });
    expect(live.connectedCount()).toBe(0);
    expect([...live.localLinks()]).toEqual([]);
    live.setRemoteConnections('b', HUB, R, 0, T + 3);
    expect(live.hubs.get(HUB)!.link).toMatchObject({ online: false, connections: 0, since: T + 3 });
  });

  it('tells listeners its own changes only, and applies another node\'s changes by the same newest-wins rules', () => {
    const a = new LiveState(region);
    const b = new LiveState(region);
    const heard: LiveChange[] = [];
    a.onChange((c) => heard.push(c));
    b.onChange(() => expect.fail('a remote change must not be passed on'));
    a.connectionOpened(HUB, R, T);
    a.applyStatus(R, status('online', T + 1), T + 1);
    a.applyStatus(R, status('offline', T), T + 2); // older: not shown, not sent
    a.applyModeAck(R, modeAck(T + 3), T + 3);
    for (const c of heard) b.applyRemote('a', c);
    expect(heard.map((c) => c.t)).toEqual(['link', 'status', 'mode']);
    expect(b.hubs.get(HUB)!.link).toMatchObject({ online: true, connections: 1, status: { state: 'online' } });
    expect(b.hubs.get(HUB)!.mode).toMatchObject({ mode: 'emergency', ts: T + 3 });
    b.applyRemote('a', { t: 'status', region: R, status: status('offline', T), at: T + 4 }); // a late, older status: history only
    expect(b.hubs.get(HUB)!.link.status?.state).toBe('online');
  });

  it('a dead node\'s hub is offline whether its last will (via another node\'s ingest) or the node\'s death arrives first, online again once it reconnects', () => {
    const will = status('offline', T); // the will is stamped at the old connection's connect
    for (const willFirst of [true, false]) {
      const live = new LiveState(region);
      live.setRemoteConnections('a', HUB, R, 1, T);
      live.applyRemote('c', { t: 'status', region: R, status: status('online', T + 1), at: T + 1 });
      const death = () => live.setRemoteConnections('a', HUB, R, 0, T + 10);
      const willArrives = () => live.applyRemote('c', { t: 'status', region: R, status: { ...will, ts: T + 5 }, at: T + 11 });
      if (willFirst) {
        willArrives();
        death();
      } else {
        death();
        willArrives();
      }
      expect(live.hubs.get(HUB)!.link.online, `will first: ${willFirst}`).toBe(false);
      live.setRemoteConnections('b', HUB, R, 1, T + 12); // reconnected to node B
      expect(live.hubs.get(HUB)!.link.online).toBe(true);
    }
  });
});
