import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLES, topics } from '../contract/index.ts';
import { loadRegionFile } from '../cloud/hubs/region-loader.ts';
import { startRegionSimulator, type RegionSimulator } from '../simulators/region-simulator.ts';
import { REGION_FILE } from './support/cloud-harness.ts';
import { REGION, startCluster, type Cluster } from './support/cluster-harness.ts';
import { waitFor } from './support/ports.ts';
import { startResendingDevice, type ResendingDevice } from './support/resending-device.ts';

/**
 * Issue 15, item 2: the cluster under faults, with real processes — 3 cloud nodes (PostgreSQL, Redis,
 * influxd, HAProxy in front), one edge agent process per hub connected through HAProxy, simulated
 * devices behind the agents. After each fault, counted by message id:
 *  - 0 acknowledged messages lost: every id an agent acknowledged to a device (a counted sensor stream,
 *    tamper events, everything the simulated devices sent) is in influxd, or kept as a dead letter;
 *  - 0 side effects applied twice: each reading one point; each command's result recorded once (and every
 *    command sent through the API done); each tamper event counted exactly once on its alarm; no
 *    hub_offline alarm for hubs that were never offline that long;
 *  - no order dispatched twice: one drone.mission command per mission, as many assignments as flights;
 *    every order planned by the new lease holder after the old one died;
 *  - every hub acknowledges the current mode, and every hub shows its true link state, on the API of
 *    every node that is up.
 * Failover figures: from the fault until every agent gets PUBACKs again (HAProxy's view picks the victim).
 *
 * Short form (in `npm test`): one cluster for the file, the faults one after another, SIGSTOP 8 s
 * (> LEASE_TTL_S 2). Long form: CLUSTER_FAULTS_LONG=1 — more hubs and load, SIGSTOP 30 s, each fault
 * repeated (CLUSTER_FAULTS_REPEAT, default 3).
 */
const LONG = process.env.CLUSTER_FAULTS_LONG === '1';
const F = LONG
  ? {
      hubs: ['rs-komatsu-kibagata', 'nomi-terai', 'nomi-kokufu', 'nomi-wake', 'nomi-neagari', 'kawakita-chuo', 'hakusan-tsurugi'],
      loadPerHubPerS: 300, stopS: 30, repeats: Number(process.env.CLUSTER_FAULTS_REPEAT ?? 3), orders: 8,
    }
  : { hubs: ['rs-komatsu-kibagata', 'nomi-terai', 'nomi-kokufu', 'nomi-wake'], loadPerHubPerS: 150, stopS: 8, repeats: 1, orders: 3 };
const DEPOT = 'rs-komatsu-kibagata';
/** Order routes within the drones' range (depot 4.5 km to nomi-kokufu, 5.2 km to nomi-wake; nomi-terai 4.3 km to nomi-kokufu). */
const ROUTES: [string, string][] = [[DEPOT, 'nomi-kokufu'], [DEPOT, 'nomi-wake'], ['nomi-terai', 'nomi-kokufu']];
const LEASE_TTL_S = 2;
/** `<order>: pending [reasons]` where every reason is a resource that is busy or used up: a planning round ran and decided to wait. */
const RESOURCES_ONLY = /^[^[]*\[(\{"code":"(drone_busy|no_compartment|insufficient_battery)"[^}]*\},?)+\]$/;
const region = loadRegionFile(REGION_FILE);
const sensor = EXAMPLES.find((e) => e.name === 'sensor.telemetry')!.payload;
// A compartment every hub's locker bank has (the region file declares A01–A06 at least).
const TAMPER_COMPARTMENT = 'A06';

let c: Cluster;
let sim: RegionSimulator;
const figures: string[] = [];
const note = (line: string) => {
  figures.push(line);
  console.info(`[cluster-faults] ${line}`);
};

/** A counted stream of sensor readings (ids ld-0, ld-1, …) from one hub's weather sensor, through its agent. */
interface Load {
  device: ResendingDevice;
  running: boolean;
}
const loads = new Map<string, Load>();
/** Tamper events at one compartment per hub (ids tp-0, …, increasing device time): each must count once on the alarm. */
const tampers = new Map<string, ResendingDevice>();
let tamperSeq = 0;
let loadTimer: NodeJS.Timeout | null = null;
/** Commands the tests sent (id → hub); each must end with exactly one result. */
const commandsSent = new Map<string, string>();

