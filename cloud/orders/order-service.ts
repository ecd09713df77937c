import crypto from 'node:crypto';
import type { DeviceMessage, DroneTelemetry, LockerTelemetry, Mode, RegionFile, SensorTelemetry } from '../../contract/index.ts';
import { isProvisionalFailure, type CommandService } from '../commands/command-service.ts';
import type { CommandState } from '../commands/command-store.ts';
import {
  planDispatch,
  type DispatchInput,
  type DroneAssignment,
  type GroundBooking,
  type GroundRoundInput,
  type HubInput,
  type ModeInput,
  type Outcome,
  type Priority,
  type Reason,
} from '../dispatch/dispatch-engine.ts';
import { haversineM as distanceM } from '../dispatch/geo.ts';
import { hashSecret, verifySecret } from '../hubs/hub-credentials.ts';
import type { Regions } from '../hubs/regions.ts';
import type { LiveState } from '../live/live-state.ts';
import { localLeases, regionLease, StaleLeaseError, type LeaseGrant, type Leases } from '../cluster/leases.ts';
import type { Sql } from '../db/sql.ts';
import type { Logger } from '../logger.ts';
import { canTransition, cancellable, IllegalTransition, type OrderState } from './order-lifecycle.ts';
import { OrderNotFound, ResourceTaken, type Order, type OrderStore, type TransitionOptions } from './order-store.ts';

/**
 * Orders from creation to pickup. Every `tick` (and soon after each new order):
 *  1. missions in progress advance from drone telemetry (take-off → in flight; landed at the
 *     destination → in the locker with a pickup code, or delivered at a landing site);
 *  2. the dispatch engine (pure) plans every pending and held order against live state, and each
 *     drone assignment becomes commands to the hubs' edge agents: `locker.reserve` at the destination,
 *     `drone.mission` at the origin. A refused or failed mission releases the compartment and the
 *     order waits again (failed after MAX_ATTEMPTS).
 * Pickup: the locker reports the code typed by the resident (`locker.event` "pickup"); it is checked
 * against the stored scrypt hash; MAX_WRONG_CODES wrong codes lock the compartment and raise an alarm.
 *
 * Issue 14: orders belong to the region of their hubs, and dispatch plans each region on its own (a
 * drone of one region never takes an order of another). Several cloud processes may run this service
 * on one database: every state change names the state it was decided from (`from`, checked on the
 * locked row), so a change another process made first wins and this one is dropped; resources
 * (commands to release a compartment or abort a drone) follow only a change that was made here.
 */
export const MAX_ATTEMPTS = 3;
export const MAX_WRONG_CODES = 3;
const ARRIVAL_RADIUS_M = 200;
const TAKEOFF_TIMEOUT_MS = 5 * 60_000;
/**
 * An assigned order whose mission command is not stored this long after the assignment: the process
 * that assigned it stopped in between (kill -9, a lost lease). The region's planner sends it then —
 * under the same ids, so it cannot be sent twice — instead of waiting out TAKEOFF_TIMEOUT_MS.
 * Sending it normally takes milliseconds (store and publish two commands). Only until
 * TAKEOFF_TIMEOUT_MS: an older assignment is planned again (its conditions may have changed).
 */
export const MISSION_SEND_GRACE_MS = 30_000;

/**
 * Command ids of an assignment's compartment reservation and mission, fixed by the mission: sent
 * again, the command store keeps one and a hub executes an id at most once.
 */
const assignmentCommandIds = (missionId: string) => ({ reserve: `cmd-${missionId}-reserve`, mission: `cmd-${missionId}` });
const FLIGHT_TIMEOUT_MS = 45 * 60_000;
/** The compartments `active` orders hold, as `<hub>/<locker>/<compartment>` → order id. */
function heldCompartments(active: readonly Order[]): Map<string, string> {
  return new Map(active.filter((o) => o.destination.type === 'locker' && o.compartmentId)
    .map((o) => [`${(o.destination as { hub: string }).hub}/${o.lockerId}/${o.compartmentId}`, o.id]));
}

/** A compartment still reported reserved for an order that no longer holds it is asked to release again this often (a release lives 10 minutes). */
const RELEASE_RETRY_MS = 10 * 60_000;
/** A drone position this close in time to a drone event says where the event happened (drones report ~1 a second; 15 s at 10 m/s is within the 200-m arrival radius). */
const POSITION_AT_EVENT_MS = 15_000;
/** How long a hub back online is given to replay its backlog before an order waiting on it is planned again. */
const HUB_SETTLE_MS = 60_000;
/** An outbox whose oldest unsent message is older than this holds a backlog (a busy hub's in-flight messages are younger). */
const BACKLOG_AGE_S = 15;
/** Flight-log result of a mission whose drone was called home (its rtl event). */
const RECALLED = 'recalled';
const AIRBORNE = new Set(['armed', 'takeoff', 'mission', 'hover', 'rtl', 'landing']);
const ACTIVE: readonly OrderState[] = ['assigned', 'mission_unknown', 'in_flight', 'on_board', 'in_locker'];
/**
 * Issue 12 (2): when a ground round (貨客混載) has ended, counted from the departure an order is on.
 * The region file gives departure times only; a community bus or truck round in the region takes
 * under two hours end to end, so three hours is its scheduled end with a margin. Until then the
 * order's weight is booked on that departure; after it, an order still `assigned` (never loaded: the
 * parcel is still at the origin hub) is dispatched again, and one still `on_board` (loaded, not
 * confirmed delivered: where the parcel is needs a person) fails.
 */
export const GROUND_ROUND_END_MS = 3 * 3_600_000;
/** Orders assigned to a round before the departure was recorded: tomorrow's last departure at the latest. */
const UNRECORDED_DEPARTURE_MS = 48 * 3_600_000;

/** A step of a ground round that staff record for an order on it (the bus has no device of ours). */
export const GROUND_ROUND_STEPS = ['loaded', 'delivered', 'failed'] as const;
export type GroundRoundStep = (typeof GROUND_ROUND_STEPS)[number];

export interface NewOrder {
  originHub: string;
  destination: { type: 'locker'; hub: string } | { type: 'site'; siteId: string };
  weightKg: number;
  tempClass: 'ambient' | 'chilled' | 'frozen';
  priority: Priority;
  deadline?: number;
  reference?: string;
  flightPlanRef?: string;
  by: string;
}

export class OrderError extends Error {
  override readonly name = 'OrderError';
  constructor(
    readonly code: 'order_not_found' | 'unknown_destination' | 'not_cancellable' | 'pickup_code_unavailable' | 'compartment_not_locked' | 'round_step_refused',
    message: string,
  ) {
    super(message);
  }
}

export interface OrderServiceOptions {
  store: OrderStore;
  /** The regions served (issue 14): hubs, drones, lockers, sites and rounds are looked up here when needed. */
  regions: Regions;
  live: LiveState;
  commands: CommandService;
  logger: Logger;
  now: () => number;
  /** The mode each hub is in (the disaster-mode feature supplies it). */
  modeOf?: (hubId: string) => Mode;
  /** Raise an alarm (the alarms feature supplies it). */
  raiseAlarm?: (a: {
    hub: string; device: string; compartment: string; kind: string; severity: 'warning' | 'critical'; detail: string;
    /** The condition as data (alarm `params`), for the consoles' own text. */
    params: { wrongCodes: number; orderId: string; locked: boolean };
  }) => void;
  onPickupCode?: (result: 'accepted' | 'rejected' | 'locked' | 'no_order') => void;
  /** A drone event named a mission that is not the sending drone's (counted; the event is ignored). */
  onMissionEventRefused?: () => void;
  /** Battery reserve, percent, in normal and emergency mode (engine defaults 25 / 35). */
  reservePct?: { normal: number; emergency: number };
  /**
   * How pickup codes are hashed and checked (default: scrypt, `hashSecret` / `verifySecret`). Planning
   * mode (issue 16) passes a cheap hash: a simulated run delivers thousands of parcels, and scrypt's
   * ~50 ms per code is by design far too slow for a 48-hour scenario in seconds.
   */
  pickupCodes?: { hash(code: string): Promise<string>; verify(code: string, hash: string): Promise<boolean> };
  /**
   * Issue 15: a region's mission tracking and dispatch run only on the node holding its lease
   * (`region:<id>`), and every state change they make is fenced with its token. Default: the single
   * process's local leases (every region held, nothing fenced).
   */
  leases?: Leases;
}

