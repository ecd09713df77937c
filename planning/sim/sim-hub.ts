import { PAD_STATES } from '../../cloud/dispatch/dispatch-engine.ts';
import { HISTORICAL_AFTER_S_DEFAULT as EDGE_HISTORICAL_AFTER_S_DEFAULT } from '../../edge/config.ts';
import type { Command, CommandAck, DeviceKind, DeviceMessage, HubSpec, ModeAck, RegionFile, RegionMode, SensorTelemetry } from '../../contract/index.ts';
import { HubDevices, type DeviceOutput, type ModelParams } from '../../simulators/devices/hub-devices.ts';
import type { MessageIds } from '../../simulators/devices/message-ids.ts';

/**
 * One hub in planning mode (issue 16): its devices (the simulators' own models, simulators/devices),
 * its link to the cloud and its power. What the scenario changes reaches the cloud only as the hub
 * would report it: weather and power in the sensor's telemetry, a drone out of service in its
 * telemetry, a cut link as a closed connection and a backlog replayed on restore.
 *
 * Planning-mode departures from the live simulator (simulators/region-simulator.ts), for speed and so
 * the scenario alone drives what happens:
 *  - Telemetry rates: drones report every 10 s while away from the pad, every 60 s on it; lockers every
 *    120 s and on change; the weather sensor every 60 s (live: 1 s, 10 s, 5 s). The dispatch engine's
 *    freshness limits (drone state 2 min, weather 10 min) are met with margin.
 *  - The models' own random life is off: no self-made missions or return cargo (drones), no made-up
 *    reservations, loads, pickups, doors left open or cooling failures (lockers), no windy spells,
 *    rain, grid outages or link dips (sensor). Weather, power and demand come from the scenario.
 *  - Weather readings are the scenario's profile for the hub (calm — 2 m/s, gust 2.8 m/s, no rain —
 *    where it gives none); power and the backup battery follow the scenario's power events.
 */
export const PLANNING_MODEL_PARAMS: ModelParams = {
  drone: { meanIdleS: 1e12, returnCargoChance: 0 },
  locker: { reservationsPerHour: 0, meanLoadS: 1e12, meanPickupS: 1e12, leftOpenChance: 0, coolingFailuresPerHour: 0, codeRejectChance: 0 },
  sensor: { windySpellsPerHour: 0, rainEpisodesPerHour: 0, gridOutagesPerDay: 0, gridOutageMinS: 1e9, gridOutageMaxS: 1e9, linkDipsPerHour: 0, backupDrainPctPerS: 0, backupChargePctPerS: 0 },
};
const DRONE_PAD_REPORT_MS = 60_000;
const DRONE_AWAY_REPORT_MS = 10_000;
/** The edge agent marks a message historical when it is sent this long after it was made (its default HISTORICAL_AFTER_S). */
const HISTORICAL_AFTER_MS = EDGE_HISTORICAL_AFTER_S_DEFAULT * 1000;
/** Backup battery recharge once the grid is back, percent per hour (the sensor model's 0.01 %/s). */
export const BACKUP_CHARGE_PCT_PER_H = 36;

export interface Weather {
  windMps: number;
  gustMps: number;
  rainMmPerH: number;
}
export const CALM: Weather = { windMps: 2, gustMps: 2.8, rainMmPerH: 0 };

export type Uplink = { kind: DeviceKind | 'hub'; message: DeviceMessage | CommandAck | ModeAck; madeAt: number };

export interface SimHubOptions {
  region: RegionFile;
  hub: HubSpec;
  seed: number;
  ids: MessageIds;
  startMs: number;
  /** The hub's messages reaching the cloud. */
  toCloud: (u: Uplink) => void;
  /** Every output of the devices, whether or not it can be sent (for the figures). */
  observe: (o: DeviceOutput, hub: SimHub) => void;
  weatherAt: (hub: string, now: number) => Weather | null;
  /** The backup battery ran out: the hub has just gone dark. */
  onDark: (hub: SimHub) => void;
}

export class SimHub {
  readonly id: string;
  readonly devices: HubDevices;
  /** Link cut by the scenario. */
  cut = false;
  /** Without power and backup: the hub is dark (link down, devices silent). */
  dark = false;
  gridUp = true;
  backupPct = 100;
  drainPctPerH = 8;
  private powerChangedAt: number;
  readonly backlog: Uplink[] = [];
  readonly outOfService = new Set<string>();
  /** The newest region mode the hub has applied (its version), and what it holds retained. */
  appliedVersion = 0;
  /** Messages the hub sent (to the cloud, or into its backlog while cut), delivered to the cloud, and lost while dark. */
  sent = 0;
  delivered = 0;
  deliveredFromBacklog = 0;
  dropped = 0;
  private lastDroneReport = new Map<string, { at: number; state: string }>();
  private lastTickAt: number;

  constructor(private readonly o: SimHubOptions) {
    this.id = o.hub.id;
    this.devices = new HubDevices({
      region: o.region, hub: o.hub, seed: o.seed, ids: o.ids, startMs: o.startMs, params: PLANNING_MODEL_PARAMS,
      rates: { droneHz: 1 / 10, lockerIntervalS: 120, sensorIntervalS: 60 },
    });
    this.powerChangedAt = o.startMs;
    this.lastTickAt = o.startMs;
  }

