import path from 'node:path';
import { pino } from 'pino';
import type { Command, CommandAck, DeviceKind, DroneTelemetry, LockerTelemetry, SensorTelemetry } from '../../contract/index.ts';
import { openTestDatabase, type SqlDatabaseKind, type TestDatabase } from '../../test/support/test-database.ts';
import { CommandService, type CommandBus } from '../commands/command-service.ts';
import { createMemoryCommandStore, type CommandStore } from '../commands/command-store.ts';
import { loadRegionFile } from '../hubs/region-loader.ts';
import { createRegions } from '../hubs/regions.ts';
import { LiveState } from '../live/live-state.ts';
import { OrderService } from './order-service.ts';
import { openOrderStore, type Order, type OrderStore } from './order-store.ts';

/**
 * For tests of the order and command lifecycles: the REAL order service and store on a temporary
 * SQLite or PostgreSQL database (issue 14) and the real command service (its store in memory, kept
 * across restarts — the command store has its own contract suite), with a fake clock, hand-set live
 * telemetry and a command bus whose publishes a test can hold and release. `restart()` drops the
 * service objects and builds new ones on the same database, as a cloud restart does.
 */
export const REGION_FILE = path.resolve(import.meta.dirname, '../../config/regions/ishikawa-nomi.json');
export const ORIGIN = 'rs-komatsu-kibagata';
export const DEST = 'nomi-kokufu'; // 4.6 km away, clear of the no-fly zones
export const T0 = Date.parse('2026-06-01T01:00:00Z');

export interface Sent {
  command: Command;
  to: { region: string; kind: DeviceKind };
}

export class OrderTestRig {
  readonly region = loadRegionFile(REGION_FILE);
  readonly regions = createRegions([this.region]);
  now = T0;
  readonly sent: Sent[] = [];
  /** Commands whose publish is held: `send` resolves only when `release` is called. */
  hold: (c: Command) => boolean = () => false;
  private readonly held: { command: Command; resolve: () => void }[] = [];
  private seq = 0;
  private generation = 0;
  live!: LiveState;
  store!: OrderStore;
  commands!: CommandService;
  orders!: OrderService;

  private constructor(
    readonly database: TestDatabase,
    private readonly commandStore: CommandStore,
  ) {}

  /** A rig on a fresh database of the kind (SQLite unless said). */
  static async open(kind: SqlDatabaseKind = 'sqlite'): Promise<OrderTestRig> {
    const rig = new OrderTestRig(await openTestDatabase(kind), await createMemoryCommandStore());
    await rig.build();
    rig.setTelemetry();
    return rig;
  }

  private async build(): Promise<void> {
    const logger = pino({ level: process.env.ORDER_RIG_LOG ?? 'silent' }); // e.g. ORDER_RIG_LOG=error to see what a model run logs
    // A restart ends the old objects as a process's death would: their publishes never complete.
    const generation = ++this.generation;
    const bus: CommandBus = {
      send: (command, to) => {
        if (generation !== this.generation) return new Promise<void>(() => undefined);
        this.sent.push({ command, to });
        if (!this.hold(command)) return Promise.resolve();
        return new Promise<void>((resolve) => this.held.push({ command, resolve }));
      },
    };
    const live = this.live ?? new LiveState(this.regions);
    if (!this.live) for (const h of live.hubs.values()) h.link.online = true; // every hub connected (`hubOffline` cuts one)
    this.live = live;
    this.commands = new CommandService({ store: this.commandStore, bus, hubs: live.hubs, now: () => this.now, newId: () => `cmd-${++this.seq}-${this.now}`, logger });
    this.store = await openOrderStore(this.database.db);
    this.orders = new OrderService({ store: this.store, regions: this.regions, live, commands: this.commands, logger, now: () => this.now });
  }

  /** New service objects on the same database and live state (a restart of the cloud's services). */
  async restart(): Promise<void> {
    this.held.length = 0; // publishes the old process was waiting for: never completed
    await this.build();
  }

  /** The state of an order (throws if there is none). */
  async state(orderId: string): Promise<string> {
    const o = await this.store.get(orderId);
    if (!o) throw new Error(`no order ${orderId}`);
    return o.state;
  }

  heldCommands(): Command[] {
    return this.held.map((h) => h.command);
  }

  /** Lets held publishes complete; resolves once the services have reacted. */
  async release(filter: (c: Command) => boolean = () => true): Promise<void> {
    for (const h of this.held.filter((x) => filter(x.command))) {
      this.held.splice(this.held.indexOf(h), 1);
      h.resolve();
    }
    await settle();
  }

  /** Calm weather, charged idle drones at the origin, empty lockers everywhere (every region: see `regions.add`). */
  setTelemetry(): void {
    for (const h of this.regions.all().flatMap((r) => r.hubs)) {
      const hub = this.live.hubs.get(h.id)!;
      for (const d of h.drones) this.droneAt(h.id, d.id, { lat: h.location.lat, lon: h.location.lon, flightState: 'idle', missionId: null });
      for (const bank of h.lockers) {
        const t: LockerTelemetry = {
          v: 1, type: 'locker.telemetry', id: `lt-${h.id}-${bank.id}`, ts: this.now, hub: h.id, device: bank.id,
          compartments: bank.compartments.map((c) => ({ id: c.id, size: c.size, tempClass: c.tempClass, door: 'closed', occupied: false, reservedFor: null, tempC: null, fault: 'none' })),
        };
        hub.devices.get(bank.id)!.telemetry = t;
      }
      for (const s of h.sensors) {
        const t: SensorTelemetry = {
          v: 1, type: 'sensor.telemetry', id: `st-${h.id}`, ts: this.now, hub: h.id, device: s, windSpeedMps: 1, windGustMps: 2, windDirDeg: 0,
          rainMmPerH: 0, airTempC: 20, gridPowerUp: true, backupBatteryPct: 100, linkQualityPct: 100,
        };
        hub.devices.get(s)!.telemetry = t;
      }
    }
  }

