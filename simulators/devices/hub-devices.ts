import type {
  Channel,
  Command,
  CommandAck,
  DeviceKind,
  DeviceMessage,
  DroneEvent,
  HubSpec,
  LockerEvent,
  RegionFile,
  SensorEvent,
} from '../../contract/index.ts';
import { DroneModel, type DroneFlightParams } from './drone-model.ts';
import { LockerModel, type LockerParams } from './locker-model.ts';
import type { MessageIds } from './message-ids.ts';
import { createRng, seedFor } from './seeded-rng.ts';
import { SensorModel, type SensorParams } from './sensor-model.ts';

/**
 * Every device of one hub, and when each reports. Pure: `tick(now, dtS)` advances all models by
 * `dtS` simulated seconds and returns what the hub would send at wall time `now` — the events
 * that happened, then the telemetry that is due. Used by the region simulator (direct MQTT) and
 * meant to be reused behind the edge agent's store-and-forward outbox.
 */
export interface TelemetryRates {
  /** Drone telemetry per second (Remote ID needs ≥ 1 Hz). */
  droneHz: number;
  /** Seconds between locker bank reports (also sent right after a locker event). */
  lockerIntervalS: number;
  /** Seconds between hub sensor reports. */
  sensorIntervalS: number;
}

export const DEFAULT_RATES: TelemetryRates = { droneHz: 1, lockerIntervalS: 10, sensorIntervalS: 5 };

/** One message to send, with what the topic needs. */
export interface DeviceOutput {
  kind: DeviceKind;
  device: string;
  channel: Channel;
  message: DeviceMessage;
}

/** An event a test or demo forces at a device. */
export type RaiseRequest =
  | { kind: 'drone'; device: string; event: DroneEvent['event']; detail?: string }
  | {
      kind: 'locker';
      device: string;
      event: LockerEvent['event'];
      compartment: string;
      orderId?: string | null;
      pickupCode?: string;
      tempC?: number;
      detail?: string;
    }
  | { kind: 'sensor'; device: string; event: SensorEvent['event']; value?: number; detail?: string };

export interface ModelParams {
  drone?: Partial<DroneFlightParams>;
  locker?: Partial<LockerParams>;
  sensor?: Partial<SensorParams>;
}

export interface HubDevicesOptions {
  region: RegionFile;
  hub: HubSpec;
  /** Simulator seed; each device derives its own from it and its name. */
  seed: number;
  ids: MessageIds;
  rates?: Partial<TelemetryRates>;
  /** Wall time of the first tick, epoch ms (telemetry schedules start from it). */
  startMs: number;
  params?: ModelParams;
}

/** What the hub does with one command: publish `outputs` (in order), then `ack`. */
export interface CommandReply {
  outputs: DeviceOutput[];
  ack: CommandAck;
}

interface Scheduled<M> {
  model: M;
  periodMs: number;
  nextMs: number;
}

export class HubDevices {
  readonly hubId: string;
  private readonly ids: MessageIds;
  private readonly drones: Scheduled<DroneModel>[];
  private readonly lockers: Scheduled<LockerModel>[];
  private readonly sensors: Scheduled<SensorModel>[];
  private readonly lastLockerReport = new Map<string, number>();

  constructor(opts: HubDevicesOptions) {
    const { hub, region, seed, ids, startMs } = opts;
    const rates = { ...DEFAULT_RATES, ...opts.rates };
    for (const [name, value] of Object.entries(rates)) {
      if (!(Number.isFinite(value) && value > 0)) throw new Error(`telemetry rate ${name} must be a positive number, got ${value}`);
    }
    this.hubId = hub.id;
    this.ids = ids;
    const home = { id: hub.id, location: hub.location };
    const destinations = region.hubs.filter((h) => h.id !== hub.id).map((h) => ({ id: h.id, location: h.location }));
    // Spread first reports over one period so the hubs' devices do not all report in the same instant.
    const schedule = <M>(model: M, periodMs: number, phaseRng: () => number): Scheduled<M> => ({
      model,
      periodMs,
      nextMs: startMs + Math.floor(phaseRng() * periodMs),
    });

    this.drones = hub.drones.map((spec) => {
      const rng = createRng(seedFor(seed, hub.id, spec.id));
      const model = new DroneModel({ hubId: hub.id, spec, home, destinations, rng, ids, params: opts.params?.drone });
      return schedule(model, 1000 / rates.droneHz, rng.next);
    });
    this.lockers = hub.lockers.map((spec) => {
      const rng = createRng(seedFor(seed, hub.id, spec.id));
      const model = new LockerModel({ hubId: hub.id, spec, rng, ids, params: opts.params?.locker });
      return schedule(model, rates.lockerIntervalS * 1000, rng.next);
    });
    this.sensors = hub.sensors.map((device) => {
      const rng = createRng(seedFor(seed, hub.id, device));
      const model = new SensorModel({ hubId: hub.id, device, rng, ids, params: opts.params?.sensor });
      return schedule(model, rates.sensorIntervalS * 1000, rng.next);
    });
  }

