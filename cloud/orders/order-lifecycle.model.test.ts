import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SQL_DATABASES, type SqlDatabaseKind } from '../../test/support/test-database.ts';
import type { Command } from '../../contract/index.ts';
import { isProvisionalFailure } from '../commands/command-service.ts';
import { FINAL_STATES } from './order-lifecycle.ts';
import type { Order } from './order-store.ts';
import { DEST, ORIGIN, OrderTestRig, T0 } from './order-test-rig.ts';

/**
 * Model-based tests of the order and command lifecycles (issue 12): fast-check runs random sequences
 * of what the world does — orders created and cancelled, planning rounds (some with the locker.reserve
 * publish held), devices that run commands and answer at once, late or never, the hub agent's
 * timeout, drones that fly, land and come home, pickups, time passing, and restarts of the cloud's
 * service objects — against the REAL order and command services and the order store (temp SQLite and,
 * issue 14, PostgreSQL; fake clock and command bus), checking after every step:
 *  - no order has two missions in the air;
 *  - no compartment is held by two orders;
 *  - a cancelled order never flies (no mission sent after the cancel, none flying after it);
 * and at the end, once the inputs stop (drones at home, nothing answers), that every order reaches
 * a final state (or waits in a locker for its resident, which only a pickup ends).
 * `npm test` runs a fixed seed; MODEL_RUNS=2000 (and MODEL_SEED) run longer; MODEL_RUNS_PG sets the
 * PostgreSQL runs.
 */
const RUNS = Number(process.env.MODEL_RUNS ?? 25);
const RUNS_PG = Number(process.env.MODEL_RUNS_PG ?? 25);
const SEED = Number(process.env.MODEL_SEED ?? 3); // a seed whose 25 runs catch defects 4 and 5 of issue 12 on the old code
const TIMEOUT = 'the device did not answer within 10 s'; // the hub agent's own failure (edge/agent.ts)
const HOME = { lat: 36.376, lon: 136.48 };
const THERE = { lat: 36.4165, lon: 136.487 };

interface Drone { flying: string | null; at: 'home' | 'there' }

class World {
  private constructor(readonly rig: OrderTestRig) {}
  static async open(kind: SqlDatabaseKind): Promise<World> {
    return new World(await OrderTestRig.open(kind));
  }

  drones = new Map<string, Drone>(['drone-1', 'drone-2', 'drone-3', 'drone-4'].map((d) => [d, { flying: null, at: 'home' }]));
  /** Commands the devices have run (by id), and late answers not yet delivered. */
  ran = new Set<string>();
  lateAnswers: string[] = [];
  orders: string[] = [];
  /** order → number of commands sent when its cancel was asked for and when it had been done. */
  cancelledAt = new Map<string, { asked: number; done: number }>();
  codes = new Map<string, string>();
  background: Promise<void>[] = [];
  violations: string[] = [];
  flown = 0;
  /** Missions whose drone came home with the parcel (called home): never a delivery. */
  returned = new Set<string>();

  missionOrder(c: Command): string | null {
    const m = (c.args as { missionId?: string }).missionId;
    return m ? (this.orders.find((o) => m.startsWith(`m-${o.slice(4)}-`)) ?? null) : null;
  }

  pick<T>(xs: T[], k: number): T | undefined {
    return xs.length === 0 ? undefined : xs[k % xs.length];
  }

  telemetry(id: string): void {
    const d = this.drones.get(id)!;
    const p = d.at === 'home' ? HOME : THERE;
    this.rig.droneAt(ORIGIN, id, d.flying ? { ...p, altM: 60, flightState: 'mission', missionId: d.flying } : { ...p, flightState: d.at === 'home' ? 'idle' : 'landed', missionId: null });
  }

  /** Commands a device may run next: each device's oldest one not yet run (QoS 1 keeps a topic's order). */
  runnable(): Command[] {
    const next = new Map<string, Command>();
    for (const { command } of this.rig.sent) if (!this.ran.has(command.id) && !next.has(`${command.hub}/${command.device}`)) next.set(`${command.hub}/${command.device}`, command);
    return [...next.values()];
  }

  /** A device runs a command it received (drones: fly the mission if idle, come home on abort). */
  run(c: Command): 'done' | 'rejected' | 'expired' {
    this.ran.add(c.id);
    if (c.expiresAt < this.rig.now) return 'expired'; // the hub agent refuses it (edge/agent.ts)
    const d = this.drones.get(c.device);
    if (c.hub !== ORIGIN || !d) return 'done';
    if (c.command === 'drone.mission') {
      if (d.flying || d.at !== 'home') return 'rejected';
      d.flying = (c.args as { missionId: string }).missionId;
      this.flown++;
    } else if (c.command === 'drone.abort' || c.command === 'drone.rtl') {
      d.flying = null;
      d.at = 'home';
    }
    this.telemetry(c.device);
    return 'done';
  }

