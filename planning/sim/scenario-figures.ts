import type { RegionFile } from '../../contract/index.ts';
import type { AlarmChange } from '../../cloud/alarms/alarm-service.ts';
import type { Order } from '../../cloud/orders/order-store.ts';
import type { DeviceOutput } from '../../simulators/devices/hub-devices.ts';
import type { AlarmFigures, DeliveryRow, DroneFigures, LinkSample, ModeSwitchFigures, Priority, ReliefSite, WaitingSample } from '../scenario-result.ts';

/**
 * The figures of a planning run (planning/scenario-result.ts), taken from what the production services
 * and the simulated devices do: orders as the order store records them, refusals as the dispatch
 * engine's reasons stored on the orders, alarms as the alarm service announces them, flights and
 * landing batteries as the drones report them. Times are seconds from the scenario's start.
 */
interface OrderTrack {
  priority: Priority;
  createdAt: number;
  deadline: number | null;
  site: string | null;
  state: Order['state'];
  carrier: Order['carrier'];
  deliveredAt: number | null;
}

interface SwitchTrack {
  atMs: number;
  mode: 'normal' | 'emergency';
  by: string;
  cause: string;
  version: number;
  hubs: Set<string>;
  acks: Map<string, number>;
}

const DELIVERED_STATES = new Set(['in_locker', 'delivered', 'picked_up']);
const TERMINAL = new Set(['delivered', 'picked_up', 'failed', 'cancelled', 'in_locker']);

export class ScenarioFigures {
  readonly orders = new Map<string, OrderTrack>();
  private readonly refused = new Set<string>();
  private readonly refusalCounts = new Map<string, number>();
  readonly waiting: WaitingSample[] = [];
  readonly links: LinkSample[] = [];
  private readonly alarmKinds = new Map<string, { raised: number; cleared: number }>();
  private readonly activeAlarms = new Set<string>();
  readonly alarmActive: AlarmFigures['active'] = [];
  private readonly switches: SwitchTrack[] = [];
  private readonly drones = new Map<string, { hub: string; drone: string; flights: number; flightS: number; takeoffAt: number | null; landing: number[] }>();
  private readonly isolatedAt = new Map<string, number>();
  deviceMessages = 0;
  decisionRounds = 0;

  constructor(private readonly startMs: number) {}

  s(ms: number): number {
    return Math.round((ms - this.startMs) / 1000);
  }

  /** Orders still open (not delivered, failed or cancelled). */
  get openOrders(): number {
    let n = 0;
    for (const o of this.orders.values()) if (!TERMINAL.has(o.state)) n++;
    return n;
  }

  onOrder(o: Order, at: number, fields?: Partial<Order>): void {
    let t = this.orders.get(o.id);
    if (!t) {
      t = {
        priority: o.priority, createdAt: o.createdAt, deadline: o.deadline, site: o.destination.type === 'site' ? o.destination.siteId : null,
        state: o.state, carrier: o.carrier, deliveredAt: null,
      };
      this.orders.set(o.id, t);
    }
    t.state = o.state;
    if (o.carrier) t.carrier = o.carrier;
    if (DELIVERED_STATES.has(o.state) && t.deliveredAt === null) t.deliveredAt = at;
    const reasons = fields?.waitReasons ?? (o.state === 'pending' || o.state === 'held' ? o.waitReasons : null);
    for (const r of reasons ?? []) {
      const key = `${o.id}\u0000${r.code}`;
      if (this.refused.has(key)) continue;
      this.refused.add(key);
      this.refusalCounts.set(r.code, (this.refusalCounts.get(r.code) ?? 0) + 1);
    }
  }

  /**
   * Orders waiting at `at`, by why: pending and held orders by the dispatch engine's reasons stored on
   * them (an order counts under each of its reasons), and orders on a ground round not yet loaded as
   * `waiting_ground_round`. Pass the orders in those states (others are ignored).
   */
  sampleWaiting(at: number, orders: Order[]): void {
    const byReason: Record<string, number> = {};
    for (const o of orders) {
      if (o.state === 'assigned' && o.carrier === 'ground') {
        byReason.waiting_ground_round = (byReason.waiting_ground_round ?? 0) + 1;
        continue;
      }
      if (o.state !== 'pending' && o.state !== 'held') continue;
      const codes = new Set<string>((o.waitReasons ?? []).map((r) => r.code));
      if (codes.size === 0) codes.add(o.state === 'held' ? 'held_emergency' : 'not_planned_yet');
      for (const c of codes) byReason[c] = (byReason[c] ?? 0) + 1;
    }
    this.waiting.push({ atS: this.s(at), byReason: Object.fromEntries(Object.entries(byReason).sort(([a], [b]) => (a < b ? -1 : 1))) });
  }

  sampleLink(at: number, hub: string, up: boolean, backlog: number): void {
    this.links.push({ atS: this.s(at), hub, up, backlog });
  }

  onAlarm(c: AlarmChange, at: number): void {
    const k = this.alarmKinds.get(c.alarm.kind) ?? { raised: 0, cleared: 0 };
    this.alarmKinds.set(c.alarm.kind, k);
    if (c.type === 'raised') {
      k.raised++;
      this.activeAlarms.add(c.alarm.id);
    } else if (c.type === 'cleared') {
      k.cleared++;
      this.activeAlarms.delete(c.alarm.id);
    } else {
      return;
    }
    this.sampleAlarms(at);
  }

  sampleAlarms(at: number): void {
    const atS = this.s(at);
    const last = this.alarmActive.at(-1);
    if (last && last.atS === atS) last.count = this.activeAlarms.size;
    else this.alarmActive.push({ atS, count: this.activeAlarms.size });
  }

