import type { CloudAck, Mode, ModeAck, RegionMode } from '../../contract/index.ts';
import type { Sql } from '../db/sql.ts';
import type { Regions } from '../hubs/regions.ts';
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
import { ModeVersionTakenError, type AuditEntry, type ModeStore, type NewAuditEntry } from './mode-store.ts';

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
/** Entries of `ModeService.recorded` kept at most (a group commit holds far fewer acknowledgements). */
const RECORDED_MAX = 100_000;

/** The way out to the hubs. */
export interface ModeBus {
  /** Publishes the region's desired state retained, QoS 1, on `topics.regionMode(region)`. */
  publishDesired(message: RegionMode): Promise<void>;
  /** Tells a hub that its local switch was recorded (`cloud.ack` on its `ack` topic). */
  acknowledge(region: string, message: CloudAck): Promise<void>;
}

export type ModeErrorCode = 'region_not_found' | 'hub_not_in_region' | 'mode_version_conflict';

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
  /** The regions served; looked up on every call, so a region added while running is switched without a restart. */
  regions: Regions;
  now: () => number;
  /** A hub that has not acknowledged the current version this long after the switch shows `timed_out`. */
  ackTimeoutMs: number;
  logger: Logger;
}

/** What recording a local switch did, applied to the in-memory state once its transaction committed. */
interface LocalSwitchOutcome {
  /** Its audit entry; null for a re-sent copy, recorded before (nothing else was done then). */
  entry: AuditEntry | null;
  conflict: ModeConflict | null;
  /** The version that adopted the hub's later local switch (issue 12, defect 10b). */
  adopted: DesiredMode | null;
}

export class ModeService {
  private readonly log: Logger;
  private readonly listeners = new Set<(e: ModeChangeEvent) => void>();
  /** Cluster: the newest version another node said it issued, per region (`noteIssuedElsewhere`). */
  private readonly issuedElsewhere = new Map<string, number>();
  /** The newest desired state of every region ever switched (loaded by `open`, then kept up to date here). */
  private readonly cache = new Map<string, DesiredMode>();
  /** Switches of one region run one after another in this process (versions in order, no self-inflicted conflicts). */
  private readonly switching = new Map<string, Promise<unknown>>();
  /** Publishes run one after another, each sending the newest state, so the retained message is never an older version. */
  private publishing: Promise<unknown> = Promise.resolve();
  /** Newest acknowledgement per hub, per region (loaded by `open`). */
  private readonly acks = new Map<string, Map<string, HubAck>>();
  /** Open conflicts per hub, per region (loaded by `open`). */
  private readonly conflicts = new Map<string, Map<string, ModeConflict>>();
  /** Counts changes to `conflicts` made here (see `catchUp`). */
  private conflictGeneration = 0;
  /** Acknowledgements kept in `acks` but not yet written to the store (see `applyAck`). */
  private pendingAcks: HubAck[] = [];
  /** The write of `pendingAcks`, queued for the end of the current synchronous run. */
  private pendingFlush: Promise<void> | null = null;
  /**
   * Acknowledgements `recordAcks` wrote, by hub and message id, until `applyAck` takes them: for a
   * local switch, what recording it did.
   */
  private readonly recorded = new Map<string, LocalSwitchOutcome>();
  /** `hubSwitches` per region, for the desired version it was worked out for. */
  private readonly switchesCache = new Map<string, { version: number; byHub: Map<string, HubSwitch> }>();

  private constructor(private readonly o: ModeServiceOptions) {
    this.log = o.logger.child({ component: 'modes' });
  }

  /**
   * The service with the stored state in memory — desired state of every region, every hub's newest
   * acknowledgement and the open conflicts — so `modeOf`, `desired`, `issuedVersion` and `view`
   * (hot paths: dispatch, ingest, the live feed) answer without a database round trip.
   */
  static async open(o: ModeServiceOptions): Promise<ModeService> {
    const service = new ModeService(o);
    const [latest, acks, conflicts] = await Promise.all([o.store.allLatest(), o.store.allAcks(), o.store.allConflicts()]);
    for (const d of latest) service.cache.set(d.region, d);
    for (const a of acks) service.acksOf(a.region).set(a.hub, a);
    for (const c of conflicts) service.conflictsOf(c.region).set(c.hub, c);
    return service;
  }

