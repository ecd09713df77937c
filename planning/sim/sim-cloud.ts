import { loadCloudConfig } from '../../cloud/config.ts';
import { createHash } from 'node:crypto';
import type { Command, CommandAck, DeviceKind, DeviceMessage, ModeAck, RegionMode } from '../../contract/index.ts';
import { liveHubView } from '../../cloud/alarms/create-alarms.ts';
import { AlarmService } from '../../cloud/alarms/alarm-service.ts';
import { openAlarmStore } from '../../cloud/alarms/alarm-store.ts';
import { CommandService } from '../../cloud/commands/command-service.ts';
import { createMemoryCommandStore } from '../../cloud/commands/command-store.ts';
import { openSqliteDatabase, type Database } from '../../cloud/db/database.ts';
import type { Regions } from '../../cloud/hubs/regions.ts';
import { LiveState } from '../../cloud/live/live-state.ts';
import type { Logger } from '../../cloud/logger.ts';
import { ModeProposals } from '../../cloud/modes/mode-proposals.ts';
import { ModeService } from '../../cloud/modes/mode-service.ts';
import { openModeStore } from '../../cloud/modes/mode-store.ts';
import { OrderService } from '../../cloud/orders/order-service.ts';
import { openOrderStore, type Order, type OrderStore } from '../../cloud/orders/order-store.ts';

/** The cloud's own defaults (MODE_ACK_TIMEOUT_S, ALARM_HUB_OFFLINE_GRACE_S …), parsed from an empty environment: one source for both. */
const CLOUD_DEFAULTS = loadCloudConfig({});

/**
 * The cloud of planning mode (issue 16): the PRODUCTION services — orders (dispatch engine, energy
 * model, ground rounds), commands, modes and proposals, alarms (rules), live state — on an in-memory
 * SQLite database and the memory command store, on a virtual clock. Their own timers are never
 * started (`orders.start`, `alarms.start`): the simulation calls `tick` and `checkLinks` itself.
 *
 * `deliver` is the ingest hooks' wiring of cloud/cloud.ts (live state, alarms, orders, command and mode
 * acknowledgements), without the telemetry store, dedupe and group commit — plumbing, not rules.
 */
export interface SimCloudOptions {
  regions: Regions;
  now: () => number;
  logger: Logger;
  /** The broker's side: commands and retained region modes going out to the hubs. */
  toHubs: { command(c: Command): void; regionMode(m: RegionMode): void };
  /** Sees every order the store creates or changes (the figures are taken from it). */
  onOrder: (o: Order, change: 'created' | 'transition' | 'update', fields?: Partial<Order>) => void;
  /** Production default; kept here so the figures name it. */
  hubOfflineGraceMs?: number;
  modeAckTimeoutMs?: number;
}

export interface SimCloud {
  database: Database;
  live: LiveState;
  commands: CommandService;
  modes: ModeService;
  proposals: ModeProposals;
  alarms: AlarmService;
  orders: OrderService;
  orderStore: OrderStore;
  /** A message from a hub reaches the cloud (as ingest hands it over once stored). */
  deliver(region: string, kind: DeviceKind | 'hub', msg: DeviceMessage | CommandAck | ModeAck): void;
  /** Work started outside the services' own chains that `settle` must wait for. */
  track(p: Promise<unknown>): void;
  /** Waits until every promise chain of the services has settled (no real time passes). */
  settle(): Promise<void>;
  close(): Promise<void>;
}

/** Planning only: a fast deterministic digest instead of scrypt (see OrderServiceOptions.pickupCodes). */
const cheapPickupCodes = {
  hash: async (code: string) => `sha256$${createHash('sha256').update(code).digest('base64url')}`,
  verify: async (code: string, hash: string) => hash === `sha256$${createHash('sha256').update(code).digest('base64url')}`,
};