  /** Advances every device by `dtS` simulated seconds; returns its events and the telemetry due at `now`. */
  tick(now: number, dtS: number): DeviceOutput[] {
    const out: DeviceOutput[] = [];
    for (const s of this.drones) {
      for (const message of s.model.step(now, dtS)) out.push({ kind: 'drone', device: s.model.device, channel: 'event', message });
      if (due(s, now)) out.push({ kind: 'drone', device: s.model.device, channel: 'telemetry', message: s.model.telemetry(now) });
    }
    for (const s of this.lockers) {
      const events = s.model.step(now, dtS);
      for (const message of events) out.push({ kind: 'locker', device: s.model.device, channel: 'event', message });
      // A locker reports on its interval and right after anything changed (contract: "every 10 s and on change").
      if (due(s, now) || events.length > 0) {
        s.nextMs = Math.max(s.nextMs, now + s.periodMs);
        out.push({ kind: 'locker', device: s.model.device, channel: 'telemetry', message: s.model.telemetry(this.lockerStamp(s.model.device, now)) });
      }
    }
    for (const s of this.sensors) {
      for (const message of s.model.step(now, dtS)) out.push({ kind: 'sensor', device: s.model.device, channel: 'event', message });
      if (due(s, now)) out.push({ kind: 'sensor', device: s.model.device, channel: 'telemetry', message: s.model.telemetry(now) });
    }
    return out;
  }

  /** Forces an event at one device now (see each model's `force`). Throws for an unknown device. */
  raise(now: number, req: RaiseRequest): DeviceOutput {
    switch (req.kind) {
      case 'drone': {
        const model = this.find(this.drones, req.device, 'drone');
        return { kind: 'drone', device: req.device, channel: 'event', message: model.force(now, req.event, req.detail) };
      }
      case 'locker': {
        const model = this.find(this.lockers, req.device, 'locker');
        const { orderId, pickupCode, tempC, detail } = req;
        const extras = Object.fromEntries(Object.entries({ orderId, pickupCode, tempC, detail }).filter(([, v]) => v !== undefined));
        return { kind: 'locker', device: req.device, channel: 'event', message: model.force(now, req.event, req.compartment, extras) };
      }
      case 'sensor': {
        const model = this.find(this.sensors, req.device, 'sensor');
        return { kind: 'sensor', device: req.device, channel: 'event', message: model.force(now, req.event, req.value, req.detail) };
      }
    }
  }

