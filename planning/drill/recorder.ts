import type { RegionFile } from '../../contract/index.ts';
import type { ScenarioFile } from '../../contract/scenario.ts';
import { offsetS } from '../../contract/scenario.ts';
import type {
  AlarmFigures, DeliveryRow, DroneFigures, LinkSample, ModeSwitchFigures, Priority, ReliefSite, ScenarioResult, WaitingSample,
} from '../scenario-result.ts';
import type { CloudApi } from './cloud-api.ts';

/**
 * What the drill sees of the running system (issue 16, item 4), polled every few seconds through the
 * cloud API as the drill's account — the region's mode with each hub's acknowledgement, the mode
 * audit log (who switched), the accounts' audit log (what else people did), orders, alarms, drones —
 * and each hub's edge agent (link and backlog) when the demo says where they are. At the end it
 * becomes the same `ScenarioResult` planning mode produces (kind 'drill'), times in scenario seconds
 * (real seconds × time scale). Acknowledgement times of mode switches stay in real seconds: hubs
 * answer over the real network, which the time scale does not speed up.
 */
export interface RecorderOptions {
  api: CloudApi;
  scenario: ScenarioFile;
  region: RegionFile;
  timeScale: number;
  /** Real epoch ms of scenario second 0. */
  t0: number;
  /** Each hub's edge agent status URL (the demo's); null: link state from the cloud's view of the hubs. */
  edgeStatus: Record<string, string> | null;
  now?: () => number;
  log?: (line: string) => void;
}

interface OrderView {
  id: string; region: string; originHub: string; destination: { type: 'locker'; hub: string } | { type: 'site'; siteId: string };
  priority: Priority; deadline: string | null; state: string; createdAt: string; createdBy: string; updatedAt: string;
  carrier: 'drone' | 'ground' | null; waitReasons: { code: string }[] | null;
}
interface AuditEntry { id: number; kind: 'switch' | 'local_switch'; at: string; by: string; mode: 'normal' | 'emergency'; hubs: string[] | null; reason: string; version: number }
interface ModeView {
  desired: { version: number; mode: string };
  hubs: { hub: string; acknowledged: { version: number; receivedAt: string } | null }[];
}
interface AlarmView { id: string; kind: string; region: string; state: string; raisedAt: string; clearedAt: string | null }
interface ApiAudit { id: number; at: string; account: string | null; method: string; route: string | null; path: string; status: number }
interface EdgeStatus { uplink: { connected: boolean; acked: number }; outbox: { depth: number } }
interface DeviceState { device: string; kind: string; telemetry: { flightState?: string; batteryPct?: number } | null }

const DELIVERED = new Set(['delivered', 'in_locker', 'picked_up']);
const CLOSED = new Set([...DELIVERED, 'failed', 'cancelled']);
const FLYING = new Set(['armed', 'takeoff', 'mission', 'hover', 'rtl', 'landing']);
const PRIORITIES: Priority[] = ['normal', 'relief', 'medical'];
/** The audit entries read per poll (the API's maximum). */
const AUDIT_LIMIT = 1000;
const iso = (s: string | null) => (s === null ? null : Date.parse(s));

export class DrillRecorder {
  private readonly o: RecorderOptions;
  private readonly now: () => number;
  private readonly region: string;
  private started = false;
  private modeAuditBaseline = 0;
  private apiAuditBaseline = 0;
  private readonly switches = new Map<number, AuditEntry>();
  /** version → hub → real ms the cloud received its acknowledgement. */
  private readonly acks = new Map<number, Map<string, number>>();
  private readonly orders = new Map<string, OrderView>();
  /** Orders the drill created: id → scenario seconds asked, deadline in scenario seconds after. */
  private readonly drillOrders = new Map<string, { atS: number; deadlineS: number | null }>();
  /** Transition times read from each order's audit at the end: id → real ms it was delivered. */
  private readonly deliveredAt = new Map<string, number>();
  private readonly alarms = new Map<string, AlarmView>();
  private readonly activeAlarms: { atS: number; count: number }[] = [];
  private readonly waiting: WaitingSample[] = [];
  private readonly refusalsSeen = new Map<string, Set<string>>();
  private readonly links: LinkSample[] = [];
  private readonly lastLink = new Map<string, { up: boolean; backlog: number; n: number }>();
  private readonly ackedAtStart = new Map<string, number>();
  private readonly ackedNow = new Map<string, number>();
  private readonly drones = new Map<string, { hub: string; drone: string; flying: boolean; flights: number; flightS: number; landing: number[]; lastBattery: number | null }>();
  private readonly actions: ScenarioResult['coordinatorActions'] = [];
  /** People's API calls not yet placed in or out of the region. */
  private pendingPeople: { e: ApiAudit; tries: number }[] = [];
  private readonly regionById = new Map<string, string | null>();
  private readonly matchedOrders = new Set<string>();
  private readonly isolated = new Map<string, number>();
  private readonly proposals: { atS: number; source: string }[] = [];
  private lastPoll: number | null = null;
  private polls = 0;

