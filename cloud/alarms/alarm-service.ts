import type { Compartment, DeviceMessage, FlightState, RegionFile } from '../../contract/index.ts';
import type { Logger } from '../logger.ts';
import {
  ALARM_SEVERITY,
  DEFAULT_ALARM_RULE_PARAMS,
  evaluateDeviceMessage,
  evaluateHubLink,
  slidePickupRejections,
  windLimitsByHub,
  type AlarmDecision,
  type AlarmKey,
  type AlarmKind,
  type AlarmParams,
  type AlarmRuleParams,
  type AlarmSeverity,
  type HubLinkView,
  type WindLimits,
} from './alarm-rules.ts';
import { AlarmConflictError, type AlarmQuery, type AlarmRecord, type AlarmStore } from './alarm-store.ts';

/**
 * Alarms as first-class objects (issue 4, item 5): applies the decisions of the pure rules in
 * `alarm-rules.ts` to the store, one active alarm per (hub, device, compartment, kind) — a repeat
 * counts instead of raising another — and tells listeners about every change (for a live console).
 *
 * Inputs: every stored device message (the ingest hook calls `onDeviceMessage`), a periodic check of
 * the hubs' links (`start`), and direct raises from other features (`raise`, e.g. orders locking a
 * compartment after wrong codes). People acknowledge and clear through the API.
 */

export type AlarmChange = { type: 'raised' | 'repeated' | 'acknowledged' | 'cleared'; alarm: AlarmRecord };

export type AlarmErrorCode = 'alarm_not_found' | 'alarm_cleared';

