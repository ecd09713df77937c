import type { Compartment, DeviceMessage, FlightState, RegionFile } from '../../contract/index.ts';
import { localLeases, regionLease, StaleLeaseError, type LeaseGrant, type Leases } from '../cluster/leases.ts';
import type { Regions } from '../hubs/regions.ts';
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
import type { AlarmQuery, AlarmRecord, AlarmStore, RaiseResult } from './alarm-store.ts';

/**
 * Alarms as first-class objects (issue 4, item 5): applies the decisions of the pure rules in
 * `alarm-rules.ts` to the store, one active alarm per (hub, device, compartment, kind) — a repeat
 * counts instead of raising another — and tells listeners about every change (for a live console).
 *
 * Inputs: every stored device message (the ingest hook calls `onDeviceMessage`), a periodic check of
 * the hubs' links (`start`), and direct raises from other features (`raise`, e.g. orders locking a
 * compartment after wrong codes). People acknowledge and clear through the API.
 *
 * The rules run on every device message (~15,000/s): deciding "nothing to do" costs no database
 * round trip — the service keeps the active alarms by key in memory and writes only changes. Writes
 * go through one queue in arrival order; what queues up while a write is under way goes in the next
 * one, as one transaction (a group commit), so a burst of changes costs one commit, not one each.
 * New vs repeat is decided by the store in one statement on the active key, so two cloud processes
 * raising the same condition give one alarm and a repeat (issue 14).
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
  /** The regions served: wind limits and compartment classes are looked up here when a message needs them. */
  regions: Regions;
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
  /**
   * Issue 15: a region's hubs' links are checked (hub_offline raised and cleared) only on the node
   * holding the region's lease, and those writes are fenced with its token. Default: the single
   * process's local leases (every region held).
   */
  leases?: Leases;
}

export interface RaiseRequest {
  hub: string;
  /** Default: the hub's region (region files), else the first region served. */
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

type RaiseDecision = Extract<AlarmDecision, { action: 'raise' }>;
type ClearDecision = Extract<AlarmDecision, { action: 'clear' }>;

const keyString = (k: AlarmKey) => `${k.hub}\u0000${k.device ?? ''}\u0000${k.compartment ?? ''}\u0000${k.kind}`;

interface ActiveEntry {
  id: string;
  lastObservedAt: number;
}

/** Decisions waiting for the next write, and who waits for their results. */
interface Pending {
  decisions: readonly AlarmDecision[];
  /** Leases the write must still hold (fenced in its transaction): those of a link check's regions. */
  grants: readonly LeaseGrant[];
  resolve: (results: (AlarmRecord | null)[]) => void;
  reject: (err: unknown) => void;
}

/** What a region's file tells the rules, worked out once per region (a region added later is seen on its first message). */
interface RegionRuleView {
  wind: { byHub: ReadonlyMap<string, WindLimits>; fallback: WindLimits };
  compartmentClasses: ReadonlyMap<string, Compartment['tempClass']>;
}

const DONE: Promise<void> = Promise.resolve();

export class AlarmService {
  private readonly log: Logger;
  private readonly params: AlarmRuleParams;
  private readonly regionViews = new Map<string, RegionRuleView>();
  private missionsPlannedAt: (hub: string) => boolean;
  private readonly listeners = new Set<(change: AlarmChange) => void>();
  /** Active alarms by key, so the many "all is well" clears from telemetry cost no query. Loaded by the first write. */
  private activeByKey: Map<string, ActiveEntry> | null = null;
  /** Keys with decisions queued or being written: not filtered by `activeByKey`, which does not show them yet. */
  private readonly pendingKeys = new Map<string, number>();
  private queue: Pending[] = [];
  private draining: Promise<void> | null = null;
  /** Device timestamps of recent wrong pickup codes, by compartment key (memory only: lost on restart). */
  private readonly pickupRejections = new Map<string, number[]>();
  private timer: NodeJS.Timeout | null = null;
  private readonly leases: Leases;
  private readonly unsubscribeLeases: () => void;

  constructor(private readonly o: AlarmServiceOptions) {
    this.log = o.logger.child({ component: 'alarms' });
    this.params = { ...DEFAULT_ALARM_RULE_PARAMS, ...o.params };
    this.missionsPlannedAt = o.missionsPlannedAt ?? (() => false);
    this.leases = o.leases ?? localLeases();
    // A node taking a region over reads the active alarms again: it clears the hub_offline alarms
    // the previous holder raised, which it never saw (its memory knew only its own).
    this.unsubscribeLeases = this.leases.onAcquired((name) => {
      if (name.startsWith('region:')) this.activeByKey = null;
    });
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
    this.timer = setInterval(() => void this.checkLinks(), interval);
    this.timer.unref();
  }