  /** Weather and lockers report again at `now` (dispatch waits on stale weather). */
  refreshHubs(): void {
    for (const h of this.live.hubs.values()) {
      for (const d of h.devices.values()) if (d.telemetry && d.kind !== 'drone') d.telemetry = { ...d.telemetry, ts: this.now };
    }
  }

  droneAt(hub: string, drone: string, p: { lat: number; lon: number; flightState: DroneTelemetry['flightState']; missionId: string | null; altM?: number }): void {
    const t: DroneTelemetry = {
      v: 1, type: 'drone.telemetry', id: `dt-${hub}-${drone}-${++this.seq}`, ts: this.now, hub, device: drone, lat: p.lat, lon: p.lon, altM: p.altM ?? 0,
      groundSpeedMps: 0, headingDeg: 0, batteryPct: 95, batteryTimeRemainingS: 1800, flightState: p.flightState, payloadKg: 0, remoteIdActive: true, missionId: p.missionId,
    };
    const device = this.live.hubs.get(hub)!.devices.get(drone)!;
    device.telemetry = t;
    device.lastReceivedAt = this.now; // the cloud's receive time
  }

  /** An order from ORIGIN to a locker at DEST, assigned by one planning round (it throws if it is not). */
  async assignedOrder(priority: 'normal' | 'medical' = 'normal'): Promise<Order> {
    const created = await this.orders.create({ originHub: ORIGIN, destination: { type: 'locker', hub: DEST }, weightKg: 1, tempClass: 'ambient', priority, by: 'test' });
    await this.tick();
    const o = (await this.store.get(created.id))!;
    if (o.state !== 'assigned') throw new Error(`order ${o.id} is ${o.state} after a planning round, not assigned`);
    return o;
  }

  /** The hub's link to the cloud goes down (or comes back). */
  hubOffline(hub: string, offline = true): void {
    const link = this.live.hubs.get(hub)!.link;
    if (link.online === offline) link.since = this.now;
    link.online = !offline;
  }

  /** A device's (or the hub agent's) acknowledgement of a command, as ingest hands it over. */
  async ack(commandId: string, result: CommandAck['result'], detail?: string): Promise<void> {
    const c = await this.commands.get(commandId);
    await this.commands.applyAck({ v: 1, type: 'hub.command-ack', id: `ack-${++this.seq}`, ts: this.now, hub: c.hub, device: c.device, commandId, result, ...(detail ? { detail } : {}) });
  }

  /**
   * A drone event of a mission, as ingest hands it over once stored. A real drone reports its position
   * about once a second, so by its `landed` the cloud has it where it landed: `landed` puts the drone at
   * `at` — by default the destination of the order flying `missionId` (a drone the live state does not
   * know is left alone).
   */
  async droneEvent(hub: string, drone: string, missionId: string, event: 'takeoff' | 'landed' | 'mission_complete', at?: { lat: number; lon: number }): Promise<void> {
    if (event === 'landed' && this.live.hubs.get(hub)?.devices.get(drone)) {
      const order = (await this.store.inStates(['in_flight'])).find((o) => o.missionId === missionId);
      const dest = at ?? (order?.destination.type === 'locker'
        ? this.regions.hub(order.destination.hub)?.location
        : order ? this.regions.get(order.region)?.landingSites.find((s) => s.id === (order.destination as { siteId: string }).siteId)?.location : undefined);
      if (dest) this.droneAt(hub, drone, { lat: dest.lat, lon: dest.lon, flightState: 'landing', missionId });
    }
    this.orders.onDeviceMessage({ v: 1, type: 'drone.event', id: `de-${++this.seq}`, ts: this.now, hub, device: drone, event, severity: 'info', missionId } as never);
    await this.drain();
  }

  /**
   * One planning round. A round already running (started by `create`, or awaiting a pickup code's
   * hash) is waited for first, unless it is stuck on a held publish — then this one coalesces into it.
   */
  async tick(): Promise<void> {
    const busy = () => (this.orders as unknown as { ticking: boolean }).ticking;
    while (busy() && this.held.length === 0) await new Promise((r) => setTimeout(r, 1));
    if (busy()) {
      void this.orders.tick(); // stuck on a held publish: coalesces into it, and runs when it is released
      return;
    }
    await this.orders.tick();
  }

  /** Waits until the mission events and pickups handed over so far are applied. */
  async drain(): Promise<void> {
    await settle();
    await (this.orders as unknown as { chain: Promise<void> }).chain;
    await settle();
  }

  /** The `drone.mission` commands published for an order (any attempt). */
  missionsFor(orderId: string): Command[] {
    return this.sent.map((s) => s.command).filter((c) => c.command === 'drone.mission' && missionOf(c)?.startsWith(`m-${orderId.slice(4)}-`));
  }

  async close(): Promise<void> {
    this.orders.stop();
    // Events and pickups handed over are applied before the database closes (unless stuck on a held publish).
    await Promise.race([this.orders.settled(), new Promise((r) => setTimeout(r, 1000))]);
    await this.database.cleanup();
  }
}

function missionOf(c: Command): string | undefined {
  const m = (c.args as Record<string, unknown>).missionId;
  return typeof m === 'string' ? m : undefined;
}

/** Lets pending promise chains and immediates run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((r) => setImmediate(r));
}