  async check(): Promise<void> {
    const store = this.rig.store;
    // No order has two missions in the air.
    const inAir = new Map<string, number>();
    for (const d of this.drones.values()) {
      if (!d.flying) continue;
      const o = this.orders.find((x) => d.flying!.startsWith(`m-${x.slice(4)}-`));
      if (o) inAir.set(o, (inAir.get(o) ?? 0) + 1);
    }
    for (const [o, n] of inAir) if (n > 1) this.violations.push(`order ${o} has ${n} missions in the air`);
    // No compartment is held by two orders.
    const held = new Map<string, string>();
    for (const o of await store.inStates(['assigned', 'mission_unknown', 'in_flight', 'in_locker'])) {
      if (!o.compartmentId) continue;
      const key = `${o.lockerId}/${o.compartmentId}`;
      if (held.has(key)) this.violations.push(`compartment ${key} held by ${held.get(key)} and ${o.id}`);
      held.set(key, o.id);
    }
    // A mission whose drone came home with the parcel is never recorded as delivered.
    for (const o of await store.inStates(['in_locker', 'picked_up'])) {
      if (o.missionId && this.returned.has(o.missionId)) this.violations.push(`order ${o.id} is ${o.state} though its mission ${o.missionId} came home with the parcel`);
    }
    // A cancelled order never flies.
    for (const [o, { asked, done }] of this.cancelledAt) {
      const missions = (from: number, to?: number) => this.rig.sent.slice(from, to).filter((s) => s.command.command === 'drone.mission' && this.missionOrder(s.command) === o);
      if (missions(done).length > 0) this.violations.push(`cancelled order ${o} got a drone.mission after the cancel`);
      // The store is asynchronous (issue 14): a planning round may send the mission while the cancel is
      // on its way (asked, not yet done) — then the cancel's drone.abort must come after it.
      for (const m of missions(asked, done)) {
        const at = this.rig.sent.indexOf(m);
        if (!this.rig.sent.slice(at + 1).some((x) => x.command.command === 'drone.abort' && x.command.device === m.command.device)) {
          this.violations.push(`cancelled order ${o} got a drone.mission while it was being cancelled, and no abort follows it`);
        }
      }
      // A mission sent before the cancel may be flying: an abort must follow it to that drone.
      for (const [id, d] of this.drones) {
        if (!d.flying?.startsWith(`m-${o.slice(4)}-`)) continue;
        const sent = this.rig.sent.map((x) => x.command);
        const at = sent.findIndex((c) => c.command === 'drone.mission' && (c.args as { missionId?: string }).missionId === d.flying);
        if (!sent.slice(at + 1).some((c) => c.command === 'drone.abort' && c.device === id)) this.violations.push(`cancelled order ${o} is flying on ${id} and no abort follows its mission`);
      }
    }
  }
}

type Step = (w: World) => Promise<void>;
const k = fc.nat(1000);

