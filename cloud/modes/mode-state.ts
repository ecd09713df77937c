import type { Mode, ModeAck, RegionMode } from '../../contract/index.ts';

/**
 * Disaster mode (issue 4), the pure part: how a coordinator's switch turns the region's desired
 * state into the next version, which mode that gives each hub, and how a hub's acknowledgements
 * compare with it. No I/O and no clock: `now` is passed in.
 *
 * The desired state of a region is versioned. Version 0 is the implicit start — every hub normal,
 * nothing published — which is also where an edge agent starts (see edge/edge-state.ts), so a hub
 * that never reported is assumed to be there.
 */
export interface DesiredMode {
  region: string;
  /** 0: nothing switched yet (implicit, never published). */
  version: number;
  /** Mode of every hub without an override. */
  mode: Mode;
  /** Per-hub overrides; only hubs whose mode differs from `mode`. */
  hubs: Record<string, Mode>;
  reason: string;
  /** Who made the switch that produced this version (null for version 0). */
  by: string | null;
  /** Cloud time of that switch, epoch ms (null for version 0). */
  at: number | null;
}

/** A coordinator's request: the whole region (`hubs` omitted) or some of its hubs. */
export interface SwitchRequest {
  mode: Mode;
  hubs?: readonly string[];
  reason: string;
  by: string;
}

export interface HubModeChange {
  hub: string;
  from: Mode;
  to: Mode;
}

export function initialDesired(region: string): DesiredMode {
  return { region, version: 0, mode: 'normal', hubs: {}, reason: '', by: null, at: null };
}

/** The mode the desired state gives a hub. */
export function modeForHub(d: Pick<DesiredMode, 'mode' | 'hubs'>, hub: string): Mode {
  return d.hubs[hub] ?? d.mode;
}

/**
 * The next version after a switch. Switching the region sets its mode and clears every override;
 * switching a list of hubs keeps the region mode and the other overrides and sets these hubs'.
 * An override equal to the region mode says nothing and is dropped, so `hubs` lists exactly the
 * hubs that differ.
 */
export function applySwitch(prev: DesiredMode, req: SwitchRequest, at: number): DesiredMode {
  let mode = prev.mode;
  let hubs: Record<string, Mode>;
  if (req.hubs === undefined) {
    mode = req.mode;
    hubs = {};
  } else {
    hubs = { ...prev.hubs };
    for (const h of req.hubs) hubs[h] = req.mode;
  }
  for (const [h, m] of Object.entries(hubs)) if (m === mode) delete hubs[h];
  return { region: prev.region, version: prev.version + 1, mode, hubs: sortKeys(hubs), reason: req.reason, by: req.by, at };
}

/** Hubs (of `hubIds`) whose mode differs between two desired states. */
export function modeChanges(prev: DesiredMode, next: DesiredMode, hubIds: readonly string[]): HubModeChange[] {
  const changes: HubModeChange[] = [];
  for (const hub of hubIds) {
    const from = modeForHub(prev, hub);
    const to = modeForHub(next, hub);
    if (from !== to) changes.push({ hub, from, to });
  }
  return changes;
}

/** The retained MQTT message for a desired state (version ≥ 1). */
export function toRegionMode(d: DesiredMode): RegionMode {
  if (d.version < 1 || d.at === null) throw new Error(`version ${d.version} of ${d.region} is implicit and never published`);
  return { v: 1, type: 'region.mode', region: d.region, version: d.version, ts: d.at, mode: d.mode, hubs: d.hubs, reason: d.reason };
}

/** What the cloud keeps of a hub's acknowledgement (`hub.mode-ack`). */
export interface HubAck {
  hub: string;
  region: string;
  /** Version of the region mode the hub's state is based on. */
  version: number;
  mode: Mode;
  source: ModeAck['source'];
  reason: string | null;
  /** Hub clock, epoch ms: when the hub applied or switched. */
  ts: number;
  /** Cloud clock, epoch ms. */
  receivedAt: number;
  msgId: string;
  historical: boolean;
}

/**
 * Whether `candidate` describes a later state of the hub than `current`. An agent's version never
 * goes down, and a local switch keeps the version, so the order is version first, then the hub's
 * timestamp: a replayed local switch made before the hub applied a newer version loses even if the
 * hub's clock jumped, and a local switch made after it (same version, later) wins.
 */
