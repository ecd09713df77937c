import type { DeviceKind, DeviceMessage, HubStatus, ModeAck, RegionFile } from '../../contract/index.ts';
import { createRegions, type Regions } from '../hubs/regions.ts';

/**
 * Live state: what every hub and device looks like now. In memory, rebuilt from traffic after a
 * restart (telemetry arrives every few seconds). In cluster mode (issue 15) each node's copy also
 * takes the other nodes' changes (`applyRemote`, `setRemoteConnections`; cloud/cluster/cluster-bus.ts)
 * and tells the bus its own (`onChange`), so every node shows the whole deployment. Newest device timestamp wins, so a replayed
 * (historical) or late message never overwrites a newer reading.
 *
 * One bad clock must not freeze that (issue 11): a timestamp more than `maxFutureSkewMs` ahead of
 * the time the message was received is never taken as the newest, and a shown message whose
 * timestamp has become "too far ahead" does not count as newer than a fresh one. Ingest already
 * refuses such messages (`future_timestamp`); this holds even for a message that got past it.
 */
export const DEFAULT_MAX_FUTURE_SKEW_MS = 300_000;

export interface DeviceState {
  device: string;
  kind: DeviceKind;
  registered: boolean;
  /** Latest telemetry by device timestamp. */
  telemetry: DeviceMessage | null;
  /** Latest event by device timestamp. */
  lastEvent: DeviceMessage | null;
  /** When the cloud last received anything for the device (epoch ms). */
  lastReceivedAt: number | null;
}

export interface HubLink {
  /**
   * The hub has a live MQTT connection and its newest status does not say "offline". False as soon
   * as the last connection closes, or when the hub's agent (or the broker, publishing its last will)
   * reports "offline" — whichever comes first.
   */
  online: boolean;
  connections: number;
  /** Last time anything arrived from the hub or it (dis)connected, epoch ms. */
  lastSeen: number | null;
  /** When `online` last changed, epoch ms. */
  since: number | null;
  /** Newest `hub.status` by hub timestamp. */
  status: HubStatus | null;
  /**
   * The hub's outbox as last reported (newest status that carried `outboxDepth`). Kept when a later
   * status (e.g. the last will) carries no figures, so the last known backlog stays visible.
   */
  outbox: { depth: number; oldestUnsentAgeS: number | null; reportedAt: number } | null;
}

/** The mode a hub last said it applied (`hub.mode-ack`), newest hub timestamp wins. */
export interface HubMode {
  mode: ModeAck['mode'];
  version: number;
  source: ModeAck['source'];
  reason: string | null;
  /** Hub timestamp of the acknowledgement, epoch ms. */
  ts: number;
  receivedAt: number;
}

export interface HubState {
  id: string;
  region: string;
  kind: string;
  name: { ja: string; en: string };
  location: { lat: number; lon: number };
  registered: boolean;
  link: HubLink;
  mode: HubMode | null;
  devices: Map<string, DeviceState>;
}

/** What the per-hub Prometheus gauges show. */
export interface HubLinkSample {
  hub: string;
  online: boolean;
  outboxDepth: number | null;
  oldestUnsentAgeS: number | null;
}

const newLink = (): HubLink => ({ online: false, connections: 0, lastSeen: null, since: null, status: null, outbox: null });

/**
 * A change this process applied from its own ingest or its own hub connections — what another cluster
 * node needs to show the same (issue 15; `cloud/cluster/cluster-bus.ts` carries it). `link` carries
 * the absolute number of this node's connections of the hub, so applying it twice changes nothing.
 */
export type LiveChange =
  | { t: 'device'; region: string; kind: DeviceKind; msg: DeviceMessage; at: number }
  | { t: 'status'; region: string; status: HubStatus; at: number }
  | { t: 'mode'; region: string; ack: ModeAck; at: number }
  | { t: 'link'; hub: string; region: string; connections: number; at: number };

export class LiveState {
  readonly hubs = new Map<string, HubState>();
  /** Hubs with at least one connection, kept as connections open and close (the broker asks at every connect). */
  private connectedHubs = 0;