  constructor(o: RecorderOptions) {
    this.o = o;
    this.now = o.now ?? Date.now;
    this.region = o.region.id;
  }

  atS(realMs: number): number {
    return Math.round(((realMs - this.o.t0) / 1000) * this.o.timeScale);
  }

  /** Reads where the logs stand, so that only what happens from now on is counted. */
  async start(): Promise<void> {
    const history = await this.o.api.get<{ entries: AuditEntry[] }>(`/api/v1/regions/${this.region}/mode/history?limit=1`);
    this.modeAuditBaseline = history.entries[0]?.id ?? 0;
    try {
      const audit = await this.o.api.get<{ entries: ApiAudit[] }>('/api/v1/audit?limit=1');
      this.apiAuditBaseline = audit.entries[0]?.id ?? 0;
    } catch {
      this.apiAuditBaseline = Number.POSITIVE_INFINITY; // this account may not read the audit: people's other actions are not recorded
      this.o.log?.('the drill\'s account cannot read the audit log: only mode switches are recorded as people\'s actions');
    }
    for (const h of this.o.region.hubs) for (const d of h.drones) this.drones.set(`${h.id}/${d.id}`, { hub: h.id, drone: d.id, flying: false, flights: 0, flightS: 0, landing: [], lastBattery: null });
    this.started = true;
    await this.poll();
  }

  /** The drill created this order at scenario second `atS`. */
  noteOrder(id: string, atS: number, deadlineS: number | null): void {
    this.drillOrders.set(id, { atS: Math.round(atS), deadlineS });
  }

  noteIsolation(sites: string[], state: 'isolated' | 'reachable', atS: number): void {
    for (const s of sites) if (state === 'isolated' && !this.isolated.has(s)) this.isolated.set(s, atS);
  }

  noteProposal(atS: number, source: string): void {
    this.proposals.push({ atS, source });
  }

  /** A prompt or a step the drill played on people's behalf, recorded beside their actions. */
  noteAction(atS: number, action: string, by: string, detail: string): void {
    this.actions.push({ atS, action, by, detail });
  }

