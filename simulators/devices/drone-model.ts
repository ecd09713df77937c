import { DroneMissionArgs, type Command, type DroneEvent, type DroneSpec, type DroneTelemetry, type FlightState, type Severity } from '../../contract/index.ts';
import { done, parseArgs, rejected, type CommandOutcome } from './command-outcome.ts';
import { haversineM as distanceM, initialBearingDeg as bearingDeg, intermediatePoint, type LatLon } from '../../shared/great-circle.ts';
import type { MessageIds } from './message-ids.ts';
import type { Rng } from './seeded-rng.ts';
import { forEachSubstep } from './substeps.ts';

/**
 * A delivery drone that flies missions between the hubs of a region. Pure: no MQTT and no clock —
 * the caller passes `now` (epoch ms, used only to stamp messages) and how many simulated seconds
 * passed, so tests can fly hours in milliseconds.
 *
 * A mission: on the home pad with enough charge → armed → take-off (climb to cruise altitude) →
 * cruise along the great circle to another hub → descend and land → unload → (charge on that
 * hub's pad if the way back needs it) → fly home the same way, sometimes with return cargo →
 * land, mission complete → charge. Legs are only planned when the battery covers them with
 * `reservePct` to spare; a "wind factor" per leg makes the real consumption vary, so the
 * battery_low alarm still fires now and then.
 *
 * Defaults follow DOMAIN.md: cruise ~10 m/s, climb 3 m/s, descent 2 m/s, ~18 min endurance,
 * 5 kg payload, Remote ID always on (mandatory for drones ≥ 100 g in Japan).
 *
 * Commands from the cloud (`handle`):
 *   drone.mission {to, payloadKg}  start a mission now, if idle or charging on the home pad and the
 *                                  battery covers the leg with the reserve (the same rule as planned missions)
 *   drone.rtl                      return to the home hub now; on the ground elsewhere: as soon as the
 *                                  battery covers the way home. The mission is cancelled, not completed.
 *   drone.abort                    end the mission as soon as possible: not yet airborne → disarm; in the
 *                                  air → land at the nearest hub (then home when charged)
 */
export interface DroneFlightParams {
  cruiseAltM: number;
  climbMps: number;
  descentMps: number;
  /** Pre-flight checks after arming, seconds. */
  armS: number;
  unloadMinS: number;
  unloadMaxS: number;
  /** Time on the pad after landing at home before the drone counts as idle/charging. */
  settleS: number;
  /** Battery that must remain on arrival, per the flight plan, percent. */
  reservePct: number;
  batteryLowPct: number;
  /** Time to charge from 0 to 100 %, seconds. */
  chargeFullS: number;
  /** Mean time between missions while the drone waits at home, seconds. */
  meanIdleS: number;
  /** Extra consumption at full payload, as a fraction of the empty consumption. */
  payloadDrainFactor: number;
  /** Extra consumption while climbing. */
  climbDrainFactor: number;
  /** Chance that a drone brings cargo back from the destination (e.g. returned goods). */
  returnCargoChance: number;
}

export const DEFAULT_FLIGHT_PARAMS: DroneFlightParams = {
  cruiseAltM: 60,
  climbMps: 3,
  descentMps: 2,
  armS: 3,
  unloadMinS: 30,
  unloadMaxS: 90,
  settleS: 10,
  reservePct: 30,
  batteryLowPct: 20,
  chargeFullS: 2400,
  meanIdleS: 600,
  payloadDrainFactor: 0.35,
  climbDrainFactor: 1.15,
  returnCargoChance: 0.2,
};

/** A hub a drone can fly to. */
export interface HubPlace {
  id: string;
  location: LatLon;
}

export interface DroneModelOptions {
  hubId: string;
  spec: DroneSpec;
  /** Hubs of the region other than home; missions go to those within range. */
  destinations: readonly HubPlace[];
  home: HubPlace;
  rng: Rng;
  ids: MessageIds;
  params?: Partial<DroneFlightParams>;
  /** Battery at start, percent (default: random 55–100). */
  initialBatteryPct?: number;
}

type Phase = 'pad' | 'armed' | 'takeoff' | 'cruise' | 'landing' | 'landed';
type DroneEventName = DroneEvent['event'];

interface Leg {
  from: HubPlace;
  to: HubPlace;
  distanceM: number;
  /** Actual consumption relative to the plan (head/tail wind), ~0.9–1.25. */
  windFactor: number;
}