  get linkUp(): boolean {
    return !this.cut && !this.dark;
  }

  /** Whether any drone of the hub is away from its pad (armed, flying, landed elsewhere). */
  get busy(): boolean {
    return this.devices.droneModels.some((d) => !PAD_STATES.has(d.flightState()));
  }

  /** Advances the devices to `now` and sends what is due. */
  tick(now: number): void {
    const dtS = (now - this.lastTickAt) / 1000;
    this.lastTickAt = now;
    this.updateBackup(now);
    if (dtS <= 0) return;
    for (const out of this.devices.tick(now, dtS)) this.emit(out, now);
  }

  /** A command reaches the hub (link up): the device answers, then the acknowledgement goes up. */
  command(now: number, cmd: Command): void {
    if (!this.linkUp) return;
    const reply = this.devices.command(now, cmd);
    for (const out of reply.outputs) this.emit(out, now);
    this.send({ kind: 'hub', message: reply.ack, madeAt: now });
  }

  /** The hub agent applies a retained region mode newer than its own and acknowledges it. */
  applyMode(now: number, m: RegionMode): void {
    if (!this.linkUp || m.version <= this.appliedVersion) return;
    this.appliedVersion = m.version;
    const ack: ModeAck = { v: 1, type: 'hub.mode-ack', id: this.o.ids.next('hub'), ts: now, hub: this.id, version: m.version, mode: m.hubs[this.id] ?? m.mode, source: 'cloud' };
    this.send({ kind: 'hub', message: ack, madeAt: now });
  }

  /** Forces an event at a device now (e.g. the sensor's grid_down, a resident's pickup). */
  raise(now: number, out: DeviceOutput): void {
    this.emit(out, now);
  }

  setPower(now: number, up: boolean, drainPctPerH: number): void {
    this.updateBackup(now);
    this.gridUp = up;
    this.drainPctPerH = drainPctPerH;
    if (up) this.dark = false;
  }

  /** Battery now; the hub goes dark (`onDark`) when it is empty. Returns whether it just went dark. */
  updateBackup(now: number): boolean {
    const h = (now - this.powerChangedAt) / 3_600_000;
    this.powerChangedAt = now;
    if (h <= 0) return false;
    this.backupPct = this.gridUp ? Math.min(100, this.backupPct + BACKUP_CHARGE_PCT_PER_H * h) : Math.max(0, this.backupPct - this.drainPctPerH * h);
    if (!this.gridUp && this.backupPct <= 1e-6 && !this.dark) {
      this.backupPct = 0;
      this.dark = true;
      this.o.onDark(this);
      return true;
    }
    return false;
  }

  /** When the backup battery runs out at the current drain (null: grid up or no drain). */
  darkAt(now: number): number | null {
    if (this.gridUp || this.dark || this.drainPctPerH <= 0) return null;
    return now + (this.backupPct / this.drainPctPerH) * 3_600_000;
  }

  /** The backlog, oldest first, once the link is back; messages older than 30 s marked historical. */
  drainBacklog(now: number): number {
    const n = this.backlog.length;
    for (const u of this.backlog.splice(0)) {
      const historical = now - u.madeAt > HISTORICAL_AFTER_MS;
      const message = historical && u.message.type !== 'hub.command-ack' ? { ...u.message, historical: true } : u.message;
      this.deliveredFromBacklog++;
      this.delivered++;
      this.o.toCloud({ ...u, message: message as Uplink['message'] });
    }
    return n;
  }

  private emit(out: DeviceOutput, now: number): void {
    let message = out.message;
    if (message.type === 'sensor.telemetry') {
      const w = this.o.weatherAt(this.id, now) ?? CALM;
      message = {
        ...message, windSpeedMps: round1(w.windMps), windGustMps: round1(Math.max(w.gustMps, w.windMps)), rainMmPerH: round1(w.rainMmPerH),
        gridPowerUp: this.gridUp, backupBatteryPct: round1(this.backupPct),
      } satisfies SensorTelemetry;
    } else if (message.type === 'drone.telemetry') {
      const onPad = PAD_STATES.has(message.flightState);
      // A drone out of service reports `fault` on its pad: the dispatch engine takes only idle or charging drones.
      if (onPad && this.outOfService.has(message.device)) message = { ...message, flightState: 'fault' };
      const last = this.lastDroneReport.get(message.device);
      const due = !last || last.state !== message.flightState || now - last.at >= (onPad ? DRONE_PAD_REPORT_MS : DRONE_AWAY_REPORT_MS);
      if (!due) return;
      this.lastDroneReport.set(message.device, { at: now, state: message.flightState });
    }
    const o = { ...out, message };
    this.o.observe(o, this);
    if (this.dark) {
      this.dropped++;
      return;
    }
    this.send({ kind: out.kind, message, madeAt: now });
  }

  private send(u: Uplink): void {
    if (this.dark) {
      this.dropped++;
      return;
    }
    this.sent++;
    if (this.cut) {
      this.backlog.push(u);
    } else {
      this.delivered++;
      this.o.toCloud(u);
    }
  }
}

const round1 = (x: number): number => Math.round(x * 10) / 10;