  get ackTimeoutMs(): number {
    return this.o.ackTimeoutMs;
  }

  /** The hub's effective mode: what the desired state of its region gives it ('normal' for a hub of no known region). */
  modeOf(hubId: string): Mode {
    const region = this.o.regions.regionOfHub(hubId);
    return region ? modeForHub(this.desired(region.id), hubId) : 'normal';
  }

  /** The region's current desired state (version 0, all normal, before the first switch). */
  desired(region: string): DesiredMode {
    return this.cache.get(region) ?? initialDesired(region);
  }

  /**
   * The newest version the cloud issued for the region (0 before the first switch, and for a region
   * it does not serve: those are never switched). A hub acknowledging a higher version reports one
   * that was never issued; ingest refuses it (issue 11), else it would count as the newest forever.
   * A local switch keeps the hub's current version, so it is never higher.
   */
  issuedVersion(region: string): number {
    return this.o.regions.has(region) ? Math.max(this.desired(region).version, this.issuedElsewhere.get(region) ?? 0) : 0;
  }

  /**
   * Cluster mode (issue 15, cluster bus): another node is publishing `version` of the region. Its
   * notice arrives before that node's retained region mode can reach a hub here and come back as an
   * acknowledgement, so ingest takes such acknowledgements (`issuedVersion`) instead of refusing a
   * version this node has not read yet; the version itself is read from the store (`catchUp`).
   */
  noteIssuedElsewhere(region: string, version: number): void {
    if (this.o.regions.has(region) && version > (this.issuedElsewhere.get(region) ?? 0)) this.issuedElsewhere.set(region, version);
  }

  /** Calls `fn` after every switch that changes the mode of at least one hub; returns an unsubscribe function. */
  onModeChange(fn: (e: ModeChangeEvent) => void): () => void {
    this.listeners.add(fn);
    return () => void this.listeners.delete(fn);
  }

  /**
   * Stores the next version with its audit entry (and clears the conflicts it resolves) in one
   * transaction, then publishes it retained. The next version is made on top of the newest stored
   * one, read in that transaction. Two cloud processes switching the region at the same moment
   * both try the same version: one makes it, the other gets `mode_version_conflict` and nothing of
   * its switch is stored — the coordinator looks again and decides.
   */
  async switchMode(region: string, req: SwitchRequest): Promise<SwitchResult> {
    const hubIds = this.hubsOf(region);
    let targets: string[] | null = null;
    if (req.hubs !== undefined) {
      targets = [...new Set(req.hubs)];
      const unknown = targets.filter((h) => !hubIds.includes(h));
      if (unknown.length > 0) throw new ModeError('hub_not_in_region', `not hubs of region "${region}": ${unknown.join(', ')}`);
    }
    return this.oneAtATime(region, () => this.switchNow(region, req, targets));
  }

  private async switchNow(region: string, req: SwitchRequest, targets: string[] | null): Promise<SwitchResult> {
    const at = this.o.now();
    const scope = targets ? `hub${targets.length > 1 ? 's' : ''} ${targets.join(', ')}` : 'the whole region';
    let written: { prev: DesiredMode; next: DesiredMode; resolved: number };
    try {
      written = await this.o.store.transaction(async (tx) => {
        const prev = (await this.o.store.latest(region, tx)) ?? initialDesired(region);
        const next = applySwitch(prev, { ...req, hubs: targets ?? undefined }, at);
        await this.o.store.appendVersion(next, {
          region, kind: 'switch', at, recordedAt: at, by: req.by, mode: req.mode, hubs: targets, reason: req.reason, version: next.version,
          desiredVersion: null, desiredMode: null, historical: false, msgId: null,
          summary: `${req.by} switched ${scope} to ${req.mode} (version ${next.version}): ${req.reason}`,
        }, tx);
        // A coordinator who switches a hub has seen its conflict (the API shows it): resolved.
        const resolved = await this.o.store.clearConflicts(region, targets, tx);
        return { prev, next, resolved };
      });
    } catch (err) {
      if (!(err instanceof ModeVersionTakenError)) throw err;
      this.log.warn({ region, version: err.version, by: req.by }, 'mode switch refused: another switch made that version at the same moment');
      await this.refresh(region).catch((e: unknown) => this.log.error({ err: e, region }, 'reading the region mode after a conflict failed'));
      throw new ModeError('mode_version_conflict',
        `region "${region}" was switched by someone else at the same moment (version ${err.version}); nothing was changed — look at its mode now and switch again if still needed`);
    }
    const { prev, next, resolved } = written;
    const hubIds = this.o.regions.hubIds(region);
    const changes = modeChanges(prev, next, hubIds);
    this.clearConflictsInMemory(region, targets);
    this.adopt(next);
    this.log.info({ region, version: next.version, mode: req.mode, hubs: targets, by: req.by, reason: req.reason, changed: changes.length, conflictsResolved: resolved }, 'mode switched');
    const published = await this.publish(region);
    return { region, version: next.version, mode: req.mode, hubs: targets, reason: req.reason, by: req.by, at, desired: next, changes, published };
  }