  async poll(): Promise<void> {
    if (!this.started) return;
    const t = this.now();
    const dtS = this.lastPoll === null ? 0 : ((t - this.lastPoll) / 1000) * this.o.timeScale;
    this.lastPoll = t;
    this.polls++;
    const atS = this.atS(t);
    const api = this.o.api;
    const r = this.region;
    const jobs: Promise<void>[] = [
      api.get<{ entries: AuditEntry[] }>(`/api/v1/regions/${r}/mode/history?limit=100`).then((h) => {
        for (const e of h.entries) if (e.id > this.modeAuditBaseline && !this.switches.has(e.id)) this.switches.set(e.id, e);
      }),
      api.get<ModeView>(`/api/v1/regions/${r}/mode`).then((m) => {
        for (const h of m.hubs) {
          if (!h.acknowledged) continue;
          const byHub = this.acks.get(h.acknowledged.version) ?? new Map<string, number>();
          this.acks.set(h.acknowledged.version, byHub);
          if (!byHub.has(h.hub)) byHub.set(h.hub, Date.parse(h.acknowledged.receivedAt));
        }
      }),
      api.get<{ orders: OrderView[] }>('/api/v1/orders?limit=500').then((o) => {
        const open: Record<string, number> = {};
        for (const order of o.orders) {
          if (order.region !== r || Date.parse(order.createdAt) < this.o.t0) continue;
          this.orders.set(order.id, order);
          // As planning mode samples them (planning/sim/scenario-figures.ts): pending and held orders by the
          // dispatch engine's reasons, orders assigned to a ground round as waiting for it.
          if (order.state === 'assigned' && order.carrier === 'ground') {
            open.waiting_ground_round = (open.waiting_ground_round ?? 0) + 1;
            continue;
          }
          if (order.state !== 'pending' && order.state !== 'held') continue;
          const reasons = new Set((order.waitReasons ?? []).map((w) => w.code));
          for (const code of reasons) {
            const seen = this.refusalsSeen.get(code) ?? new Set<string>();
            seen.add(order.id);
            this.refusalsSeen.set(code, seen);
          }
          if (reasons.size === 0) reasons.add(order.state === 'held' ? 'held_emergency' : 'not_planned_yet');
          for (const code of reasons) open[code] = (open[code] ?? 0) + 1;
        }
        this.waiting.push({ atS, byReason: open });
      }),
      api.get<{ alarms: AlarmView[] }>(`/api/v1/alarms?region=${r}&limit=500`).then((a) => {
        let active = 0;
        for (const alarm of a.alarms) {
          if (alarm.state !== 'cleared') active++;
          if (Date.parse(alarm.raisedAt) >= this.o.t0) this.alarms.set(alarm.id, alarm);
        }
        this.activeAlarms.push({ atS, count: active });
      }),
      this.pollLinks(atS),
      this.pollDrones(dtS),
    ];
    // People's actions after the orders and alarms of this poll are known (they place an action in the region).
    const results = [...(await Promise.allSettled(jobs)), ...(await Promise.allSettled([this.pollPeople()]))];
    const failed = results.filter((x): x is PromiseRejectedResult => x.status === 'rejected');
    if (failed.length > 0) this.o.log?.(`recording: ${failed.length} of ${results.length} reads failed (${(failed[0]!.reason as Error).message})`);
  }

  private async pollPeople(): Promise<void> {
    if (!Number.isFinite(this.apiAuditBaseline)) return;
    const audit = await this.o.api.get<{ entries: ApiAudit[] }>(`/api/v1/audit?limit=${AUDIT_LIMIT}`);
    const oldest = audit.entries.at(-1);
    if (audit.entries.length >= AUDIT_LIMIT && oldest && oldest.id > this.apiAuditBaseline + 1) {
      this.o.log?.(`recording: more than ${AUDIT_LIMIT} API calls since the last read; people's actions in between are not recorded`);
    }
    for (const e of [...audit.entries].reverse()) {
      if (e.id <= this.apiAuditBaseline) continue;
      this.apiAuditBaseline = e.id;
      if (e.account === this.o.api.username || e.account === null || e.method === 'GET') continue;
      // Mode switches come with their reason from the mode audit log; sign-ins are not actions.
      if (e.route === '/api/v1/regions/:regionId/mode' || e.route?.startsWith('/api/v1/auth/')) continue;
      if (e.status >= 400) continue;
      this.pendingPeople.push({ e, tries: 0 });
    }
    // Only the scenario's region: the drill's account may see a whole deployment's calls.
    const still: typeof this.pendingPeople = [];
    for (const p of this.pendingPeople) {
      const inRegion = await this.inRegion(p.e);
      if (inRegion === true) this.actions.push({ atS: this.atS(Date.parse(p.e.at)), action: `${p.e.method} ${p.e.route ?? p.e.path}`, by: p.e.account!, detail: p.e.path });
      else if (inRegion === null && ++p.tries < 3) still.push(p);
    }
    this.pendingPeople = still;
  }