function startLoads(): void {
  const base = Date.now() - 3_600_000;
  let seq = 0;
  for (const hub of F.hubs) {
    const agent = c.agents.get(hub)!;
    const wx = c.deviceLogins(hub).wx!;
    loads.set(hub, { device: startResendingDevice(agent.proc.urls.mqtt, { ...wx, clientId: 'wx.load' }), running: true });
    const lockers = c.deviceLogins(hub)['locker-a']!;
    tampers.set(hub, startResendingDevice(agent.proc.urls.mqtt, { ...lockers, clientId: 'locker-a.tamper' }));
  }
  const perTick = Math.max(1, Math.round(F.loadPerHubPerS / 50));
  loadTimer = setInterval(() => {
    for (const [hub, load] of loads) {
      if (!load.running) continue;
      for (let i = 0; i < perTick; i++) {
        const id = `ld-${seq++}`;
        // Unique device time per reading (InfluxDB keys a point by its time), calm weather (no wind alarm).
        load.device.publish(id, topics.device(REGION, hub, 'sensor', 'wx', 'telemetry'), JSON.stringify({
          ...sensor, hub, id, ts: base + seq, windSpeedMps: 1, windGustMps: 1.5, rainMmPerH: 0,
        }));
      }
    }
  }, 20);
}

function setLoad(running: boolean): void {
  for (const l of loads.values()) l.running = running;
}

/** One tamper event per hub (distinct id, newer device time): the alarm's count must grow by exactly one each. */
function tamperAll(): void {
  for (const [hub, d] of tampers) {
    const id = `tp-${tamperSeq++}`;
    d.publish(id, topics.device(REGION, hub, 'locker', 'locker-a', 'event'), JSON.stringify({
      v: 1, type: 'locker.event', id, ts: Date.now(), hub, device: 'locker-a', event: 'tamper', severity: 'critical', compartment: TAMPER_COMPARTMENT, detail: 'cluster fault test',
    }));
  }
}

/** The `uplink.acked` count of every agent now. */
async function ackedNow(): Promise<Map<string, number>> {
  return new Map(await Promise.all(F.hubs.map(async (h) => [h, (await c.agentStatus(h)).uplink.acked] as const)));
}

/** Messages the agents have sent and not seen acknowledged (in flight) now. */
async function inFlightNow(): Promise<number> {
  return (await Promise.all(F.hubs.map(async (h) => (await c.agentStatus(h)).uplink.inFlight))).reduce((a, b) => a + b, 0);
}

/**
 * Ms from `since` until every agent's cloud acknowledgements grew past `before` (every hub publishing again);
 * `slowest` names the last hub and its agent's reconnect count then.
 */
async function everyHubPublishingAgain(before: Map<string, number>, since: number, timeoutMs = 30_000): Promise<{ ms: number; slowest: string; toString(): string }> {
  const at = new Map<string, number>();
  const connects = new Map<string, number>();
  await waitFor('every hub publishing again', async () => {
    await Promise.all(F.hubs.filter((h) => !at.has(h)).map(async (h) => {
      const s = await c.agentStatus(h);
      if (s.uplink.connected && s.uplink.acked > before.get(h)!) {
        at.set(h, Date.now() - since);
        connects.set(h, s.uplink.connects);
      }
    }));
    return at.size === F.hubs.length;
  }, timeoutMs, 100);
  const [hub, ms] = [...at].sort((a, b) => b[1] - a[1])[0]!;
  const slowest = `${hub} (connects ${connects.get(hub)})`;
  return { ms, slowest, toString: () => `${ms} ms (last: ${slowest})` };
}

/** Sends one locker.unlock per hub through a node's API; each must be done once (the simulated locker answers). */
async function commandEveryHub(nodeIndex?: number): Promise<void> {
  const via = c.nodes[nodeIndex ?? c.upNodes()[0]!.index]!.id;
  for (const hub of F.hubs) {
    const r = await c.postJson<{ id: string }>(`/api/v1/hubs/${hub}/commands`, { device: 'locker-a', command: 'locker.unlock', args: { compartment: 'A01' }, ttlS: 300 }, nodeIndex);
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    commandsSent.set(r.body.id, `${hub} (sent through ${via} at ${new Date().toISOString()})`);
  }
}