  /** Stops the link checks and waits for the writes under way. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.unsubscribeLeases();
    await this.settled();
    this.listeners.clear();
  }

  /** Resolves once every change queued so far is written (or failed). */
  async settled(): Promise<void> {
    while (this.draining) await this.draining;
  }

  /**
   * Ingest hook: a device message was stored (events once per hub and message id; re-sent telemetry
   * again). Returns at once when nothing changes; else resolves once the change is written. Never rejects.
   */
  onDeviceMessage(msg: DeviceMessage, region: string): Promise<void> {
    try {
      const decisions = evaluateDeviceMessage(msg, region, this.contextFor(msg, region), this.params);
      const todo = decisions.filter((d) => this.needsWrite(d));
      if (todo.length === 0) return DONE;
      return this.enqueue(todo).then(
        () => {},
        (err: unknown) => this.log.error({ err, hub: msg.hub, device: msg.device, msgId: msg.id, type: msg.type }, 'applying the alarms of a message failed'),
      );
    } catch (err) {
      this.log.error({ err, hub: msg.hub, device: msg.device, msgId: msg.id, type: msg.type }, 'evaluating alarm rules for a message failed');
      return DONE;
    }
  }

  /**
   * Cluster (issue 15): an alarm change another node made (from the cluster bus). Only this node's
   * memory of active alarms takes it — nothing is written or told to listeners — so a condition that
   * ends here clears an alarm another node raised (before, a process cleared only the alarms it knew
   * of). Best effort: a change the bus lost is read at the next takeover or restart, and a clear for
   * an alarm unknown here is then not written until that.
   */
  applyRemoteChange(change: AlarmChange): void {
    const active = this.activeByKey;
    if (!active) return; // read in full by the next write
    const a = change.alarm;
    const k = keyString(a);
    const current = active.get(k);
    if (change.type === 'cleared' || a.state === 'cleared') {
      if (current?.id === a.id) active.delete(k);
    } else if (change.type === 'raised' || change.type === 'repeated') {
      if (!current || current.id !== a.id || current.lastObservedAt < a.lastObservedAt) active.set(k, { id: a.id, lastObservedAt: a.lastObservedAt });
    }
  }

  /** Raises or clears `hub_offline` for every hub of the regions whose lease this node holds. Never rejects. */
  async checkLinks(): Promise<void> {
    const now = this.o.now();
    try {
      const grants = new Map<string, LeaseGrant | null>();
      const grantOf = (region: string) => {
        if (!grants.has(region)) grants.set(region, this.leases.grant(regionLease(region)));
        return grants.get(region)!;
      };
      const todo: AlarmDecision[] = [];
      const used = new Set<LeaseGrant>();
      for (const link of this.o.hubs.links()) {
        const g = grantOf(link.region);
        if (!g) continue; // another node checks this region
        const d = evaluateHubLink(link, now, this.params);
        if (!d || !this.needsWrite(d)) continue;
        todo.push(d);
        used.add(g);
      }
      if (todo.length > 0) await this.enqueue(todo, [...used]);
    } catch (err) {
      if (err instanceof StaleLeaseError) this.log.warn({ lease: err.lease, token: err.token }, 'hub link check not applied: another node took the region\'s lease over');
      else this.log.error({ err }, 'checking hub links for alarms failed');
    }
  }

  /** Raises an alarm directly (or counts a repeat of the active one with the same key). */
  async raise(req: RaiseRequest): Promise<AlarmRecord> {
    const key: AlarmKey = { hub: req.hub, device: req.device ?? null, compartment: req.compartment ?? null, kind: req.kind };
    const region = req.region ?? this.o.regions.regionOfHub(req.hub)?.id ?? this.o.regions.all()[0]?.id;
    if (region === undefined) throw new Error(`raising a ${req.kind} alarm at ${req.hub}: no region served`);
    const [written] = await this.enqueue([{
      action: 'raise', region, key, severity: req.severity ?? ALARM_SEVERITY[req.kind],
      detail: req.detail, params: req.params ?? {}, deviceDetail: req.deviceDetail ?? null, sourceMsgId: req.sourceMsgId ?? null, observedAt: req.observedAt ?? this.o.now(),
    }]);
    if (written) return written;
    // Nothing new (the same observation again): the active alarm as it is.
    const active = this.activeByKey?.get(keyString(key));
    if (!active) throw new Error(`raising a ${req.kind} alarm at ${req.hub} failed`);
    return this.get(active.id);
  }

