import type { DeviceKind, DeviceMessage, HubStatus, RegionFile } from '../../contract/index.ts';

/**
 * Live state: what every hub and device looks like now. In memory, rebuilt from traffic after a
 * restart (telemetry arrives every few seconds). Newest device timestamp wins, so a replayed
 * (historical) or late message never overwrites a newer reading.
 */
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
  online: boolean;
  connections: number;
  /** Last time anything arrived from the hub or it (dis)connected, epoch ms. */
  lastSeen: number | null;
  /** When `online` last changed, epoch ms. */
  since: number | null;
  status: HubStatus | null;
}

export interface HubState {
  id: string;
  region: string;
  kind: string;
  name: { ja: string; en: string };
  location: { lat: number; lon: number };
  registered: boolean;
  link: HubLink;
  devices: Map<string, DeviceState>;
}

export class LiveState {
  readonly hubs = new Map<string, HubState>();

  constructor(readonly region: RegionFile) {
    for (const h of region.hubs) {
      const devices = new Map<string, DeviceState>();
      const add = (device: string, kind: DeviceKind) =>
        devices.set(device, { device, kind, registered: true, telemetry: null, lastEvent: null, lastReceivedAt: null });
      h.drones.forEach((d) => add(d.id, 'drone'));
      h.lockers.forEach((l) => add(l.id, 'locker'));
      h.sensors.forEach((s) => add(s, 'sensor'));
      this.hubs.set(h.id, {
        id: h.id, region: region.id, kind: h.kind, name: h.name, location: h.location, registered: true,
        link: { online: false, connections: 0, lastSeen: null, since: null, status: null }, devices,
      });
    }
  }

  /** The hub, creating an entry for a hub that has credentials but is not in the region file. */
  hub(hubId: string, region: string): HubState {
    let h = this.hubs.get(hubId);
    if (!h) {
      h = {
        id: hubId, region, kind: 'unknown', name: { ja: hubId, en: hubId }, location: { lat: 0, lon: 0 }, registered: false,
        link: { online: false, connections: 0, lastSeen: null, since: null, status: null }, devices: new Map(),
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
    if (current && current.ts > msg.ts) return; // older than what we show: history only
    if (isEvent) d.lastEvent = msg;
    else d.telemetry = msg;
  }

  applyStatus(region: string, status: HubStatus, receivedAt: number): void {
    const h = this.hub(status.hub, region);
    h.link.lastSeen = Math.max(h.link.lastSeen ?? 0, receivedAt);
    if (!h.link.status || h.link.status.ts <= status.ts) h.link.status = status;
  }

  connectionOpened(hubId: string, region: string, at: number): void {
    const h = this.hub(hubId, region);
    h.link.connections++;
    h.link.lastSeen = at;
    if (!h.link.online) {
      h.link.online = true;
      h.link.since = at;
    }
  }

  connectionClosed(hubId: string, region: string, at: number): void {
    const h = this.hub(hubId, region);
    h.link.connections = Math.max(0, h.link.connections - 1);
    h.link.lastSeen = at;
    if (h.link.connections === 0 && h.link.online) {
      h.link.online = false;
      h.link.since = at;
    }
  }

  onlineCount(): number {
    let n = 0;
    for (const h of this.hubs.values()) if (h.link.online) n++;
    return n;
  }
}