interface ModeView { desired: { version: number; mode: string }; hubs: { hub: string; desired: string; status: string; acknowledged: { version: number; mode: string } | null }[] }
interface HubsView { hubs: { id: string; link: { online: boolean; connections: number } }[] }

/** Polls `value` until `done` holds for it or `timeoutMs` passes; returns the last value (asserted by the caller). */
async function eventually<T>(value: () => Promise<T>, done: (v: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let v: T | undefined;
    let error: unknown;
    try {
      v = await value();
      if (done(v)) return v;
    } catch (err) {
      error = err;
    }
    if (Date.now() > deadline) {
      if (v === undefined) throw error;
      return v;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * The guarantees after a fault (the cluster has recovered: every hub publishing again): traffic
 * paused, every device's messages acknowledged by its agent, every outbox drained, then the counts.
 * Each guarantee is a soft assertion, so one failing guarantee does not hide the others.
 */
async function expectGuarantees(label: string): Promise<void> {
  const t0 = Date.now();
  setLoad(false);
  try {
    tamperAll();
    await waitFor(`${label}: every device message acknowledged by its agent`, () =>
      [...loads.values()].every((l) => l.device.unacked === 0) && [...tampers.values()].every((d) => d.unacked === 0), 60_000, 100);
    // The simulated devices keep publishing: what their agents acknowledged up to now is checked (the rest next time).
    const simAcked = new Map(F.hubs.map((h) => [h, sim.ackedIds(h)]));
    await waitFor(`${label}: every agent's outbox drained`, async () => (await Promise.all(F.hubs.map((h) => c.agentStatus(h)))).every((s) => s.uplink.connected && s.outbox.depth === 0), 60_000, 100);

    // 0 acknowledged messages lost: every id an agent acknowledged to a device is in influxd.
    let acked = 0;
    for (const hub of F.hubs) {
      const ids = await c.influxIds(hub);
      const expected = [...loads.get(hub)!.device.acked, ...tampers.get(hub)!.acked, ...simAcked.get(hub)!];
      acked += expected.length;
      const notStored = expected.filter((id) => !ids.has(id));
      // A message the cloud refused is acknowledged and kept as a dead letter: accounted for, not lost.
      const dead = notStored.length === 0 ? [] : await c.sql<{ reason: string; payload: string }>(
        "SELECT reason, convert_from(payload, 'UTF8') AS payload FROM dead_letters WHERE hub = $1", [hub]);
      const deadOf = (id: string) => dead.find((d) => d.payload.includes(`"${id}"`))?.reason;
      const missing = notStored.filter((id) => deadOf(id) === undefined);
      if (notStored.length > missing.length) note(`${label}: ${notStored.length - missing.length} acknowledged messages of ${hub} dead-lettered (${[...new Set(notStored.map(deadOf).filter(Boolean))].join(', ')})`);
      // Evidence for a failure: the id anywhere in influxd (any measurement, any tags).
      // (The simulator's ids repeat across hubs — one id sequence per hub — so only this hub's points count.)
      const anywhere = await Promise.all(missing.slice(0, 5).map(async (id) => `${id}: ${await c.influxCount(`SELECT count("msg_id") FROM /.*/ WHERE "msg_id" = '${id}' AND "hub" = '${hub}'`)} points of ${hub} in any measurement`));
      expect.soft(missing.length, `${label}: ${missing.length} of ${expected.length} acknowledged messages of ${hub} neither in influxd nor dead-lettered: ${missing.slice(0, 20).join(', ')} (${anywhere.join('; ')}; agent outbox now: ${JSON.stringify((await c.agentStatus(hub)).outbox)})`).toBe(0);
      // Each reading once (a second point for one id would be a second write with another time).
      const points = await c.influxPoints('sensor', hub);
      const twice = [...points].filter(([id, n]) => id.startsWith('ld-') && n > 1);
      expect.soft(twice.length, `${label}: readings of ${hub} stored more than once: ${JSON.stringify(twice.slice(0, 20))}`).toBe(0);
    }

    // 0 side effects applied twice: a command's result recorded once; each tamper event counted once on its alarm.
    const sent = [...commandsSent.keys()];
    const unanswered = await eventually(
      async () => (await c.sql<{ id: string; state: string }>('SELECT id, state FROM commands WHERE id = ANY($1)', [sent])).filter((r) => r.state !== 'done').map((r) => `${commandsSent.get(r.id)} ${r.id}: ${r.state}`),
      (v) => v.length === 0, 30_000);
    expect.soft(unanswered.length, `${label}: commands sent through the API without their result (done):\n  ${unanswered.join('\n  ')}\n`).toBe(0);
    // A command's history may hold a provisional answer before the result (pending → duplicate → done when a copy
    // was delivered twice; pending → failed "did not answer" → done when the device answered late); the same result
    // twice would be a result applied twice.
    const histories = await c.sql<{ command_id: string; history: string }>(
      "SELECT command_id, string_agg(from_state || '→' || state, ', ' ORDER BY seq) AS history FROM command_results GROUP BY command_id HAVING count(*) > 1");
    const twiceResults = await c.sql<{ command_id: string; state: string; n: string }>(
      'SELECT command_id, state, count(*) AS n FROM command_results GROUP BY command_id, state HAVING count(*) > 1');
    expect.soft(twiceResults.length, `${label}: command results recorded more than once: ${JSON.stringify(twiceResults)}; histories: ${JSON.stringify(histories)}`).toBe(0);
    if (histories.length > 0) note(`${label}: ${histories.length} commands with more than one answer: ${histories.map((h) => `${h.command_id} ${h.history}`).join('; ')}`);
    const tamperEvents = Object.fromEntries(F.hubs.map((h) => [h, { alarms: 1, count: tampers.get(h)!.acked.size }]));
    const alarmCounts = await eventually(async () => {
      const rows = await c.sql<{ hub: string; count: string; n: string }>(
        "SELECT hub, max(count) AS count, count(*) AS n FROM alarms WHERE kind = 'tamper' AND compartment = $1 AND state <> 'cleared' GROUP BY hub", [TAMPER_COMPARTMENT]);
      return Object.fromEntries(F.hubs.map((h) => [h, { alarms: Number(rows.find((a) => a.hub === h)?.n ?? 0), count: Number(rows.find((a) => a.hub === h)?.count ?? 0) }]));
    }, (v) => F.hubs.every((h) => v[h]!.count >= tamperEvents[h]!.count), 15_000);
    expect.soft(alarmCounts, `${label}: tamper events applied to their alarm (one alarm per hub, counted once per event)`).toEqual(tamperEvents);

    // No order dispatched twice.
    const missionsTwice = await c.sql<{ mission: string; n: string }>(
      "SELECT args::json->>'missionId' AS mission, count(*) AS n FROM commands WHERE command = 'drone.mission' GROUP BY 1 HAVING count(*) > 1");
    expect.soft(missionsTwice.length, `${label}: missions sent twice: ${JSON.stringify(missionsTwice)}`).toBe(0);
    // Each assignment (pending/held → assigned, drone) writes its flight in the same transaction: an order assigned
    // twice at once by two nodes would show two assignments for one flight, or two flights in flight together.
    const assignedTwice = await c.sql<{ order_id: string; assignments: string; flights: string }>(
      `SELECT o.id AS order_id,
         (SELECT count(*) FROM order_audit a WHERE a.order_id = o.id AND a.to_state = 'assigned' AND a.from_state IN ('pending', 'held')) AS assignments,
         (SELECT count(*) FROM flight_log f WHERE f.order_id = o.id) AS flights
       FROM orders o WHERE o.carrier = 'drone'`);
    const mismatched = assignedTwice.filter((r) => r.assignments !== r.flights);
    expect.soft(mismatched.length, `${label}: orders whose assignments and flights disagree: ${JSON.stringify(mismatched)}`).toBe(0);

    // Alarms run once and on the truth: no hub with an agent was offline for ALARM_HUB_OFFLINE_GRACE_S (20 s), so
    // none may have had a hub_offline alarm (one would come from a node with a wrong view of the hub's link).
    const offline = await c.sql<{ hub: string; n: string; raised: string }>(
      "SELECT hub, count(*) AS n, min(to_timestamp(raised_at / 1000.0))::text AS raised FROM alarms WHERE kind = 'hub_offline' AND hub = ANY($1) GROUP BY hub", [[...F.hubs]]);
    expect.soft(offline.length, `${label}: hub_offline alarms for hubs that were never offline that long: ${JSON.stringify(offline)}`).toBe(0);

    // Every hub acknowledges the current mode, and shows its true link state, on every node that is up.
    for (const nd of c.upNodes()) {
      const notAcked = await eventually(async () => {
        const m = await c.getJson<ModeView>(`/api/v1/regions/${REGION}/mode`, nd.index);
        const wrong = F.hubs.filter((h) => {
          const x = m.hubs.find((y) => y.hub === h);
          return !(x?.status === 'acknowledged' && (x.acknowledged?.version ?? 0) === m.desired.version);
        });
        return Promise.all(wrong.map(async (h) => {
          const x = m.hubs.find((y) => y.hub === h);
          const agent = (await c.agentStatus(h)).mode;
          return `${h}: ${x?.status} (acknowledged version ${x?.acknowledged?.version ?? 'none'} of ${m.desired.version} ${m.desired.mode}; the agent is at version ${agent.version} ${agent.mode})`;
        }));
      }, (v) => v.length === 0, 15_000);
      const refusedAcks = notAcked.length === 0 ? [] : await c.sql<{ hub: string; reason: string; detail: string; at: string }>(
        "SELECT hub, reason, detail, to_timestamp(received_at / 1000.0)::text AS at FROM dead_letters WHERE topic LIKE '%mode-ack%' OR reason = 'unknown_mode_version' ORDER BY id");
      expect.soft(notAcked.length, `${label}: hubs not acknowledging the current mode on ${nd.id}:\n  ${notAcked.join('\n  ')}\n  mode acknowledgements dead-lettered so far: ${JSON.stringify(refusedAcks)}\n`).toBe(0);
      const wrongLink = await eventually(async () => {
        const hubs = (await c.getJson<HubsView>('/api/v1/hubs', nd.index)).hubs;
        return hubs.filter((h) => h.link.online !== F.hubs.includes(h.id)).map((h) => `${h.id}: ${h.link.online ? 'online' : 'offline'}`);
      }, (v) => v.length === 0, 15_000);
      expect.soft(wrongLink.length, `${label}: hubs shown with a wrong link state on ${nd.id}:\n  ${wrongLink.join('\n  ')}\n`).toBe(0);
    }
    const deadByReason = await c.sql<{ hub: string; reason: string; n: string }>('SELECT hub, reason, count(*) AS n FROM dead_letters GROUP BY hub, reason ORDER BY hub, reason');
    if (deadByReason.length > 0) note(`${label}: dead letters so far: ${deadByReason.map((d) => `${d.hub} ${d.reason} ${d.n}`).join(', ')}`);
    note(`${label}: checked ${acked} acknowledged messages over ${F.hubs.length} hubs, ${commandsSent.size} commands, ${tamperSeq} tamper events (${Date.now() - t0} ms)`);
  } finally {
    setLoad(true);
  }
}

/** The node with the most hub connections (HAProxy's view), other than `not`. */
async function busiestNode(not: number | null = null): Promise<number> {
  const servers = await c.haproxyServers();
  const candidates = c.nodes.filter((nd) => nd.state === 'up' && nd.index !== not);
  candidates.sort((a, b) => (servers.find((s) => s.name === b.id)?.sessions ?? 0) - (servers.find((s) => s.name === a.id)?.sessions ?? 0));
  return candidates[0]!.index;
}

/**
 * The lease holder of the region (waits for one: the lease may be changing hands). Without a lease
 * table at all (cluster leases not built yet) the test goes on with node-1 so the other guarantees are
 * still checked, and fails at its end on `expectLeaseKnown`.
 */
let leaseTableMissing = false;
async function holder(): Promise<number> {
  const exists = (await c.sql<{ t: string | null }>("SELECT to_regclass('public.leases')::text AS t"))[0]!.t !== null;
  if (!exists) {
    leaseTableMissing = true;
    return c.nodes.find((nd) => nd.state === 'up')!.index;
  }
  return waitFor('a lease holder of the region', () => c.leaseHolderIndex(REGION).then((i) => (i === null ? null : i + 1)), 15_000, 100).then((i) => i - 1);
}

/** Lease takeover: ms from `t` until a node other than `victim` holds the region's lease (null without a lease table). */
async function takeover(victim: number, t: number): Promise<number | null> {
  if (leaseTableMissing) return null;
  return waitFor('another node holding the lease', async () => {
    const h = await c.leaseHolderIndex(REGION);
    return h !== null && h !== victim ? Date.now() - t : null;
  }, 30_000, 50);
}

function expectLeaseKnown(): void {
  expect(leaseTableMissing, 'the leases table (per-region leases with fencing tokens in PostgreSQL) does not exist').toBe(false);
}

beforeAll(async () => {
  c = await startCluster({
    hubs: F.hubs, leaseTtlS: LEASE_TTL_S,
    nodeEnv: { MODE_ACK_TIMEOUT_S: '5', ALARM_HUB_OFFLINE_GRACE_S: '20', OPS_STATS_INTERVAL_S: '2' },
  });
  note(`cluster up in ${c.startup.totalMs} ms (PostgreSQL, Redis, influxd ${c.startup.infraMs} ms; 3 nodes and ${F.hubs.length} agent processes ${c.startup.nodesMs} ms; agents connected through HAProxy ${c.startup.agentsMs} ms later)`);
  const urls = Object.fromEntries(F.hubs.map((h) => [h, c.agents.get(h)!.proc.urls.mqtt]));
  sim = await startRegionSimulator({
    brokerUrl: urls[F.hubs[0]!]!, brokerUrlFor: (hub) => urls[hub]!, region, hubs: [...F.hubs], publishStatus: false, seed: 15, timeScale: LONG ? 60 : 20,
    deviceLogins: Object.fromEntries(F.hubs.map((h) => [h, c.deviceLogins(h)])),
    rates: { droneHz: 1, lockerIntervalS: 2, sensorIntervalS: 2 },
    params: { drone: { meanIdleS: 1e12 }, sensor: { meanWindMps: 2, windSdMps: 0.3, windySpellsPerHour: 0, rainEpisodesPerHour: 0 }, locker: { reservationsPerHour: 0 } },
  });
  startLoads();
  await waitFor('traffic through every agent', () => F.hubs.every((h) => loads.get(h)!.device.acked.size > 100), 30_000, 100);
}, 180_000);

afterAll(async () => {
  if (loadTimer) clearInterval(loadTimer);
  for (const l of loads.values()) await l.device.close();
  for (const d of tampers.values()) await d.close();
  await sim?.stop();
  // CLUSTER_FAULTS_LOGS=<dir>: every node's output (all its runs) to <dir>/<node>.log, for a failure's evidence.
  const logDir = process.env.CLUSTER_FAULTS_LOGS;
  if (c && logDir) {
    fs.mkdirSync(logDir, { recursive: true });
    for (const nd of c.nodes) fs.writeFileSync(path.join(logDir, `${nd.id}.log`), `${nd.log.join('\n')}\n`);
  }
  await c?.stop();
  console.info(`[cluster-faults] figures:\n  ${figures.join('\n  ')}`);
}, 60_000);

describe.sequential('a cluster of 3 cloud nodes under faults (issue 15)', () => {
  it('starts: every hub connected through HAProxy, messages flowing, every guarantee holds before any fault', async () => {
    await commandEveryHub();
    await expectGuarantees('start');
  }, 120_000);

  it('kill -9 of a node during full ingest', async () => {
    for (let r = 0; r < F.repeats; r++) {
      const lease = await c.leaseHolderIndex(REGION);
      const victim = await busiestNode(lease);
      const victimSessions = (await c.haproxyServers()).find((x) => x.name === c.nodes[victim]!.id)?.sessions ?? 0;
      const t = Date.now();
      await c.killNode(victim, 'SIGKILL');
      const before = await ackedNow(); // after the kill: a count that grows now comes from a new connection
      const inFlight = await inFlightNow();
      const failoverMs = await everyHubPublishingAgain(before, t);
      note(`kill -9 ${c.nodes[victim]!.id} (${victimSessions} hub connections) during full ingest: ${inFlight} messages in flight (all agents) right after the kill, every hub publishing again after ${failoverMs}`);
      expect(victimSessions, 'hub connections on the killed node (the kill came mid-stream for them)').toBeGreaterThan(0);
      await commandEveryHub();
      await expectGuarantees(`kill -9 ${c.nodes[victim]!.id} (ingest)`);
      await c.restartNode(victim);
    }
  }, 120_000 * F.repeats);

  it('kill -9 of the lease holder during a dispatch round', async () => {
    for (let r = 0; r < F.repeats; r++) {
      const victim = await holder();
      const other = c.nodes.find((nd) => nd.state === 'up' && nd.index !== victim)!.index;
      const ids: string[] = [];
      let failover: ReturnType<typeof everyHubPublishingAgain> | null = null;
      // Orders arrive one after another on another node; the holder's rounds assign them; it dies right after its first
      // assignment — in later repeats (long form) the lockers may be full and the drones away: then right after the round
      // that planned the first order (waiting for a drone, a charge or a compartment). Sizes alternate S and M (1 / 3 kg).
      let t = 0;
      for (let i = 0; i < F.orders; i++) {
        const [from, to] = ROUTES[i % ROUTES.length]!;
        const res = await c.postJson<{ id: string }>('/api/v1/orders', { originHub: from, destination: { type: 'locker', hub: to }, weightKg: r % 2 === 0 ? 1 : 3, priority: 'normal' }, other);
        expect(res.status, JSON.stringify(res.body)).toBe(201);
        ids.push(res.body.id);
        if (i === 0) {
          let last = '';
          await waitFor(r === 0 ? 'the first order assigned' : 'the first order assigned or planned', async () => {
            const o = await c.getJson<{ state: string; waitReasons: unknown }>(`/api/v1/orders/${ids[0]}`, other);
            last = JSON.stringify(o);
            return o.state !== 'pending' || (r > 0 && RESOURCES_ONLY.test(`${ids[0]}: pending ${JSON.stringify(o.waitReasons)}`));
          }, 30_000, 20).catch((err: Error) => {
            throw new Error(`${err.message}; the order: ${last}`);
          });
          t = Date.now();
          await c.killNode(victim, 'SIGKILL');
          failover = everyHubPublishingAgain(await ackedNow(), t); // measured from now on, read below
          failover.catch(() => undefined);
        }
      }
      note(`kill -9 lease holder ${c.nodes[victim]!.id} during a dispatch round: lease taken over after ${await takeover(victim, t)} ms`);
      const states = await eventually(
        () => Promise.all(ids.map(async (id) => { const o = await c.getJson<{ state: string; waitReasons: unknown }>(`/api/v1/orders/${id}`); return `${id}: ${o.state}${o.state === 'pending' ? ` ${JSON.stringify(o.waitReasons)}` : ''}`; })),
        (v) => v.every((x) => !x.includes(': pending')), 20_000);
      // Pending only for want of a drone, a charged battery or a compartment means a round ran on the new holder and planned it.
      const stuck = states.filter((x) => x.includes(': pending') && !RESOURCES_ONLY.test(x));
      expect.soft(stuck.length, `orders never dispatched after the lease holder died:\n  ${stuck.join('\n  ')}\n`).toBe(0);
      note(`  every hub publishing again after ${await failover!}`);
      await expectGuarantees(`kill -9 lease holder ${c.nodes[victim]!.id} (dispatch)`);
      await c.restartNode(victim);
    }
    expectLeaseKnown();
  }, 120_000 * F.repeats);

  it('kill -9 of the lease holder during a mode switch', async () => {
    for (let r = 0; r < F.repeats; r++) {
      const victim = await holder();
      const mode = r % 2 === 0 ? 'emergency' : 'normal';
      const res = await c.postJson<{ version: number }>(`/api/v1/regions/${REGION}/mode`, { mode, reason: `cluster fault test ${r}` }, victim);
      const t = Date.now();
      await c.killNode(victim, 'SIGKILL');
      const before = await ackedNow();
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      note(`kill -9 lease holder ${c.nodes[victim]!.id} right after switching to ${mode} (version ${res.body.version}): every hub publishing again after ${await everyHubPublishingAgain(before, t)}`);
      // The hubs without an agent never acknowledge: the surviving nodes show them timed out (MODE_ACK_TIMEOUT_S 5).
      for (const nd of c.upNodes()) {
        await expect.poll(async () => {
          const m = await c.getJson<ModeView>(`/api/v1/regions/${REGION}/mode`, nd.index);
          return [`version ${m.desired.version}`, ...m.hubs.filter((h) => !F.hubs.includes(h.hub) && h.status !== 'timed_out').map((h) => `${h.hub}: ${h.status}`)].join(', ');
        }, { timeout: 20_000, interval: 200, message: `hubs without an agent not timed out on ${nd.id}` }).toBe(`version ${res.body.version}`);
      }
      await commandEveryHub();
      await expectGuarantees(`kill -9 lease holder ${c.nodes[victim]!.id} (mode switch)`);
      await c.restartNode(victim);
    }
    expectLeaseKnown();
  }, 120_000 * F.repeats);

  it(`SIGSTOP of the lease holder for ${F.stopS} s, then SIGCONT`, async () => {
    for (let r = 0; r < F.repeats; r++) {
      const victim = await holder();
      const t = Date.now();
      c.stopNode(victim);
      const before = await ackedNow();
      const [takeoverMs, failoverMs] = await Promise.all([takeover(victim, t), everyHubPublishingAgain(before, t)]);
      // While it sleeps: a mode switch and a command through another node.
      const other = c.nodes.find((nd) => nd.state === 'up')!.index;
      const sw = await c.postJson<{ version: number }>(`/api/v1/regions/${REGION}/mode`, { mode: 'normal', reason: `while ${c.nodes[victim]!.id} is stopped` }, other);
      expect(sw.status).toBe(202);
      await commandEveryHub(other);
      const left = F.stopS * 1000 - (Date.now() - t);
      if (left > 0) await new Promise((res) => setTimeout(res, left)); // the fault's duration
      c.contNode(victim);
      note(`SIGSTOP lease holder ${c.nodes[victim]!.id} for ${F.stopS} s: lease taken over after ${takeoverMs} ms, every hub publishing again after ${failoverMs}`);
      // Woken up with a stale lease: it must not act on it (guarantees below), and it must answer again.
      await waitFor(`${c.nodes[victim]!.id} answering again`, async () => (await c.api('/healthz', {}, victim)).ok, 20_000, 100);
      await expectGuarantees(`SIGSTOP ${c.nodes[victim]!.id} ${F.stopS} s`);
    }
    expectLeaseKnown();
  }, (F.stopS * 1000 + 120_000) * F.repeats);

  it('PostgreSQL restarted', async () => {
    for (let r = 0; r < F.repeats; r++) {
      let before = new Map<string, number>();
      const t = Date.now();
      await c.restartPostgres({ downMs: 3_000, whileDown: async () => (before = await ackedNow()) });
      const failoverMs = await everyHubPublishingAgain(before, t, 60_000);
      note(`PostgreSQL restarted (3 s down): every hub publishing again after ${failoverMs} from the stop`);
      await commandEveryHub();
      await expectGuarantees('PostgreSQL restarted');
    }
  }, 150_000 * F.repeats);

  it('Redis restarted', async () => {
    for (let r = 0; r < F.repeats; r++) {
      let before = new Map<string, number>();
      const t = Date.now();
      await c.restartRedis({ downMs: 3_000, whileDown: async () => (before = await ackedNow()) });
      const back = new Date().toISOString();
      const failoverMs = await everyHubPublishingAgain(before, t, 60_000);
      note(`Redis restarted (3 s down, answering again at ${back}): every hub publishing again after ${failoverMs} from the stop`);
      await commandEveryHub();
      await expectGuarantees('Redis restarted');
    }
  }, 150_000 * F.repeats);
});