export async function openSimCloud(o: SimCloudOptions): Promise<SimCloud> {
  const { regions, now, logger } = o;
  const database = openSqliteDatabase(':memory:', 'normal');
  const live = new LiveState(regions);
  const inflight = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>): void => {
    const q = p.catch((err: unknown) => logger.error({ err }, 'simulated ingest step failed')).finally(() => inflight.delete(q));
    inflight.add(q);
  };
  let cmdSeq = 0;
  const commands = new CommandService({
    store: createMemoryCommandStore(),
    bus: { send: async (command) => o.toHubs.command(command) },
    hubs: live.hubs, now, newId: () => `cmd-${(++cmdSeq).toString(36)}`, logger,
  });
  const modes = await ModeService.open({
    store: await openModeStore(database), regions, now, ackTimeoutMs: o.modeAckTimeoutMs ?? CLOUD_DEFAULTS.modes.ackTimeoutMs, logger,
    bus: { publishDesired: async (m) => o.toHubs.regionMode(m), acknowledge: async () => undefined },
  });
  const proposals = await ModeProposals.open({ db: database, regions, now });
  let alarmSeq = 0;
  const alarms = new AlarmService({
    store: await openAlarmStore(database), regions, hubs: liveHubView(live), now, newId: () => `alm-${(++alarmSeq).toString(36)}`, logger,
    params: { hubOfflineGraceMs: o.hubOfflineGraceMs ?? CLOUD_DEFAULTS.alarms.hubOfflineGraceMs },
  });
  const orderStore = observedOrderStore(await openOrderStore(database), o.onOrder);
  const orders = new OrderService({
    store: orderStore, regions, live, commands, logger, now,
    modeOf: (hub) => modes.modeOf(hub),
    raiseAlarm: (a) => track(alarms.raise({ hub: a.hub, device: a.device, compartment: a.compartment, kind: a.kind as never, severity: a.severity, detail: a.detail, params: a.params })),
    pickupCodes: cheapPickupCodes,
  });
  alarms.setMissionsPlannedAt((hub) => orders.hasAssignedMissionAt(hub));

  const deliver: SimCloud['deliver'] = (region, kind, msg) => {
    const at = now();
    if (msg.type === 'hub.command-ack') {
      track(commands.applyAcks([msg as CommandAck]));
      return;
    }
    if (msg.type === 'hub.mode-ack') {
      const ack = msg as ModeAck;
      track((async () => {
        await modes.recordAcks([{ ack, region, receivedAt: at }]);
        live.applyModeAck(region, ack, at);
        await modes.applyAck(ack, region, at);
      })());
      return;
    }
    const m = msg as DeviceMessage;
    const event = m.type.endsWith('.event');
    if (event) track(alarms.onDeviceMessage(m, region));
    live.applyDeviceMessage(region, kind as DeviceKind, m, at);
    if (!event) track(alarms.onDeviceMessage(m, region));
    orders.onDeviceMessage(m);
  };

  const internals = orders as unknown as { running: Promise<void> | null };
  const settle = async (): Promise<void> => {
    for (let round = 0; round < 1000; round++) {
      await new Promise<void>((r) => setImmediate(r));
      const waits: Promise<unknown>[] = [...inflight];
      if (internals.running) waits.push(internals.running);
      if (waits.length === 0) {
        await orders.settled();
        await alarms.settled();
        await new Promise<void>((r) => setImmediate(r));
        if (inflight.size === 0 && !internals.running) return;
        continue;
      }
      await Promise.all(waits);
    }
    throw new Error('the simulated services did not settle after 1000 rounds');
  };

  return {
    database, live, commands, modes, proposals, alarms, orders, orderStore, deliver, settle, track,
    close: async () => {
      await settle();
      await database.close();
    },
  };
}

/** The production store, with every change it makes reported to `on` (for the figures). */
function observedOrderStore(inner: OrderStore, on: SimCloudOptions['onOrder']): OrderStore {
  let seq = 0;
  return {
    hasAssignedMissionAt: (hub) => inner.hasAssignedMissionAt(hub),
    // Order ids are random in production; numbered here so a run is repeatable (ids break dispatch ties).
    create: async (o) => {
      const order = await inner.create({ ...o, id: `ord-${String(++seq).padStart(8, '0')}` });
      on(order, 'created');
      return order;
    },
    get: (id, tx) => inner.get(id, tx),
    list: (q) => inner.list(q),
    inStates: (states, q) => inner.inStates(states, q),
    countsByStateAndPriority: (r) => inner.countsByStateAndPriority(r),
    arrivalsByPriority: (r) => inner.arrivalsByPriority(r),
    transition: async (id, to, at, actor, reason, fields, options, tx) => {
      const order = await inner.transition(id, to, at, actor, reason, fields, options, tx);
      on(order, 'transition', fields);
      return order;
    },
    note: (id, at, actor, reason, fields, options, tx) => inner.note(id, at, actor, reason, fields, options, tx),
    update: async (id, at, fields, onlyIn, tx) => {
      const changed = await inner.update(id, at, fields, onlyIn, tx);
      if (changed && fields.waitReasons !== undefined) {
        const order = await inner.get(id, tx);
        if (order) on(order, 'update', fields);
      }
      return changed;
    },
    takePickupReveal: (id, at) => inner.takePickupReveal(id, at),
    countWrongCode: (id, at, lockAt) => inner.countWrongCode(id, at, lockAt),
    auditOf: (id) => inner.auditOf(id),
    addFlight: (f, tx) => inner.addFlight(f, tx),
    updateFlight: (m, f, tx) => inner.updateFlight(m, f, tx),
    flights: (q) => inner.flights(q),
  };
}