  onSwitch(at: number, s: { mode: 'normal' | 'emergency'; by: string; cause: string; version: number; hubs: string[] }): void {
    this.switches.push({ atMs: at, mode: s.mode, by: s.by, cause: s.cause, version: s.version, hubs: new Set(s.hubs), acks: new Map() });
  }

  onModeAck(hub: string, version: number, at: number): void {
    for (const s of this.switches) {
      if (s.version <= version && s.hubs.has(hub) && !s.acks.has(hub)) s.acks.set(hub, (at - s.atMs) / 1000);
    }
  }

  onIsolation(site: string, at: number): void {
    if (!this.isolatedAt.has(site)) this.isolatedAt.set(site, at);
  }

  addDrone(hub: string, drone: string): void {
    this.drones.set(`${hub}/${drone}`, { hub, drone, flights: 0, flightS: 0, takeoffAt: null, landing: [] });
  }

  onDeviceOutput(o: DeviceOutput, at: number, batteryPct: () => number): void {
    if (o.kind !== 'drone' || o.message.type !== 'drone.event') return;
    const d = this.drones.get(`${o.message.hub}/${o.device}`);
    if (!d) return;
    if (o.message.event === 'takeoff') {
      d.flights++;
      d.takeoffAt = at;
    } else if (o.message.event === 'landed') {
      if (d.takeoffAt !== null) d.flightS += (at - d.takeoffAt) / 1000;
      d.takeoffAt = null;
      d.landing.push(Math.round(batteryPct() * 10) / 10);
    }
  }

  deliveries(): DeliveryRow[] {
    const rows: DeliveryRow[] = [];
    for (const priority of ['normal', 'relief', 'medical'] as const) {
      const os = [...this.orders.values()].filter((o) => o.priority === priority);
      const lead = os.filter((o) => o.deliveredAt !== null).map((o) => (o.deliveredAt! - o.createdAt) / 1000).sort((a, b) => a - b);
      rows.push({
        priority,
        requested: os.length,
        delivered: lead.length,
        onTime: os.filter((o) => o.deliveredAt !== null && (o.deadline === null || o.deliveredAt <= o.deadline)).length,
        failed: os.filter((o) => o.state === 'failed').length,
        cancelled: os.filter((o) => o.state === 'cancelled').length,
        open: os.filter((o) => !TERMINAL.has(o.state)).length,
        byGround: os.filter((o) => o.deliveredAt !== null && o.carrier === 'ground').length,
        leadTimeS: { p50: quantile(lead, 0.5), p90: quantile(lead, 0.9), max: lead.length ? Math.round(lead.at(-1)!) : null },
      });
    }
    return rows;
  }

  relief(region: RegionFile, askingSites: ReadonlySet<string>): ReliefSite[] {
    const sites = region.landingSites.filter((s) => askingSites.has(s.id) || this.isolatedAt.has(s.id));
    return sites.map((site) => {
      const os = [...this.orders.values()].filter((o) => o.site === site.id && o.priority !== 'normal');
      const firstRequest = os.length ? Math.min(...os.map((o) => o.createdAt)) : null;
      const deliveredAt = os.filter((o) => o.deliveredAt !== null).map((o) => o.deliveredAt!);
      const firstRelief = deliveredAt.length ? Math.min(...deliveredAt) : null;
      const isolated = this.isolatedAt.get(site.id);
      return {
        site: site.id,
        kind: site.kind === 'isolated-settlement' || isolated !== undefined ? 'isolated-settlement' : 'shelter',
        name: site.name,
        isolatedAtS: isolated === undefined ? null : this.s(isolated),
        firstRequestAtS: firstRequest === null ? null : this.s(firstRequest),
        firstReliefAtS: firstRelief === null ? null : this.s(firstRelief),
        timeToFirstReliefS: firstRequest !== null && firstRelief !== null ? Math.round((firstRelief - firstRequest) / 1000) : null,
        requests: os.length,
        delivered: deliveredAt.length,
      };
    });
  }

  refusals(): { reason: string; count: number }[] {
    return [...this.refusalCounts].map(([reason, count]) => ({ reason, count })).sort((a, b) => b.count - a.count || (a.reason < b.reason ? -1 : 1));
  }

  alarms(): AlarmFigures {
    return {
      byKind: [...this.alarmKinds].map(([kind, k]) => ({ kind, ...k })).sort((a, b) => (a.kind < b.kind ? -1 : 1)),
      active: this.alarmActive,
    };
  }

  modes(): ModeSwitchFigures[] {
    return this.switches.map((s) => {
      const acks = [...s.acks.values()].sort((a, b) => a - b);
      return {
        atS: this.s(s.atMs), mode: s.mode, by: s.by, cause: s.cause, hubs: s.hubs.size, acknowledged: acks.length,
        ackS: { p50: quantile(acks, 0.5), max: acks.length ? round1(acks.at(-1)!) : null },
      };
    });
  }

  droneFigures(durationS: number): DroneFigures[] {
    return [...this.drones.values()].map((d) => ({
      hub: d.hub, drone: d.drone, flights: d.flights, flightS: Math.round(d.flightS),
      utilisation: durationS > 0 ? Math.round((d.flightS / durationS) * 10_000) / 10_000 : 0,
      landingBatteryPct: d.landing,
      minLandingBatteryPct: d.landing.length ? Math.min(...d.landing) : null,
    }));
  }
}

function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return round1(sorted[i]!);
}

const round1 = (x: number): number => Math.round(x * 10) / 10;