// Weighted so that runs get far: more orders, rounds and device answers than restarts.
const WEIGHTS = [3, 4, 2, 1, 2, 6, 1, 1, 3, 1, 2, 2, 1, 2, 1];
const steps: fc.Arbitrary<[string, Step]>[] = [
  fc.constant(['create', async (w: World) => {
    const o = await w.rig.orders.create({ originHub: ORIGIN, destination: { type: 'locker', hub: DEST }, weightKg: 1, tempClass: 'ambient', priority: 'normal', by: 'model' });
    w.orders.push(o.id);
  }] as [string, Step]),
  fc.constant(['tick', async (w: World) => w.rig.tick()] as [string, Step]),
  fc.constant(['tick with the reserve publish held', async (w: World) => {
    w.rig.hold = (c) => c.command === 'locker.reserve';
    w.background.push(w.rig.orders.tick());
    await w.rig.drain();
    w.rig.hold = () => false;
  }] as [string, Step]),
  fc.constant(['release held publishes', async (w: World) => w.rig.release()] as [string, Step]),
  k.map((i) => [`cancel #${i}`, async (w: World) => {
    const o = w.pick(w.orders, i);
    if (!o) return;
    const sent = w.rig.sent.length;
    const ok = await w.rig.orders.cancel(o, 'model', 'model cancel').then(() => true, () => false);
    if (ok) w.cancelledAt.set(o, { asked: sent, done: w.rig.sent.length });
  }] as [string, Step]),
  fc.tuple(k, fc.constantFrom('now', 'late', 'never' as const)).map(([i, answer]) => [`device runs #${i} (${answer})`, async (w: World) => {
    const c = w.pick(w.runnable(), i);
    if (!c) return;
    const result = w.run(c);
    if (answer === 'now' || result === 'expired') await w.rig.ack(c.id, result, result === 'rejected' ? 'busy' : undefined);
    else {
      await w.rig.ack(c.id, 'failed', TIMEOUT);
      if (answer === 'late') w.lateAnswers.push(c.id);
    }
  }] as [string, Step]),
  k.map((i) => [`agent timeout #${i}`, async (w: World) => {
    const c = w.pick(w.runnable(), i);
    if (c && c.expiresAt >= w.rig.now) await w.rig.ack(c.id, 'failed', TIMEOUT); // relayed, and the device is silent (so far)
  }] as [string, Step]),
  fc.constant(['late answers arrive', async (w: World) => {
    for (const id of w.lateAnswers.splice(0)) await w.rig.ack(id, 'done', 'late');
  }] as [string, Step]),
  k.map((i) => [`a drone lands at the destination #${i}`, async (w: World) => {
    const id = w.pick([...w.drones.keys()].filter((d) => w.drones.get(d)!.flying), i);
    if (!id) return;
    const d = w.drones.get(id)!;
    const mission = d.flying!;
    d.at = 'there';
    d.flying = null;
    w.telemetry(id);
    await w.rig.droneEvent(ORIGIN, id, mission, 'landed');
    await w.rig.drain();
  }] as [string, Step]),
  k.map((i) => [`a flying drone is called home and lands there #${i}`, async (w: World) => {
    const id = w.pick([...w.drones.keys()].filter((d) => w.drones.get(d)!.flying), i);
    if (!id) return;
    const d = w.drones.get(id)!;
    const mission = d.flying!;
    w.rig.orders.onDeviceMessage({ v: 1, type: 'drone.event', id: `rtl-${Math.random()}`, ts: w.rig.now, hub: ORIGIN, device: id, event: 'rtl', severity: 'warning', missionId: mission } as never);
    d.flying = null;
    d.at = 'home';
    w.telemetry(id);
    w.returned.add(mission);
    await w.rig.droneEvent(ORIGIN, id, mission, 'landed', HOME);
    await w.rig.drain();
  }] as [string, Step]),
  k.map((i) => [`a drone comes home #${i}`, async (w: World) => {
    const id = w.pick([...w.drones.keys()].filter((d) => w.drones.get(d)!.at === 'there'), i);
    if (!id) return;
    w.drones.get(id)!.at = 'home';
    w.telemetry(id);
  }] as [string, Step]),
  fc.tuple(k, fc.boolean()).map(([i, right]) => [`pickup #${i} (${right ? 'right' : 'wrong'} code)`, async (w: World) => {
    const o = w.pick(await w.rig.store.inStates(['in_locker']), i);
    if (!o) return;
    let code = w.codes.get(o.id);
    if (!code && o.pickupReveal) code = await w.rig.orders.revealPickupCode(o.id).catch(() => undefined);
    if (code) w.codes.set(o.id, code);
    const typed = right && code ? code : '000000' === code ? '111111' : '000000';
    w.rig.orders.onDeviceMessage({ v: 1, type: 'locker.event', id: `pk-${Math.random()}`, ts: w.rig.now, hub: DEST, device: o.lockerId!, event: 'pickup', severity: 'info', compartment: o.compartmentId!, pickupCode: typed } as never);
    await w.rig.drain();
  }] as [string, Step]),
  k.map((i) => [`staff unlock #${i}`, async (w: World) => {
    const o = w.pick((await w.rig.store.inStates(['in_locker'])).filter((x) => x.locked), i);
    if (o) w.codes.set(o.id, (await w.rig.orders.unlockCompartment(o.id, 'staff', 'model')).pickupCode);
  }] as [string, Step]),
  fc.constantFrom(10_000, 60_000, 6 * 60_000, 46 * 60_000).map((ms) => [`time +${ms / 1000} s`, async (w: World) => {
    w.rig.now += ms;
    w.rig.refreshHubs(); // devices keep reporting
    for (const d of w.drones.keys()) w.telemetry(d);
  }] as [string, Step]),
  fc.constant(['restart the cloud services', async (w: World) => {
    // The old objects' held publishes never complete (the process died mid-await).
    await w.rig.restart();
  }] as [string, Step]),
];

/** What the runs exercised (printed, so a reader sees the model is not vacuous). */
const stats = new Map<string, number>();