interface Mission {
  id: string;
  destination: HubPlace;
  /** 0: outbound, 1: home. */
  leg: 0 | 1;
  /** Called off by drone.rtl / drone.abort: no return cargo, no mission_complete. */
  recalled?: boolean;
}

const EVENT_SEVERITY: Record<DroneEventName, Severity> = {
  armed: 'info',
  takeoff: 'info',
  landed: 'info',
  mission_started: 'info',
  mission_complete: 'info',
  rtl: 'warning',
  battery_low: 'warning',
  geofence_breach: 'warning',
  failsafe: 'critical',
  fault: 'critical',
};

const round = (x: number, digits: number): number => Math.round(x * 10 ** digits) / 10 ** digits;

export class DroneModel {
  readonly device: string;
  private readonly params: DroneFlightParams;
  private readonly reachable: readonly HubPlace[];

  private phase: Phase = 'pad';
  private phaseS = 0;
  private at: HubPlace;
  private position: LatLon;
  private altM = 0;
  private headingDeg = 0;
  private groundSpeedMps = 0;
  private batteryPct: number;
  private batteryTempC = 22;
  private payloadKg = 0;
  private mission: Mission | null = null;
  private leg: Leg | null = null;
  private flownM = 0;
  private holdS = 0;
  private lowReported = false;
  private missionCount = 0;

  constructor(private readonly opts: DroneModelOptions) {
    this.device = opts.spec.id;
    this.params = { ...DEFAULT_FLIGHT_PARAMS, ...opts.params };
    this.at = opts.home;
    this.position = { ...opts.home.location };
    this.batteryPct = opts.initialBatteryPct ?? round(opts.rng.uniform(55, 100), 1);
    // A destination is reachable if an empty drone with a full battery gets there and back to a pad
    // with the reserve left; heavier loads are checked per mission.
    this.reachable = opts.destinations.filter((d) => {
      const m = distanceM(opts.home.location, d.location);
      return m > 200 && this.legCostPct(m, 0) <= 100 - this.params.reservePct;
    });
  }

  /** Hubs this drone can serve from home (an empty list means it never leaves its pad). */
  get destinations(): readonly HubPlace[] {
    return this.reachable;
  }

  /** Advances the simulation by `dtS` simulated seconds; returns the events that happened. */
  step(now: number, dtS: number): DroneEvent[] {
    const events: DroneEvent[] = [];
    forEachSubstep(dtS, (h) => {
      this.advance(h, now, events);
    });
    return events;
  }

  telemetry(now: number): DroneTelemetry {
    const drain = this.drainPctPerS(this.payloadKg, 1);
    const flying = this.isFlying();
    return {
      v: 1,
      type: 'drone.telemetry',
      id: this.opts.ids.next(this.device),
      ts: Math.round(now),
      hub: this.opts.hubId,
      device: this.device,
      lat: round(this.position.lat, 6),
      lon: round(this.position.lon, 6),
      altM: round(this.altM, 1),
      groundSpeedMps: round(this.groundSpeedMps, 2),
      headingDeg: round(this.headingDeg, 1) % 360,
      batteryPct: round(this.batteryPct, 1),
      batteryTimeRemainingS: Math.min(86_400, Math.floor(this.batteryPct / drain)),
      // 12-cell Li-ion pack: ~3.5 V per cell empty, 4.2 V full, sagging under load.
      batteryVoltageV: round(12 * (3.5 + 0.7 * (this.batteryPct / 100)) - (flying ? 1.2 : 0), 2),
      batteryTempC: round(this.batteryTempC, 1),
      flightState: this.flightState(),
      payloadKg: round(this.payloadKg, 1),
      remoteIdActive: true,
      geofence: 'ok',
      failsafe: flying && this.batteryPct < this.params.batteryLowPct ? ['battery_low'] : [],
      missionId: this.mission?.id ?? null,
    };
  }

  /**
   * Executes a command addressed to this drone. `now` stamps the events. Never throws for bad
   * input: a drone that cannot comply answers 'rejected' with the reason.
   */
  handle(now: number, cmd: Command): CommandOutcome<DroneEvent> {
    switch (cmd.command) {
      case 'drone.mission':
        return this.commandMission(now, cmd);
      case 'drone.rtl':
        return this.recall(now, cmd, 'home');
      case 'drone.abort':
        return this.recall(now, cmd, 'nearest');
      default:
        return rejected(`${this.device} is a drone; it does not take ${cmd.command}`);
    }
  }

  /** Emits an event on demand (for tests and demos); the flight itself is not changed. */
  force(now: number, event: DroneEventName, detail?: string): DroneEvent {
    return this.event(now, event, detail);
  }