  /**
   * Whether an API call concerns the scenario's region: its path names the region or one of its hubs (as the
   * cloud scopes a coordinator's audit, cloud/accounts/account-routes.ts auditEntryVisible), an order or an
   * alarm of the region, or it created an order of the region (matched by account and time). null: not known
   * yet (an order the orders list has not shown yet), asked again at the next poll.
   */
  private async inRegion(e: ApiAudit): Promise<boolean | null> {
    if (e.route === null) return false;
    const pattern = e.route.split('/');
    const parts = e.path.split('?')[0]!.split('/');
    if (pattern.length !== parts.length) return false;
    let named = false;
    for (let i = 0; i < pattern.length; i++) {
      const p = pattern[i]!;
      if (p !== ':regionId' && p !== ':hubId' && p !== ':orderId' && p !== ':alarmId') continue;
      let value: string;
      try {
        value = decodeURIComponent(parts[i]!);
      } catch {
        return false;
      }
      const region = p === ':regionId' ? value
        : p === ':hubId' ? (this.o.region.hubs.some((h) => h.id === value) ? this.region : null)
          : await this.regionOf(p === ':orderId' ? 'orders' : 'alarms', value);
      if (region !== this.region) return false;
      named = true;
    }
    if (named) return true;
    if (e.method === 'POST' && e.route === '/api/v1/orders') {
      const at = Date.parse(e.at);
      const made = [...this.orders.values()].find((o) => o.createdBy === e.account && !this.matchedOrders.has(o.id) && Math.abs(Date.parse(o.createdAt) - at) <= 5000);
      if (!made) return null;
      this.matchedOrders.add(made.id);
      return true;
    }
    return false;
  }

  /** The region of an order or alarm, read once; null when the drill's account cannot read it. */
  private async regionOf(kind: 'orders' | 'alarms', id: string): Promise<string | null> {
    const key = `${kind}/${id}`;
    if (!this.regionById.has(key)) {
      const known = kind === 'orders' ? this.orders.get(id)?.region : this.alarms.get(id)?.region;
      const region = known ?? (await this.o.api.get<{ region: string }>(`/api/v1/${kind}/${encodeURIComponent(id)}`).then((x) => x.region, () => null));
      this.regionById.set(key, region);
    }
    return this.regionById.get(key) ?? null;
  }

  private async pollLinks(atS: number): Promise<void> {
    const sample = (hub: string, up: boolean, backlog: number) => {
      const last = this.lastLink.get(hub);
      // Every change, and every fifth poll, so the chart has a line and the JSON stays small.
      if (!last || last.up !== up || last.backlog !== backlog || last.n >= 4) {
        this.links.push({ atS, hub, up, backlog });
        this.lastLink.set(hub, { up, backlog, n: 0 });
      } else {
        last.n++;
      }
    };
    if (this.o.edgeStatus) {
      await Promise.all(Object.entries(this.o.edgeStatus).map(async ([hub, url]) => {
        try {
          const s = (await (await fetch(url, { signal: AbortSignal.timeout(5000) })).json()) as EdgeStatus;
          sample(hub, s.uplink.connected, s.outbox.depth);
          if (!this.ackedAtStart.has(hub)) this.ackedAtStart.set(hub, s.uplink.acked);
          this.ackedNow.set(hub, s.uplink.acked);
        } catch {
          // The agent did not answer: its hub is dark.
          sample(hub, false, this.lastLink.get(hub)?.backlog ?? 0);
        }
      }));
      return;
    }
    const hubs = await this.o.api.get<{ hubs: { id: string; region: string; link: { online: boolean; outboxDepth: number | null } }[] }>('/api/v1/hubs');
    for (const h of hubs.hubs) if (h.region === this.region) sample(h.id, h.link.online, h.link.outboxDepth ?? 0);
  }

  private async pollDrones(dtS: number): Promise<void> {
    const hubs = this.o.region.hubs.filter((h) => h.drones.length > 0);
    await Promise.all(hubs.map(async (h) => {
      const view = await this.o.api.get<{ deviceStates: DeviceState[] }>(`/api/v1/hubs/${h.id}`);
      for (const d of view.deviceStates) {
        const rec = this.drones.get(`${h.id}/${d.device}`);
        const st = d.telemetry?.flightState;
        if (!rec || st === undefined) continue;
        const flying = FLYING.has(st);
        if (rec.flying) rec.flightS += dtS;
        if (flying && !rec.flying) rec.flights++;
        if (!flying && rec.flying && typeof d.telemetry?.batteryPct === 'number') rec.landing.push(d.telemetry.batteryPct);
        rec.flying = flying;
        rec.lastBattery = d.telemetry?.batteryPct ?? rec.lastBattery;
      }
    }));
  }