  private readonly maxFutureSkewMs: number;
  /** This process's own connections per hub (`link.connections` adds the other nodes' ones). */
  private readonly localConnections = new Map<string, number>();
  /** Cluster mode: other nodes' connections per hub, by node (issue 15). */
  private readonly remoteConnections = new Map<string, Map<string, number>>();
  private readonly changeListeners = new Set<(c: LiveChange) => void>();

  /** The regions served; a region added while running gets its hubs here at once. */
  readonly regions: Regions;

  /**
   * Every hub of every region of `regions` (a single region file is taken as one region, as tests
   * and the transition to `Regions` (issue 14) still pass it).
   */
  constructor(regions: Regions | RegionFile, opts: { maxFutureSkewMs?: number } = {}) {
    this.regions = 'hubIds' in regions ? regions : createRegions([regions]);
    this.maxFutureSkewMs = opts.maxFutureSkewMs ?? DEFAULT_MAX_FUTURE_SKEW_MS;
    for (const r of this.regions.all()) this.addRegion(r);
    // Lives as long as the cloud's `Regions` (both are made once at start-up): no unsubscribe needed.
    this.regions.onAdded((r) => this.addRegion(r));
  }

  /** Hubs of a region, in the order of its file (empty for an unknown region). */
  hubsOf(region: string): HubState[] {
    return this.regions.hubIds(region).map((id) => this.hubs.get(id)).filter((h): h is HubState => h !== undefined);
  }

  private addRegion(region: RegionFile): void {
    for (const h of region.hubs) {
      const devices = new Map<string, DeviceState>();
      const add = (device: string, kind: DeviceKind) =>
        devices.set(device, { device, kind, registered: true, telemetry: null, lastEvent: null, lastReceivedAt: null });
      h.drones.forEach((d) => add(d.id, 'drone'));
      h.lockers.forEach((l) => add(l.id, 'locker'));
      h.sensors.forEach((s) => add(s, 'sensor'));
      // A hub that connected before its region was added (credentials first) keeps its link state.
      const before = this.hubs.get(h.id);
      this.hubs.set(h.id, {
        id: h.id, region: region.id, kind: h.kind, name: h.name, location: h.location, registered: true,
        link: before?.link ?? newLink(), mode: before?.mode ?? null, devices,
      });
      for (const [id, d] of before?.devices ?? []) if (!devices.has(id)) devices.set(id, d);
    }
  }

  /** The hub, creating an entry for a hub that has credentials but is not in the region file. */
  hub(hubId: string, region: string): HubState {
    let h = this.hubs.get(hubId);
    if (!h) {
      h = {
        id: hubId, region, kind: 'unknown', name: { ja: hubId, en: hubId }, location: { lat: 0, lon: 0 }, registered: false,
        link: newLink(), mode: null, devices: new Map(),
      };
      this.hubs.set(hubId, h);
    }
    return h;
  }

  /** Whether a message for this device may be accepted without exceeding the per-hub device bound. */
  admitsDevice(hubId: string, region: string, device: string, maxDevices: number): boolean {
    const h = this.hub(hubId, region);
    return h.devices.has(device) || h.devices.size < maxDevices;
  }

  applyDeviceMessage(region: string, kind: DeviceKind, msg: DeviceMessage, receivedAt: number): void {
    if (this.deviceMessage(region, kind, msg, receivedAt) && this.changeListeners.size > 0) this.emit({ t: 'device', region, kind, msg, at: receivedAt });
  }

  /** True when the message is now the one shown (newest by device timestamp). */
  private deviceMessage(region: string, kind: DeviceKind, msg: DeviceMessage, receivedAt: number): boolean {
    const h = this.hub(msg.hub, region);
    let d = h.devices.get(msg.device);
    if (!d) {
      d = { device: msg.device, kind, registered: false, telemetry: null, lastEvent: null, lastReceivedAt: null };
      h.devices.set(msg.device, d);
    }
    d.lastReceivedAt = Math.max(d.lastReceivedAt ?? 0, receivedAt);
    h.link.lastSeen = Math.max(h.link.lastSeen ?? 0, receivedAt);
    const isEvent = msg.type.endsWith('.event');
    const current = isEvent ? d.lastEvent : d.telemetry;
    if (!this.supersedes(msg.ts, current?.ts, receivedAt)) return false; // older than what we show: history only
    if (isEvent) d.lastEvent = msg;
    else d.telemetry = msg;
    return true;
  }

