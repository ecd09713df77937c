import { LockerReleaseArgs, LockerReserveArgs, LockerUnlockArgs, type Command, type Compartment, type LockerBankSpec, type LockerEvent, type LockerTelemetry, type Severity } from '../../contract/index.ts';
import { done, failed, parseArgs, rejected, type CommandOutcome } from './command-outcome.ts';
import type { MessageIds } from './message-ids.ts';
import type { Rng } from './seeded-rng.ts';
import { forEachSubstep } from './substeps.ts';

/**
 * A locker bank at a hub. Pure: the caller passes `now` (epoch ms, only for stamping messages)
 * and the simulated seconds that passed.
 *
 * Life of a compartment: empty → reserved for an order → a courier (or drone handler) opens the
 * door and loads the parcel → the resident types the pickup code, opens the door and takes it →
 * empty again. Doors close after a few seconds, but now and then one is left open; after
 * `doorOpenLimitS` that raises `door_open_too_long`. Chilled (≤ 10 °C) and frozen (≤ −15 °C)
 * compartments hold their set point with noise, warm up while the door is open, and occasionally
 * lose cooling for a while, which raises `temperature_out_of_range` once the limit is crossed.
 *
 * Commands from the cloud (`handle`): `locker.unlock` opens a door (it closes again like any other),
 * `locker.reserve` / `locker.release` set and clear a compartment's order.
 */
export interface LockerParams {
  doorOpenLimitS: number;
  /** Rate at which an empty, free compartment gets reserved, per hour. */
  reservationsPerHour: number;
  /** Mean time from reservation to loading, seconds. */
  meanLoadS: number;
  /** Mean time from loading to pickup, seconds. */
  meanPickupS: number;
  doorOpenMinS: number;
  doorOpenMaxS: number;
  /** Chance that a door is left open well past the limit. */
  leftOpenChance: number;
  leftOpenMinS: number;
  leftOpenMaxS: number;
  /** Chance that a typed pickup code is wrong (the door stays shut). */
  codeRejectChance: number;
  ambientC: number;
  chilledSetC: number;
  frozenSetC: number;
  /** Upper limits per DOMAIN.md: chilled ≤ 10 °C, frozen ≤ −15 °C. */
  chilledLimitC: number;
  frozenLimitC: number;
  /** Rate of cooling failures per cold compartment, per hour. */
  coolingFailuresPerHour: number;
  coolingFailureMinS: number;
  coolingFailureMaxS: number;
  /** Time constant of the compartment temperature, seconds. */
  thermalTauS: number;
}

export const DEFAULT_LOCKER_PARAMS: LockerParams = {
  doorOpenLimitS: 120,
  reservationsPerHour: 0.6,
  meanLoadS: 900,
  meanPickupS: 2400,
  doorOpenMinS: 5,
  doorOpenMaxS: 25,
  leftOpenChance: 0.02,
  leftOpenMinS: 150,
  leftOpenMaxS: 600,
  codeRejectChance: 0.05,
  ambientC: 20,
  chilledSetC: 5,
  frozenSetC: -18,
  chilledLimitC: 10,
  frozenLimitC: -15,
  coolingFailuresPerHour: 0.03,
  coolingFailureMinS: 900,
  coolingFailureMaxS: 2700,
  thermalTauS: 600,
};

export interface LockerModelOptions {
  hubId: string;
  spec: LockerBankSpec;
  rng: Rng;
  ids: MessageIds;
  params?: Partial<LockerParams>;
}

type LockerEventName = LockerEvent['event'];
type OpenReason = 'load' | 'pickup' | 'service';

interface CompartmentState extends Compartment {
  tempC: number;
  openForS: number;
  closeAfterS: number;
  openReason: OpenReason | null;
  tooLongReported: boolean;
  coolingFailureS: number;
  outOfRange: boolean;
}

const EVENT_SEVERITY: Record<LockerEventName, Severity> = {
  door_opened: 'info',
  door_closed: 'info',
  door_open_too_long: 'warning',
  temperature_out_of_range: 'warning',
  parcel_loaded: 'info',
  pickup: 'info',
  pickup_code_rejected: 'info',
  tamper: 'critical',
  fault: 'warning',
};