  /**
   * Applies rule decisions in order, in one store transaction with whatever else is queued; listeners
   * hear of the changes once it committed. (A national link check can raise or clear thousands of
   * hub_offline alarms at once: one synced commit each kept the event loop busy for seconds.)
   * Rejects when the write failed.
   */
  async apply(decisions: readonly AlarmDecision[]): Promise<void> {
    // Most decisions of a link check change nothing (every online hub, every hub still offline).
    const todo = decisions.filter((d) => this.needsWrite(d));
    if (todo.length > 0) await this.enqueue(todo);
  }

  async get(id: string): Promise<AlarmRecord> {
    const a = await this.o.store.get(id);
    if (!a) throw new AlarmError('alarm_not_found', `no alarm "${id}"`);
    return a;
  }

  list(q: AlarmQuery): Promise<AlarmRecord[]> {
    return this.o.store.list(q);
  }

  countActive(): Promise<Record<AlarmSeverity, number>> {
    return this.o.store.countActive();
  }

  /** open → acknowledged. Acknowledging again keeps the first acknowledgement; a cleared alarm is refused. */
  async acknowledge(id: string, by: string, note: string | null): Promise<AlarmRecord> {
    const a = await this.get(id);
    if (a.state === 'cleared') throw new AlarmError('alarm_cleared', `alarm "${id}" was already cleared`);
    if (a.state === 'acknowledged') return a;
    const acked = await this.o.store.acknowledge(id, { at: this.o.now(), by, note });
    if (!acked) {
      // Someone else acknowledged or cleared it meanwhile (another request, another cloud process).
      const now = await this.get(id);
      if (now.state === 'cleared') throw new AlarmError('alarm_cleared', `alarm "${id}" was already cleared`);
      return now;
    }
    this.log.info({ alarmId: id, hub: a.hub, kind: a.kind, by }, 'alarm acknowledged');
    this.emit({ type: 'acknowledged', alarm: acked });
    return acked;
  }

  /** Clears an active alarm by hand (e.g. after staff checked a tamper report). A cleared alarm is refused. */
  async clear(id: string, by: string, note: string | null): Promise<AlarmRecord> {
    const a = await this.get(id);
    const cleared = a.state === 'cleared' ? null : await this.o.store.clear(id, { at: this.o.now(), by, note });
    if (!cleared) throw new AlarmError('alarm_cleared', `alarm "${id}" was already cleared`);
    this.forget(cleared);
    this.log.info({ alarmId: id, hub: a.hub, kind: a.kind, by }, 'alarm cleared');
    this.emit({ type: 'cleared', alarm: cleared });
    return cleared;
  }

  private regionView(region: RegionFile): RegionRuleView {
    let v = this.regionViews.get(region.id);
    if (!v) {
      const classes = new Map<string, Compartment['tempClass']>();
      for (const h of region.hubs) {
        for (const l of h.lockers) for (const c of l.compartments) classes.set(`${h.id}/${l.id}/${c.id}`, c.tempClass);
      }
      v = { wind: windLimitsByHub(region), compartmentClasses: classes };
      this.regionViews.set(region.id, v);
    }
    return v;
  }

  private contextFor(msg: DeviceMessage, regionId: string) {
    const compartment = msg.type === 'locker.event' ? msg.compartment : null;
    let pickupRejections: number[] = [];
    if (msg.type === 'locker.event' && msg.event === 'pickup_code_rejected') {
      const k = `${msg.hub}/${msg.device}/${msg.compartment}`;
      pickupRejections = slidePickupRejections(this.pickupRejections.get(k) ?? [], msg.ts, this.params.pickupRejectWindowMs);
      this.pickupRejections.set(k, pickupRejections);
    } else if (msg.type === 'locker.event' && msg.event === 'pickup') {
      this.pickupRejections.delete(`${msg.hub}/${msg.device}/${msg.compartment}`); // the right code: start counting afresh
    }
    const region = this.o.regions.regionOfHub(msg.hub) ?? this.o.regions.get(regionId);
    const view = region ? this.regionView(region) : NO_REGION;
    return {
      windLimits: view.wind.byHub.get(msg.hub) ?? view.wind.fallback,
      missionPlanned: () => this.missionsPlannedAt(msg.hub),
      droneFlightState: msg.type === 'drone.event' ? this.o.hubs.droneFlightState(msg.hub, msg.device) : null,
      compartmentClass: compartment === null ? null : (view.compartmentClasses.get(`${msg.hub}/${msg.device}/${compartment}`) ?? null),
      pickupRejections,
    };
  }