export function isNewerAck(candidate: Pick<HubAck, 'version' | 'ts'>, current: Pick<HubAck, 'version' | 'ts'> | null): boolean {
  if (!current) return true;
  if (candidate.version !== current.version) return candidate.version > current.version;
  return candidate.ts > current.ts;
}

/**
 * A hub's local switch and a coordinator's switch that did not see each other (the hub was cut off)
 * and disagree about the hub's mode (issue 12, defect 10). The later one in wall-clock time (hub
 * clock for the local switch, cloud clock for the coordinator's) wins; the conflict stays visible
 * to coordinators until one of them switches that hub (or the region) again.
 */
export interface ModeConflict {
  hub: string;
  region: string;
  /** Which side's mode the hub is in now. */
  winner: 'hub' | 'coordinator';
  /** The hub's local switch (hub clock). */
  local: { mode: Mode; at: number; reason: string; version: number; msgId: string };
  /** The coordinator's switch the hub had not seen when it switched (cloud clock). */
  coordinator: { version: number; mode: Mode; at: number; by: string; reason: string };
  /** Cloud clock when the cloud found the conflict (the local switch reached it). */
  detectedAt: number;
}

/**
 * Whether a local switch conflicts with the desired state it was not based on, and who wins. Null
 * when there is no conflict: the hub had seen the current version (a deliberate local override,
 * `diverged`), or both give the hub the same mode.
 */
export function localSwitchConflict(desired: DesiredMode, ack: Pick<ModeAck, 'hub' | 'version' | 'mode' | 'ts' | 'reason' | 'id'>, region: string, detectedAt: number): ModeConflict | null {
  if (ack.version >= desired.version || desired.at === null || desired.by === null) return null;
  const want = modeForHub(desired, ack.hub);
  if (want === ack.mode) return null;
  return {
    hub: ack.hub, region, winner: ack.ts > desired.at ? 'hub' : 'coordinator',
    local: { mode: ack.mode, at: ack.ts, reason: ack.reason ?? '', version: ack.version, msgId: ack.id },
    coordinator: { version: desired.version, mode: want, at: desired.at, by: desired.by, reason: desired.reason },
    detectedAt,
  };
}

export const ACK_STATUSES = ['acknowledged', 'pending', 'timed_out', 'diverged', 'conflict'] as const;
export type AckStatus = (typeof ACK_STATUSES)[number];

/**
 * A hub's standing against the desired state, from its newest acknowledgement (see `isNewerAck`):
 *
 * - `diverged`: the hub reports a local switch to a mode other than the one the desired state gives
 *   it (or a current version in another mode, which only a cloud that lost its state would see).
 *   Staff switched it locally, e.g. while it was cut off. The desired state stays
 *   authoritative; nothing is published automatically (see README, "Disaster mode").
 * - `acknowledged`: it applied the current version (or a later local switch to the same mode).
 * - `pending`: it has not reported the current version yet; `timed_out` once `timeoutMs` has passed
 *   since the switch. A hub that never reported is taken to be where every agent starts (version 0,
 *   normal), so nothing is pending before the first switch.
 */
export function ackStatus(desired: DesiredMode, hub: string, ack: Pick<HubAck, 'version' | 'mode' | 'source'> | null, now: number, timeoutMs: number): AckStatus {
  const want = modeForHub(desired, hub);
  const reported = ack ?? { version: 0, mode: 'normal' as Mode, source: 'cloud' as const };
  const current = reported.version >= desired.version;
  // A hub still on an older cloud version is simply behind (it applies the newer one when it gets it).
  if (reported.mode !== want && (reported.source === 'local' || current)) return 'diverged';
  if (current) return 'acknowledged';
  return desired.at !== null && now - desired.at >= timeoutMs ? 'timed_out' : 'pending';
}

export interface HubModeView {
  hub: string;
  desired: Mode;
  acknowledged: HubAck | null;
  /** `conflict` while `conflict` is set (it takes precedence over the acknowledgement status). */
  status: AckStatus;
  conflict: ModeConflict | null;
}