  flightState(): FlightState {
    switch (this.phase) {
      case 'pad':
        return this.batteryPct < 99.95 ? 'charging' : 'idle';
      case 'armed':
        return 'armed';
      case 'takeoff':
        return 'takeoff';
      case 'cruise':
        return this.mission?.recalled && this.leg?.to.id === this.opts.home.id ? 'rtl' : 'mission';
      case 'landing':
        return 'landing';
      case 'landed':
        return 'landed';
    }
  }

  private isFlying(): boolean {
    return this.phase === 'takeoff' || this.phase === 'cruise' || this.phase === 'landing';
  }

  private advance(h: number, now: number, events: DroneEvent[]): void {
    const p = this.params;
    this.phaseS += h;
    const flying = this.isFlying();
    const tempTarget = flying ? 38 : this.phase === 'pad' && this.batteryPct < 99.95 ? 30 : 22;
    this.batteryTempC += (tempTarget - this.batteryTempC) * Math.min(1, h / 300);

    switch (this.phase) {
      case 'pad': {
        this.groundSpeedMps = 0;
        this.batteryPct = Math.min(100, this.batteryPct + (100 / p.chargeFullS) * h);
        if (this.mission) {
          // Away from home: go back as soon as the charge covers the way home.
          if (this.canFly(distanceM(this.at.location, this.opts.home.location), this.payloadKg)) this.depart(now, this.opts.home, events);
        } else if (this.opts.rng.happens(1 / p.meanIdleS, h)) {
          this.planMission(now, events);
        }
        break;
      }
      case 'armed':
        this.drain(h, 0.2);
        if (this.phaseS >= p.armS) {
          this.enter('takeoff');
          events.push(this.event(now, 'takeoff', `from ${this.at.id}`));
        }
        break;
      case 'takeoff':
        this.drain(h, p.climbDrainFactor);
        this.altM = Math.min(p.cruiseAltM, this.altM + p.climbMps * h);
        if (this.altM >= p.cruiseAltM) {
          this.enter('cruise');
          if (this.mission?.leg === 0 && !this.mission.recalled) events.push(this.event(now, 'mission_started', `to ${this.mission.destination.id}`));
        }
        break;
      case 'cruise': {
        const leg = this.leg!;
        this.drain(h, 1);
        this.groundSpeedMps = Math.max(0, this.opts.spec.cruiseMps * (1 + this.opts.rng.normal(0, 0.02)));
        this.flownM = Math.min(leg.distanceM, this.flownM + this.groundSpeedMps * h);
        this.position = intermediatePoint(leg.from.location, leg.to.location, this.flownM / leg.distanceM);
        if (this.flownM >= leg.distanceM) {
          this.position = { ...leg.to.location };
          this.groundSpeedMps = 0;
          this.enter('landing');
        } else {
          this.headingDeg = bearingDeg(this.position, leg.to.location);
        }
        break;
      }
      case 'landing':
        this.drain(h, 1);
        this.altM = Math.max(0, this.altM - p.descentMps * h);
        if (this.altM <= 0) this.land(now, events);
        break;
      case 'landed':
        if (this.phaseS >= this.holdS) {
          if (this.mission?.recalled) {
            // Diverted here by drone.abort: keep the undelivered parcel if it can go home with it.
            const homeM = distanceM(this.at.location, this.opts.home.location);
            if (this.legCostPct(homeM, this.payloadKg) > 100 - p.reservePct) this.payloadKg = 0;
          } else if (this.mission) {
            // Parcel handed over at the destination; maybe take something back.
            const cargoKg = this.opts.rng.chance(p.returnCargoChance)
              ? round(this.opts.rng.uniform(0.3, Math.min(2, this.opts.spec.maxPayloadKg)), 1)
              : 0;
            // Only take cargo that a full battery could carry home, or the drone would wait forever.
            const homeM = distanceM(this.at.location, this.opts.home.location);
            this.payloadKg = this.legCostPct(homeM, cargoKg) <= 100 - p.reservePct ? cargoKg : 0;
          } else {
            this.payloadKg = 0;
          }
          this.enter('pad');
        }
        break;
    }

    if (this.isFlying() && !this.lowReported && this.batteryPct < p.batteryLowPct) {
      this.lowReported = true;
      const toGoM = this.leg ? Math.max(0, this.leg.distanceM - this.flownM) : 0;
      events.push(this.event(now, 'battery_low', `battery ${round(this.batteryPct, 1)} % with ${round(toGoM / 1000, 1)} km to go`));
    }
  }