  /**
   * The last reads: every order of the drill again (the list shows the newest 500 only), with its
   * audit for the time it was delivered.
   */
  async finish(): Promise<void> {
    await this.poll();
    const ids = [...new Set([...this.orders.keys(), ...this.drillOrders.keys()])];
    for (let i = 0; i < ids.length; i += 8) {
      await Promise.all(ids.slice(i, i + 8).map(async (id) => {
        try {
          const o = await this.o.api.get<OrderView & { audit: { at: string; to: string }[] }>(`/api/v1/orders/${id}`);
          const { audit, ...order } = o;
          this.orders.set(id, order);
          const first = audit.find((a) => DELIVERED.has(a.to));
          if (first) this.deliveredAt.set(id, Date.parse(first.at));
        } catch {
          // As read at the last poll.
        }
      }));
    }
  }

  result(run: { wallMs: number }): ScenarioResult {
    const { scenario, region, timeScale } = this.o;
    const scaled = (ms: number) => Math.round((ms / 1000) * timeScale);
    const orders = [...this.orders.values()];
    const deliveredAtMs = (o: OrderView) => (DELIVERED.has(o.state) ? (this.deliveredAt.get(o.id) ?? Date.parse(o.updatedAt)) : null);
    const onTime = (o: OrderView) => {
      const at = deliveredAtMs(o);
      if (at === null) return false;
      const mine = this.drillOrders.get(o.id);
      if (mine?.deadlineS != null) return this.atS(at) - mine.atS <= mine.deadlineS;
      const deadline = iso(o.deadline);
      return deadline === null || at <= deadline;
    };
    const quantile = (xs: number[], q: number) => (xs.length === 0 ? null : [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(q * xs.length) - 1)]!);

    const deliveries: DeliveryRow[] = PRIORITIES.map((priority) => {
      const mine = orders.filter((o) => o.priority === priority);
      const leads = mine.map((o) => ({ o, at: deliveredAtMs(o) })).filter((x) => x.at !== null).map((x) => scaled(x.at! - Date.parse(x.o.createdAt)));
      return {
        priority,
        requested: mine.length,
        delivered: mine.filter((o) => DELIVERED.has(o.state)).length,
        onTime: mine.filter(onTime).length,
        failed: mine.filter((o) => o.state === 'failed').length,
        cancelled: mine.filter((o) => o.state === 'cancelled').length,
        open: mine.filter((o) => !CLOSED.has(o.state)).length,
        byGround: mine.filter((o) => DELIVERED.has(o.state) && o.carrier === 'ground').length,
        leadTimeS: { p50: quantile(leads, 0.5), p90: quantile(leads, 0.9), max: leads.length === 0 ? null : Math.max(...leads) },
      };
    });

    // Relief: every site the scenario asks from or cuts off, and any site people sent relief to.
    const siteIds = new Set<string>(this.isolated.keys());
    for (const e of scenario.events) if (e.type === 'demand' && e.sites) for (const s of e.sites) siteIds.add(s);
    for (const o of orders) if (o.destination.type === 'site') siteIds.add(o.destination.siteId);
    const relief: ReliefSite[] = [...siteIds].flatMap((id) => {
      const site = region.landingSites.find((s) => s.id === id);
      if (!site || (site.kind !== 'shelter' && site.kind !== 'isolated-settlement')) return [];
      const toSite = orders.filter((o) => o.destination.type === 'site' && o.destination.siteId === id);
      const asked = toSite.map((o) => this.drillOrders.get(o.id)?.atS ?? this.atS(Date.parse(o.createdAt)));
      const got = toSite.map(deliveredAtMs).filter((x): x is number => x !== null).map((ms) => this.atS(ms));
      const firstRequestAtS = asked.length === 0 ? null : Math.min(...asked);
      const firstReliefAtS = got.length === 0 ? null : Math.min(...got);
      return [{
        site: id, kind: site.kind, name: site.name, isolatedAtS: this.isolated.get(id) ?? null, firstRequestAtS, firstReliefAtS,
        timeToFirstReliefS: firstRequestAtS === null || firstReliefAtS === null ? null : firstReliefAtS - firstRequestAtS,
        requests: toSite.length, delivered: got.length,
      }];
    });