export class AlarmError extends Error {
  override readonly name = 'AlarmError';
  constructor(
    readonly code: AlarmErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** What the service needs from the live view of the hubs. */
export interface AlarmHubView {
  /** Every known hub's link, read at each link check. */
  links(): Iterable<HubLinkView>;
  /** A drone's flight state from its latest telemetry, null when unknown. */
  droneFlightState(hub: string, device: string): FlightState | null;
}

export interface AlarmMetricsSink {
  raised(kind: AlarmKind): void;
}

export interface AlarmServiceOptions {
  store: AlarmStore;
  region: RegionFile;
  hubs: AlarmHubView;
  now: () => number;
  newId: () => string;
  logger: Logger;
  metrics?: AlarmMetricsSink;
  /** Whether a drone mission is planned to start or end at the hub (the orders feature supplies it); default: never. */
  missionsPlannedAt?: (hub: string) => boolean;
  params?: Partial<AlarmRuleParams>;
  /** How often `start` checks the hubs' links; default min(5 s, half the offline grace period). */
  linkCheckIntervalMs?: number;
}

export interface RaiseRequest {
  hub: string;
  /** Default: the hub's region (region file), else the region of the cloud. */
  region?: string;
  device?: string | null;
  compartment?: string | null;
  kind: AlarmKind;
  /** Default: the kind's severity (`ALARM_SEVERITY`). */
  severity?: AlarmSeverity;
  /** English summary (for logs and older clients). */
  detail: string;
  /** The condition as data, for consoles to render in their language; default `{}`. */
  params?: AlarmParams;
  /** Text the device sent about it, if any. */
  deviceDetail?: string | null;
  sourceMsgId?: string | null;
  /** When the condition was observed; default now. */
  observedAt?: number;
}

const keyString = (k: AlarmKey) => `${k.hub}\u0000${k.device ?? ''}\u0000${k.compartment ?? ''}\u0000${k.kind}`;

export class AlarmService {
  private readonly log: Logger;
  private readonly params: AlarmRuleParams;
  private readonly wind: { byHub: ReadonlyMap<string, WindLimits>; fallback: WindLimits };
  private readonly compartmentClasses = new Map<string, Compartment['tempClass']>();
  private missionsPlannedAt: (hub: string) => boolean;
  private readonly listeners = new Set<(change: AlarmChange) => void>();
  /** Active alarms by key, so the many "all is well" clears from telemetry cost no query. Loaded on first use. */
  private activeByKey: Map<string, { id: string; lastObservedAt: number }> | null = null;
  /** While `apply` runs its transaction: the changes to tell listeners about once it committed. */
  private deferred: AlarmChange[] | null = null;
  /** Device timestamps of recent wrong pickup codes, by compartment key (memory only: lost on restart). */
  private readonly pickupRejections = new Map<string, number[]>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly o: AlarmServiceOptions) {
    this.log = o.logger.child({ component: 'alarms' });
    this.params = { ...DEFAULT_ALARM_RULE_PARAMS, ...o.params };
    this.wind = windLimitsByHub(o.region);
    for (const h of o.region.hubs) {
      for (const l of h.lockers) for (const c of l.compartments) this.compartmentClasses.set(`${h.id}/${l.id}/${c.id}`, c.tempClass);
    }
    this.missionsPlannedAt = o.missionsPlannedAt ?? (() => false);
  }

  /** The orders feature tells the wind rule where missions are planned. */
  setMissionsPlannedAt(fn: (hub: string) => boolean): void {
    this.missionsPlannedAt = fn;
  }

  /** Subscribes to every change; returns the unsubscribe function. */
  onChange(fn: (change: AlarmChange) => void): () => void {
    this.listeners.add(fn);
    return () => void this.listeners.delete(fn);
  }

  /** Starts the periodic link check (`hub_offline`). */
  start(): void {
    if (this.timer) return;
    const interval = this.o.linkCheckIntervalMs ?? Math.max(100, Math.min(5000, Math.floor(this.params.hubOfflineGraceMs / 2)));
    this.timer = setInterval(() => this.checkLinks(), interval);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.listeners.clear();
  }

  /** Ingest hook: a device message was stored (events once per hub and message id; re-sent telemetry again). Never throws. */
  onDeviceMessage(msg: DeviceMessage, region: string): void {
    try {
      const decisions = evaluateDeviceMessage(msg, region, this.contextFor(msg), this.params);
      this.apply(decisions);
    } catch (err) {
      this.log.error({ err, hub: msg.hub, device: msg.device, msgId: msg.id, type: msg.type }, 'evaluating alarm rules for a message failed');
    }
  }

  /** Raises or clears `hub_offline` for every hub. Never throws. */
  checkLinks(): void {
    const now = this.o.now();
    try {
      const decisions: AlarmDecision[] = [];
      for (const link of this.o.hubs.links()) {
        const d = evaluateHubLink(link, now, this.params);
        if (d) decisions.push(d);
      }
      this.apply(decisions);
    } catch (err) {
      this.log.error({ err }, 'checking hub links for alarms failed');
    }
  }

  /** Raises an alarm directly (or counts a repeat of the active one with the same key). */
  raise(req: RaiseRequest): AlarmRecord {
    const key: AlarmKey = { hub: req.hub, device: req.device ?? null, compartment: req.compartment ?? null, kind: req.kind };
    this.applyOne({
      action: 'raise', region: req.region ?? this.o.region.id, key, severity: req.severity ?? ALARM_SEVERITY[req.kind],
      detail: req.detail, params: req.params ?? {}, deviceDetail: req.deviceDetail ?? null, sourceMsgId: req.sourceMsgId ?? null, observedAt: req.observedAt ?? this.o.now(),
    });
    const active = this.active().get(keyString(key));
    if (!active) throw new Error(`raising a ${req.kind} alarm at ${req.hub} failed`);
    return this.get(active.id);
  }

  /**
   * Applies rule decisions in order, as one store transaction; listeners hear of the changes once it
   * committed. (A national link check can raise or clear thousands of hub_offline alarms at once:
   * one synced commit each kept the event loop busy for seconds.)
   */
  apply(decisions: readonly AlarmDecision[]): void {
    // Most decisions of a link check change nothing (every online hub, every hub still offline).
    const todo = decisions.filter((d) => this.changesSomething(d));
    if (todo.length === 0) return;
    const changes: AlarmChange[] = [];
    this.deferred = changes;
    try {
      this.o.store.transaction(() => {
        for (const d of todo) this.applyOne(d);
      });
    } catch (err) {
      this.activeByKey = null; // it may hold alarms the rollback removed; read it again
      throw err;
    } finally {
      this.deferred = null;
    }
    for (const c of changes) this.emit(c);
  }

  get(id: string): AlarmRecord {
    const a = this.o.store.get(id);
    if (!a) throw new AlarmError('alarm_not_found', `no alarm "${id}"`);
    return a;
  }

  list(q: AlarmQuery): AlarmRecord[] {
    return this.o.store.list(q);
  }

  countActive(): Record<AlarmSeverity, number> {
    return this.o.store.countActive();
  }

  /** open → acknowledged. Acknowledging again keeps the first acknowledgement; a cleared alarm is refused. */
  acknowledge(id: string, by: string, note: string | null): AlarmRecord {
    const a = this.get(id);
    if (a.state === 'cleared') throw new AlarmError('alarm_cleared', `alarm "${id}" was already cleared`);
    if (a.state === 'acknowledged') return a;
    if (!this.o.store.acknowledge(id, { at: this.o.now(), by, note })) return this.get(id);
    const acked = this.get(id);
    this.log.info({ alarmId: id, hub: a.hub, kind: a.kind, by }, 'alarm acknowledged');
    this.emit({ type: 'acknowledged', alarm: acked });
    return acked;
  }

  /** Clears an active alarm by hand (e.g. after staff checked a tamper report). A cleared alarm is refused. */
  clear(id: string, by: string, note: string | null): AlarmRecord {
    const a = this.get(id);
    if (a.state === 'cleared' || !this.o.store.clear(id, { at: this.o.now(), by, note })) {
      throw new AlarmError('alarm_cleared', `alarm "${id}" was already cleared`);
    }
    this.forget(a);
    const cleared = this.get(id);
    this.log.info({ alarmId: id, hub: a.hub, kind: a.kind, by }, 'alarm cleared');
    this.emit({ type: 'cleared', alarm: cleared });
    return cleared;
  }

  private contextFor(msg: DeviceMessage) {
    const compartment = msg.type === 'locker.event' ? msg.compartment : null;
    let pickupRejections: number[] = [];
    if (msg.type === 'locker.event' && msg.event === 'pickup_code_rejected') {
      const k = `${msg.hub}/${msg.device}/${msg.compartment}`;
      pickupRejections = slidePickupRejections(this.pickupRejections.get(k) ?? [], msg.ts, this.params.pickupRejectWindowMs);
      this.pickupRejections.set(k, pickupRejections);
    } else if (msg.type === 'locker.event' && msg.event === 'pickup') {
      this.pickupRejections.delete(`${msg.hub}/${msg.device}/${msg.compartment}`); // the right code: start counting afresh
    }
    return {
      windLimits: this.wind.byHub.get(msg.hub) ?? this.wind.fallback,
      missionPlanned: () => this.missionsPlannedAt(msg.hub),
      droneFlightState: msg.type === 'drone.event' ? this.o.hubs.droneFlightState(msg.hub, msg.device) : null,
      compartmentClass: compartment === null ? null : (this.compartmentClasses.get(`${msg.hub}/${msg.device}/${compartment}`) ?? null),
      pickupRejections,
    };
  }

  private active(): Map<string, { id: string; lastObservedAt: number }> {
    if (!this.activeByKey) {
      this.activeByKey = new Map(this.o.store.active().map((a) => [keyString(a), { id: a.id, lastObservedAt: a.lastObservedAt }]));
    }
    return this.activeByKey;
  }

  private forget(a: AlarmRecord): void {
    const k = keyString(a);
    if (this.active().get(k)?.id === a.id) this.active().delete(k);
  }

  /** False for what `applyOne` would ignore: clearing what is not active, an observation not newer than the last. */
  private changesSomething(d: AlarmDecision): boolean {
    const current = this.active().get(keyString(d.key));
    if (d.action === 'clear') return current !== undefined && d.observedAt >= current.lastObservedAt;
    return current === undefined || d.observedAt > current.lastObservedAt;
  }

  private applyOne(d: AlarmDecision): void {
    const k = keyString(d.key);
    const current = this.active().get(k);
    const now = this.o.now();
    if (d.action === 'clear') {
      // An observation older than the one that raised the alarm (a late or replayed message) says nothing about now.
      if (!current || d.observedAt < current.lastObservedAt) return;
      this.active().delete(k);
      if (!this.o.store.clear(current.id, { at: now, by: null, note: d.reason })) return;
      const alarm = this.o.store.get(current.id)!;
      this.log.info({ alarmId: alarm.id, hub: alarm.hub, device: alarm.device, compartment: alarm.compartment, kind: alarm.kind, reason: d.reason }, 'alarm cleared: condition ended');
      this.emit({ type: 'cleared', alarm });
      return;
    }
    if (current) {
      // The same observation again (a re-sent message, the next link check) is not a repeat.
      if (d.observedAt <= current.lastObservedAt) return;
      if (!this.o.store.recordRepeat(current.id, { lastSeenAt: now, lastObservedAt: d.observedAt, detail: d.detail, params: d.params, deviceDetail: d.deviceDetail })) {
        this.activeByKey = null; // cleared behind our back (should not happen); reload
        return;
      }
      current.lastObservedAt = d.observedAt;
      this.log.debug({ alarmId: current.id, hub: d.key.hub, kind: d.key.kind }, 'alarm condition reported again');
      this.emit({ type: 'repeated', alarm: this.o.store.get(current.id)! });
      return;
    }
    const alarm: AlarmRecord = {
      id: this.o.newId(), region: d.region, ...d.key, severity: d.severity, state: 'open',
      raisedAt: now, lastSeenAt: now, count: 1, observedAt: d.observedAt, lastObservedAt: d.observedAt,
      acknowledgedAt: null, acknowledgedBy: null, ackNote: null, clearedAt: null, clearedBy: null, clearNote: null,
      detail: d.detail, params: d.params, deviceDetail: d.deviceDetail, sourceMsgId: d.sourceMsgId,
    };
    try {
      this.o.store.insert(alarm);
    } catch (err) {
      if (!(err instanceof AlarmConflictError)) throw err;
      // The cache missed an active alarm (should not happen: all writes go through here); reload it.
      this.log.warn({ err, hub: d.key.hub, kind: d.key.kind }, 'alarm already active; reloading the active alarms');
      this.activeByKey = null;
      return;
    }
    this.active().set(k, { id: alarm.id, lastObservedAt: alarm.lastObservedAt });
    this.o.metrics?.raised(alarm.kind);
    this.log.info({ alarmId: alarm.id, hub: alarm.hub, device: alarm.device, compartment: alarm.compartment, kind: alarm.kind, severity: alarm.severity }, 'alarm raised');
    this.emit({ type: 'raised', alarm });
  }

  private emit(change: AlarmChange): void {
    if (this.deferred) {
      this.deferred.push(change);
      return;
    }
    for (const fn of this.listeners) {
      try {
        fn(change);
      } catch (err) {
        this.log.error({ err, alarmId: change.alarm.id }, 'an alarm listener failed');
      }
    }
  }
}