const round1 = (x: number): number => Math.round(x * 10) / 10;

/** Extra fields a forced event may carry. */
export interface LockerEventExtras {
  orderId?: string | null;
  pickupCode?: string;
  tempC?: number;
  detail?: string;
}

export class LockerModel {
  readonly device: string;
  private readonly params: LockerParams;
  private readonly compartments: CompartmentState[];

  constructor(private readonly opts: LockerModelOptions) {
    this.device = opts.spec.id;
    this.params = { ...DEFAULT_LOCKER_PARAMS, ...opts.params };
    const { rng } = opts;
    this.compartments = opts.spec.compartments.map((c) => {
      // Start with a believable mix: some free, some reserved, some holding a parcel.
      const r = rng.next();
      const occupied = r < 0.3;
      const reservedFor = r < 0.5 ? this.newOrderId() : null;
      return {
        id: c.id,
        size: c.size,
        tempClass: c.tempClass,
        door: 'closed',
        occupied,
        reservedFor,
        tempC: this.setPoint(c.tempClass) + rng.normal(0, 0.3),
        fault: 'none',
        openForS: 0,
        closeAfterS: 0,
        openReason: null,
        tooLongReported: false,
        coolingFailureS: 0,
        outOfRange: false,
      };
    });
  }

  step(now: number, dtS: number): LockerEvent[] {
    const events: LockerEvent[] = [];
    forEachSubstep(dtS, (h) => {
      for (const c of this.compartments) this.advance(c, h, now, events);
    });
    return events;
  }

  telemetry(now: number): LockerTelemetry {
    return {
      v: 1,
      type: 'locker.telemetry',
      id: this.opts.ids.next(this.device),
      ts: Math.round(now),
      hub: this.opts.hubId,
      device: this.device,
      compartments: this.compartments.map((c) => ({
        id: c.id,
        size: c.size,
        tempClass: c.tempClass,
        door: c.door,
        occupied: c.occupied,
        reservedFor: c.reservedFor,
        tempC: round1(Math.min(80, Math.max(-50, c.tempC))),
        fault: c.fault,
      })),
    };
  }

  /**
   * Makes an event happen now (tests, demos) and brings the compartment into the matching state:
   * `door_open_too_long` leaves the door open past the limit, `temperature_out_of_range` starts a
   * cooling failure, `door_opened`/`door_closed` move the door. Other events are only reported.
   */
  force(now: number, event: LockerEventName, compartment: string, extras: LockerEventExtras = {}): LockerEvent {
    const c = this.compartments.find((x) => x.id === compartment);
    if (!c) throw new Error(`locker ${this.device} has no compartment ${compartment}`);
    const p = this.params;
    switch (event) {
      case 'door_open_too_long':
        c.door = 'open';
        c.openReason ??= 'service';
        c.openForS = Math.max(c.openForS, p.doorOpenLimitS);
        c.closeAfterS = Math.max(c.closeAfterS, c.openForS + p.leftOpenMinS);
        c.tooLongReported = true;
        return this.event(now, event, c, { detail: `open for ${Math.round(c.openForS)} s`, ...extras });
      case 'temperature_out_of_range': {
        const limit = this.limit(c.tempClass);
        if (limit !== null) {
          c.coolingFailureS = Math.max(c.coolingFailureS, p.coolingFailureMinS);
          c.tempC = Math.max(c.tempC, limit + 1);
        }
        c.outOfRange = true;
        return this.event(now, event, c, { tempC: round1(c.tempC), ...extras });
      }
      case 'door_opened':
        if (c.door === 'closed') this.open(c, 'service');
        return this.event(now, event, c, extras);
      case 'door_closed':
        c.door = 'closed';
        c.openReason = null;
        return this.event(now, event, c, extras);
      default:
        return this.event(now, event, c, extras);
    }
  }

