import { PAD_STATES, weatherOverLimits } from '../../cloud/dispatch/dispatch-engine.ts';
import { pino } from 'pino';
import type { Command, DroneTelemetry, LockerTelemetry, RegionMode, SensorTelemetry } from '../../contract/index.ts';
import { offsetS, type ScenarioEvent } from '../../contract/scenario.ts';
import { haversineM } from '../../cloud/dispatch/geo.ts';
import { createRegions } from '../../cloud/hubs/regions.ts';
import type { Logger } from '../../cloud/logger.ts';
import type { Order } from '../../cloud/orders/order-store.ts';
import { createBootId, MessageIds } from '../../simulators/devices/message-ids.ts';
import { createRng, seedFor } from '../../simulators/devices/seeded-rng.ts';
import { proposalFromBulletin } from '../jma-proposal.ts';
import type { LoadedScenario } from '../scenario-file.ts';
import type { ScenarioResult } from '../scenario-result.ts';
import { arrivalsOf, type Arrival } from './demand.ts';
import { EventQueue } from './event-queue.ts';
import { ScenarioFigures } from './scenario-figures.ts';
import { openSimCloud, type SimCloud } from './sim-cloud.ts';
import { SimHub } from './sim-hub.ts';
import { weatherProfiles } from './weather-profiles.ts';
import { withFleet } from './with-fleet.ts';

export interface RunOptions {
  seed?: number;
  dronesPerHub?: number;
  logger?: Logger;
  onProgress?: (virtualS: number) => void;
}

/**
 * The decision delays and step sizes of planning mode (issue 16), stated so a figure can be checked by
 * hand. Production intervals where the run stays fast; coarser ones are marked.
 */
export const PLANNING_TIMING = Object.freeze({
  /**
   * Planning rounds (mission tracking, ground rounds, dispatch): production runs one every 2 s. Here a
   * round runs at the next 2 s mark after something it reads changed — a new order (at once, as in
   * production), a drone back on its pad, a locker compartment freed or taken, a weather reading
   * crossing a drone's wind, gust or rain limit, a mode switch, a hub reconnecting — and otherwise every
   * 60 s while orders are open (charging, timeouts; the devices report every 60 s on the pad).
   */
  orderTickMs: 2_000,
  orderTickIdleMs: 60_000,
  /** Link checks (hub_offline) every 15 s (production: min(5 s, grace / 2) = 5 s; coarser for speed). */
  linkCheckMs: 15_000,
  /** Devices advance every 2 s while a drone is away from its pad or a command is under way, else every 30 s (their models integrate in 1 s substeps either way). */
  deviceStepBusyMs: 2_000,
  deviceStepIdleMs: 30_000,
  /** One-way delay cloud → hub for a command or a retained message. */
  downlinkMs: 500,
  /** The hub agent acknowledges a new region mode this long after it arrives. */
  modeAckDelayMs: 2_000,
  /** Orders waiting (for dispatch, or for a ground round's departure), links and active alarms are sampled every 15 min (links and alarms also at each change). */
  sampleMs: 15 * 60_000,
  /** A resident collects a parcel from a locker after an exponential time with this mean (then the compartment is released). */
  meanPickupMs: 2 * 3_600_000,
  /** The bus or truck of a ground round: road distance = 1.3 × straight line between consecutive stops, at 30 km/h, 3 min per stop. */
  groundRoadFactor: 1.3,
  groundSpeedKmh: 30,
  groundStopMs: 3 * 60_000,
});

const T = PLANNING_TIMING;

/**
 * Planning mode (issue 16, item 2): a discrete-event simulation of the scenario on a virtual clock that
 * drives the production decision code — order service with the dispatch engine and energy model,
 * ground rounds, command service, mode service and proposals, alarm service and rules, live state —
 * with simulated devices. Same scenario, seed and options ⇒ the same result (but `run.wallMs`).
 */
