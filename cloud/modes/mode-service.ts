import type { CloudAck, Mode, ModeAck, RegionMode } from '../../contract/index.ts';
import type { Logger } from '../logger.ts';
import {
  applySwitch,
  hubSwitches,
  initialDesired,
  isNewerAck,
  localSwitchConflict,
  modeChanges,
  modeForHub,
  regionModeView,
  toRegionMode,
  type DesiredMode,
  type HubAck,
  type HubModeChange,
  type HubSwitch,
  type ModeConflict,
  type RegionModeView,
  type SwitchRequest,
} from './mode-state.ts';
import type { AuditEntry, ModeStore } from './mode-store.ts';

/**
 * Disaster mode (issue 4): a coordinator switches a region, or some of its hubs, between normal
 * and emergency. Each switch is a new version of the region's desired state, stored with an audit
 * entry and then published retained (QoS 1) for the region's edge agents, which apply a version
 * higher than theirs and acknowledge it. Acknowledgements are matched against the desired state.
 *
 * Reconciliation (README, "Disaster mode"): a hub switched locally by its staff — typically while
 * cut off — reports it as a `hub.mode-ack` with source "local" (replayed when its link returns).
 * The switch is recorded in the audit log and shown.
 *  - Made while the hub knew the current desired state (a deliberate local override): the
 *    coordinator's desired state stays authoritative, the hub shows `diverged`, nothing is
 *    published; the coordinator adopts the hub's mode with a new switch, or any later switch brings
 *    the hub back in line.
 *  - Made without having seen the current version (cut off while a coordinator switched) and
 *    disagreeing with it: a conflict (issue 12, defect 10). The later of the two in wall-clock time
 *    wins — a local switch later than the coordinator's is adopted as a new version for that hub
 *    (published, so the hub, which applies the newer retained version on reconnect, returns to its
 *    own mode); an earlier one yields. Either way the hub shows `conflict` with both sides until a
 *    coordinator switches that hub or the region again: a hub's emergency is never cancelled, nor
 *    kept, without a coordinator seeing it.
 *
 * Other features read the effective mode through `modeOf` / `desired` and follow changes with
 * `onModeChange`; the effective mode of a hub is what the desired state gives it.
 */

/** How far back `hubSwitches` reads the audit log (switches of years of disasters fit many times over). */
const SWITCH_HISTORY_READ_MAX = 20_000;

/** The way out to the hubs. */
export interface ModeBus {
  /** Publishes the region's desired state retained, QoS 1, on `topics.regionMode(region)`. */
  publishDesired(message: RegionMode): Promise<void>;
  /** Tells a hub that its local switch was recorded (`cloud.ack` on its `ack` topic). */
  acknowledge(region: string, message: CloudAck): Promise<void>;
}

export type ModeErrorCode = 'region_not_found' | 'hub_not_in_region';