  /**
   * Executes a command addressed to this bank. `now` stamps the events. Never throws for bad
   * input: an unknown compartment or bad arguments are a 'rejected' outcome with the reason.
   */
  handle(now: number, cmd: Command): CommandOutcome<LockerEvent> {
    switch (cmd.command) {
      case 'locker.unlock': {
        const parsed = parseArgs(LockerUnlockArgs, cmd.args);
        if (!parsed.ok) return rejected(parsed.detail);
        const c = this.compartment(parsed.args.compartment);
        if (!c) return rejected(`locker ${this.device} has no compartment ${parsed.args.compartment}`);
        if (c.fault !== 'none') return failed(`compartment ${c.id} is faulted (${c.fault}); the door did not open`);
        if (c.door === 'open') return done(`door ${c.id} is already open`);
        // A remote unlock changes no occupancy: the model cannot know whether someone loaded or
        // took a parcel, so the door opens for 'service' and closes again as any door does.
        this.open(c, 'service');
        return done(`door ${c.id} opened`, [this.event(now, 'door_opened', c, { detail: `remote unlock (command ${cmd.id})` })]);
      }
      case 'locker.reserve': {
        const parsed = parseArgs(LockerReserveArgs, cmd.args);
        if (!parsed.ok) return rejected(parsed.detail);
        const { orderId } = parsed.args;
        const c = this.compartment(parsed.args.compartment);
        if (!c) return rejected(`locker ${this.device} has no compartment ${parsed.args.compartment}`);
        if (c.reservedFor === orderId) return done(`compartment ${c.id} is already reserved for ${orderId}`);
        if (c.fault !== 'none') return rejected(`compartment ${c.id} is faulted (${c.fault})`);
        if (c.reservedFor !== null) return rejected(`compartment ${c.id} is reserved for ${c.reservedFor}`);
        if (c.occupied) return rejected(`compartment ${c.id} holds a parcel`);
        c.reservedFor = orderId;
        return done(`compartment ${c.id} reserved for ${orderId}`, [], true);
      }
      case 'locker.release': {
        const parsed = parseArgs(LockerReleaseArgs, cmd.args);
        if (!parsed.ok) return rejected(parsed.detail);
        const c = this.compartment(parsed.args.compartment);
        if (!c) return rejected(`locker ${this.device} has no compartment ${parsed.args.compartment}`);
        if (c.reservedFor === null) return done(`compartment ${c.id} was not reserved`);
        const was = c.reservedFor;
        c.reservedFor = null;
        return done(`compartment ${c.id} released (was reserved for ${was})`, [], true);
      }
      default:
        return rejected(`${this.device} is a locker bank; it does not take ${cmd.command}`);
    }
  }

  private compartment(id: string): CompartmentState | undefined {
    return this.compartments.find((x) => x.id === id);
  }

  private advance(c: CompartmentState, h: number, now: number, events: LockerEvent[]): void {
    const p = this.params;
    const { rng } = this.opts;

    if (c.door === 'open') {
      c.openForS += h;
      if (!c.tooLongReported && c.openForS >= p.doorOpenLimitS) {
        c.tooLongReported = true;
        events.push(this.event(now, 'door_open_too_long', c, { detail: `open for ${Math.round(c.openForS)} s` }));
      }
      if (c.openForS >= c.closeAfterS) this.close(c, now, events);
    } else if (c.fault === 'none') {
      if (!c.occupied && c.reservedFor === null) {
        if (rng.happens(p.reservationsPerHour / 3600, h)) c.reservedFor = this.newOrderId();
      } else if (!c.occupied) {
        if (rng.happens(1 / p.meanLoadS, h)) {
          this.open(c, 'load');
          events.push(this.event(now, 'door_opened', c, { detail: 'courier loading' }));
        }
      } else if (rng.happens(1 / p.meanPickupS, h)) {
        const pickupCode = String(rng.int(0, 999_999)).padStart(6, '0');
        if (rng.chance(p.codeRejectChance)) {
          events.push(this.event(now, 'pickup_code_rejected', c, { pickupCode }));
        } else {
          // The resident's code opens the door; the cloud checks the code against the stored hash.
          events.push(this.event(now, 'pickup', c, { pickupCode }));
          this.open(c, 'pickup');
          events.push(this.event(now, 'door_opened', c, { detail: 'pickup' }));
        }
      }
    }

    this.updateTemperature(c, h, now, events);
  }

