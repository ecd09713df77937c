import type { IClientOptions } from 'mqtt';
import { pino, type Logger } from 'pino';
import { RegionFile, type CommandAck } from '../contract/index.ts';
import { HubDevices, DEFAULT_RATES, type DeviceOutput, type ModelParams, type RaiseRequest, type TelemetryRates } from './devices/hub-devices.ts';
import type { PowerOverride, WeatherOverride } from './devices/sensor-model.ts';
import { createBootId, MessageIds } from './devices/message-ids.ts';
import { HubConnection, type HubConnectionStats, type IncomingCommand } from './hub-connection.ts';

/**
 * Plays every device of a region file (or a subset of its hubs) over real MQTT: one connection
 * per hub — to the cloud broker with that hub's credentials, or, behind an edge agent, to the
 * hub's own local broker (`brokerUrlFor`, `publishStatus: false`), one connection per device
 * with its own login (`deviceLogins`). Each hub's devices answer the
 * commands sent to the hub. The device models are pure (devices/*.ts); this file owns the clock,
 * the timer and the connections.
 */
export interface HubCredentials {
  username: string;
  password: string;
}

export interface RegionSimulatorOptions {
  /** Broker of every hub that `brokerUrlFor` does not name. */
  brokerUrl: string;
  /** Per-hub broker, e.g. the hub's edge agent on its own port. Default: `brokerUrl` for every hub. */
  brokerUrlFor?: (hubId: string) => string;
  region: RegionFile;
  /** Per hub id. A hub without an entry connects without username and password. */
  credentials?: Partial<Record<string, HubCredentials>>;
  /**
   * Per hub id: its devices' logins at the hub's local broker (the edge agent's
   * device-credentials.json). A hub with an entry opens one connection per device instead of one
   * per hub, and `credentials` does not apply to it.
   */
  deviceLogins?: Partial<Record<string, Record<string, HubCredentials>>>;
  /**
   * Each hub publishes its retained `hub.status` birth message and sets the "offline" last will.
   * Default true; false behind an edge agent, which owns the hub's status.
   */
  publishStatus?: boolean;
  /** Simulate only these hubs (default: all of the region). */
  hubs?: string[];
  rates?: Partial<TelemetryRates>;
  /** Simulated seconds per wall-clock second (missions, weather, lockers progress faster). Default 1. */
  timeScale?: number;
  /** Seed for the device models (default: random, logged so a run can be repeated). */
  seed?: number;
  logger?: Logger;
  /** Extra mqtt.js options for every hub connection (credentials, client id and will are set here). */
  mqttOptions?: Partial<IClientOptions>;
  /**
   * Device messages per hub that may await a PUBACK before telemetry is skipped (events: twice
   * that). Default 400, so even a full queue flushed on reconnect stays under the cloud broker's
   * default in-flight limit per client (MQTT_MAX_INFLIGHT_PER_CLIENT = 1000).
   */
  maxPendingPerHub?: number;
  /** Published/acked ids kept per hub for `publishedIds`/`ackedIds`. Default 100 000. */
  idHistory?: number;
  /** Model parameters (flight, locker, sensor) for tests and demos. */
  params?: ModelParams;
}

export interface RegionSimulatorStats {
  published: number;
  acked: number;
  skipped: number;
  byHub: Record<string, HubConnectionStats>;
}

export interface RegionSimulator {
  /** Stops the devices, publishes each hub's retained "offline" status (with `publishStatus`) and disconnects. */
  stop(): Promise<void>;
  stats(): RegionSimulatorStats;
  /** Ids of device messages the broker acknowledged (PUBACK), oldest first. */
  ackedIds(hub: string): string[];
  /** Ids of device messages handed to the MQTT client, oldest first. */
  publishedIds(hub: string): string[];
  /** Forces an event at a device of `hub` and resolves once the broker acknowledged it. */
  raise(hub: string, event: RaiseRequest): Promise<void>;
  /**
   * Imposes weather, a grid outage or drones out of service on a hub (drill mode). A drone out of
   * service reports flightState "fault" with failsafe ["out_of_service"] (the dispatch engine takes
   * only drones idle or charging on their pad), refuses commands, and its own events are held back.
   * Throws DeviceControlError for an unknown hub or drone.
   */
  control(req: DeviceControl): DeviceControlState;
}

/**
 * A change imposed on a hub's simulated devices (drill mode, issue 16): the weather its sensors
 * read, a grid outage with the backup battery draining, drones out of service (or back).
 */
export type DeviceControl =
  | { kind: 'weather'; hub: string; weather: WeatherOverride | null }
  | { kind: 'power'; hub: string; power: PowerOverride | null }
  | { kind: 'fleet'; hub: string; drones?: string[]; inService: boolean };

/** What a hub's devices are under after a `control` call. */
export interface DeviceControlState {
  hub: string;
  weather: WeatherOverride | null;
  power: PowerOverride | null;
  outOfService: string[];
}

export class DeviceControlError extends Error {
  constructor(
    message: string,
    readonly code: 'unknown_hub' | 'unknown_device',
  ) {
    super(message);
  }
}