    const drones: DroneFigures[] = [...this.drones.values()].map((d) => ({
      hub: d.hub, drone: d.drone, flights: d.flights, flightS: Math.round(d.flightS),
      utilisation: Math.min(1, d.flightS / Math.max(1, this.atS(this.lastPoll ?? this.o.t0))),
      landingBatteryPct: d.landing, minLandingBatteryPct: d.landing.length === 0 ? null : Math.min(...d.landing),
    }));

    const byKind = new Map<string, { kind: string; raised: number; cleared: number }>();
    for (const a of this.alarms.values()) {
      const k = byKind.get(a.kind) ?? { kind: a.kind, raised: 0, cleared: 0 };
      k.raised++;
      if (a.clearedAt !== null) k.cleared++;
      byKind.set(a.kind, k);
    }
    const alarms: AlarmFigures = { byKind: [...byKind.values()].sort((a, b) => a.kind.localeCompare(b.kind)), active: this.activeAlarms };

    const allHubs = region.hubs.length;
    const switches = [...this.switches.values()].sort((a, b) => a.id - b.id);
    const modes: ModeSwitchFigures[] = switches.filter((e) => e.kind === 'switch').map((e) => {
      const at = Date.parse(e.at);
      const acks = this.acks.get(e.version) ?? new Map<string, number>();
      const hubs = e.hubs ?? region.hubs.map((h) => h.id);
      const times = hubs.map((h) => acks.get(h)).filter((x): x is number => x !== undefined).map((ms) => Math.max(0, (ms - at) / 1000));
      const proposed = this.proposals.some((p) => p.atS <= this.atS(at));
      const cause = e.by === this.o.api.username ? 'scenario' : e.mode === 'emergency' && proposed ? 'proposal (jma) → person' : 'person';
      return {
        atS: this.atS(at), mode: e.mode, by: e.by, cause, hubs: e.hubs?.length ?? allHubs, acknowledged: times.length,
        ackS: { p50: quantile(times, 0.5), max: times.length === 0 ? null : Math.max(...times) },
      };
    });
    const people = switches.map((e) => ({
      atS: this.atS(Date.parse(e.at)),
      action: e.kind === 'switch' ? `switch to ${e.mode}` : `local switch to ${e.mode} at the hub`,
      by: e.by,
      detail: `${e.hubs === null ? 'whole region' : e.hubs.join(', ')}: ${e.reason} (version ${e.version})`,
    }));

    const fleet: Record<string, number> = {};
    for (const h of region.hubs) if (h.drones.length > 0) fleet[h.id] = h.drones.length;
    let deviceMessages = 0;
    for (const [hub, n] of this.ackedNow) deviceMessages += n - (this.ackedAtStart.get(hub) ?? n);

    return {
      v: 1,
      kind: 'drill',
      scenario: {
        id: scenario.id, name: scenario.name, region: { id: region.id, name: region.name }, startIso: scenario.start,
        durationS: offsetS(scenario.duration), seed: scenario.seed, fleet,
      },
      // Dispatch rounds are the cloud's own in a drill, not observed: 0.
      run: { wallMs: run.wallMs, timeScale, deviceMessages, decisionRounds: 0 },
      relief,
      deliveries,
      waiting: this.waiting,
      drones,
      refusals: [...this.refusalsSeen].map(([reason, ids]) => ({ reason, count: ids.size })).sort((a, b) => b.count - a.count),
      alarms,
      links: this.links,
      modes,
      coordinatorActions: [...people, ...this.actions].sort((a, b) => a.atS - b.atS),
    };
  }
}