export class OrderService {
  private readonly log: Logger;
  private ticking = false;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  /** Hubs with a drone on an assigned mission, as of the last planning round (see hasAssignedMissionAt). */
  private assignedHubs = new Set<string>();

  constructor(private readonly o: OrderServiceOptions) {
    this.log = o.logger.child({ component: 'orders' });
    this.leases = o.leases ?? localLeases();
    this.pickupCodes = o.pickupCodes ?? { hash: hashSecret, verify: verifySecret };
  }

  private readonly pickupCodes: NonNullable<OrderServiceOptions['pickupCodes']>;

  start(intervalMs = 2000): void {
    this.timer = setInterval(() => void this.tick(), intervalMs); // tick() logs its own failures
    this.refreshAssigned().catch((err: unknown) => this.log.error({ err }, 'reading assigned missions failed'));
  }

  /**
   * Whether a drone of `hub` has an assigned mission — asked by the wind alarm rule for every sensor
   * reading that is not calm, so it is answered from memory: the set is read again from the store at
   * the end of every planning round (every 2 s, any process's assignments included) and an assignment
   * made here shows at once.
   */
  hasAssignedMissionAt(hub: string): boolean {
    return this.assignedHubs.has(hub);
  }

  private async refreshAssigned(): Promise<void> {
    const assigned = await this.o.store.inStates(['assigned']);
    this.assignedHubs = new Set(assigned.filter((o) => o.carrier === 'drone' && o.droneHub).map((o) => o.droneHub!));
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async create(req: NewOrder): Promise<Order> {
    // The order belongs to the region of its origin hub; its destination must be in the same region.
    const r = this.o.regions.regionOfHub(req.originHub);
    if (!r) throw new OrderError('unknown_destination', `no hub "${req.originHub}" in any region`);
    if (req.destination.type === 'locker') {
      const hub = req.destination.hub;
      if (!r.hubs.some((h) => h.id === hub && h.lockers.length > 0)) throw new OrderError('unknown_destination', `no hub with lockers "${hub}" in region ${r.id}`);
    } else {
      const siteId = req.destination.siteId;
      // A route cannot be flown until its landing point is known: only registered sites.
      if (!r.landingSites.some((s) => s.id === siteId)) throw new OrderError('unknown_destination', `"${siteId}" is not a registered landing site`);
    }
    const now = this.o.now();
    const order = await this.o.store.create({
      id: `ord-${crypto.randomUUID().slice(0, 13)}`, region: r.id, originHub: req.originHub, destination: req.destination, weightKg: req.weightKg,
      tempClass: req.tempClass, priority: req.priority, deadline: req.deadline ?? null, reference: req.reference ?? null,
      flightPlanRef: req.flightPlanRef ?? null, createdAt: now, createdBy: req.by,
    });
    this.log.info({ order: order.id, priority: order.priority, origin: order.originHub }, 'order created');
    setImmediate(() => void this.tick());
    return order;
  }

  /** The region an order from this hub belongs to (undefined: no such hub in any region). */
  regionOfHub(hub: string): string | undefined {
    return this.o.regions.regionOfHub(hub)?.id;
  }

  async get(id: string): Promise<Order> {
    const order = await this.o.store.get(id);
    if (!order) throw new OrderError('order_not_found', `no order "${id}"`);
    return order;
  }

  async cancel(id: string, by: string, reason: string): Promise<Order> {
    const refuse = (o: Order) => new OrderError('not_cancellable', `an order ${o.state.replace('_', ' ')} cannot be cancelled`);
    const seen = await this.get(id);
    if (!cancellable(seen.state)) throw refuse(seen);
    // Decided on the row as locked: a pickup, take-off or dispatch that got there first wins.
    // Waits for this process's dispatch to finish sending the order's mission, if it is (see assignDrone).
    let before: Order = seen;
    const cancelled = await this.exclusive(id, () => this.o.store
      .transition(id, 'cancelled', this.o.now(), by, reason, {}, { onLocked: (o) => void (before = o) })
      .catch((err: unknown) => {
        if (err instanceof IllegalTransition) throw refuse(before);
        throw err;
      }));
    if (before.state === 'assigned') await this.releaseResources(before, 'cancelled');
    return cancelled;
  }

  /** Work on one order that must not interleave with other such work in this process, in call order. */
  private exclusive<T>(orderId: string, fn: () => Promise<T>): Promise<T> {
    const before = this.perOrder.get(orderId) ?? Promise.resolve();
    const mine = before.then(fn, fn);
    const tail = mine.then(() => undefined, () => undefined);
    this.perOrder.set(orderId, tail);
    void tail.then(() => {
      if (this.perOrder.get(orderId) === tail) this.perOrder.delete(orderId);
    });
    return mine;
  }

  private readonly perOrder = new Map<string, Promise<void>>();

  /** Shows the pickup code once (to the requester); afterwards only its hash exists. */
  async revealPickupCode(id: string): Promise<string> {
    const taken = await this.o.store.takePickupReveal(id, this.o.now());
    if (taken) return taken.code;
    const order = await this.get(id);
    throw new OrderError('pickup_code_unavailable', order.state === 'in_locker' ? 'the pickup code was already shown' : `the order is ${order.state}, not in a locker`);
  }

  /**
   * Issue 12 (3): staff at the locker's hub or a coordinator, having checked the compartment, open a
   * compartment locked by wrong pickup codes: the locker is told to unlock it (`locker.unlock`), the
   * wrong-code count is cleared and a new pickup code replaces the old one — returned once, like
   * `revealPickupCode`; only its hash is kept. The order stays `in_locker` and ends with a pickup,
   * which releases the compartment back to dispatch.
   */
  async unlockCompartment(id: string, by: string, reason: string): Promise<{ order: Order; pickupCode: string; commandId: string | null }> {
    const check = (o: Order) => {
      if (o.state !== 'in_locker' || !o.locked || !o.lockerId || !o.compartmentId || o.destination.type !== 'locker') {
        throw new OrderError('compartment_not_locked', o.state === 'in_locker' ? 'the compartment is not locked' : `the order is ${o.state}, not in a locker`);
      }
      return { hub: o.destination.hub, locker: o.lockerId, compartment: o.compartmentId };
    };
    check(await this.get(id));
    const code = String(crypto.randomInt(0, 1_000_000)).padStart(6, '0');
    const hash = await this.pickupCodes.hash(code);
    const now = this.o.now();
    // Checked again on the locked row: it may have changed while the code was hashed (or two people unlocked at once).
    let at!: ReturnType<typeof check>;
    let wrongCodes = 0;
    const unlocked = await this.o.store.note(id, now, by, '', { locked: false, wrongCodes: 0, pickupHash: hash, pickupReveal: null }, {
      onLocked: (o) => {
        at = check(o);
        wrongCodes = o.wrongCodes;
      },
      reason: () => `compartment ${at.locker}/${at.compartment} unlocked after ${wrongCodes} wrong pickup codes; new pickup code issued (${reason})`,
    }).catch((err: unknown) => {
      if (err instanceof OrderNotFound) throw new OrderError('order_not_found', `no order "${id}"`);
      throw err;
    });
    this.log.warn({ order: id, hub: at.hub, locker: at.locker, compartment: at.compartment, by }, 'locked compartment opened by staff; pickup code reset');
    const cmd = await this.command(at.hub, at.locker, 'locker.unlock', { compartment: at.compartment }, 600);
    return { order: unlocked, pickupCode: code, commandId: cmd?.id ?? null };
  }

  /**
   * Issue 12 (2): staff record a ground round's step for an order on it — loaded on the bus at the
   * origin hub (`on_board`), handed over at the destination hub (`delivered`), or lost, damaged or
   * refused (`failed`). Each is a transition with the account and reason in the audit log.
   */
  async groundRoundStep(id: string, step: GroundRoundStep, by: string, reason?: string): Promise<Order> {
    const to: OrderState = step === 'loaded' ? 'on_board' : step;
    const check = (order: Order) => {
      if (order.carrier !== 'ground' || !order.roundId) throw new OrderError('round_step_refused', `the order is not on a ground round (${order.state.replace('_', ' ')})`);
      if (!canTransition(order.state, to) || (step === 'delivered' && order.state !== 'on_board')) {
        throw new OrderError('round_step_refused', `an order ${order.state.replace('_', ' ')} cannot be marked ${step}`);
      }
    };
    check(await this.get(id));
    const why = (order: Order) => {
      const dest = order.destination.type === 'locker' ? order.destination.hub : order.destination.siteId;
      return reason ?? (step === 'loaded' ? `loaded on ground round ${order.roundId}` : step === 'delivered' ? `ground round ${order.roundId} delivered it to ${dest}` : `ground round ${order.roundId}: failed`);
    };
    // Checked again on the locked row: two people at two hubs may record steps at once.
    let locked!: Order;
    const moved = await this.o.store.transition(id, to, this.o.now(), by, '', {}, {
      onLocked: (o) => {
        check(o);
        locked = o;
      },
      reason: () => why(locked),
    }).catch((err: unknown) => {
      // Another step was recorded first (two people, two hubs): refused as it would have been a moment later.
      if (err instanceof IllegalTransition) throw new OrderError('round_step_refused', `an order ${err.from.replace('_', ' ')} cannot be marked ${step}`);
      throw err;
    });
    this.log.info({ order: id, round: moved.roundId, step, by }, 'ground round step recorded');
    return moved;
  }

  /**
   * Ingest hook: a stored device message. Drone events of a mission advance its order at once (a
   * drone may spend only moments on the ground at the destination); telemetry is the fallback.
   */
  onDeviceMessage(msg: DeviceMessage): void {
    if (msg.type === 'drone.event' && msg.missionId) {
      this.chain = this.chain.then(() => this.missionEvent(msg.hub, msg.device, msg.missionId!, msg.event, msg.ts)).catch((err: unknown) => this.log.error({ err }, 'applying a mission event failed'));
      return;
    }
    if (msg.type !== 'locker.event' || msg.event !== 'pickup' || !msg.pickupCode) return;
    const code = msg.pickupCode;
    // One at a time: three wrong codes typed in a row must count as three.
    this.chain = this.chain.then(() => this.pickup(msg.hub, msg.device, msg.compartment, code)).catch((err: unknown) => this.log.error({ err }, 'checking a pickup code failed'));
  }

  /** Mission events and pickups are applied one after another, in the order they were stored. */
  private chain: Promise<void> = Promise.resolve();

  /** Resolves once every mission event and pickup handed over so far is applied (shutdown waits for it before closing the store). */
  async settled(): Promise<void> {
    for (let c = this.chain; ; c = this.chain) {
      await c;
      if (c === this.chain) return;
    }
  }

  /**
   * Moves an order on from the state it was seen in (`order`), with its mission unchanged; null when
   * it has moved meanwhile (another process, or a request, got there first): the caller then does
   * nothing more for it — commands follow only a change made here.
   */
  private async move(order: Order, to: OrderState, reason: string, fields: Partial<Order> = {}, options: TransitionOptions = {}, actor = 'system', g?: LeaseGrant): Promise<Order | null> {
    const change = (tx?: Sql) => this.o.store.transition(order.id, to, this.o.now(), actor, reason, fields, { from: [order.state], missionId: order.missionId, ...options }, tx);
    try {
      // Leased work (a planning round): the change commits only if this node still holds the region's lease with the round's token.
      return await (g ? g.fenced((tx) => change(tx)) : change());
    } catch (err) {
      if (err instanceof IllegalTransition || err instanceof OrderNotFound) {
        this.log.debug({ order: order.id, from: order.state, to }, 'order changed meanwhile: step dropped');
        return null;
      }
      throw err;
    }
  }

  /**
   * `hub` and `drone` are the sender's, from its credential (the broker lets a hub publish only on its
   * own topics, and ingest checks the message names the topic's hub and device). A mission id is no
   * secret — the order API shows it — so the event moves the order only when it comes from the drone
   * the mission was given to: any other hub's drone could otherwise fly an order "in flight" and "into
   * the locker" while the parcel never left, holding the compartment for good.
   */
  private async missionEvent(hub: string, drone: string, missionId: string, event: string, ts: number): Promise<void> {
    const order = (await this.o.store.inStates(['assigned', 'mission_unknown', 'in_flight'])).find((o) => o.missionId === missionId);
    if (!order) return;
    if (order.droneHub !== hub || order.droneId !== drone) {
      this.o.onMissionEventRefused?.();
      this.log.warn({ order: order.id, mission: missionId, event, from: { hub, drone }, assigned: { hub: order.droneHub, drone: order.droneId } }, 'drone event for a mission that is not this drone\'s: ignored');
      return;
    }
    if ((order.state === 'assigned' || order.state === 'mission_unknown') && (event === 'armed' || event === 'takeoff' || event === 'mission_started')) {
      if (await this.move(order, 'in_flight', `${order.droneId} took off`)) await this.o.store.updateFlight(missionId, { takeoffAt: ts });
    } else if (event === 'rtl') {
      // Called home (an operator's drone.rtl or drone.abort, or its own failsafe), at the drone's time `ts`:
      // the parcel stays on board, so no later landing of this mission is a delivery. Recorded in whatever
      // state the order is: after an outage the hub's outbox sends warnings ahead of the info events before
      // them (its urgent lane), so an rtl can arrive before the take-off it followed (found in review).
      // Kept in memory too, should the flight-log write fail.
      if (this.recalledMissions.size >= 10_000) this.recalledMissions.clear();
      const at = Math.min(ts, this.recalledMissions.get(missionId) ?? Infinity);
      this.recalledMissions.set(missionId, at);
      await this.o.store.updateFlight(missionId, { result: `${RECALLED} ${new Date(at).toISOString()}` });
    } else if (order.state === 'in_flight' && event === 'landed') {
      // A drone recalled lands at home, and taking that for the delivery put the order in the locker with
      // a pickup code for an empty compartment (found in review). Recalled (its rtl came first: events
      // keep their order, also when replayed after an outage), or seen by a position taken within a minute
      // of the landing elsewhere than the destination: not delivered. Without either the landing is the
      // delivery, as before — after an outage the newest position can be hours newer than a replayed landing.
      const t = this.droneTelemetry(hub, drone);
      const position = t && Math.abs(t.ts - ts) <= POSITION_AT_EVENT_MS ? { lat: t.lat, lon: t.lon } : null;
      const dest = this.destinationOf(order);
      const home = this.o.regions.hub(order.droneHub)?.location ?? null;
      const recalledAt = await this.recalledAt(order);
      // Only a recall before this landing: a drone that delivered, then was called home on its way back,
      // delivered (the rtl may be replayed first).
      const recalled = recalledAt !== null && recalledAt <= ts;
      const atHome = position !== null && home !== null && distanceM(position, home) <= ARRIVAL_RADIUS_M;
      const elsewhere = position !== null && dest !== null && distanceM(position, dest) > ARRIVAL_RADIUS_M;
      if (!recalled && !elsewhere) {
        await this.arrive(order, ts);
      } else if (atHome) {
        await this.retry(order, `${drone} landed back at ${order.droneHub}${recalled ? ' after it was called home' : ''}, with the parcel`);
      } else {
        // Elsewhere (an emergency landing): the telemetry settles it, or the flight timeout.
        this.log.warn({ order: order.id, mission: missionId, drone, position }, 'drone landed away from the destination and its hub: the order waits');
      }
    }
  }

  private async arrive(order: Order, at: number, g?: LeaseGrant): Promise<void> {
    await this.o.store.updateFlight(order.missionId!, { arrivedAt: at, result: 'delivered' });
    if (order.destination.type === 'site') {
      await this.move(order, 'delivered', `${order.droneId} landed at ${order.destination.siteId}`, {}, {}, 'system', g);
      return;
    }
    const code = String(crypto.randomInt(0, 1_000_000)).padStart(6, '0');
    const hash = await this.pickupCodes.hash(code);
    // Only from in_flight, checked on the locked row: it may have advanced while the code was hashed.
    await this.move(order, 'in_locker', `${order.droneId} delivered to ${order.lockerId}/${order.compartmentId}`, { pickupHash: hash, pickupReveal: code }, {}, 'system', g);
  }

  private async pickup(hub: string, locker: string, compartment: string, code: string): Promise<void> {
    const order = (await this.o.store.inStates(['in_locker'])).find(
      (o) => o.destination.type === 'locker' && o.destination.hub === hub && o.lockerId === locker && o.compartmentId === compartment,
    );
    if (!order || !order.pickupHash) {
      this.o.onPickupCode?.('no_order');
      return;
    }
    const now = this.o.now();
    if (order.locked) {
      this.o.onPickupCode?.('locked');
      this.log.warn({ order: order.id, hub, compartment }, 'pickup attempt on a locked compartment refused');
      return;
    }
    if (await this.pickupCodes.verify(code, order.pickupHash)) {
      // One pickup per parcel: a second one with the same code (another cloud process, a re-sent event) finds it picked up.
      const notLocked = (o: Order) => {
        if (o.locked) throw new IllegalTransition(o.state, 'picked_up');
      };
      const picked = await this.move(order, 'picked_up', 'picked up with the right code', { pickupReveal: null }, { onLocked: notLocked }, `locker:${hub}/${locker}`);
      if (!picked) {
        this.o.onPickupCode?.('no_order');
        return;
      }
      this.o.onPickupCode?.('accepted');
      await this.command(hub, locker, 'locker.release', { compartment }, 600);
      return;
    }
    // Counted in place: wrong codes typed at once (or handled by two processes) all count.
    const counted = await this.o.store.countWrongCode(order.id, now, MAX_WRONG_CODES);
    if (!counted) {
      this.o.onPickupCode?.('no_order');
      return;
    }
    const { wrongCodes: wrong, locked } = counted;
    this.o.onPickupCode?.(locked ? 'locked' : 'rejected');
    this.log.warn({ order: order.id, hub, compartment, wrong }, 'wrong pickup code refused');
    if (locked && wrong === MAX_WRONG_CODES) {
      this.o.raiseAlarm?.({
        hub, device: locker, compartment, kind: 'repeated_wrong_pickup_codes', severity: 'critical',
        detail: `${wrong} wrong pickup codes for order ${order.id}; compartment ${compartment} locked until staff check it`,
        params: { wrongCodes: wrong, orderId: order.id, locked: true },
      });
    }
  }

  /**
   * One round of mission tracking and dispatch. Re-entrant calls coalesce: a call while a round runs
   * asks for one more and resolves with it (the store is asynchronous, so a caller that awaits a tick
   * must see a round that started after its call).
   */
  tick(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.ticking = true;
    this.running = this.rounds().finally(() => {
      this.ticking = false;
      this.running = null;
    });
    return this.running;
  }

  private running: Promise<void> | null = null;

  private readonly leases: Leases;

  private heldRegions(): Map<string, LeaseGrant> {
    const grants = new Map<string, LeaseGrant>();
    for (const r of this.o.regions.all()) {
      const g = this.leases.grant(regionLease(r.id));
      if (g) grants.set(r.id, g);
    }
    return grants;
  }

  private async rounds(): Promise<void> {
    try {
      do {
        this.again = false;
        // The regions whose lease this node holds, with the token each round's changes are fenced with (issue 15).
        const grants = this.heldRegions();
        if (grants.size > 0) {
          await this.trackMissions(grants);
          await this.endGroundRounds(grants);
          await this.releaseStaleReservations(grants);
          await this.dispatch(grants);
        }
        // Every node: the wind alarm rule asks on any node that takes sensor readings.
        await this.refreshAssigned();
      } while (this.again);
    } catch (err) {
      if (err instanceof StaleLeaseError) {
        this.log.warn({ lease: err.lease, token: err.token }, 'planning round stopped: this node no longer holds the region\'s lease (another node took over); nothing of it was applied after that');
      } else {
        this.log.error({ err }, 'dispatch round failed');
      }
    }
  }

  // ---------------------------------------------------------------- missions in progress

  private droneTelemetry(hub: string, drone: string): DroneTelemetry | null {
    const t = this.o.live.hubs.get(hub)?.devices.get(drone)?.telemetry;
    return t?.type === 'drone.telemetry' ? t : null;
  }

  /** Whether the hub's link to the cloud is up (live state). */
  private hubOnline(hub: string): boolean {
    return this.o.live.hubs.get(hub)?.link.online ?? false;
  }

  /**
   * Online, and long enough back to have replayed what it held while offline: a hub back from an outage
   * sends its backlog (the drone's take-off among it) after it connects, and a planning round in between
   * re-planned an order whose drone was flying it (found in review). A minute online, and no backlog in its
   * outbox as last reported (none reported counts as none).
   */
  private hubSettled(hub: string, now: number): boolean {
    const link = this.o.live.hubs.get(hub)?.link;
    if (!link?.online) return false;
    if (link.since !== null && now - link.since < HUB_SETTLE_MS) return false;
    // A busy hub always has a few messages in flight: only an outbox holding old ones is a backlog.
    return !(link.outbox && link.outbox.depth > 0 && (link.outbox.oldestUnsentAgeS ?? Infinity) > BACKLOG_AGE_S);
  }

  /** Missions called home: the drone's time of their (first) rtl. Also kept in the flight log. */
  private readonly recalledMissions = new Map<string, number>();

  /** When the order's current mission was called home (the drone's time), or null. */
  private async recalledAt(order: Order): Promise<number | null> {
    if (!order.missionId) return null;
    const known = this.recalledMissions.get(order.missionId);
    if (known !== undefined) return known;
    const f = (await this.o.store.flights({ orderId: order.id, limit: 10 })).find((x) => x.missionId === order.missionId && x.result?.startsWith(RECALLED));
    if (!f) return null;
    const at = Date.parse(f.result!.slice(RECALLED.length + 1));
    return Number.isFinite(at) ? at : 0;
  }

  /**
   * The cloud received something from the drone within POSITION_AT_EVENT_MS of `now` (its own clock, so
   * a hub whose clock is off does not make a drone on its pad look absent, found in review).
   */
  private reportedWithin(hub: string, drone: string, now: number): boolean {
    const at = this.o.live.hubs.get(hub)?.devices.get(drone)?.lastReceivedAt ?? null;
    return at !== null && now - at <= POSITION_AT_EVENT_MS;
  }

  private destinationOf(order: Order): { lat: number; lon: number } | null {
    if (order.destination.type === 'locker') return this.o.regions.hub(order.destination.hub)?.location ?? null;
    const siteId = order.destination.siteId;
    return this.o.regions.get(order.region)?.landingSites.find((s) => s.id === siteId)?.location ?? null;
  }

  /** A command's state, whether the command service answers at once or with a promise; null if unknown. */
  private async commandState(id: string | null): Promise<{ state: CommandState; detail: string | null } | null> {
    if (!id) return null;
    return Promise.resolve()
      .then(() => this.o.commands.get(id))
      .catch(() => null);
  }

  private async trackMissions(grants: ReadonlyMap<string, LeaseGrant>): Promise<void> {
    const now = this.o.now();
    for (const order of await this.o.store.inStates(['assigned', 'mission_unknown', 'in_flight'], { regions: [...grants.keys()] })) {
      if (order.carrier !== 'drone' || !order.droneHub || !order.droneId || !order.missionId) continue;
      const g = grants.get(order.region)!;
      const t = this.droneTelemetry(order.droneHub, order.droneId);
      if (order.state === 'mission_unknown' || order.state === 'assigned') {
        // The destination locker refused the compartment (it holds a parcel, say): the drone must not fly
        // there. Before, the answer was never read: the drone flew and the order ended in the locker
        // that had refused it (found in review). Planned again; the drone's mission is aborted.
        if (order.state === 'assigned' && order.destination.type === 'locker' && !(t && t.missionId === order.missionId && AIRBORNE.has(t.flightState))) {
          const reserve = await this.commandState(assignmentCommandIds(order.missionId).reserve);
          // (Expired unanswered is not a refusal: the locker's hub may be offline while the drone flies.)
          if (reserve && (reserve.state === 'rejected' || (reserve.state === 'failed' && !isProvisionalFailure(reserve.state, reserve.detail)))) {
            // Its compartment is not released: it was never ours (another reservation may be there).
            await this.retry(order, `the destination locker did not reserve ${order.compartmentId} (${reserve.state}${reserve.detail ? `: ${reserve.detail}` : ''})`, g, { compartment: false });
            continue;
          }
        }
        const cmd = await this.commandState(order.missionCommandId);
        // Within the take-off timeout only: an assignment older than that was planned for conditions
        // (battery, wind, mode) that may be gone; the timeout below plans it again instead.
        if (order.state === 'assigned' && !cmd && order.missionCommandId === assignmentCommandIds(order.missionId).mission
          && now - order.updatedAt > MISSION_SEND_GRACE_MS && now - order.updatedAt <= TAKEOFF_TIMEOUT_MS && !this.resent.has(order.missionId)) {
          if (this.resent.size >= 10_000) this.resent.clear(); // bounded; a second send under the same ids changes nothing
          this.resent.add(order.missionId); // once per process: if it cannot be sent, the take-off timeout retries the order
          this.log.warn({ order: order.id, mission: order.missionId, assignedAt: new Date(order.updatedAt).toISOString() }, 'assigned order without its mission command (the process that assigned it stopped): sending it now');
          await this.sendMission(order);
          continue;
        }
        if (await this.missionUnknown(order, cmd, t, now, g)) continue;
        if (cmd && ['rejected', 'failed', 'expired'].includes(cmd.state)) {
          await this.retry(order, `the drone did not take the mission (${cmd.state}${cmd.detail ? `: ${cmd.detail}` : ''})`, g);
        } else if (t && t.missionId === order.missionId && AIRBORNE.has(t.flightState)) {
          if (await this.move(order, 'in_flight', `${order.droneId} took off`, {}, {}, 'system', g)) await this.o.store.updateFlight(order.missionId, { takeoffAt: t.ts });
        } else if (now - order.updatedAt > TAKEOFF_TIMEOUT_MS) {
          if ((cmd?.state === 'done' || cmd?.state === 'duplicate') && !this.hubSettled(order.droneHub, now)) {
            // It took the mission and its hub went offline: it may be flying it. Planning the order again
            // sent a second drone for the same parcel, and the abort for the first expired unsent (found in
            // review). It waits as it is — no move, so no clock restarts while the hub comes and goes — until
            // its hub is back (telemetry or the replayed take-off settle it), a flight's worth at most.
            if (now - order.updatedAt > FLIGHT_TIMEOUT_MS && await this.move(order, 'failed', `${order.droneId} took the mission, then no sign of it for ${FLIGHT_TIMEOUT_MS / 60_000} minutes while its hub ${order.droneHub} was offline: check the drone and the parcel`, {}, {}, 'system', g)) {
              await this.o.store.updateFlight(order.missionId, { result: 'unknown' });
              await this.releaseResources(order, 'mission outcome unknown');
            }
          } else {
            await this.retry(order, 'the drone did not take off within 5 minutes', g);
          }
        }
        continue;
      }
      // in flight
      const dest = this.destinationOf(order);
      const home = this.o.regions.hub(order.droneHub)?.location ?? null;
      const onGroundNow = t !== null && this.reportedWithin(order.droneHub, order.droneId, now) && (t.altM < 3 || !AIRBORNE.has(t.flightState));
      const recalledAt = await this.recalledAt(order);
      // A drone called home delivers nothing after its recall, wherever it lands (drone.abort lands it at the
      // nearest hub, which may be the destination's). Back on the ground at its own hub since, with its hub's
      // backlog replayed (it may hold a landing at the destination from before the recall), the order is
      // planned again.
      // Arrival by position only once the hub's backlog is in: an rtl still in it (a drone aborted during the
      // outage lands at the nearest hub, maybe the destination's) would otherwise be found too late (found in review).
      const arrived = (recalledAt === null || (t !== null && t.ts < recalledAt)) && t && dest && distanceM({ lat: t.lat, lon: t.lon }, dest) <= ARRIVAL_RADIUS_M && (t.altM < 3 || !AIRBORNE.has(t.flightState))
        && this.hubSettled(order.droneHub, now);
      if (arrived) {
        await this.arrive(order, t.ts, g);
      } else if (recalledAt !== null && onGroundNow && t!.ts >= recalledAt && this.hubSettled(order.droneHub, now) && home && distanceM({ lat: t!.lat, lon: t!.lon }, home) <= ARRIVAL_RADIUS_M) {
        await this.retry(order, `${order.droneId} is back on the ground at ${order.droneHub} after it was called home, with the parcel`, g);
      } else if (now - order.updatedAt > FLIGHT_TIMEOUT_MS) {
        if (await this.move(order, 'failed', 'no arrival within 45 minutes of take-off', {}, {}, 'system', g)) {
          await this.o.store.updateFlight(order.missionId, { result: 'lost' });
          await this.releaseResources(order, 'mission failed');
        }
      }
    }
  }

  /** When this process last asked a compartment to be released, by `<hub>/<locker>/<compartment>`. */
  private readonly releasedAt = new Map<string, number>();

  /**
   * A compartment its locker reports reserved for an order that no longer holds it (cancelled, failed,
   * re-planned, picked up) is asked to release again: a release is sent once with a 10-minute life, and
   * one that expired while the locker's hub was offline left the compartment reserved for good (found in
   * review). At most once per RELEASE_RETRY_MS per compartment, and only to a hub that is online.
   */
  private async releaseStaleReservations(grants: ReadonlyMap<string, LeaseGrant>): Promise<void> {
    const now = this.o.now();
    let held: Map<string, string> | null = null;
    for (const regionId of grants.keys()) {
      for (const h of this.o.regions.get(regionId)?.hubs ?? []) {
        if (!this.hubOnline(h.id)) continue;
        for (const bank of h.lockers) {
          const t = this.o.live.hubs.get(h.id)?.devices.get(bank.id)?.telemetry;
          if (t?.type !== 'locker.telemetry') continue;
          for (const c of t.compartments) {
            if (!c.reservedFor) continue;
            const key = `${h.id}/${bank.id}/${c.id}`;
            if (now - (this.releasedAt.get(key) ?? -Infinity) < RELEASE_RETRY_MS) continue;
            held ??= heldCompartments(await this.o.store.inStates(ACTIVE));
            if (held.get(key) === c.reservedFor) continue;
            // Only a reservation of ours: a locker may hold others' (another carrier's), which are not ours to
            // end (looked up again in RELEASE_RETRY_MS, like a release).
            this.releasedAt.set(key, now);
            if (!(await this.o.store.get(c.reservedFor))) continue;
            this.log.warn({ hub: h.id, locker: bank.id, compartment: c.id, reservedFor: c.reservedFor }, 'compartment reserved for an order that no longer holds it: asking the locker to release it');
            await this.command(h.id, bank.id, 'locker.release', { compartment: c.id }, 600);
          }
        }
      }
    }
  }

  /** Issue 12 (2): a ground round's end closes the lifecycle of every order still on it (see GROUND_ROUND_END_MS). */
  private async endGroundRounds(grants: ReadonlyMap<string, LeaseGrant>): Promise<void> {
    const now = this.o.now();
    for (const order of await this.o.store.inStates(['assigned', 'on_board'], { regions: [...grants.keys()] })) {
      if (order.carrier !== 'ground') continue;
      const g = grants.get(order.region)!;
      const endsAt = order.roundDepartsAt !== null ? order.roundDepartsAt + GROUND_ROUND_END_MS : order.updatedAt + UNRECORDED_DEPARTURE_MS + GROUND_ROUND_END_MS;
      if (now <= endsAt) continue;
      const departure = order.roundDepartsAt !== null ? ` (departure ${new Date(order.roundDepartsAt).toISOString()})` : '';
      if (order.state === 'on_board') {
        await this.move(order, 'failed', `ground round ${order.roundId}${departure} ended without the parcel recorded as delivered: check with the driver and the destination hub`, {}, {}, 'system', g);
      } else {
        await this.retry(order, `ground round ${order.roundId}${departure} ended and the parcel was never recorded as loaded`, g);
      }
    }
  }

  /**
   * Issue 12 (5): the hub agent answered `failed` because the drone did not answer the mission in
   * time — the drone may be flying it. The order waits (`mission_unknown`, drone and compartment kept)
   * and is never dispatched again until the outcome is known: the drone's telemetry or events, a late
   * answer, or a flight's worth of time. Returns whether the order was handled here.
   */
  private async missionUnknown(order: Order, cmd: { state: CommandState; detail: string | null } | null, t: DroneTelemetry | null, now: number, g: LeaseGrant): Promise<boolean> {
    const receivedAt = this.o.live.hubs.get(order.droneHub!)?.devices.get(order.droneId!)?.lastReceivedAt ?? null;
    const seen = t !== null && t.missionId === order.missionId && receivedAt !== null && receivedAt >= order.updatedAt;
    if (seen && AIRBORNE.has(t.flightState)) {
      if (await this.move(order, 'in_flight', `${order.droneId} took off`, {}, {}, 'system', g)) await this.o.store.updateFlight(order.missionId!, { takeoffAt: t.ts });
      return true;
    }
    if (order.state === 'assigned') {
      if (!cmd || !isProvisionalFailure(cmd.state, cmd.detail)) return false;
      await this.move(order, 'mission_unknown', `${order.droneId} did not answer the mission in time (${cmd.detail}); it may be flying it: not re-dispatched until its outcome is known`, {}, {}, 'system', g);
      return true;
    }
    // mission_unknown: settled by a late answer, by telemetry, or by time. Only an answer moves it back to
    // assigned: a drone seen with the mission on the pad did, and the order moved between the two states on
    // every report and every silence, restarting both timeouts (found in review: 1,082 moves in 3 h). Seen
    // on the pad now, it has the mission and has not taken off: planned again after the take-off timeout.
    if (cmd?.state === 'done' || cmd?.state === 'duplicate') {
      await this.move(order, 'assigned', `${order.droneId} answered late: it took the mission`, {}, {}, 'system', g);
      return true;
    }
    const home = this.o.regions.hub(order.droneHub!)?.location ?? null;
    if (seen && this.reportedWithin(order.droneHub!, order.droneId!, now) && this.hubSettled(order.droneHub!, now) && home && distanceM({ lat: t!.lat, lon: t!.lon }, home) <= ARRIVAL_RADIUS_M) {
      if (now - order.updatedAt > TAKEOFF_TIMEOUT_MS) await this.retry(order, `${order.droneId} reports the mission on the ground but did not take off within ${TAKEOFF_TIMEOUT_MS / 60_000} minutes`, g);
      return true;
    }
    if (cmd && !isProvisionalFailure(cmd.state, cmd.detail) && cmd.state !== 'pending') return false; // rejected or failed for real: retried below
    if (now - order.updatedAt <= FLIGHT_TIMEOUT_MS) return true;
    const onGround = t !== null && receivedAt !== null && receivedAt > order.updatedAt && !AIRBORNE.has(t.flightState) && t.missionId !== order.missionId;
    if (onGround) {
      await this.retry(order, `no answer to the mission, and ${order.droneId} was seen on the ground without it ${FLIGHT_TIMEOUT_MS / 60_000} minutes later`, g);
    } else if (await this.move(order, 'failed', `no answer to the mission and no sign of ${order.droneId} for ${FLIGHT_TIMEOUT_MS / 60_000} minutes: check the drone and the parcel`, {}, {}, 'system', g)) {
      await this.o.store.updateFlight(order.missionId!, { result: 'unknown' });
      await this.releaseResources(order, 'mission outcome unknown');
    }
    return true;
  }

  /** Back to pending (or failed after MAX_ATTEMPTS); what the order held is released only if this process made the change. */
  private async retry(order: Order, why: string, g?: LeaseGrant, release: { compartment: boolean } = { compartment: true }): Promise<void> {
    const moved = order.attempts + 1 >= MAX_ATTEMPTS
      ? await this.move(order, 'failed', `${why}; gave up after ${MAX_ATTEMPTS} attempts`, {}, {}, 'system', g)
      : await this.move(order, 'pending', why, {
        attempts: order.attempts + 1, carrier: null, droneHub: null, droneId: null, roundId: null, roundDepartsAt: null, lockerId: null, compartmentId: null, missionId: null, missionCommandId: null,
      }, {}, 'system', g);
    if (!moved) return;
    if (order.missionId) await this.o.store.updateFlight(order.missionId, { result: `${order.state === 'in_flight' ? 'returned' : 'not flown'}: ${why}` });
    await this.releaseResources(order, why, release);
  }

  private async releaseResources(order: Order, why: string, release: { compartment: boolean } = { compartment: true }): Promise<void> {
    if (release.compartment && order.destination.type === 'locker' && order.lockerId && order.compartmentId) {
      await this.command(order.destination.hub, order.lockerId, 'locker.release', { compartment: order.compartmentId }, 600);
    }
    if (order.droneHub && order.droneId && (order.state === 'assigned' || order.state === 'mission_unknown')) {
      await this.command(order.droneHub, order.droneId, 'drone.abort', { reason: why.slice(0, 200) }, 120);
    }
  }

  private async command(hub: string, device: string, command: 'locker.reserve' | 'locker.release' | 'locker.unlock' | 'drone.mission' | 'drone.abort', args: Record<string, string | number>, ttlS: number, id?: string) {
    if (command === 'locker.release') {
      if (this.releasedAt.size >= 10_000) this.releasedAt.clear(); // bounded; forgetting only makes a retry come sooner
      this.releasedAt.set(`${hub}/${device}/${String(args.compartment)}`, this.o.now());
    }
    try {
      return await this.o.commands.issue({ hub, device, command, args, ttlS, ...(id ? { id } : {}) });
    } catch (err) {
      this.log.error({ err, hub, device, command }, 'could not issue a command');
      return null;
    }
  }

  // ---------------------------------------------------------------- dispatch

  /**
   * Gathers the engine's input for one region from live state, the region's file and the orders
   * that hold drones, compartments and round capacity (`active`, any region: hub ids are unique).
   */
  buildInput(r: RegionFile, orders: Order[], active: Order[], now: number): DispatchInput {
    const busyDrones = new Set(active.filter((o) => o.state !== 'in_locker' && o.droneId).map((o) => `${o.droneHub}/${o.droneId}`));
    const held = heldCompartments(active);
    const modeOf = this.o.modeOf ?? (() => 'normal' as Mode);

    const hubs: HubInput[] = r.hubs.map((h) => {
      const live = this.o.live.hubs.get(h.id);
      const sensor = h.sensors.map((s) => live?.devices.get(s)?.telemetry).find((t): t is SensorTelemetry => t?.type === 'sensor.telemetry');
      const compartments = h.lockers.flatMap((bank) => {
        const t = live?.devices.get(bank.id)?.telemetry as LockerTelemetry | null | undefined;
        return bank.compartments.map((spec) => {
          const c = t?.type === 'locker.telemetry' ? t.compartments.find((x) => x.id === spec.id) : undefined;
          const ours = held.get(`${h.id}/${bank.id}/${spec.id}`);
          const status = !c ? ('fault' as const) : c.fault !== 'none' ? ('fault' as const) : ours ? ('reserved' as const) : c.occupied || c.reservedFor ? ('occupied' as const) : ('free' as const);
          return { lockerId: bank.id, id: spec.id, size: spec.size, tempClass: spec.tempClass, status, reservedFor: ours ?? null, reliefStock: spec.reliefStock };
        });
      });
      return {
        id: h.id, position: h.location, compartments,
        weather: sensor ? { windMps: sensor.windSpeedMps, gustMps: sensor.windGustMps, windFromDeg: sensor.windDirDeg, rainMmPerH: sensor.rainMmPerH, observedAt: sensor.ts } : undefined,
      };
    });

    const drones = r.hubs.flatMap((h) =>
      h.drones.map((d) => {
        const t = this.droneTelemetry(h.id, d.id);
        return {
          id: `${h.id}/${d.id}`, // device ids are unique per hub only; the engine needs them unique
          hubId: h.id,
          limits: { maxPayloadKg: d.maxPayloadKg, cruiseMps: d.cruiseMps, enduranceS: d.enduranceS, windLimitMps: d.windLimitMps, gustLimitMps: d.gustLimitMps, rainLimitMmPerH: d.rainLimitMmPerH },
          state: t
            ? { position: { lat: t.lat, lon: t.lon }, flightState: t.flightState, batteryPct: t.batteryPct, missionId: t.missionId ?? null, busy: busyDrones.has(`${h.id}/${d.id}`), observedAt: t.ts }
            : { position: h.location, flightState: 'fault' as const, batteryPct: 0, busy: true, observedAt: 0 },
        };
      }),
    );

    // Issue 12 (2): what earlier planning rounds put on a departure stays booked until the round ends.
    const groundBookings: GroundBooking[] = active
      .filter((o) => o.region === r.id && o.carrier === 'ground' && o.roundId !== null && o.roundDepartsAt !== null && (o.state === 'assigned' || o.state === 'on_board'))
      .map((o) => ({ roundId: o.roundId!, departsAt: o.roundDepartsAt!, weightKg: o.weightKg }));
    const groundRounds: GroundRoundInput[] = [];
    for (const round of r.groundRounds) {
      const departures = nextDepartures(round.departures, now).map((departsAt) => ({ departsAt, capacityKg: round.capacityKg }));
      for (let i = 0; i < round.stops.length; i++) {
        for (let j = i + 1; j < round.stops.length; j++) groundRounds.push({ id: round.id, fromHub: round.stops[i]!, toHub: round.stops[j]!, departures });
      }
    }

    const mode: ModeInput = { mode: 'normal', hubs: Object.fromEntries(r.hubs.map((h) => [h.id, modeOf(h.id)])) };
    return {
      drones, hubs, mode, groundRounds, groundBookings,
      options: this.o.reservePct ? { reservePct: this.o.reservePct } : undefined,
      sites: r.landingSites.map((s) => ({ id: s.id, kind: s.kind, position: s.location })),
      noFlyZones: r.noFlyZones.map((z) => ({ id: z.id, polygon: z.polygon })),
      reliefRoutes: r.reliefRoutes.map((x) => ({ id: x.id, originHub: x.fromHub, siteId: x.toSite, waypoints: x.waypoints })),
      orders: orders.map((o) => ({
        id: o.id, originHub: o.originHub, destination: o.destination, weightKg: o.weightKg, tempClass: o.tempClass, priority: o.priority,
        deadline: o.deadline ?? undefined, createdAt: o.createdAt,
      })),
    };
  }

  /** Plans each region on its own: the engine sees one region's drones, lockers, sites and rounds, and that region's orders. */
  private async dispatch(grants: ReadonlyMap<string, LeaseGrant>): Promise<void> {
    const waiting = await this.o.store.inStates(['pending', 'held'], { regions: [...grants.keys()] });
    if (waiting.length === 0) return;
    const active = await this.o.store.inStates(ACTIVE);
    const now = this.o.now();
    for (const region of this.o.regions.all()) {
      const g = grants.get(region.id);
      if (!g) continue;
      const orders = waiting.filter((o) => o.region === region.id);
      if (orders.length === 0) continue;
      const plan = planDispatch(this.buildInput(region, orders, active, now), now);
      for (const outcome of plan.outcomes) {
        // Read again: an earlier assignment of this round awaited its commands, and a cancel may have landed meanwhile.
        const order = await this.o.store.get(outcome.orderId);
        if (order && (order.state === 'pending' || order.state === 'held')) await this.apply(order, outcome, now, g);
      }
    }
  }

  private async apply(order: Order, outcome: Outcome, now: number, g: LeaseGrant): Promise<void> {
    if (outcome.kind === 'wait') {
      const held = outcome.reasons.some((r) => r.code === 'held_emergency');
      if (held && order.state === 'pending') {
        await this.move(order, 'held', 'emergency mode: normal orders wait (kept, resume when the mode ends)', { waitReasons: outcome.reasons }, {}, 'system', g);
      } else if (!held && order.state === 'held') {
        await this.move(order, 'pending', 'emergency mode ended', { waitReasons: outcome.reasons }, {}, 'system', g);
      } else if (JSON.stringify(order.waitReasons) !== JSON.stringify(outcome.reasons)) {
        await g.fenced((tx) => this.o.store.update(order.id, now, { waitReasons: outcome.reasons }, [order.state], tx));
      }
      return;
    }
    if (outcome.kind === 'ground') {
      await this.move(order, 'assigned', `no drone can take it: on ground round ${outcome.roundId} departing ${new Date(outcome.departsAt).toISOString()}`, {
        carrier: 'ground', roundId: outcome.roundId, roundDepartsAt: outcome.departsAt, waitReasons: outcome.reasons,
      }, {}, 'system', g);
      return;
    }
    await this.assignDrone(order, outcome, now, g);
  }

  private async assignDrone(order: Order, assignment: DroneAssignment, now: number, g: LeaseGrant): Promise<void> {
    const a = { ...assignment, droneId: assignment.droneId.slice(assignment.droneId.indexOf('/') + 1) };
    const missionId = `m-${order.id.slice(4)}-${order.attempts + 1}`;
    const flightPlanRef = order.flightPlanRef ?? `FP-${missionId}`;
    const destName = order.destination.type === 'locker' ? `${order.destination.hub}/${a.lockerId}/${a.compartmentId}` : order.destination.siteId;
    // The order, its drone and compartment, and its flight log entry in one transaction, from the state
    // it was planned in. The database refuses a compartment or drone another order holds (ResourceTaken):
    // another cloud process assigned it first; the order waits for the next round.
    let assigned: Order | null;
    try {
      assigned = await this.move(order, 'assigned', `drone ${order.originHub}/${a.droneId}${a.routeId ? ` on registered route ${a.routeId}` : ''}, ${(a.distanceM / 1000).toFixed(1)} km, needs ${a.energyNeededPct.toFixed(0)} % + ${a.reservePct} % reserve of ${a.batteryPct.toFixed(0)} %`, {
        carrier: 'drone', droneHub: order.originHub, droneId: a.droneId, lockerId: a.lockerId ?? null, compartmentId: a.compartmentId ?? null, missionId,
        missionCommandId: assignmentCommandIds(missionId).mission, waitReasons: null,
      }, {
        flight: {
          missionId, orderId: order.id, aircraftHub: order.originHub, aircraft: a.droneId, origin: order.originHub, destination: destName,
          route: a.legs, distanceM: a.distanceM, payloadKg: order.weightKg, flightPlanRef, plannedAt: now,
        },
      }, 'system', g);
    } catch (err) {
      if (!(err instanceof ResourceTaken)) throw err;
      this.log.info({ order: order.id, drone: a.droneId, compartment: a.compartmentId }, 'drone or compartment taken by another assignment meanwhile: planned again next round');
      return;
    }
    if (!assigned) return;
    this.assignedHubs.add(order.originHub);
    if (!(await this.sendMission(assigned, a.legs[a.legs.length - 1]!.to))) return;
    this.log.info({ order: order.id, drone: a.droneId, mission: missionId, destination: destName }, 'mission dispatched');
  }

  private async releaseUnlessHeld(orderId: string, c: { hub: string; locker: string; compartment: string }): Promise<void> {
    const holder = (await this.o.store.inStates(ACTIVE)).find((o) => o.id !== orderId && o.destination.type === 'locker'
      && o.destination.hub === c.hub && o.lockerId === c.locker && o.compartmentId === c.compartment);
    if (!holder) await this.command(c.hub, c.locker, 'locker.release', { compartment: c.compartment }, 600);
  }

  /** Missions this process sent again for an assignment whose sender stopped (see MISSION_SEND_GRACE_MS). */
  private readonly resent = new Set<string>();

  /**
   * An assignment's commands: the compartment's reservation, then the drone's mission, under the ids
   * `assignmentCommandIds` fixes (the order row names the mission's from the assignment on).
   */
  private async sendMission(order: Order, siteTo: { lat: number; lon: number } | null = this.destinationOf(order)): Promise<boolean> {
    const missionId = order.missionId!;
    const ids = assignmentCommandIds(missionId);
    const stillAssigned = (o: Order | null | undefined) => o?.state === 'assigned' && o.missionId === missionId;
    const compartment = order.destination.type === 'locker' && order.lockerId && order.compartmentId
      ? { hub: order.destination.hub, locker: order.lockerId, compartment: order.compartmentId } : null;
    // Read again: a mission sent by the next planner works from a list read several awaits ago, and
    // a cancel since then has released the compartment — it must not be reserved again.
    const before = await this.o.store.get(order.id);
    if (!stillAssigned(before)) {
      // A cancel does not record the flight's end (a retry or take-off does): recorded here.
      if (before?.state === 'cancelled' && before.missionId === missionId) await this.o.store.updateFlight(missionId, { result: 'not flown: the order was cancelled during assignment' });
      return false;
    }
    if (compartment) {
      await this.command(compartment.hub, compartment.locker, 'locker.reserve', { compartment: compartment.compartment, orderId: order.id }, 600, ids.reserve);
    }
    // Issue 12 (4): a cancel that landed while the reserve was being published has released the
    // compartment (cancel releases what an assigned order holds); the drone must not be sent. The check
    // and the send are one step for this process's cancels (they wait for it), so a cancel here is
    // either seen by the check or comes after the mission — and its drone.abort follows the mission.
    const sent = await this.exclusive(order.id, async () => {
      const current = await this.o.store.get(order.id);
      if (!stillAssigned(current)) {
        await this.o.store.updateFlight(missionId, { result: `not flown: the order was ${current?.state ?? 'removed'} during assignment` });
        this.log.info({ order: order.id, state: current?.state, mission: missionId }, 'assignment stopped: the order changed while its compartment was reserved');
        // The cancel's locker.release may have gone before this reservation: release it again, unless
        // another order holds the compartment by now.
        if (compartment) await this.releaseUnlessHeld(order.id, compartment);
        return false;
      }
      if (order.destination.type === 'site' && !siteTo) {
        this.log.error({ order: order.id, site: order.destination.siteId }, 'mission not sent: the landing site is no longer in the region file');
        return false;
      }
      const to: Record<string, string | number> = order.destination.type === 'locker'
        ? { to: order.destination.hub }
        : { site: order.destination.siteId, siteLat: siteTo!.lat, siteLon: siteTo!.lon };
      const mission = await this.command(order.droneHub!, order.droneId!, 'drone.mission', { ...to, payloadKg: order.weightKg, missionId }, 120, ids.mission);
      // The take-off timeout counts from here: a mission sent late (by the next planner) gets its full time.
      if (mission) await this.o.store.update(order.id, this.o.now(), { missionCommandId: mission.id });
      return true;
    });
    if (!sent) return false;
    // A cancel from another cloud process is not held back by the step above: if one landed while the
    // mission was being sent, its abort may have gone first — send one after the mission.
    const after = await this.o.store.get(order.id);
    if (after?.state === 'cancelled') await this.command(order.droneHub!, order.droneId!, 'drone.abort', { reason: 'cancelled while its mission was sent' }, 120);
    return true;
  }
}

/** The next departures (today's remaining and tomorrow's) of `HH:MM` Japan-time times. */
export function nextDepartures(times: readonly string[], now: number): number[] {
  const JST = 9 * 3_600_000;
  const dayStart = Math.floor((now + JST) / 86_400_000) * 86_400_000 - JST;
  const out: number[] = [];
  for (const day of [0, 1]) {
    for (const t of times) {
      const [h, m] = t.split(':').map(Number) as [number, number];
      const at = dayStart + day * 86_400_000 + (h * 60 + m) * 60_000;
      if (at > now) out.push(at);
    }
  }
  return out.sort((a, b) => a - b);
}

export type { Reason };