  /**
   * Executes a command from the cloud at wall time `now` and says how it went, as the contract's
   * `hub.command-ack`. Checked here, before any device sees it: the hub (→ rejected), the expiry
   * (→ expired, not executed), the device (unknown, or not of the command's kind → rejected).
   * Does not deduplicate by command id — the edge agent does [issue 3: "not executed twice"] — but a
   * repeat is harmless: a second unlock finds the door open, a second mission finds the drone busy.
   */
  command(now: number, cmd: Command): CommandReply {
    const reply = (outcome: { result: CommandAck['result']; detail?: string | undefined }, outputs: DeviceOutput[] = []): CommandReply => ({
      outputs,
      ack: this.commandAck(now, { commandId: cmd.id, device: cmd.device, ...outcome }),
    });
    if (cmd.hub !== this.hubId) return reply({ result: 'rejected', detail: `command for hub ${cmd.hub}; this is ${this.hubId}` });
    if (cmd.expiresAt < now) return reply({ result: 'expired', detail: `expired ${Math.ceil((now - cmd.expiresAt) / 1000)} s ago; not executed` });

    const kind = cmd.command.slice(0, cmd.command.indexOf('.'));
    if (kind !== 'drone' && kind !== 'locker') return reply({ result: 'rejected', detail: `no simulated device takes ${cmd.command}` });
    if (kind === 'drone') {
      const s = this.drones.find((x) => x.model.device === cmd.device);
      if (!s) return reply({ result: 'rejected', detail: this.unknownDevice(cmd.device, kind) });
      const outcome = s.model.handle(now, cmd);
      return reply(outcome, outcome.events.map((message) => ({ kind, device: cmd.device, channel: 'event' as const, message })));
    }
    const s = this.lockers.find((x) => x.model.device === cmd.device);
    if (!s) return reply({ result: 'rejected', detail: this.unknownDevice(cmd.device, kind) });
    const outcome = s.model.handle(now, cmd);
    const outputs: DeviceOutput[] = outcome.events.map((message) => ({ kind, device: cmd.device, channel: 'event' as const, message }));
    if (outcome.changed) {
      // Lockers report on change (contract: "every 10 s and on change").
      s.nextMs = Math.max(s.nextMs, now + s.periodMs);
      outputs.push({ kind, device: cmd.device, channel: 'telemetry', message: s.model.telemetry(this.lockerStamp(cmd.device, now)) });
    }
    return reply(outcome, outputs);
  }

  /** A `hub.command-ack` with this hub's next message id (also for commands that never reached a model). */
  commandAck(now: number, a: { commandId: string; device: string; result: CommandAck['result']; detail?: string }): CommandAck {
    return {
      v: 1,
      type: 'hub.command-ack',
      id: this.ids.next(a.device),
      ts: Math.round(now),
      hub: this.hubId,
      device: a.device,
      commandId: a.commandId,
      result: a.result,
      ...(a.detail === undefined ? {} : { detail: a.detail.slice(0, 500) }),
    };
  }

  /**
   * The time a locker's telemetry carries: `now`, or 1 ms after its previous report when that is not
   * earlier. A locker reports on change, so two commands handled in one millisecond (back-to-back
   * reserves of one planning round) would otherwise give two reports with the same device, tags and
   * time — one point in InfluxDB, where the second replaces the first and its message id vanishes.
   */
  private lockerStamp(device: string, now: number): number {
    const t = Math.max(Math.round(now), (this.lastLockerReport.get(device) ?? -Infinity) + 1);
    this.lastLockerReport.set(device, t);
    return t;
  }

  /** The drone models (read-only use: tests and dispatch simulations). */
  get droneModels(): readonly DroneModel[] {
    return this.drones.map((s) => s.model);
  }

  /** The sensor models (drills and planning set their weather and power: see SensorModel). */
  get sensorModels(): readonly SensorModel[] {
    return this.sensors.map((s) => s.model);
  }

  private unknownDevice(device: string, kind: DeviceKind): string {
    const other = (['drone', 'locker', 'sensor'] as const).find((k) => k !== kind && this.has(k, device));
    return other ? `${device} is a ${other}, not a ${kind}` : `hub ${this.hubId} has no ${kind} "${device}"`;
  }

  private has(kind: DeviceKind, device: string): boolean {
    const list: Scheduled<{ device: string }>[] = kind === 'drone' ? this.drones : kind === 'locker' ? this.lockers : this.sensors;
    return list.some((s) => s.model.device === device);
  }

  private find<M extends { device: string }>(list: Scheduled<M>[], device: string, kind: DeviceKind): M {
    const s = list.find((x) => x.model.device === device);
    if (!s) throw new Error(`hub ${this.hubId} has no ${kind} "${device}"`);
    return s.model;
  }
}

function due(s: Scheduled<unknown>, now: number): boolean {
  if (now < s.nextMs) return false;
  s.nextMs += s.periodMs;
  if (s.nextMs <= now) s.nextMs = now + s.periodMs; // fell behind (slow tick): skip, do not burst
  return true;
}