  private forget(a: AlarmRecord): void {
    const k = keyString(a);
    if (this.activeByKey?.get(k)?.id === a.id) this.activeByKey.delete(k);
  }

  /**
   * False for what `applyOne` would ignore — clearing what is not active, an observation not newer
   * than the last — judged in memory. Decisions on keys with writes still queued always go on (the
   * queue decides in order), as do all of them until the active alarms are loaded.
   */
  private needsWrite(d: AlarmDecision): boolean {
    if (!this.activeByKey) return true;
    const k = keyString(d.key);
    if (this.pendingKeys.has(k)) return true;
    return this.changesSomething(d, this.activeByKey.get(k));
  }

  private changesSomething(d: AlarmDecision, current: ActiveEntry | undefined): boolean {
    if (d.action === 'clear') return current !== undefined && d.observedAt >= current.lastObservedAt;
    return current === undefined || d.observedAt > current.lastObservedAt;
  }

  private enqueue(decisions: readonly AlarmDecision[], grants: readonly LeaseGrant[] = []): Promise<(AlarmRecord | null)[]> {
    for (const d of decisions) {
      const k = keyString(d.key);
      this.pendingKeys.set(k, (this.pendingKeys.get(k) ?? 0) + 1);
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ decisions, grants, resolve, reject });
      this.draining ??= this.drain();
    });
  }

  /**
   * Writes what is queued, one transaction per round, until the queue is empty. Seeing the queue empty
   * and no longer being `draining` happen in one step: a decision queued by whoever a round just
   * answered is either seen by the loop or starts the next drain.
   */
  private async drain(): Promise<void> {
    await null; // `draining` is set before the first round starts
    while (this.queue.length > 0) {
      const round = this.queue;
      this.queue = [];
      try {
        await this.write(round);
      } catch {
        // One bad decision must not lose the others queued with it: each again on its own.
        if (round.length > 1) for (const p of round) await this.write([p]).catch(() => {});
      } finally {
        for (const p of round) {
          for (const d of p.decisions) {
            const k = keyString(d.key);
            const n = (this.pendingKeys.get(k) ?? 1) - 1;
            if (n <= 0) this.pendingKeys.delete(k);
            else this.pendingKeys.set(k, n);
          }
        }
      }
    }
    this.draining = null;
  }

  /** One transaction for the decisions of `round`; settles their promises (when alone, also on failure). */
  private async write(round: readonly Pending[]): Promise<void> {
    const changes: AlarmChange[] = [];
    let results: (AlarmRecord | null)[][];
    try {
      if (!this.activeByKey) {
        const active = await this.o.store.active();
        this.activeByKey = new Map(active.map((a) => [keyString(a), { id: a.id, lastObservedAt: a.lastObservedAt }]));
      }
      const active = this.activeByKey;
      const body = async (store: AlarmStore): Promise<(AlarmRecord | null)[][]> => {
        const out = round.map((p) => p.decisions.map((): AlarmRecord | null => null));
        // Decisions of one action on distinct keys in a row go to the store together (one statement for
        // a link check that raises or clears thousands); the other action, or a second decision on a
        // key, writes what is gathered first, so the order of decisions is kept.
        let raises: { d: RaiseDecision; at: [number, number]; record: AlarmRecord }[] = [];
        let clears: { d: ClearDecision; at: [number, number]; id: string }[] = [];
        const keys = new Set<string>();
        const flush = async () => {
          const [r, c] = [raises, clears];
          [raises, clears] = [[], []];
          keys.clear();
          if (r.length > 0) {
            const written = await store.raiseMany(r.map((g) => g.record));
            r.forEach((g, i) => (out[g.at[0]]![g.at[1]] = this.raised(active, g.d, written[i]!, changes)));
          }
          if (c.length > 0) {
            const now = this.o.now();
            const written = await store.clearMany(c.map((g) => ({ id: g.id, action: { at: now, by: null, note: g.d.reason } })));
            c.forEach((g, i) => (out[g.at[0]]![g.at[1]] = this.cleared(active, g.d, written[i]!, changes)));
          }
        };
        for (const [pi, p] of round.entries()) {
          for (const [di, d] of p.decisions.entries()) {
            const k = keyString(d.key);
            if (keys.has(k) || (d.action === 'raise' ? clears.length > 0 : raises.length > 0)) await flush();
            const current = active.get(k);
            if (!this.changesSomething(d, current)) continue;
            if (d.action === 'clear') clears.push({ d, at: [pi, di], id: current!.id });
            else raises.push({ d, at: [pi, di], record: this.newAlarm(d) });
            keys.add(k);
          }
        }
        await flush();
        // Leased decisions (a link check) commit only while this node holds their regions' leases:
        // the fence is the transaction's last statement (a refusal rolls the round back; `drain` then
        // writes every other decision of it on its own).
        for (const g of new Set(round.flatMap((p) => p.grants))) await g.fence(store.sql);
        return out;
      };
      // One decision with no lease to fence is at most one statement, atomic on its own: it goes without
      // BEGIN and COMMIT. On PostgreSQL that is one round trip instead of two before the console hears
      // of the alarm — an event's alarm, the usual case (issue 17, item 4).
      const single = round.length === 1 && round[0]!.decisions.length === 1 && round[0]!.grants.length === 0;
      results = await (single ? body(this.o.store) : this.o.store.transaction(body));
    } catch (err) {
      this.activeByKey = null; // it may hold alarms the rollback removed; read it again
      if (round.length === 1) round[0]!.reject(err);
      throw err;
    }
    for (const c of changes) {
      if (c.type === 'raised') this.o.metrics?.raised(c.alarm.kind);
      this.emit(c);
    }
    round.forEach((p, i) => p.resolve(results[i]!));
  }

  /** Takes in a clear of the active alarm of `d`'s key (the condition ended); the alarm when it changed, else null. */
  private cleared(active: Map<string, ActiveEntry>, d: ClearDecision, alarm: AlarmRecord | null, changes: AlarmChange[]): AlarmRecord | null {
    active.delete(keyString(d.key));
    if (!alarm) return null; // cleared elsewhere meanwhile (by hand, another cloud process)
    this.log.info({ alarmId: alarm.id, hub: alarm.hub, device: alarm.device, compartment: alarm.compartment, kind: alarm.kind, reason: d.reason }, 'alarm cleared: condition ended');
    changes.push({ type: 'cleared', alarm });
    return alarm;
  }

  private newAlarm(d: RaiseDecision): AlarmRecord {
    const now = this.o.now();
    return {
      id: this.o.newId(), region: d.region, ...d.key, severity: d.severity, state: 'open',
      raisedAt: now, lastSeenAt: now, count: 1, observedAt: d.observedAt, lastObservedAt: d.observedAt,
      acknowledgedAt: null, acknowledgedBy: null, ackNote: null, clearedAt: null, clearedBy: null, clearNote: null,
      detail: d.detail, params: d.params, deviceDetail: d.deviceDetail, sourceMsgId: d.sourceMsgId,
    };
  }

  /** Takes in what the store did with a raise; the alarm when it changed, else null. */
  private raised(active: Map<string, ActiveEntry>, d: RaiseDecision, { change, alarm }: RaiseResult, changes: AlarmChange[]): AlarmRecord | null {
    const k = keyString(d.key);
    if (alarm) active.set(k, { id: alarm.id, lastObservedAt: alarm.lastObservedAt });
    else active.delete(k);
    if (change === 'none' || !alarm) return null; // the same observation again (a re-sent message, the next link check) is not a repeat
    if (change === 'raised') {
      this.log.info({ alarmId: alarm.id, hub: alarm.hub, device: alarm.device, compartment: alarm.compartment, kind: alarm.kind, severity: alarm.severity }, 'alarm raised');
    } else {
      this.log.debug({ alarmId: alarm.id, hub: d.key.hub, kind: d.key.kind }, 'alarm condition reported again');
    }
    changes.push({ type: change, alarm });
    return alarm;
  }

  private emit(change: AlarmChange): void {
    for (const fn of this.listeners) {
      try {
        fn(change);
      } catch (err) {
        this.log.error({ err, alarmId: change.alarm.id }, 'an alarm listener failed');
      }
    }
  }
}

/** For a message of a hub no region file knows: the default drone limits, no compartment classes. */
const NO_REGION: RegionRuleView = {
  wind: windLimitsByHub({ hubs: [] } as unknown as RegionFile),
  compartmentClasses: new Map(),
};