  /**
   * A status older (by hub timestamp) than the one shown is history only. That matters when a link
   * dies and the hub reconnects before the broker noticed: the old connection's last will "offline"
   * (timestamped at its connect) then arrives after the new birth "online" and must not win.
   */
  applyStatus(region: string, status: HubStatus, receivedAt: number): void {
    if (this.status(region, status, receivedAt) && this.changeListeners.size > 0) this.emit({ t: 'status', region, status, at: receivedAt });
  }

  private status(region: string, status: HubStatus, receivedAt: number): boolean {
    const h = this.hub(status.hub, region);
    h.link.lastSeen = Math.max(h.link.lastSeen ?? 0, receivedAt);
    if (!this.supersedes(status.ts, h.link.status?.ts, receivedAt)) return false;
    h.link.status = status;
    if (status.outboxDepth !== undefined) {
      h.link.outbox = { depth: status.outboxDepth, oldestUnsentAgeS: status.oldestUnsentAgeS ?? null, reportedAt: status.ts };
    }
    const online = status.state === 'online' && h.link.connections > 0;
    if (online !== h.link.online) {
      h.link.online = online;
      h.link.since = receivedAt;
    }
    return true;
  }

  /** A new connection is a sign of life even when the newest status still says "offline". */
  connectionOpened(hubId: string, region: string, at: number): void {
    const h = this.hub(hubId, region);
    const mine = (this.localConnections.get(hubId) ?? 0) + 1;
    this.localConnections.set(hubId, mine);
    if (mine === 1) this.connectedHubs++;
    h.link.connections++;
    h.link.lastSeen = at;
    if (!h.link.online) {
      h.link.online = true;
      h.link.since = at;
    }
    if (this.changeListeners.size > 0) this.emit({ t: 'link', hub: hubId, region, connections: mine, at });
  }

  connectionClosed(hubId: string, region: string, at: number): void {
    const h = this.hub(hubId, region);
    const before = this.localConnections.get(hubId) ?? 0;
    if (before === 1) this.connectedHubs--;
    const mine = Math.max(0, before - 1);
    if (mine === 0) this.localConnections.delete(hubId);
    else this.localConnections.set(hubId, mine);
    h.link.connections = Math.max(0, h.link.connections - (before > 0 ? 1 : 0));
    h.link.lastSeen = at;
    if (h.link.connections === 0 && h.link.online) {
      h.link.online = false;
      h.link.since = at;
    }
    if (this.changeListeners.size > 0) this.emit({ t: 'link', hub: hubId, region, connections: mine, at });
  }

  /** This process's own connections of every hub that has any (a cluster node's part of the link view). */
  localLinks(): Iterable<[hub: string, region: string, connections: number]> {
    const out: [string, string, number][] = [];
    for (const [hub, n] of this.localConnections) out.push([hub, this.hubs.get(hub)?.region ?? '', n]);
    return out;
  }

  /**
   * Cluster mode (issue 15): another node now holds `connections` connections of the hub (absolute,
   * so a repeat or a snapshot changes nothing). The hub is online while any node holds one — each
   * node's count is kept apart, so a hub moving from node A to node B stays online whatever order
   * A's close and B's open arrive in. `at` is when that node saw it.
   */
  setRemoteConnections(node: string, hubId: string, region: string, connections: number, at: number): void {
    const h = this.hub(hubId, region);
    let byNode = this.remoteConnections.get(hubId);
    const before = byNode?.get(node) ?? 0;
    h.link.lastSeen = Math.max(h.link.lastSeen ?? 0, at);
    if (connections === before) return;
    if (connections > 0) {
      if (!byNode) this.remoteConnections.set(hubId, (byNode = new Map()));
      byNode.set(node, connections);
    } else if (byNode) {
      byNode.delete(node);
      if (byNode.size === 0) this.remoteConnections.delete(hubId);
    }
    h.link.connections = Math.max(0, h.link.connections + connections - before);
    if (connections > before && !h.link.online) {
      h.link.online = true; // a new connection is a sign of life, as for one of this node's
      h.link.since = at;
    } else if (h.link.connections === 0 && h.link.online) {
      h.link.online = false;
      h.link.since = at;
    }
  }