  private planMission(now: number, events: DroneEvent[]): void {
    if (this.reachable.length === 0) return;
    const payloadKg = round(this.opts.rng.uniform(0, this.opts.spec.maxPayloadKg), 1);
    const candidates = this.reachable.filter((d) => this.canFly(distanceM(this.at.location, d.location), payloadKg));
    if (candidates.length === 0) return; // not charged enough for this order yet: keep charging
    this.startMission(now, this.opts.rng.pick(candidates), payloadKg, events);
  }

  private startMission(now: number, destination: HubPlace, payloadKg: number, events: DroneEvent[], missionId?: string): Mission {
    this.missionCount += 1;
    const tail = `-${this.opts.ids.bootId}-m${this.missionCount}`;
    const mission: Mission = { id: missionId ?? `${this.device.slice(0, 64 - tail.length)}${tail}`, destination, leg: 0 };
    this.mission = mission;
    this.payloadKg = payloadKg;
    this.depart(now, destination, events);
    return mission;
  }

  private commandMission(now: number, cmd: Command): CommandOutcome<DroneEvent> {
    const parsed = parseArgs(DroneMissionArgs, cmd.args);
    if (!parsed.ok) return rejected(parsed.detail);
    const { payloadKg, missionId } = parsed.args;
    const home = this.opts.home;
    const to = parsed.args.to ?? parsed.args.site!;
    if (this.mission) return rejected(`busy: ${this.flightState()} on mission ${this.mission.id}`);
    if (this.phase !== 'pad') return rejected(`not ready: ${this.flightState()} at ${this.at.id}`);
    if (to === home.id) return rejected(`already at ${to}`);
    const destination =
      parsed.args.to !== undefined
        ? this.opts.destinations.find((d) => d.id === to)
        : { id: to, location: { lat: parsed.args.siteLat!, lon: parsed.args.siteLon! } };
    if (!destination) return rejected(`unknown hub ${to}`);
    if (payloadKg > this.opts.spec.maxPayloadKg) return rejected(`payload ${payloadKg} kg is over the maximum of ${this.opts.spec.maxPayloadKg} kg`);
    const m = distanceM(home.location, destination.location);
    const costPct = this.legCostPct(m, payloadKg);
    const needs = `${round(m / 1000, 1)} km with ${payloadKg} kg needs ${round(costPct, 1)} % plus the ${this.params.reservePct} % reserve`;
    if (costPct > 100 - this.params.reservePct) return rejected(`${to} is out of range: ${needs}`);
    if (!this.canFly(m, payloadKg)) return rejected(`battery ${round(this.batteryPct, 1)} % is too low: ${needs}`);
    const events: DroneEvent[] = [];
    const mission = this.startMission(now, destination, round(payloadKg, 1), events, missionId);
    return done(`mission ${mission.id} to ${to}`, events);
  }

  /** drone.rtl (`home`) and drone.abort (`nearest`). */
  private recall(now: number, cmd: Command, target: 'home' | 'nearest'): CommandOutcome<DroneEvent> {
    const home = this.opts.home;
    const what = target === 'home' ? 'rtl' : 'abort';
    const mission = this.mission;
    switch (this.phase) {
      case 'pad':
      case 'landed':
        if (!mission) return done(`${this.flightState()} at ${this.at.id}; no mission to ${what === 'rtl' ? 'return from' : 'abort'}`);
        // On the ground away from home (unloading or charging): no return cargo; home as soon as the battery allows.
        mission.recalled = true;
        if (this.phase === 'landed') this.holdS = Math.min(this.holdS, this.phaseS);
        return done(`at ${this.at.id}; flies home as soon as the battery allows`, [], false);
      case 'armed':
        if (mission && mission.leg === 0) {
          // Not airborne yet: disarm on the pad and unload.
          const events = [this.event(now, 'rtl', `${what} (command ${cmd.id}): mission ${mission.id} cancelled before take-off`)];
          mission.recalled = true;
          this.mission = null;
          this.leg = null;
          this.payloadKg = 0;
          this.groundSpeedMps = 0;
          this.enter('pad');
          return done(`mission ${mission.id} cancelled before take-off`, events);
        }
        return done(`already leaving ${this.at.id} for home`);
      case 'takeoff':
      case 'cruise':
      case 'landing': {
        const to = target === 'home' ? home : this.nearestHub();
        const leg = this.leg!;
        if (mission) mission.recalled = true;
        if (leg.to.id === to.id) {
          if (mission && to.id === home.id) mission.leg = 1;
          return done(to.id === home.id ? `already on the way home to ${home.id}` : `already bound for ${to.id}, the nearest hub`);
        }
        if (mission && to.id === home.id) mission.leg = 1;
        const m = distanceM(this.position, to.location);
        this.leg = { from: { id: this.at.id, location: { ...this.position } }, to, distanceM: m, windFactor: leg.windFactor };
        this.flownM = 0;
        if (m < 1) {
          this.enter('landing'); // right above it
        } else {
          this.headingDeg = bearingDeg(this.position, to.location);
          // Descending somewhere else: climb back to cruise altitude first.
          if (this.phase === 'landing') this.enter('takeoff');
        }
        const where = to.id === home.id ? `returning to ${home.id}` : `landing at ${to.id}, the nearest hub`;
        return done(where, [this.event(now, 'rtl', `${what} (command ${cmd.id}): ${where}, ${round(m / 1000, 1)} km`)]);
      }
    }
  }