/** Failsafe flag of a drone taken out of service (its telemetry reads flightState "fault"). */
export const OUT_OF_SERVICE = 'out_of_service';

export const SIMULATOR_AGENT = 'chiiki-sim/0.1.0';
export const DEFAULT_MAX_PENDING = 400;

/** Wall-clock gaps longer than this (a suspended laptop, a stalled event loop) are not simulated. */
const MAX_TICK_GAP_MS = 5000;

interface SimulatedHub {
  devices: HubDevices;
  connection: HubConnection;
  /** Drones taken out of service (drill mode). */
  outOfService: Set<string>;
}


export async function startRegionSimulator(opts: RegionSimulatorOptions): Promise<RegionSimulator> {
  const region = RegionFile.parse(opts.region);
  const logger = (opts.logger ?? pino({ level: 'silent' })).child({ component: 'region-simulator', region: region.id });
  const rates = { ...DEFAULT_RATES, ...opts.rates };
  const timeScale = opts.timeScale ?? 1;
  if (!(Number.isFinite(timeScale) && timeScale > 0)) throw new Error(`timeScale must be a positive number, got ${timeScale}`);
  const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 32);
  const hubIds = [...new Set(opts.hubs ?? region.hubs.map((h) => h.id))];
  for (const id of hubIds) {
    if (!region.hubs.some((h) => h.id === id)) throw new Error(`hub "${id}" is not in region ${region.id}`);
  }
  const publishStatus = opts.publishStatus ?? true;

  const startMs = Date.now();
  const bootId = createBootId(startMs, Math.random);
  // Build every model first (they validate their settings), then open the connections.
  const devices = hubIds.map((id) => {
    const hub = region.hubs.find((h) => h.id === id)!;
    return new HubDevices({ region, hub, seed, ids: new MessageIds(bootId), rates, startMs, params: opts.params });
  });
  const hubs = new Map<string, SimulatedHub>();
  const anonymous: string[] = [];
  for (const d of devices) {
    const cred = opts.credentials?.[d.hubId];
    const deviceLogins = opts.deviceLogins?.[d.hubId];
    if (!cred && !deviceLogins) anonymous.push(d.hubId);
    const connection = new HubConnection({
      brokerUrl: opts.brokerUrlFor?.(d.hubId) ?? opts.brokerUrl,
      regionId: region.id,
      hubId: d.hubId,
      ...(cred ? { username: cred.username, password: cred.password } : {}),
      ...(deviceLogins ? { deviceLogins } : {}),
      publishStatus,
      onCommand: (incoming) => handleCommand(d.hubId, incoming),
      logger,
      maxPending: opts.maxPendingPerHub ?? DEFAULT_MAX_PENDING,
      idHistory: opts.idHistory ?? 100_000,
      agent: SIMULATOR_AGENT,
      mqttOptions: opts.mqttOptions,
    });
    hubs.set(d.hubId, { devices: d, connection, outOfService: new Set() });
  }
  logger.info({ hubs: hubIds.length, seed, bootId, rates, timeScale, publishStatus, anonymous }, 'region simulator starting');

  /** A drone out of service: its telemetry says "fault", its own events are held back. */
  const outOfService = (sim: SimulatedHub, out: DeviceOutput): DeviceOutput | null => {
    if (out.kind !== 'drone' || !sim.outOfService.has(out.device)) return out;
    if (out.message.type !== 'drone.telemetry') return null;
    return { ...out, message: { ...out.message, flightState: 'fault', failsafe: [OUT_OF_SERVICE], missionId: null } };
  };

  const publish = (hubId: string, sim: SimulatedHub, outputs: ReturnType<HubDevices['tick']>): void => {
    for (const raw of outputs) {
      const out = outOfService(sim, raw);
      if (!out) continue;
      try {
        sim.connection.send(out).catch((err: Error) => logger.debug({ hub: hubId, err: err.message }, 'publish failed'));
      } catch (err) {
        logger.error({ hub: hubId, device: out.device, err: (err as Error).message }, 'invalid message not sent');
      }
    }
  };

  /** Runs a command through the hub's device models; publishes what it caused, then the acknowledgement. */
  function handleCommand(hubId: string, incoming: IncomingCommand): void {
    const sim = hubs.get(hubId);
    if (!sim) return;
    const now = Date.now();
    const commandId = incoming.ok ? incoming.command.id : incoming.commandId;
    const device = incoming.ok ? incoming.command.device : incoming.device;
    let ack: CommandAck;
    try {
      if (incoming.ok && incoming.command.command.startsWith('drone.') && sim.outOfService.has(device)) {
        ack = sim.devices.commandAck(now, { commandId, device, result: 'rejected', detail: `${device} is out of service` });
      } else if (incoming.ok) {
        const reply = sim.devices.command(now, incoming.command);
        publish(hubId, sim, reply.outputs);
        ack = reply.ack;
      } else {
        ack = sim.devices.commandAck(now, { commandId, device, result: 'rejected', detail: incoming.reason });
      }
    } catch (err) {
      // A model bug must not leave the cloud waiting: answer 'failed' with the reason.
      logger.error({ hub: hubId, device, commandId, err: (err as Error).message }, 'command handling failed');
      ack = sim.devices.commandAck(now, { commandId, device, result: 'failed', detail: (err as Error).message });
    }
    const command = incoming.ok ? incoming.command.command : null;
    logger.info({ hub: hubId, device, commandId, command, result: ack.result, detail: ack.detail }, 'command handled');
    sim.connection.sendAck(ack).catch((err: Error) => logger.debug({ hub: hubId, commandId, err: err.message }, 'command ack not sent'));
  }

  let last = startMs;
  const tickMs = Math.max(50, Math.min(1000, 1000 / rates.droneHz));
  const timer = setInterval(() => {
    const now = Date.now();
    const dtS = (Math.min(now - last, MAX_TICK_GAP_MS) / 1000) * timeScale;
    last = now;
    for (const [hubId, sim] of hubs) {
      publish(hubId, sim, sim.devices.tick(now, dtS));
      if (sim.outOfService.size > 0) grounded(sim, now);
    }
  }, tickMs);

  /**
   * A drone out of service stays home: whenever its model has started one of its own missions (or was
   * flying when it was taken out), it is called home — its events and acknowledgement stay inside.
   */
  let recallSeq = 0;
  function grounded(sim: SimulatedHub, now: number): void {
    for (const model of sim.devices.droneModels) {
      if (!sim.outOfService.has(model.device)) continue;
      const state = model.flightState();
      if (state === 'idle' || state === 'charging' || state === 'rtl') continue;
      sim.devices.command(now, {
        v: 1, type: 'hub.command', id: `out-of-service-${bootId}-${++recallSeq}`, ts: now, hub: sim.devices.hubId, device: model.device,
        command: 'drone.rtl', expiresAt: now + 60_000, args: {},
      });
    }
  }

  // Give every hub one connection attempt before returning (mqtt.js keeps retrying afterwards).
  await Promise.all([...hubs.values()].map((h) => h.connection.firstAttempt));
  const up = [...hubs.values()].filter((h) => h.connection.connected).length;
  logger.info({ connected: up, hubs: hubs.size }, 'region simulator started');

  const get = (hubId: string): SimulatedHub => {
    const sim = hubs.get(hubId);
    if (!sim) throw new Error(`hub "${hubId}" is not simulated`);
    return sim;
  };

  let stopping: Promise<void> | null = null;
  return {
    stop() {
      stopping ??= (async () => {
        clearInterval(timer);
        await Promise.all([...hubs.values()].map((h) => h.connection.close()));
        logger.info(summary([...hubs.values()]), 'region simulator stopped');
      })();
      return stopping;
    },
    stats() {
      return summary([...hubs.values()]);
    },
    ackedIds: (hubId) => get(hubId).connection.ackedIds(),
    publishedIds: (hubId) => get(hubId).connection.publishedIds(),
    async raise(hubId, event) {
      const sim = get(hubId);
      await sim.connection.send(sim.devices.raise(Date.now(), event), { force: true });
    },
    control(req) {
      const sim = hubs.get(req.hub);
      if (!sim) throw new DeviceControlError(`hub "${req.hub}" is not simulated here`, 'unknown_hub');
      const sensors = sim.devices.sensorModels;
      if (req.kind === 'weather') for (const m of sensors) m.overrideWeather(req.weather);
      if (req.kind === 'power') for (const m of sensors) m.overridePower(req.power);
      if (req.kind === 'fleet') {
        const all = sim.devices.droneModels.map((d) => d.device);
        const drones = req.drones ?? all;
        const unknown = drones.filter((d) => !all.includes(d));
        if (unknown.length > 0) throw new DeviceControlError(`hub ${req.hub} has no drone ${unknown.map((d) => `"${d}"`).join(', ')}`, 'unknown_device');
        const now = Date.now();
        for (const d of drones) {
          const was = sim.outOfService.has(d);
          if (req.inService) {
            sim.outOfService.delete(d); // its next telemetry shows its real state again
          } else if (!was) {
            sim.outOfService.add(d);
            sim.connection.send(sim.devices.raise(now, { kind: 'drone', device: d, event: 'fault', detail: 'taken out of service' }), { force: true })
              .catch((err: Error) => logger.debug({ hub: req.hub, drone: d, err: err.message }, 'out-of-service event not sent'));
          }
        }
      }
      logger.info({ hub: req.hub, control: req }, 'devices controlled');
      const first = sensors[0];
      return { hub: req.hub, weather: first?.overrides.weather ?? null, power: first?.overrides.power ?? null, outOfService: [...sim.outOfService].sort() };
    },
  };
}

function summary(hubs: SimulatedHub[]): RegionSimulatorStats {
  const byHub: Record<string, HubConnectionStats> = {};
  let [published, acked, skipped] = [0, 0, 0];
  for (const h of hubs) {
    const s = h.connection.stats();
    byHub[h.connection.hubId] = s;
    published += s.published;
    acked += s.acked;
    skipped += s.skipped;
  }
  return { published, acked, skipped, byHub };
}