  /** The desired state with every hub's acknowledgement. */
  view(region: string): RegionModeView {
    const hubIds = this.hubsOf(region);
    return regionModeView(this.desired(region), hubIds, this.acksOf(region), this.o.now(), this.o.ackTimeoutMs, this.conflictsOf(region));
  }

  /**
   * Since when each hub of the region has been in its desired mode, and the coordinator's reason
   * (see `hubSwitches`). Worked out from the audit log once per version: the live feed asks every second.
   */
  async hubSwitches(region: string): Promise<Map<string, HubSwitch>> {
    const hubIds = this.hubsOf(region);
    const version = this.desired(region).version;
    const cached = this.switchesCache.get(region);
    if (cached?.version === version) return cached.byHub;
    const entries: AuditEntry[] = [];
    let complete = false;
    while (entries.length < SWITCH_HISTORY_READ_MAX) {
      const page = await this.o.store.history(region, { limit: 500, beforeId: entries.at(-1)?.id });
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
  async history(region: string, q: { limit: number; before?: number }): Promise<AuditEntry[]> {
    this.hubsOf(region);
    return this.o.store.history(region, { limit: q.limit, beforeId: q.before });
  }

  /**
   * Step one of taking `hub.mode-ack`s, inside ingest's group commit — in its transaction `tx`, before
   * the messages are acknowledged and their ids remembered: writes the acknowledgements (one
   * statement per 500 hubs) and what local switches bring (audit entries, conflicts, an adopted
   * version). Throws when the store fails: ingest then leaves these messages unacknowledged and
   * unremembered, so the hubs re-send them (issue 12, defect 10; before, a failed write was only
   * logged while dedupe dropped the re-sends, and the hub showed `timed_out` for ever). Idempotent:
   * the store keeps the newest acknowledgement per hub and one audit entry per message. `applyAck`
   * follows for each message once the commit succeeded, and brings the in-memory state up to date.
   */
  async recordAcks(acks: readonly { ack: ModeAck; region: string; receivedAt: number }[], tx?: Sql): Promise<void> {
    const taken = acks.filter(({ ack, region }) => ack.version <= this.issuedVersion(region));
    if (taken.length === 0) return;
    await this.o.store.putAcks(taken.map(({ ack, region, receivedAt }) => toHubAck(ack, region, receivedAt)), tx);
    const recorded: [string, LocalSwitchOutcome][] = [];
    for (const { ack, region, receivedAt } of taken) {
      const outcome = ack.source === 'local' ? await this.recordLocalSwitch(ack, region, receivedAt, tx) : NOTHING_RECORDED;
      recorded.push([recordKey(ack), outcome]);
    }
    for (const [k, v] of recorded) {
      this.recorded.delete(k);
      this.recorded.set(k, v);
    }
    // What `applyAck` never takes — commits that failed after this step, copies the dedupe ids told
    // (ingest records with them, see `Ingest.commitOperational`) — goes oldest first; applyAck copes.
    for (const k of this.recorded.keys()) {
      if (this.recorded.size <= RECORDED_MAX) break;
      this.recorded.delete(k);
    }
  }

  /**
   * A hub's `hub.mode-ack` (ingest calls this once per message id, after storing it). The newest
   * state of each hub is kept (in memory at once, before this returns a promise); a local switch is
   * also written to the audit log — also when it is older than what the hub reported since (a replay
   * after an outage): it happened. Never rejects.
   */
  applyAck(ack: ModeAck, region: string, receivedAt: number): Promise<void> {
    if (ack.version > this.issuedVersion(region)) {
      // Ingest refuses these (`unknown_mode_version`); kept here too, as newest it would pin the hub's state.
      this.log.warn({ hub: ack.hub, region, version: ack.version, issued: this.issuedVersion(region) }, 'mode acknowledgement for a version never issued ignored');
      return Promise.resolve();
    }
    const record = toHubAck(ack, region, receivedAt);
    const newest = this.keepNewest(record);
    const pre = this.recorded.get(recordKey(ack));
    this.recorded.delete(recordKey(ack));
    if (ack.source !== 'local') {
      this.log.debug({ hub: ack.hub, version: ack.version, mode: ack.mode, newest }, 'mode acknowledged');
      if (pre || !newest) return Promise.resolve(); // written by recordAcks, or older than what is stored
      // Every hub of a region acknowledges a switch within moments: ingest applies them a group
      // commit at a time, and they are written together at the end of that synchronous run (a
      // microtask), so a switch of 13,800 hubs costs a handful of writes instead of one per hub.
      this.pendingAcks.push(record);
      this.pendingFlush ??= new Promise<void>((resolve) => queueMicrotask(() => resolve(this.flushAcks())));
      return this.pendingFlush;
    }
    return this.applyLocalSwitch(ack, region, receivedAt, record, pre).catch((err: unknown) =>
      this.log.error({ err, hub: ack.hub, region, msgId: ack.id }, 'recording a local mode switch failed'));
  }

  /**
   * Cluster mode (issue 15, cluster bus): a hub's acknowledgement another node took and stored. Kept
   * in memory only (that node wrote it and its audit entry), so this node's view shows it within the
   * bus's latency instead of at its next start. Its version may be one this node has not followed yet
   * (`follow`): the other node's ingest checked it.
   */
  applyRemoteAck(ack: ModeAck, region: string, receivedAt: number): void {
    this.keepNewest(toHubAck(ack, region, receivedAt));
  }

  private async applyLocalSwitch(ack: ModeAck, region: string, receivedAt: number, record: HubAck, pre: LocalSwitchOutcome | undefined): Promise<void> {
    const outcome = pre ?? await this.o.store.transaction(async (tx) => {
      await this.o.store.putAck(record, tx);
      return this.recordLocalSwitch(ack, region, receivedAt, tx);
    });
    if (!outcome.entry) return; // a re-sent copy: recorded already
    if (outcome.conflict) {
      this.conflictsOf(region).set(ack.hub, outcome.conflict);
      this.conflictGeneration++;
    }
    if (outcome.adopted) {
      this.adopt(outcome.adopted);
      this.log.warn({ region, hub: ack.hub, version: outcome.adopted.version, mode: ack.mode }, 'mode conflict: the hub\'s later local switch adopted');
      void this.publish(region);
    } else if (outcome.conflict) {
      this.log.warn({ region, hub: ack.hub, mode: ack.mode, coordinatorVersion: outcome.conflict.coordinator.version }, 'mode conflict: the coordinator\'s later switch stands over the hub\'s local switch');
    }
    const desired = this.desired(region);
    const want = modeForHub(desired, ack.hub);
    const verdict = verdictOf(ack.mode, want, desired.version);
    this.log.warn({ hub: ack.hub, region, mode: ack.mode, desired: want, desiredVersion: desired.version, at: new Date(ack.ts).toISOString(), historical: record.historical }, 'hub switched locally');
    const reply: CloudAck = {
      v: 1, type: 'cloud.ack', ts: this.o.now(), hub: ack.hub, ackOf: ack.id,
      detail: `local switch to ${ack.mode} recorded; ${verdict}`.slice(0, 500),
    };
    this.o.bus.acknowledge(region, reply).catch((err: unknown) => this.log.warn({ err, hub: ack.hub }, 'acknowledging a local switch failed'));
  }

  /**
   * Writes a local switch in `tx`: its audit entry first — a re-sent copy (already recorded) does
   * nothing more —, then its reconciliation against the newest stored desired state (read in the
   * same transaction, so a version adopted earlier in the same batch, or by another cloud process,
   * counts). The caller's transaction makes it all or nothing; a re-send redoes it.
   */
  private async recordLocalSwitch(ack: ModeAck, region: string, receivedAt: number, tx: Sql | undefined): Promise<LocalSwitchOutcome> {
    const desired = (await this.o.store.latest(region, tx)) ?? initialDesired(region);
    const entry = await this.o.store.appendAudit(this.localSwitchAudit(ack, region, receivedAt, desired), tx);
    if (!entry) return NOTHING_RECORDED;
    const conflict = localSwitchConflict(desired, ack, region, receivedAt);
    if (!conflict) return { entry, conflict: null, adopted: null };
    await this.o.store.putConflict(conflict, tx);
    if (conflict.winner !== 'hub') return { entry, conflict, adopted: null };
    // The later of the two is the hub's: adopted for that hub as a new version (published once committed).
    const when = (t: number) => new Date(t).toISOString();
    const sides = `hub ${ack.hub} switched locally to ${ack.mode} at ${when(ack.ts)} (hub clock) without having seen version ${desired.version}, ` +
      `${desired.by}'s switch to ${conflict.coordinator.mode} at ${when(conflict.coordinator.at)}`;
    const at = this.o.now();
    const reason = `conflict: ${sides}; the later (the hub's) is kept until a coordinator decides${ack.reason ? ` — hub staff: ${ack.reason}` : ''}`.slice(0, 500);
    const adopted = applySwitch(desired, { mode: ack.mode, hubs: [ack.hub], reason, by: `hub staff at ${ack.hub}` }, at);
    await this.o.store.appendVersion(adopted, {
      region, kind: 'switch', at, recordedAt: at, by: `hub staff at ${ack.hub}`, mode: ack.mode, hubs: [ack.hub], reason, version: adopted.version,
      desiredVersion: null, desiredMode: null, historical: false, msgId: null,
      summary: `hub ${ack.hub}'s later local switch to ${ack.mode} adopted as version ${adopted.version} (${sides}); shown as a conflict until a coordinator switches the hub`,
    }, tx);
    return { entry, conflict, adopted };
  }

  private localSwitchAudit(ack: ModeAck, region: string, receivedAt: number, desired: DesiredMode): NewAuditEntry {
    const want = modeForHub(desired, ack.hub);
    const when = new Date(ack.ts).toISOString();
    const late = ack.historical === true ? ', reported after its link returned' : '';
    return {
      region, kind: 'local_switch', at: ack.ts, recordedAt: receivedAt, by: `hub staff at ${ack.hub}`, mode: ack.mode, hubs: [ack.hub],
      reason: ack.reason ?? '', version: ack.version, desiredVersion: desired.version, desiredMode: want, historical: ack.historical === true,
      msgId: ack.id,
      summary: `hub ${ack.hub} switched locally to ${ack.mode} at ${when}${ack.reason ? `: ${ack.reason}` : ''} (${verdictOf(ack.mode, want, desired.version)}${late})`,
    };
  }

  /** Publishes the newest desired state of every switched region again (at start-up: a restarted broker has no retained messages). */
  async republish(): Promise<void> {
    for (const d of await this.o.store.allLatest()) {
      this.adopt(d);
      await this.publish(d.region);
    }
  }

  /**
   * Follows what other cloud processes on the same database do (issue 14: several processes on one
   * PostgreSQL): every `intervalMs` reads each region's newest version and the open conflicts, so
   * this process's `modeOf` (dispatch), `issuedVersion` (ingest refuses acknowledgements of versions
   * it does not know) and `view` catch up within that time; listeners hear of the hubs it changed.
   * Hubs' acknowledgements are not followed: each process shows those its own ingest took (and all of
   * them after a restart). Returns a function that stops following.
   */
  follow(intervalMs: number): () => void {
    let stopped = false;
    let timer: NodeJS.Timeout | null = null;
    const tick = async () => {
      try {
        await this.catchUp();
      } catch (err) {
        this.log.warn({ err }, 'reading other cloud processes\' mode switches failed; trying again');
      }
      if (!stopped) timer = setTimeout(() => void tick(), intervalMs).unref();
    };
    timer = setTimeout(() => void tick(), intervalMs).unref();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }

  /** One step of `follow`. */
  async catchUp(): Promise<void> {
    const generation = this.conflictGeneration;
    const [latest, conflicts] = await Promise.all([this.o.store.allLatest(), this.o.store.allConflicts()]);
    for (const d of latest) this.adopt(d);
    // A conflict set or cleared here while reading is newer than what was read: the next round takes it.
    if (generation !== this.conflictGeneration) return;
    this.conflicts.clear();
    for (const c of conflicts) this.conflictsOf(c.region).set(c.hub, c);
  }

  /** Reads the region's newest version from the store (another cloud process may have made it). */
  /**
   * The region's newest issued version after reading the store again (issue 15): for an acknowledgement
   * of a version this process has not seen — in a cluster another node's switch reaches this node's hubs
   * through the shared broker before `follow` brings it here. A read serves every caller whose message
   * was received before it started; at most one more waits behind it, so a hub sending made-up versions
   * costs one read at a time per region, not one per message.
   */
  refreshIssued(region: string, receivedAt: number): Promise<number> {
    if (!this.o.regions.has(region)) return Promise.resolve(0);
    const current = this.issuedReads.get(region);
    if (!current) return this.readIssued(region);
    if (current.startedAt >= receivedAt) return current.running;
    return (current.queued ??= current.running.catch(() => 0).then(() => this.readIssued(region)));
  }

  private readonly issuedReads = new Map<string, { startedAt: number; running: Promise<number>; queued: Promise<number> | null }>();

  private readIssued(region: string): Promise<number> {
    const state = { startedAt: this.o.now(), running: this.refresh(region).then(() => this.issuedVersion(region)), queued: null as Promise<number> | null };
    this.issuedReads.set(region, state);
    const done = () => {
      if (this.issuedReads.get(region) === state && state.queued === null) this.issuedReads.delete(region);
    };
    state.running.then(done, done);
    return state.running;
  }

  private async refresh(region: string): Promise<void> {
    const d = await this.o.store.latest(region);
    if (d) this.adopt(d);
  }

  /** Makes `d` the region's desired state here if it is newer, and tells listeners which hubs it changed. */
  private adopt(d: DesiredMode): void {
    const prev = this.desired(d.region);
    if (d.version <= prev.version) return;
    this.cache.set(d.region, d);
    const changes = modeChanges(prev, d, this.o.regions.hubIds(d.region));
    if (changes.length > 0) this.emit({ region: d.region, version: d.version, at: d.at!, by: d.by!, reason: d.reason, changes });
  }

  /** Runs `fn` after the region's earlier switches in this process. */
  private oneAtATime<T>(region: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.switching.get(region) ?? Promise.resolve()).then(fn);
    const tail = run.catch(() => undefined);
    this.switching.set(region, tail);
    void tail.then(() => {
      if (this.switching.get(region) === tail) this.switching.delete(region);
    });
    return run;
  }

  /** The newest acknowledgement of each hub of the region. */
  private acksOf(region: string): Map<string, HubAck> {
    let acks = this.acks.get(region);
    if (!acks) {
      acks = new Map();
      this.acks.set(region, acks);
    }
    return acks;
  }

  private conflictsOf(region: string): Map<string, ModeConflict> {
    let conflicts = this.conflicts.get(region);
    if (!conflicts) {
      conflicts = new Map();
      this.conflicts.set(region, conflicts);
    }
    return conflicts;
  }

  private clearConflictsInMemory(region: string, hubs: readonly string[] | null): void {
    this.conflictGeneration++;
    const conflicts = this.conflictsOf(region);
    if (hubs === null) conflicts.clear();
    else for (const h of hubs) conflicts.delete(h);
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

  /** Writes the acknowledgements `applyAck` collected (one call of the store). Never rejects. */
  private async flushAcks(): Promise<void> {
    this.pendingFlush = null;
    if (this.pendingAcks.length === 0) return;
    const batch = this.pendingAcks;
    this.pendingAcks = [];
    try {
      await this.o.store.putAcks(batch);
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
    if (!this.o.regions.has(region)) throw new ModeError('region_not_found', `no region "${region}"`);
    return this.o.regions.hubIds(region);
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

const NOTHING_RECORDED: LocalSwitchOutcome = Object.freeze({ entry: null, conflict: null, adopted: null });

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