export async function runScenario(s: LoadedScenario, o: RunOptions = {}): Promise<ScenarioResult> {
  const wallStart = performance.now();
  const sc = s.scenario;
  const seed = o.seed ?? sc.seed;
  const logger = o.logger ?? pino({ level: 'silent' });
  const region = withFleet(s.region, o.dronesPerHub ?? sc.fleet.dronesPerHub, sc.fleet.droneHubs);
  const regions = createRegions([region]);
  const startMs = Date.parse(sc.start);
  const durationS = offsetS(sc.duration);
  const endMs = startMs + durationS * 1000;
  const q = new EventQueue(startMs);
  const now = () => q.now;
  const at = (offset: Parameters<typeof offsetS>[0]) => startMs + offsetS(offset) * 1000;
  const figures = new ScenarioFigures(startMs);
  const rng = createRng(seedFor(seed, 'planning', sc.id));
  const ids = new MessageIds(createBootId(startMs, rng.next));

  // ------------------------------------------------------------ the cloud and the hubs
  let retained: RegionMode | null = null;
  const hubs = new Map<string, SimHub>();
  let deviceWake: (inMs: number) => void = () => undefined;
  // The services log every command and order step at info: in a run of thousands that is noise, so they
  // log warnings and errors only, unless the caller asks for debug.
  const serviceLogger = logger.isLevelEnabled('debug') ? logger : logger.child({}, { level: 'warn' });
  const cloud: SimCloud = await openSimCloud({
    regions, now, logger: serviceLogger,
    toHubs: {
      command: (c: Command) => {
        const hub = hubs.get(c.hub);
        if (!hub?.linkUp) return; // no subscriber: the command stays pending and is re-delivered on reconnect
        q.after(T.downlinkMs, 'command', () => {
          hub.tick(q.now);
          hub.command(q.now, c);
          deviceWake(T.deviceStepBusyMs);
        });
      },
      regionMode: (m) => {
        retained = m;
        for (const hub of hubs.values()) if (hub.linkUp) q.after(T.modeAckDelayMs, 'mode', () => void (retained && hub.applyMode(q.now, retained)));
      },
    },
    onOrder: (order, change, fields) => onOrder(order, change, fields),
  });
  cloud.alarms.onChange((c) => figures.onAlarm(c, q.now));

  const weather = weatherProfiles(sc.events, region, at);
  for (const spec of region.hubs) {
    const hub = new SimHub({
      region, hub: spec, seed, ids, startMs,
      toCloud: (u) => {
        figures.deviceMessages++;
        cloud.deliver(region.id, u.kind, u.message);
        if (changesDispatch(u.message)) wakeOrders();
        if (u.message.type === 'hub.mode-ack') figures.onModeAck(u.message.hub, u.message.version, q.now);
      },
      observe: (out, h) => figures.onDeviceOutput(out, q.now, () => h.devices.droneModels.find((d) => d.device === out.device)?.telemetry(q.now).batteryPct ?? 0),
      weatherAt: weather,
      onDark: (h) => setLink(h, !h.cut),
    });
    hubs.set(spec.id, hub);
    for (const d of spec.drones) figures.addDrone(spec.id, d.id);
  }

  const linkSample = (hub: SimHub) => figures.sampleLink(q.now, hub.id, hub.linkUp, hub.backlog.length);
  const setLink = (hub: SimHub, wasUp: boolean) => {
    if (wasUp === hub.linkUp) return;
    if (hub.linkUp) {
      // The hub reconnects: birth status, its backlog in order, the broker re-delivers pending commands and the retained mode.
      cloud.live.connectionOpened(hub.id, region.id, q.now);
      cloud.live.applyStatus(region.id, { v: 1, type: 'hub.status', hub: hub.id, state: 'online', ts: q.now }, q.now);
      hub.drainBacklog(q.now);
      wakeOrders();
      cloud.track(cloud.commands.redeliver(hub.id));
      q.after(T.modeAckDelayMs, 'mode', () => void (retained && hub.applyMode(q.now, retained)));
    } else {
      cloud.live.connectionClosed(hub.id, region.id, q.now);
    }
    linkSample(hub);
    policyCheck();
  };

  // ------------------------------------------------------------ orders: ground rounds, residents, relief sites
  const pickupRng = createRng(seedFor(seed, 'pickup'));
  function onOrder(order: Order, change: 'created' | 'transition' | 'update', fields?: Partial<Order>): void {
    figures.onOrder(order, q.now, fields);
    if (change !== 'transition') return;
    if (order.state === 'assigned' && order.carrier === 'ground' && order.roundId && order.roundDepartsAt !== null) scheduleGroundRound(order);
    if (order.state === 'in_locker' && order.destination.type === 'locker') scheduleResident(order);
  }
  function scheduleGroundRound(order: Order): void {
    const round = region.groundRounds.find((r) => r.id === order.roundId);
    if (!round || order.destination.type !== 'locker') return;
    const from = round.stops.indexOf(order.originHub);
    const to = round.stops.indexOf(order.destination.hub);
    let travelMs = 0;
    for (let i = from; i < to; i++) {
      const a = regions.hub(round.stops[i]!)!.location;
      const b = regions.hub(round.stops[i + 1]!)!.location;
      travelMs += ((haversineM(a, b) * T.groundRoadFactor) / 1000 / T.groundSpeedKmh) * 3_600_000 + (i > from ? T.groundStopMs : 0);
    }
    const id = order.id;
    q.at(order.roundDepartsAt!, 'ground-loaded', async () => {
      const ok = await cloud.orders.groundRoundStep(id, 'loaded', 'sim:driver').then(() => true, () => false);
      if (ok) q.after(travelMs, 'ground-delivered', () => cloud.orders.groundRoundStep(id, 'delivered', 'sim:driver').then(() => undefined, () => undefined));
    });
  }
  function scheduleResident(order: Order): void {
    const id = order.id;
    const hubId = (order.destination as { hub: string }).hub;
    const locker = order.lockerId!;
    const compartment = order.compartmentId!;
    q.after(-Math.log(1 - pickupRng.next()) * T.meanPickupMs, 'pickup', async () => {
      const hub = hubs.get(hubId)!;
      const code = await cloud.orders.revealPickupCode(id).catch(() => null);
      if (code === null) return;
      hub.raise(q.now, hub.devices.raise(q.now, { kind: 'locker', device: locker, event: 'pickup', compartment, orderId: id, pickupCode: code }));
    });
  }

  // ------------------------------------------------------------ modes: coordinator events and policy
  const policy = sc.coordinator;
  const switchMode = async (mode: 'normal' | 'emergency', hubIds: string[] | null, by: string, cause: string, reason: string) => {
    const r = await cloud.modes.switchMode(region.id, { mode, hubs: hubIds ?? undefined, reason, by });
    figures.onSwitch(q.now, { mode, by, cause, version: r.version, hubs: hubIds ?? region.hubs.map((h) => h.id) });
    wakeOrders();
    // The policy's "clear for N minutes" counts from the switch to emergency at the earliest.
    if (mode === 'emergency' && clearSince !== null) {
      clearSince = null;
      policyCheck();
    }
  };
  const isolated = new Set<string>();
  let clearSince: number | null = startMs;
  function policyCheck(): void {
    const clear = [...hubs.values()].every((h) => h.linkUp && h.gridUp) && isolated.size === 0;
    if (!clear) {
      clearSince = null;
      return;
    }
    if (clearSince !== null || policy.normalWhenClearAfterMin === null) return;
    const since = (clearSince = q.now);
    q.after(policy.normalWhenClearAfterMin * 60_000, 'policy-normal', async () => {
      if (clearSince !== since) return;
      if (region.hubs.every((h) => cloud.modes.modeOf(h.id) === 'normal')) return;
      await switchMode('normal', null, 'coordinator (policy)', 'policy', `no cut link, isolated settlement or hub without power for ${policy.normalWhenClearAfterMin} min`);
    });
  }

  // ------------------------------------------------------------ the timeline
  const askingSites = new Set<string>();
  for (const e of sc.events) scheduleEvent(e);
  function hubsOf(h: 'all' | string[]): SimHub[] {
    return (h === 'all' ? region.hubs.map((x) => x.id) : h).map((id) => hubs.get(id)!);
  }
  function scheduleEvent(e: ScenarioEvent): void {
    switch (e.type) {
      case 'weather':
        return; // read by the sensors' telemetry (weatherAt)
      case 'earthquake':
        q.at(at(e.at), 'earthquake', async () => {
          const xml = s.bulletins.get(e.bulletin);
          if (xml === undefined) throw new Error(`bulletin ${e.bulletin} was not loaded`);
          const p = proposalFromBulletin(xml, { areaCodes: e.areaCodes, minIntensity: e.minIntensity, regionId: region.id });
          if (!p) return;
          // As POST /regions/:id/mode-proposals stores it: a proposal never switches by itself.
          const { created } = await cloud.proposals.propose(region.id, { source: p.source, by: 'hazard-feed (simulated)', mode: p.mode, reason: p.reason, evidence: p.evidence });
          if (!created || policy.acceptProposalsAfterMin === null) return;
          q.after(policy.acceptProposalsAfterMin * 60_000, 'policy-accept', async () => {
            if (region.hubs.every((h) => cloud.modes.modeOf(h.id) === 'emergency')) return;
            await switchMode('emergency', null, 'coordinator (policy)', 'jma-proposal', `accepted proposal (${p.source}): ${p.reason}`.slice(0, 200));
          });
        });
        return;
      case 'link':
        q.at(at(e.at), `link-${e.state}`, () => {
          for (const hub of hubsOf(e.hubs)) {
            const was = hub.linkUp;
            hub.cut = e.state === 'cut';
            setLink(hub, was);
          }
        });
        return;
      case 'power':
        q.at(at(e.at), `power-${e.state}`, () => {
          for (const hub of hubsOf(e.hubs)) {
            hub.tick(q.now);
            const was = hub.linkUp;
            const up = e.state === 'restored';
            if (up === hub.gridUp) continue;
            hub.setPower(q.now, up, e.backupDrainPctPerH);
            const wx = region.hubs.find((h) => h.id === hub.id)!.sensors[0];
            if (wx) hub.raise(q.now, hub.devices.raise(q.now, { kind: 'sensor', device: wx, event: up ? 'grid_restored' : 'grid_down' }));
            setLink(hub, was);
            const dark = hub.darkAt(q.now);
            if (dark !== null) q.at(dark, 'dark', () => hub.tick(q.now)); // the battery runs out: onDark
          }
          policyCheck();
        });
        return;
      case 'isolation':
        q.at(at(e.at), `isolation-${e.state}`, () => {
          for (const site of e.sites) {
            if (e.state === 'isolated') {
              isolated.add(site);
              figures.onIsolation(site, q.now);
            } else {
              isolated.delete(site);
            }
          }
          policyCheck();
        });
        return;
      case 'coordinator':
        q.at(at(e.at), 'coordinator', () => switchMode(e.action, e.hubs === 'all' ? null : e.hubs, 'coordinator (scenario)', 'scenario', e.reason));
        return;
      case 'fleet':
        q.at(at(e.at), `fleet-${e.state}`, () => {
          const hub = hubs.get(e.hub)!;
          for (const d of e.drones ?? region.hubs.find((h) => h.id === e.hub)!.drones.map((x) => x.id)) {
            if (e.state === 'out_of_service') hub.outOfService.add(d);
            else hub.outOfService.delete(d);
          }
        });
        return;
      case 'demand':
        if (e.kind !== 'normal') for (const site of e.sites ?? []) askingSites.add(site);
        return;
    }
  }
  for (const a of arrivalsOf(sc.events, region, seed, at)) scheduleArrival(a);
  function scheduleArrival(a: Arrival): void {
    q.at(a.at, 'order', async () => {
      await cloud.orders.create({
        originHub: a.originHub, destination: a.destination, weightKg: a.weightKg, tempClass: a.tempClass, priority: a.priority,
        ...(a.deadlineMs !== null ? { deadline: a.at + a.deadlineMs } : {}), by: `sim:${a.priority}`,
      });
      figures.decisionRounds++;
      await cloud.orders.tick();
    });
  }

  // ------------------------------------------------------------ recurring steps
  let nextDeviceStep = startMs;
  deviceWake = (inMs) => {
    const t = q.now + inMs;
    if (t >= nextDeviceStep) return;
    nextDeviceStep = t;
    q.at(t, 'devices', deviceStep);
  };
  function deviceStep(): void {
    if (q.now !== nextDeviceStep) return; // superseded by an earlier wake-up
    let busy = false;
    for (const hub of hubs.values()) {
      hub.tick(q.now);
      busy ||= hub.busy;
    }
    nextDeviceStep = q.now + (busy ? T.deviceStepBusyMs : T.deviceStepIdleMs);
    q.at(nextDeviceStep, 'devices', deviceStep);
  }
  const every = (ms: number, label: string, fn: () => void | Promise<void>, first = startMs + ms) => {
    const run = async () => {
      await fn();
      if (q.now + ms <= endMs) q.at(q.now + ms, label, run);
    };
    q.at(first, label, run);
  };
  // Planning rounds: at the next 2 s mark after a change (wakeOrders), else every 60 s while orders are open.
  let nextOrderRound = startMs + T.orderTickIdleMs;
  function wakeOrders(): void {
    const t = Math.ceil((q.now + 1) / T.orderTickMs) * T.orderTickMs;
    if (t >= nextOrderRound) return;
    nextOrderRound = t;
    q.at(t, 'orders', orderRound);
  }
  async function orderRound(): Promise<void> {
    if (q.now !== nextOrderRound) return; // superseded by an earlier wake-up
    nextOrderRound = q.now + T.orderTickIdleMs;
    q.at(nextOrderRound, 'orders', orderRound);
    if (figures.openOrders === 0) return;
    figures.decisionRounds++;
    await cloud.orders.tick();
  }
  q.at(nextOrderRound, 'orders', orderRound);
  const padState = new Map<string, boolean>();
  const lockerState = new Map<string, string>();
  // The region's distinct weather limits: a reading that crosses one (by the dispatch engine's own rule) may change a plan.
  const limitSets = [...new Map(region.hubs.flatMap((h) => h.drones).map((d) => [`${d.windLimitMps}/${d.gustLimitMps}/${d.rainLimitMmPerH}`, d])).values()];
  const weatherState = new Map<string, string>();
  function changesDispatch(m: { type: string; hub: string }): boolean {
    if (m.type === 'sensor.telemetry') {
      const t = m as SensorTelemetry;
      const w = { windMps: t.windSpeedMps, gustMps: t.windGustMps, rainMmPerH: t.rainMmPerH };
      const sig = limitSets.map((lim) => Object.values(weatherOverLimits(w, lim)).map(Number).join('')).join('/');
      const was = weatherState.get(t.hub);
      weatherState.set(t.hub, sig);
      return was !== undefined && was !== sig;
    }
    if (m.type === 'drone.telemetry') {
      const t = m as DroneTelemetry;
      const onPad = PAD_STATES.has(t.flightState);
      const key = `${t.hub}/${t.device}`;
      const was = padState.get(key);
      padState.set(key, onPad);
      return onPad && was === false;
    }
    if (m.type === 'locker.telemetry') {
      const t = m as LockerTelemetry;
      const sig = t.compartments.map((c) => `${c.occupied ? 1 : 0}${c.reservedFor ?? ''}${c.fault}`).join(',');
      const key = `${t.hub}/${t.device}`;
      const was = lockerState.get(key);
      lockerState.set(key, sig);
      return was !== undefined && was !== sig;
    }
    return false;
  }
  every(T.linkCheckMs, 'links', () => cloud.alarms.checkLinks());
  every(T.sampleMs, 'sample', async () => {
    figures.sampleWaiting(q.now, await cloud.orderStore.inStates(['pending', 'held', 'assigned']));
    for (const hub of hubs.values()) linkSample(hub);
    figures.sampleAlarms(q.now);
  }, startMs);
  every(3_600_000, 'progress', () => o.onProgress?.((q.now - startMs) / 1000));

  // Every hub connected at the start.
  for (const hub of hubs.values()) {
    cloud.live.connectionOpened(hub.id, region.id, startMs);
    cloud.live.applyStatus(region.id, { v: 1, type: 'hub.status', hub: hub.id, state: 'online', ts: startMs }, startMs);
  }
  q.at(startMs, 'devices', deviceStep);

  // ------------------------------------------------------------ run
  try {
    for (let step = q.pop(); step && step.at <= endMs; step = q.pop()) {
      await step.run();
      await cloud.settle();
    }
    q.now = endMs;
    if (figures.waiting.at(-1)?.atS !== durationS) {
      figures.sampleWaiting(endMs, await cloud.orderStore.inStates(['pending', 'held', 'assigned']));
      for (const hub of hubs.values()) linkSample(hub);
      figures.sampleAlarms(endMs);
    }
    logger.child({ component: 'planning' }).info({
      scenario: sc.id, seed, virtualS: durationS, wallMs: Math.round(performance.now() - wallStart),
      hubs: Object.fromEntries([...hubs.values()].map((h) => [h.id, { sent: h.sent, delivered: h.delivered, fromBacklog: h.deliveredFromBacklog, backlog: h.backlog.length, droppedDark: h.dropped }])),
    }, 'planning run ended');
  } finally {
    await cloud.close();
  }

  return {
    v: 1,
    kind: 'planning',
    scenario: {
      id: sc.id, name: sc.name, region: { id: region.id, name: region.name }, startIso: sc.start, durationS, seed,
      fleet: Object.fromEntries(region.hubs.filter((h) => h.drones.length > 0).map((h) => [h.id, h.drones.length])),
      hubs: region.hubs.map((h) => ({ id: h.id, name: h.name })),
    },
    run: { wallMs: Math.round(performance.now() - wallStart), timeScale: null, deviceMessages: figures.deviceMessages, decisionRounds: figures.decisionRounds },
    relief: figures.relief(region, askingSites),
    deliveries: figures.deliveries(),
    waiting: figures.waiting,
    drones: figures.droneFigures(durationS),
    refusals: figures.refusals(),
    alarms: figures.alarms(),
    links: figures.links,
    modes: figures.modes(),
    coordinatorActions: [],
  };
}