  private updateTemperature(c: CompartmentState, h: number, now: number, events: LockerEvent[]): void {
    const p = this.params;
    const { rng } = this.opts;
    const limit = this.limit(c.tempClass);
    if (limit !== null && c.coolingFailureS <= 0 && rng.happens(p.coolingFailuresPerHour / 3600, h)) {
      c.coolingFailureS = rng.uniform(p.coolingFailureMinS, p.coolingFailureMaxS);
    }
    let target = this.setPoint(c.tempClass);
    let tau = p.thermalTauS;
    if (c.coolingFailureS > 0) {
      c.coolingFailureS = Math.max(0, c.coolingFailureS - h);
      target = (limit ?? target) + 8; // the cooling unit is off: drifts warm well past the limit
      tau = p.thermalTauS * 1.5;
    }
    if (c.door === 'open') {
      // Warm air comes in while the door is open: a few seconds are harmless, minutes are not.
      target = p.ambientC;
      tau = p.thermalTauS;
    }
    c.tempC += (target - c.tempC) * Math.min(1, h / tau) + rng.normal(0, 0.03 * Math.sqrt(h));

    if (limit === null) return;
    // Compare the reported (rounded) value, so the alarm agrees with what telemetry shows.
    if (!c.outOfRange && round1(c.tempC) > limit) {
      c.outOfRange = true;
      events.push(
        this.event(now, 'temperature_out_of_range', c, { tempC: round1(c.tempC), detail: `${c.tempClass} compartment at ${round1(c.tempC)} °C (limit ${limit} °C)` }),
      );
    } else if (c.outOfRange && c.tempC < limit - 1) {
      c.outOfRange = false; // 1 °C hysteresis so noise around the limit does not repeat the alarm
    }
  }

  private open(c: CompartmentState, reason: OpenReason): void {
    const p = this.params;
    const { rng } = this.opts;
    c.door = 'open';
    c.openReason = reason;
    c.openForS = 0;
    c.tooLongReported = false;
    c.closeAfterS = rng.chance(p.leftOpenChance) ? rng.uniform(p.leftOpenMinS, p.leftOpenMaxS) : rng.uniform(p.doorOpenMinS, p.doorOpenMaxS);
  }

  private close(c: CompartmentState, now: number, events: LockerEvent[]): void {
    const reason = c.openReason;
    const orderId = c.reservedFor;
    c.door = 'closed';
    c.openReason = null;
    c.openForS = 0;
    events.push(this.event(now, 'door_closed', c));
    if (reason === 'load') {
      c.occupied = true;
      events.push(this.event(now, 'parcel_loaded', c, { orderId }));
    } else if (reason === 'pickup') {
      c.occupied = false;
      c.reservedFor = null;
    }
  }

  private setPoint(tempClass: CompartmentState['tempClass']): number {
    const p = this.params;
    return tempClass === 'chilled' ? p.chilledSetC : tempClass === 'frozen' ? p.frozenSetC : p.ambientC;
  }

  private limit(tempClass: CompartmentState['tempClass']): number | null {
    const p = this.params;
    return tempClass === 'chilled' ? p.chilledLimitC : tempClass === 'frozen' ? p.frozenLimitC : null;
  }

  private newOrderId(): string {
    return `order-${this.opts.rng.int(0, 0xffffff).toString(16).padStart(6, '0')}`;
  }

  private event(now: number, event: LockerEventName, c: CompartmentState, extras: LockerEventExtras = {}): LockerEvent {
    const orderId = extras.orderId === undefined ? c.reservedFor : extras.orderId;
    return {
      v: 1,
      type: 'locker.event',
      id: this.opts.ids.next(this.device),
      ts: Math.round(now),
      hub: this.opts.hubId,
      device: this.device,
      event,
      severity: EVENT_SEVERITY[event],
      compartment: c.id,
      orderId,
      ...(extras.pickupCode === undefined ? {} : { pickupCode: extras.pickupCode }),
      ...(extras.tempC === undefined ? {} : { tempC: Math.min(80, Math.max(-50, extras.tempC)) }),
      ...(extras.detail === undefined ? {} : { detail: extras.detail.slice(0, 500) }),
    };
  }
}