export class ModeError extends Error {
  override readonly name = 'ModeError';
  constructor(
    readonly code: ModeErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A coordinator's switch, as answered by the API. */
export interface SwitchResult {
  region: string;
  version: number;
  mode: Mode;
  /** Hubs switched; null = the whole region. */
  hubs: string[] | null;
  reason: string;
  by: string;
  at: number;
  /** The new desired state (what was published). */
  desired: DesiredMode;
  /** Hubs whose effective mode changed. */
  changes: HubModeChange[];
  /** Whether the broker took the retained message (if not, it is published at the next start). */
  published: boolean;
}

/** Passed to `onModeChange` listeners after a switch changed at least one hub's mode. */
export interface ModeChangeEvent {
  region: string;
  version: number;
  at: number;
  by: string;
  reason: string;
  changes: HubModeChange[];
}

export interface ModeServiceOptions {
  store: ModeStore;
  bus: ModeBus;
  /** Region id → its hubs (from the region file). */
  regions: ReadonlyMap<string, readonly string[]>;
  now: () => number;
  /** A hub that has not acknowledged the current version this long after the switch shows `timed_out`. */
  ackTimeoutMs: number;
  logger: Logger;
}

export class ModeService {
  private readonly log: Logger;
  private readonly listeners = new Set<(e: ModeChangeEvent) => void>();
  private readonly regionOfHub = new Map<string, string>();
  /** Desired state per region, read through from the store. */
  private readonly cache = new Map<string, DesiredMode>();
  /** Publishes run one after another, each sending the newest state, so the retained message is never an older version. */
  private publishing: Promise<unknown> = Promise.resolve();
  /** Newest acknowledgement per hub, per region (see `acksOf`). */
  private readonly acks = new Map<string, Map<string, HubAck>>();
  /** Acknowledgements kept in `acks` but not yet written to the store (see `applyAck`). */
  private pendingAcks: HubAck[] = [];
  /**
   * Acknowledgements `recordAcks` wrote, by hub and message id, until `applyAck` takes them: for a
   * local switch, its audit entry (null: a re-sent copy, recorded before).
   */
  private readonly recorded = new Map<string, { entry: AuditEntry | null }>();
  /** `hubSwitches` per region, for the desired version it was worked out for. */
  private readonly switchesCache = new Map<string, { version: number; byHub: Map<string, HubSwitch> }>();

  constructor(private readonly o: ModeServiceOptions) {
    this.log = o.logger.child({ component: 'modes' });
    for (const [region, hubs] of o.regions) for (const h of hubs) this.regionOfHub.set(h, region);
  }

  get ackTimeoutMs(): number {
    return this.o.ackTimeoutMs;
  }

  /** The hub's effective mode: what the desired state of its region gives it ('normal' for a hub of no known region). */
  modeOf(hubId: string): Mode {
    const region = this.regionOfHub.get(hubId);
    return region ? modeForHub(this.desired(region), hubId) : 'normal';
  }

  /** The region's current desired state (version 0, all normal, before the first switch). */
  desired(region: string): DesiredMode {
    let d = this.cache.get(region);
    if (!d) {
      d = this.o.store.latest(region) ?? initialDesired(region);
      this.cache.set(region, d);
    }
    return d;
  }

  /**
   * The newest version the cloud issued for the region (0 before the first switch, and for a region
   * it does not serve: those are never switched). A hub acknowledging a higher version reports one
   * that was never issued; ingest refuses it (issue 11), else it would count as the newest forever.
   * A local switch keeps the hub's current version, so it is never higher.
   */
  issuedVersion(region: string): number {
    return this.o.regions.has(region) ? this.desired(region).version : 0;
  }

  /** Calls `fn` after every switch that changes the mode of at least one hub; returns an unsubscribe function. */
  onModeChange(fn: (e: ModeChangeEvent) => void): () => void {
    this.listeners.add(fn);
    return () => void this.listeners.delete(fn);
  }

  /** Stores the next version with its audit entry, then publishes it retained. */
  async switchMode(region: string, req: SwitchRequest): Promise<SwitchResult> {
    const hubIds = this.hubsOf(region);
    let targets: string[] | null = null;
    if (req.hubs !== undefined) {
      targets = [...new Set(req.hubs)];
      const unknown = targets.filter((h) => !hubIds.includes(h));
      if (unknown.length > 0) throw new ModeError('hub_not_in_region', `not hubs of region "${region}": ${unknown.join(', ')}`);
    }
    const prev = this.desired(region);
    const at = this.o.now();
    const next = applySwitch(prev, { ...req, hubs: targets ?? undefined }, at);
    const changes = modeChanges(prev, next, hubIds);
    const scope = targets ? `hub${targets.length > 1 ? 's' : ''} ${targets.join(', ')}` : 'the whole region';
    this.o.store.appendVersion(next, {
      region, kind: 'switch', at, recordedAt: at, by: req.by, mode: req.mode, hubs: targets, reason: req.reason, version: next.version,
      desiredVersion: null, desiredMode: null, historical: false, msgId: null,
      summary: `${req.by} switched ${scope} to ${req.mode} (version ${next.version}): ${req.reason}`,
    });
    this.cache.set(region, next);
    // A coordinator who switches a hub has seen its conflict (the API shows it): resolved.
    const resolved = this.o.store.clearConflicts(region, targets);
    this.log.info({ region, version: next.version, mode: req.mode, hubs: targets, by: req.by, reason: req.reason, changed: changes.length, conflictsResolved: resolved }, 'mode switched');
    if (changes.length > 0) this.emit({ region, version: next.version, at, by: req.by, reason: req.reason, changes });
    const published = await this.publish(region);
    return { region, version: next.version, mode: req.mode, hubs: targets, reason: req.reason, by: req.by, at, desired: next, changes, published };
  }

  /** The desired state with every hub's acknowledgement. */
  view(region: string): RegionModeView {
    const hubIds = this.hubsOf(region);
    return regionModeView(this.desired(region), hubIds, this.acksOf(region), this.o.now(), this.o.ackTimeoutMs, this.o.store.conflicts(region));
  }

  /**
   * Since when each hub of the region has been in its desired mode, and the coordinator's reason
   * (see `hubSwitches`). Worked out from the audit log once per version: the live feed asks every second.
   */
  hubSwitches(region: string): Map<string, HubSwitch> {
    const hubIds = this.hubsOf(region);
    const version = this.desired(region).version;
    const cached = this.switchesCache.get(region);
    if (cached?.version === version) return cached.byHub;
    const entries: AuditEntry[] = [];
    let complete = false;
    while (entries.length < SWITCH_HISTORY_READ_MAX) {
      const page = this.o.store.history(region, { limit: 500, beforeId: entries.at(-1)?.id });
      entries.push(...page);
      if (page.length < 500) {
        complete = true;
        break;
      }
    }
    const byHub = hubSwitches(entries, hubIds, complete);
    this.switchesCache.set(region, { version, byHub });
    return byHub;
  }

  /** The audit log, newest first. */
  history(region: string, q: { limit: number; before?: number }): AuditEntry[] {
    this.hubsOf(region);
    return this.o.store.history(region, { limit: q.limit, beforeId: q.before });
  }

  /**
   * Step one of taking `hub.mode-ack`s, inside ingest's group commit — before the messages are
   * acknowledged and their ids remembered: writes the acknowledgements (one transaction) and the
   * audit entries of local switches. Throws when the store fails: ingest then leaves these messages
   * unacknowledged and unremembered, so the hubs re-send them (issue 12, defect 10; before, a failed
   * write was only logged while dedupe dropped the re-sends, and the hub showed `timed_out` for
   * ever). Idempotent: the store keeps the newest acknowledgement per hub and one audit entry per
   * message. `applyAck` follows for each message once the commit succeeded.
   */
  recordAcks(acks: readonly { ack: ModeAck; region: string; receivedAt: number }[]): void {
    const taken = acks.filter(({ ack, region }) => ack.version <= this.issuedVersion(region));
    if (taken.length === 0) return;
    this.flushAcks();
    this.o.store.putAcks(taken.map(({ ack, region, receivedAt }) => toHubAck(ack, region, receivedAt)));
    const recorded: [string, { entry: AuditEntry | null }][] = [];
    for (const { ack, region, receivedAt } of taken) {
      const entry = ack.source === 'local' ? this.recordLocalSwitch(ack, region, receivedAt) : null;
      recorded.push([recordKey(ack), { entry }]);
    }
    if (this.recorded.size > 100_000) this.recorded.clear(); // entries of commits that failed after this step; applyAck copes
    for (const [k, v] of recorded) this.recorded.set(k, v);
  }

  /**
   * A hub's `hub.mode-ack` (ingest calls this once per message id, after storing it). The newest
   * state of each hub is kept; a local switch is also written to the audit log — also when it is
   * older than what the hub reported since (a replay after an outage): it happened.
   */
  applyAck(ack: ModeAck, region: string, receivedAt: number): void {
    if (ack.version > this.issuedVersion(region)) {
      // Ingest refuses these (`unknown_mode_version`); kept here too, as newest it would pin the hub's state.
      this.log.warn({ hub: ack.hub, region, version: ack.version, issued: this.issuedVersion(region) }, 'mode acknowledgement for a version never issued ignored');
      return;
    }
    const record = toHubAck(ack, region, receivedAt);
    const newest = this.keepNewest(record);
    const pre = this.recorded.get(recordKey(ack));
    this.recorded.delete(recordKey(ack));
    if (ack.source !== 'local') {
      if (pre) return; // written by recordAcks
      // Every hub of a region acknowledges a switch within moments: ingest applies them a group
      // commit at a time, and they are written together at the end of that synchronous run (a
      // microtask), so a switch of 13,800 hubs costs a handful of synced commits instead of one per
      // hub. The microtask runs before ingest resolves the batch, i.e. before any PUBACK is sent.
      if (newest) {
        this.pendingAcks.push(record);
        if (this.pendingAcks.length === 1) queueMicrotask(() => this.flushAcks());
      }
      this.log.debug({ hub: ack.hub, version: ack.version, mode: ack.mode, newest }, 'mode acknowledged');
      return;
    }
    let entry: AuditEntry | null;
    if (pre) entry = pre.entry;
    else {
      this.flushAcks();
      if (newest) this.o.store.putAck(record);
      entry = this.recordLocalSwitch(ack, region, receivedAt);
    }
    if (!entry) return; // a re-sent copy: recorded already
    const desired = this.desired(region);
    const want = modeForHub(desired, ack.hub);
    const when = new Date(ack.ts).toISOString();
    const verdict = verdictOf(ack.mode, want, desired.version);
    this.log.warn({ hub: ack.hub, region, mode: ack.mode, desired: want, desiredVersion: desired.version, at: when, historical: record.historical }, 'hub switched locally');
    const reply: CloudAck = {
      v: 1, type: 'cloud.ack', ts: this.o.now(), hub: ack.hub, ackOf: ack.id,
      detail: `local switch to ${ack.mode} recorded; ${verdict}`.slice(0, 500),
    };
    this.o.bus.acknowledge(region, reply).catch((err: unknown) => this.log.warn({ err, hub: ack.hub }, 'acknowledging a local switch failed'));
  }

  /**
   * The audit entry of a local switch (null: a re-sent copy, recorded before), after its
   * reconciliation: the audit entry comes last, so a write failing half-way is redone in full when
   * the hub re-sends the message (reconcile is idempotent: an adopted switch no longer conflicts).
   */
  private recordLocalSwitch(ack: ModeAck, region: string, receivedAt: number): AuditEntry | null {
    const audit = this.localSwitchAudit(ack, region, receivedAt);
    this.reconcile(ack, region, receivedAt);
    return this.o.store.appendAudit(audit);
  }

  /**
   * A local switch that did not see the current desired state and disagrees with it: records the
   * conflict; when the local switch is the later, adopts it for that hub as a new version (written
   * here, published right after). Throws when the store fails (the caller leaves the message
   * unacknowledged; a re-send finds the conflict already adopted, or records it then).
   */
  private reconcile(ack: ModeAck, region: string, receivedAt: number): void {
    const desired = this.desired(region);
    const conflict: ModeConflict | null = localSwitchConflict(desired, ack, region, receivedAt);
    if (!conflict) return;
    const when = (t: number) => new Date(t).toISOString();
    const sides = `hub ${ack.hub} switched locally to ${ack.mode} at ${when(ack.ts)} (hub clock) without having seen version ${desired.version}, ` +
      `${desired.by}'s switch to ${conflict.coordinator.mode} at ${when(conflict.coordinator.at)}`;
    if (conflict.winner === 'hub') {
      const at = this.o.now();
      const reason = `conflict: ${sides}; the later (the hub's) is kept until a coordinator decides${ack.reason ? ` — hub staff: ${ack.reason}` : ''}`.slice(0, 500);
      const next = applySwitch(desired, { mode: ack.mode, hubs: [ack.hub], reason, by: `hub staff at ${ack.hub}` }, at);
      this.o.store.putConflict(conflict);
      this.o.store.appendVersion(next, {
        region, kind: 'switch', at, recordedAt: at, by: `hub staff at ${ack.hub}`, mode: ack.mode, hubs: [ack.hub], reason, version: next.version,
        desiredVersion: null, desiredMode: null, historical: false, msgId: null,
        summary: `hub ${ack.hub}'s later local switch to ${ack.mode} adopted as version ${next.version} (${sides}); shown as a conflict until a coordinator switches the hub`,
      });
      this.cache.set(region, next);
      this.log.warn({ region, hub: ack.hub, version: next.version, mode: ack.mode, coordinatorVersion: desired.version }, 'mode conflict: the hub\'s later local switch adopted');
      this.emit({ region, version: next.version, at, by: `hub staff at ${ack.hub}`, reason, changes: modeChanges(desired, next, this.hubsOf(region)) });
      void this.publish(region);
      return;
    }
    this.o.store.putConflict(conflict);
    this.log.warn({ region, hub: ack.hub, mode: ack.mode, coordinatorVersion: desired.version }, 'mode conflict: the coordinator\'s later switch stands over the hub\'s local switch');
  }

  private localSwitchAudit(ack: ModeAck, region: string, receivedAt: number) {
    const desired = this.desired(region);
    const want = modeForHub(desired, ack.hub);
    const when = new Date(ack.ts).toISOString();
    const late = ack.historical === true ? ', reported after its link returned' : '';
    return {
      region, kind: 'local_switch' as const, at: ack.ts, recordedAt: receivedAt, by: `hub staff at ${ack.hub}`, mode: ack.mode, hubs: [ack.hub],
      reason: ack.reason ?? '', version: ack.version, desiredVersion: desired.version, desiredMode: want, historical: ack.historical === true,
      msgId: ack.id,
      summary: `hub ${ack.hub} switched locally to ${ack.mode} at ${when}${ack.reason ? `: ${ack.reason}` : ''} (${verdictOf(ack.mode, want, desired.version)}${late})`,
    };
  }

  /** Publishes the newest desired state of every switched region again (at start-up: a restarted broker has no retained messages). */
  async republish(): Promise<void> {
    for (const d of this.o.store.allLatest()) {
      this.cache.set(d.region, d);
      await this.publish(d.region);
    }
  }

  /** The newest acknowledgement of each hub of the region (read from the store once, then kept up to date here). */
  private acksOf(region: string): Map<string, HubAck> {
    let acks = this.acks.get(region);
    if (!acks) {
      acks = this.o.store.acks(region);
      this.acks.set(region, acks);
    }
    return acks;
  }

  /** Keeps the acknowledgement in memory if it is the hub's newest (`isNewerAck`); true when kept. */
  private keepNewest(record: HubAck): boolean {
    const acks = this.acksOf(record.region);
    if (!isNewerAck(record, acks.get(record.hub) ?? null)) return false;
    acks.set(record.hub, record);
    // The store keeps one acknowledgement per hub: a hub now reporting for another region leaves the old one.
    for (const [region, other] of this.acks) if (region !== record.region) other.delete(record.hub);
    return true;
  }

  /** Writes the acknowledgements `applyAck` collected (one transaction). Never throws. */
  private flushAcks(): void {
    if (this.pendingAcks.length === 0) return;
    const batch = this.pendingAcks;
    this.pendingAcks = [];
    try {
      this.o.store.putAcks(batch);
    } catch (err) {
      this.log.error({ err, acks: batch.length, hubs: batch.slice(0, 10).map((a) => a.hub) }, 'storing mode acknowledgements failed');
    }
  }

  private publish(region: string): Promise<boolean> {
    const run = this.publishing.then(async () => {
      const d = this.desired(region);
      if (d.version < 1) return true;
      try {
        await this.o.bus.publishDesired(toRegionMode(d));
        return true;
      } catch (err) {
        this.log.error({ err, region, version: d.version }, 'publishing the region mode failed; it is published again at the next start');
        return false;
      }
    });
    this.publishing = run.catch(() => undefined); // one failed run must not stop the ones after it
    return run;
  }

  private hubsOf(region: string): readonly string[] {
    const hubs = this.o.regions.get(region);
    if (!hubs) throw new ModeError('region_not_found', `no region "${region}"`);
    return hubs;
  }

  private emit(e: ModeChangeEvent): void {
    for (const fn of this.listeners) {
      try {
        fn(e);
      } catch (err) {
        this.log.error({ err, region: e.region, version: e.version }, 'a mode change listener failed');
      }
    }
  }
}

function toHubAck(ack: ModeAck, region: string, receivedAt: number): HubAck {
  return {
    hub: ack.hub, region, version: ack.version, mode: ack.mode, source: ack.source, reason: ack.reason ?? null, ts: ack.ts, receivedAt,
    msgId: ack.id, historical: ack.historical === true,
  };
}

const recordKey = (ack: Pick<ModeAck, 'hub' | 'id'>) => `${ack.hub}\u0000${ack.id}`;

function verdictOf(mode: Mode, want: Mode, version: number): string {
  return mode === want
    ? `same as the desired state (version ${version})`
    : `differs from the desired ${want} (version ${version}); the desired state stays in force until a coordinator switches`;
}