  /** The hubs another node holds connections of, with their counts (`setRemoteConnections`). */
  remoteLinksOf(node: string): Map<string, number> {
    const out = new Map<string, number>();
    for (const [hub, byNode] of this.remoteConnections) {
      const n = byNode.get(node);
      if (n !== undefined) out.set(hub, n);
    }
    return out;
  }

  /**
   * A change another cluster node applied (issue 15): shown here as there, never passed on again
   * (the change listeners hear only this node's own changes). Newest-wins rules apply as for local ones.
   */
  applyRemote(node: string, c: LiveChange): void {
    switch (c.t) {
      case 'device':
        this.deviceMessage(c.region, c.kind, c.msg, c.at);
        return;
      case 'status':
        this.status(c.region, c.status, c.at);
        return;
      case 'mode':
        this.modeAck(c.region, c.ack, c.at);
        return;
      case 'link':
        this.setRemoteConnections(node, c.hub, c.region, c.connections, c.at);
    }
  }

  /** Hears every change this process applies from its own ingest and connections (not remote ones); returns the unsubscribe. */
  onChange(fn: (c: LiveChange) => void): () => void {
    this.changeListeners.add(fn);
    return () => void this.changeListeners.delete(fn);
  }

  private emit(c: LiveChange): void {
    for (const fn of this.changeListeners) fn(c);
  }

  /**
   * At start-up, the mode each hub last acknowledged, from the mode store: live state is otherwise
   * rebuilt from traffic, and a hub acknowledges only when the mode changes, so without this every
   * hub showed "mode not reported" after a cloud restart. Not a sign of life (link state untouched).
   */
  restoreMode(region: string, ack: Pick<ModeAck, 'hub' | 'mode' | 'version' | 'source' | 'ts'> & { reason: string | null }, receivedAt: number): void {
    const h = this.hub(ack.hub, region);
    if (h.mode && h.mode.ts >= ack.ts) return;
    h.mode = { mode: ack.mode, version: ack.version, source: ack.source, reason: ack.reason, ts: ack.ts, receivedAt };
  }

  applyModeAck(region: string, ack: ModeAck, receivedAt: number): void {
    if (this.modeAck(region, ack, receivedAt) && this.changeListeners.size > 0) this.emit({ t: 'mode', region, ack, at: receivedAt });
  }

  private modeAck(region: string, ack: ModeAck, receivedAt: number): boolean {
    const h = this.hub(ack.hub, region);
    h.link.lastSeen = Math.max(h.link.lastSeen ?? 0, receivedAt);
    if (!this.supersedes(ack.ts, h.mode?.ts, receivedAt)) return false; // an older (replayed) acknowledgement: history only
    h.mode = { mode: ack.mode, version: ack.version, source: ack.source, reason: ack.reason ?? null, ts: ack.ts, receivedAt };
    return true;
  }

  /**
   * Newest wins, by device timestamp: whether a message stamped `ts`, received at `receivedAt`,
   * replaces one stamped `current`. A stamp beyond `receivedAt + maxFutureSkewMs` never wins, and a
   * shown one beyond it loses to any plausible one — so one bad clock cannot pin what is shown.
   */
  private supersedes(ts: number, current: number | undefined, receivedAt: number): boolean {
    const limit = receivedAt + this.maxFutureSkewMs;
    if (ts > limit) return false;
    return current === undefined || current > limit || current <= ts;
  }

  onlineCount(): number {
    let n = 0;
    for (const h of this.hubs.values()) if (h.link.online) n++;
    return n;
  }

  /** Hubs with at least one MQTT connection. */
  connectedCount(): number {
    return this.connectedHubs;
  }

  /**
   * One sample per hub for the per-hub gauges: the hubs of the region file plus hubs with credentials
   * that connected — a bounded set, never a label taken from a payload alone.
   */
  *linkSamples(): Iterable<HubLinkSample> {
    for (const h of this.hubs.values()) {
      yield { hub: h.id, online: h.link.online, outboxDepth: h.link.outbox?.depth ?? null, oldestUnsentAgeS: h.link.outbox?.oldestUnsentAgeS ?? null };
    }
  }
}