async function runModel(kind: SqlDatabaseKind, script: [string, Step][]): Promise<void> {
  const w = await World.open(kind);
  const log: string[] = [];
  try {
    for (const [name, step] of script) {
      log.push(name);
      await step(w);
      await w.check();
      if (w.violations.length > 0) throw new Error(`${w.violations.join('; ')}\nafter: ${log.join(' → ')}`);
    }
    // The inputs stop: what was held completes, drones are at home, nothing answers any more.
    w.rig.hold = () => false;
    await w.rig.release();
    for (const d of w.drones.values()) Object.assign(d, { flying: null, at: 'home' });
    const states = async () => Promise.all(w.orders.map(async (id) => (await w.rig.store.get(id))!));
    // Parcels nobody collects fill the destination's lockers: an order waiting for a compartment then waits
    // for a resident, like the parcels in them (every model order is an ambient parcel to DEST).
    const ambient = w.rig.region.hubs.find((h) => h.id === DEST)!.lockers.flatMap((l) => l.compartments.filter((c) => c.tempClass === 'ambient').map((c) => `${l.id}/${c.id}`));
    const lockersFull = (all: Order[]) => ambient.every((c) => all.some((o) => o.state === 'in_locker' && `${o.lockerId}/${o.compartmentId}` === c));
    const resting = (o: Order, all: Order[]) => FINAL_STATES.includes(o.state) || o.state === 'in_locker' || (o.state === 'pending' && lockersFull(all));
    const atRest = async () => {
      const all = await states();
      return all.every((o) => resting(o, all));
    };
    // Each order needs at most MAX_ATTEMPTS unanswered missions (a few ticks each) once a drone is free.
    for (let i = 0; i < 20 + 6 * w.orders.length && !(await atRest()); i++) {
      w.rig.now += 10 * 60_000;
      w.rig.refreshHubs();
      for (const d of w.drones.keys()) w.telemetry(d);
      await w.rig.tick();
      await w.rig.drain();
      await w.check();
    }
    const final = await states();
    for (const o of final) stats.set(o.state, (stats.get(o.state) ?? 0) + 1);
    stats.set('missions sent', (stats.get('missions sent') ?? 0) + w.rig.sent.filter((s) => s.command.command === 'drone.mission').length);
    stats.set('missions flown', (stats.get('missions flown') ?? 0) + w.flown);
    const audits = new Map(await Promise.all(w.orders.map(async (id) => [id, await w.rig.store.auditOf(id)] as const)));
    stats.set('via mission_unknown', (stats.get('via mission_unknown') ?? 0) + w.orders.filter((id) => audits.get(id)!.some((a) => a.to === 'mission_unknown')).length);
    stats.set('back from the air (in_flight → pending)', (stats.get('back from the air (in_flight → pending)') ?? 0) + w.orders.filter((id) => audits.get(id)!.some((a) => a.from === 'in_flight' && a.to === 'pending')).length);
    const stuck = final.filter((o) => !resting(o, final));
    if (w.violations.length > 0 || stuck.length > 0) {
      throw new Error(`${w.violations.join('; ')} ${stuck.map((o) => `${o.id} stuck ${o.state} (${o.reason}; waits: ${JSON.stringify(o.waitReasons)}; attempts ${o.attempts}; ticking ${String((w.rig.orders as unknown as { ticking: boolean }).ticking)}; held ${w.rig.heldCommands().map((c) => c.command).join(",")}; ${audits.get(o.id)!.map((a) => `${a.to}@${(a.at - T0) / 60_000}`).join(" ")}; now ${(w.rig.now - T0) / 60_000})`).join('; ')}\nafter: ${log.join(' → ')}`);
    }
    // Every provisional failure that a late answer superseded kept its history.
    for (const s of w.rig.sent) {
      const c = await w.rig.commands.get(s.command.id);
      const history = await w.rig.commands.history(c.id);
      if (c.state === 'done' && history.some((h) => isProvisionalFailure(h.state, h.detail))) {
        expect(history.at(-1)!.state).toBe('done');
      }
    }
  } finally {
    await w.rig.close();
  }
}

describe.each(SQL_DATABASES)('order and command lifecycles (model-based, %s)', (kind) => {
  const runs = kind === 'sqlite' ? RUNS : RUNS_PG;
  it(`keep their invariants over random histories (${runs} runs, seed ${SEED})`, async () => {
    stats.clear();
    await fc.assert(fc.asyncProperty(fc.array(fc.oneof(...steps.map((arbitrary, i) => ({ arbitrary, weight: WEIGHTS[i]! }))), { minLength: 20, maxLength: 80, size: 'max' }), (script) => runModel(kind, script)), { numRuns: runs, seed: SEED, endOnFailure: true });
    console.log(`model runs (${kind}): ${JSON.stringify(Object.fromEntries(stats))}`);
  }, 600_000);
});