  private nearestHub(): HubPlace {
    let best = this.opts.home;
    let bestM = distanceM(this.position, best.location);
    for (const d of this.opts.destinations) {
      const m = distanceM(this.position, d.location);
      if (m < bestM) [best, bestM] = [d, m];
    }
    return best;
  }

  private depart(now: number, to: HubPlace, events: DroneEvent[]): void {
    const from = this.at;
    this.leg = { from, to, distanceM: distanceM(from.location, to.location), windFactor: this.opts.rng.uniform(0.9, 1.25) };
    this.flownM = 0;
    this.lowReported = false;
    this.headingDeg = bearingDeg(from.location, to.location);
    if (this.mission && to.id === this.opts.home.id) this.mission.leg = 1;
    this.enter('armed');
    events.push(this.event(now, 'armed', `${from.id} → ${to.id}, payload ${this.payloadKg} kg`));
  }

  private land(now: number, events: DroneEvent[]): void {
    const leg = this.leg!;
    this.altM = 0;
    this.at = leg.to;
    this.position = { ...leg.to.location };
    this.leg = null;
    this.enter('landed');
    events.push(this.event(now, 'landed', `at ${leg.to.id}`));
    if (this.mission && leg.to.id === this.opts.home.id && (this.mission.leg === 1 || this.mission.recalled)) {
      if (!this.mission.recalled) events.push(this.event(now, 'mission_complete', `delivered to ${this.mission.destination.id}, back at ${leg.to.id}`));
      this.mission = null;
      this.holdS = this.params.settleS + (this.payloadKg > 0 ? this.params.unloadMinS : 0);
    } else {
      this.holdS = this.opts.rng.uniform(this.params.unloadMinS, this.params.unloadMaxS);
    }
  }

  private enter(phase: Phase): void {
    this.phase = phase;
    this.phaseS = 0;
  }

  private drain(h: number, factor: number): void {
    const windFactor = this.leg?.windFactor ?? 1;
    this.batteryPct = Math.max(0, this.batteryPct - this.drainPctPerS(this.payloadKg, windFactor) * factor * h);
  }

  private drainPctPerS(payloadKg: number, windFactor: number): number {
    const spec = this.opts.spec;
    return (100 / spec.enduranceS) * (1 + this.params.payloadDrainFactor * (payloadKg / spec.maxPayloadKg)) * windFactor;
  }

  /** Planned consumption of one leg (arm, climb, cruise, descend), percent. */
  private legCostPct(distance: number, payloadKg: number): number {
    const p = this.params;
    const perS = this.drainPctPerS(payloadKg, 1);
    const climbS = p.cruiseAltM / p.climbMps;
    return perS * (0.2 * p.armS + p.climbDrainFactor * climbS + distance / this.opts.spec.cruiseMps + p.cruiseAltM / p.descentMps);
  }

  private canFly(distance: number, payloadKg: number): boolean {
    return this.batteryPct - this.legCostPct(distance, payloadKg) >= this.params.reservePct;
  }

  private event(now: number, event: DroneEventName, detail?: string): DroneEvent {
    return {
      v: 1,
      type: 'drone.event',
      id: this.opts.ids.next(this.device),
      ts: Math.round(now),
      hub: this.opts.hubId,
      device: this.device,
      event,
      severity: EVENT_SEVERITY[event],
      missionId: this.mission?.id ?? null,
      ...(detail === undefined ? {} : { detail: detail.slice(0, 500) }),
    };
  }
}