export interface RegionModeView {
  desired: DesiredMode;
  hubs: HubModeView[];
  counts: { total: number; acknowledged: number; pending: number; timedOut: number; diverged: number; conflict: number };
  /** Cloud time the most recent of the hubs that confirmed the current version confirmed it; null if none has. */
  lastAcknowledgedAt: number | null;
  allAcknowledged: boolean;
}

/** Per-hub acknowledgement of the desired state, with counts. */
export function regionModeView(desired: DesiredMode, hubIds: readonly string[], acks: ReadonlyMap<string, HubAck>, now: number, timeoutMs: number,
  conflicts: ReadonlyMap<string, ModeConflict> = new Map()): RegionModeView {
  const hubs = hubIds.map((hub): HubModeView => {
    const ack = acks.get(hub) ?? null;
    const conflict = conflicts.get(hub) ?? null;
    return { hub, desired: modeForHub(desired, hub), acknowledged: ack, status: conflict ? 'conflict' : ackStatus(desired, hub, ack, now, timeoutMs), conflict };
  });
  const count = (s: AckStatus) => hubs.filter((h) => h.status === s).length;
  let lastAcknowledgedAt: number | null = null;
  for (const h of hubs) {
    // Only acknowledgements of this version count as confirmations (before the first switch there is nothing to confirm).
    if (h.status === 'acknowledged' && h.acknowledged && desired.version > 0 && h.acknowledged.version >= desired.version) {
      lastAcknowledgedAt = Math.max(lastAcknowledgedAt ?? 0, h.acknowledged.receivedAt);
    }
  }
  const counts = {
    total: hubs.length, acknowledged: count('acknowledged'), pending: count('pending'), timedOut: count('timed_out'), diverged: count('diverged'), conflict: count('conflict'),
  };
  return { desired, hubs, counts, lastAcknowledgedAt, allAcknowledged: counts.acknowledged === counts.total };
}

function sortKeys<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** A coordinator's switch as the audit log keeps it (the fields `hubSwitches` reads). */
export interface SwitchRecord {
  kind: 'switch' | 'local_switch';
  at: number;
  by: string;
  mode: Mode;
  /** Hubs switched; null = the whole region. */
  hubs: readonly string[] | null;
  reason: string;
  version: number;
}

/**
 * Since when a hub has been in the mode the desired state gives it, and why — what its staff read
 * (issue 13, item 3). The region's `reason` and `at` belong to the newest switch, which may have been
 * for other hubs; this looks at the switches that named this hub (or the whole region).
 */
export interface HubSwitch {
  mode: Mode;
  /** When a coordinator's switch put the hub in `mode` (a later switch to the same mode keeps it). */
  since: number;
  /** The newest switch that named the hub: its reason, who and which version (a coordinator may restate why). */
  reason: string;
  by: string;
  version: number;
  /** The mode before `since`. */
  previous: Mode;
}

/**
 * Each hub's `HubSwitch` from the coordinators' switches, newest first (local switches are the hub's
 * own and show in the acknowledgement). A hub no switch ever named is left out (normal from the start).
 * `complete` says whether `newestFirst` reaches back to the first switch: when it does not, a hub
 * whose run of its mode starts before the oldest entry given is left out too (the caller reads more).
 */
export function hubSwitches(newestFirst: readonly SwitchRecord[], hubIds: readonly string[], complete = true): Map<string, HubSwitch> {
  const found = new Map<string, HubSwitch>();
  const settled = new Set<string>();
  // A set: `includes` on the id list made one switch of 13,800 hubs cost ~0.3 s of CPU per entry read.
  const inRegion = new Set(hubIds);
  for (const e of newestFirst) {
    if (e.kind !== 'switch') continue;
    for (const hub of e.hubs ?? hubIds) {
      if (settled.has(hub) || !inRegion.has(hub)) continue;
      const seen = found.get(hub);
      if (!seen) found.set(hub, { mode: e.mode, since: e.at, reason: e.reason, by: e.by, version: e.version, previous: 'normal' });
      else if (e.mode === seen.mode) seen.since = e.at;
      else {
        seen.previous = e.mode;
        settled.add(hub);
      }
    }
    if (settled.size === inRegion.size) break;
  }
  if (!complete) for (const hub of found.keys()) if (!settled.has(hub)) found.delete(hub);
  return found;
}
