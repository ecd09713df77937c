import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { RegionFile } from '../../contract/index.ts';
import { REGION_FILE, ROOT, readCredentials, spawnCloud, tempDir, testCloudEnv, type CloudProcess } from '../../test/support/cloud-harness.ts';
import { ONE_ADDRESS_FLEET_ENV } from '../lib/one-address.ts';
import { startInfluxd, type Influxd } from '../../test/support/influxd.ts';
import { startTcpProxy, type TcpProxy } from '../../test/support/tcp-proxy.ts';
import type { BacklogReply, CatchupRequest, LiveReply } from '../load/catchup-devices.ts';
import { cpuSeconds, rssBytes, startWorker, type Worker } from '../lib/procs.ts';
import { resultsDir, type Row, type Section } from '../lib/report.ts';
import { fmt, summarize } from '../lib/stats.ts';

/**
 * Benchmark 6 — outage catch-up. The region's 13 hubs lose their link to the cloud for 10 minutes
 * while every device keeps publishing at 1 msg/s; then the link returns. How long until the cloud
 * has everything, at what replay rate, and is every acknowledged message there exactly once?
 *
 * Deployment as `npm start` runs it, with InfluxDB: the real cloud process (cloud/main.ts) writing
 * telemetry to a real influxd, the edge fleet (edge/fleet.ts: one process, 13 independent agents,
 * each with its own local broker, SQLite outbox and cloud connection) whose uplinks go through a TCP
 * proxy — the hubs' 4G link — and the region's 39 devices in a load-generator process
 * (bench/load/catchup-devices.ts), each an MQTT connection to its hub's agent publishing at QoS 1.
 *
 * One run: the proxy stops listening (the link is down: connections cut, reconnects refused); the
 * devices publish the outage's messages — 600 per device (60 in quick mode), device timestamps one
 * second apart over the last 10 minutes — as fast as the agents acknowledge them; the link comes
 * back (the proxy listens again) and live traffic goes on at 1 msg/s per device; every 100 ms the
 * cloud's ingest counter is read (cheap) and, once it has taken the backlog, influxd's points per
 * measurement in the outage's time range, until every point of every acknowledged message is there. Then the live messages are checked too, and the cloud's
 * ingest counters and the agents' uplink counters give how many copies were delivered.
 *
 * Environment (for profiling): CATCHUP_EDGE=processes runs 13 `edge/main.ts` processes instead of the
 * fleet; CATCHUP_EDGE_NODE_ARGS / CLOUD_NODE_ARGS add Node flags (e.g. --cpu-prof) to the edge / cloud.
 */

const REGION = RegionFile.parse(JSON.parse(fs.readFileSync(REGION_FILE, 'utf8')));
const HUBS = REGION.hubs.map((h) => h.id);
const MEASUREMENTS = { drone: 'battery_pct', locker: 'occupied', sensor: 'wind_speed_mps' } as const;
type Kind = keyof typeof MEASUREMENTS;
const KINDS = Object.keys(MEASUREMENTS) as Kind[];
const TELEMETRY_TYPES = KINDS.map((k) => `${k}.telemetry`);
const isTelemetry = (labels: string) => TELEMETRY_TYPES.some((t) => labels.includes(`type="${t}"`));
/** Half of benchmark 1's target (zero-loss ingest ≥ 20,000 msg/s), when no measured figure exists. */
const DEFAULT_TARGET = 10_000;
/** The agents' reconnect back-off ceiling in this benchmark (the agent's default is 30 s). */
const BACKOFF_MAX_S = 1;
const DEVICE_WINDOW = 100;

interface Edge {
  /** hub → local broker and HTTP endpoint */
  urls: Record<string, { mqtt: string; http: string }>;
  pids: number[];
  stop(): Promise<void>;
}

interface RunResult {
  run: number;
  backlog: number;
  backlogPoints: number;
  fillMsgPerS: number;
  /** link restored → every backlog point in influxd */
  catchupS: number;
  replayMsgPerS: number;
  replayPointsPerS: number;
  /** link restored → all agents connected (as the proxy saw it) */
  reconnectS: number | null;
  /** link restored → first outage message stored (the cloud's ingest counter) */
  firstPointS: number | null;
  live: number;
  lostMessages: number;
  missingPoints: Record<Kind, number>;
  extraPoints: Record<Kind, number>;
  deliveredCopies: number;
  deliveredMoreThanOnce: number;
  cloudDuplicatesCounted: number;
  cloudRejected: number;
  edgeSent: number;
  edgeAcked: number;
  ackedHistorical: number;
  ackedLive: number;
  edgeDropped: number;
  notAckedByAgents: number;
  cpuCores: Record<string, number>;
  /** CPU time per outage message during the replay, µs (less sensitive to other load than cores). */
  cpuUsPerMsg: Record<string, number>;
  peakRssMiB: Record<string, number>;
  /** Mean time of one influxd count poll, ms. */
  pollMs: number;
  /** first backlog point stored → last: the replay once links are up */
  flowMsgPerS: number;
}

export const catchup: Section = async ({ quick, log }) => {
  const outageS = quick ? 60 : 600;
  const runs = 3;
  const threshold = targetRate();
  const devicesPerHub = Object.fromEntries(REGION.hubs.map((h) => [h.id, h.drones.length + h.lockers.length + h.sensors.length]));
  const deviceCount = Object.values(devicesPerHub).reduce((a, b) => a + b, 0);
  const compartments = REGION.hubs.flatMap((h) => h.lockers.map((l) => l.compartments.length));
  const cleanups: (() => Promise<unknown>)[] = [];
  const dirs: string[] = [];
  try {
    const influxd = await startInfluxd();
    cleanups.push(() => influxd.stop());
    const cloudDir = tempDir('bench-catchup-cloud');
    dirs.push(cloudDir);
    const cloud = await spawnCloud(testCloudEnv(cloudDir, {
      MQTT_WS_PORT: 'off', LOG_LEVEL: process.env.CATCHUP_CLOUD_LOG_LEVEL ?? 'warn', INFLUX_URL: influxd.url, INFLUX_DB: 'catchup', INFLUX_CREATE_DB: 'true', ...ONE_ADDRESS_FLEET_ENV,
    }));
    cleanups.push(async () => {
      await cloud.kill('SIGTERM');
      if (process.env.CATCHUP_LOG_DIR) fs.writeFileSync(path.join(process.env.CATCHUP_LOG_DIR, `cloud-${cloud.child.pid}.log`), `${cloud.output.join('\n')}\n`);
    });
    const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: Number(new URL(cloud.urls.mqtt).port) } });
    cleanups.push(() => proxy.stop());
    const edgeDir = tempDir('bench-catchup-edge');
    dirs.push(edgeDir);
    const mode = process.env.CATCHUP_EDGE === 'processes' ? 'processes' : 'fleet';
    const edge = mode === 'fleet' ? await startFleet(proxy, cloudDir, edgeDir) : await startEdgeProcesses(proxy, cloudDir, edgeDir);
    cleanups.push(() => edge.stop());
    const influxPid = findPid((cmd) => cmd.includes('influxd') && cmd.includes(influxd.dir));
    log(`cloud ${cloud.child.pid}, edge ${mode} ${edge.pids.join(',')}, influxd ${influxPid}; ${deviceCount} devices at ${HUBS.length} hubs`);

    const devices: Worker<CatchupRequest, unknown> = startWorker(path.join(import.meta.dirname, '../load/catchup-devices.ts'));
    cleanups.push(() => devices.stop());
    await devices.call({ op: 'connect', regionFile: REGION_FILE, urls: Object.fromEntries(HUBS.map((h) => [h, edge.urls[h]!.mqtt])) });
    await waitUntil('every agent connected to the cloud', async () => (await agentStatuses(edge)).every((s) => s.uplink.connected), 30_000);

    const results: RunResult[] = [];
    for (let run = 0; run <= runs; run++) {
      const r = await oneRun({ run, outageS, cloud, influxd, proxy, edge, devices, influxPid, log });
      log(
        `${run === 0 ? 'warm-up' : `run ${run}`}: ${fmt(r.backlog)} msgs (${fmt(r.backlogPoints)} points) filled at ${fmt(r.fillMsgPerS)} msg/s; ` +
          `caught up in ${fmt(r.catchupS, 2)} s → ${fmt(r.replayMsgPerS)} msg/s (${fmt(r.replayPointsPerS)} points/s), reconnect ${r.reconnectS?.toFixed(2)} s, ` +
          `first point ${r.firstPointS?.toFixed(2)} s (then ${fmt(r.flowMsgPerS)} msg/s); lost ${r.lostMessages}, delivered twice ${r.deliveredMoreThanOnce}, rejected ${r.cloudRejected}, re-sent by agents ${r.edgeSent - r.edgeAcked}, historical ${r.ackedHistorical} / live ${r.ackedLive}; ` +
          `cores ${fmtRecord(r.cpuCores, 2)}, µs/msg ${fmtRecord(r.cpuUsPerMsg, 0)}, poll ${fmt(r.pollMs, 1)} ms`,
      );
      if (run > 0) results.push(r);
    }

    const rate = summarize(results.map((r) => r.replayMsgPerS));
    const anyLoss = results.some((r) => r.lostMessages > 0 || r.notAckedByAgents > 0 || r.edgeDropped > 0);
    const backlog = results[0]!.backlog;
    const perRun = (f: (r: RunResult) => number) => results.map((r) => fmt(f(r), 0)).join(', ');
    const median = (f: (r: RunResult) => number) => summarize(results.map(f)).median;
    const outage = quick ? '1-minute' : '10-minute';
    const rows: Row[] = [
      {
        metric: `Catch-up after a ${outage} outage of ${HUBS.length} hubs (${fmt(backlog)} msgs, ${fmt(results[0]!.backlogPoints)} points): link back → influxd has everything`,
        ours: summarize(results.map((r) => r.catchupS)), unit: 's', decimals: 2,
      },
      {
        metric: 'Replay rate after an outage (backlog ÷ catch-up time)',
        ours: rate, unit: 'msg/s',
        comparison: threshold.measured === null
          ? `${fmt((rate.median / (2 * DEFAULT_TARGET)) * 100, 0)} % of the 20,000 msg/s zero-loss ingest target`
          : `${fmt((rate.median / threshold.measured) * 100, 0)} % of the measured zero-loss ingest rate (${fmt(threshold.measured)} msg/s)`,
        target: '≥ half the zero-loss ingest rate (see 1)',
        met: rate.median >= threshold.value,
      },
      {
        metric: 'Replay rate once the links are up (first message stored → all stored)',
        ours: summarize(results.map((r) => r.flowMsgPerS).filter(Number.isFinite)), unit: 'msg/s',
      },
      {
        metric: 'Lost: acknowledged by an agent, not in influxd (all runs)',
        ours: `${fmt(results.reduce((n, r) => n + r.lostMessages, 0), 0)} of ${fmt(results.reduce((n, r) => n + r.backlog + r.live, 0), 0)}`,
        target: '0', met: !anyLoss,
      },
      {
        metric: 'Delivered to the cloud more than once (per run; influxd would store a copy once)',
        ours: perRun((r) => r.deliveredMoreThanOnce),
        target: '0 without faults', met: results.every((r) => r.deliveredMoreThanOnce === 0),
      },
      {
        metric: 'Arrived marked historical / live (median per run)',
        ours: `${fmt(median((r) => r.ackedHistorical), 0)} / ${fmt(median((r) => r.ackedLive), 0)}`,
      },
      {
        metric: 'Link back → all agents reconnected',
        ours: summarize(results.map((r) => r.reconnectS ?? Number.NaN)), unit: 's', decimals: 2,
      },
      {
        metric: 'Devices → agents while the link is down (outage messages accepted into the outboxes)',
        ours: summarize(results.map((r) => r.fillMsgPerS)), unit: 'msg/s',
      },
    ];
    const cores = (k: string) => `${fmt(median((r) => r.cpuCores[k] ?? 0), 2)} (${fmt(median((r) => r.cpuUsPerMsg[k] ?? 0), 0)} µs per message)`;
    const notes = [
      `The region ${REGION.id}: ${HUBS.length} hubs, ${deviceCount} devices (${HUBS.map((h) => `${h} ${devicesPerHub[h]}`).join(', ')}); ` +
        `locker banks report the compartments the region file gives them (${Math.min(...compartments)}–${Math.max(...compartments)}, ${compartments.reduce((a, b) => a + b, 0)} in all), ` +
        `so a locker message is that many points. Backlog per run: ${fmt(backlog)} messages = ${outageS} × ${deviceCount} devices, ${fmt(results[0]!.backlogPoints / backlog, 1)} points per message ` +
        '(benchmark 1\'s mix — 10 % locker banks of 16 — is 2.5), so per message a replay writes about 1.8× the points of the ingest benchmark.',
      `Edge: ${mode === 'fleet' ? 'the fleet (edge/fleet.ts), as `npm start` and docker-compose run it — one process, 13 independent agents' : '13 edge/main.ts processes, one per hub'}. ` +
        'On this 2-core machine 13 processes would get no more CPU than one (the cloud and influxd need the same cores), and real hubs each have a CPU of their own, ' +
        'so the edge side here is a pessimistic stand-in for the region (CATCHUP_EDGE=processes runs 13 processes instead; on this machine it measured the same within the noise).',
      `The agents reconnect with their jittered exponential back-off, here with a ceiling of ${BACKOFF_MAX_S} s (UPLINK_BACKOFF_MAX_S; the default 30 s would add up to 30 s after a real 10-minute outage, ` +
        `by design — it spreads a region's reconnects). The catch-up time starts when the proxy listens again, so it includes that back-off (median ${fmt(median((r) => r.reconnectS ?? 0), 2)} s until all ${HUBS.length} were connected).`,
      `Live traffic goes on at 1 msg/s per device during the replay; the agents send a quarter of their window as newest-first telemetry, so live readings are not held behind the backlog. ` +
        'Historical/live is what the agents sent marked (`"historical": true` for every message accepted while the link was down) and the cloud acknowledged.',
      'Counted: lost = points of agent-acknowledged messages missing in influxd (count per measurement over the run\'s time range, before and after; every message\'s points have their own series and timestamp, ' +
        'so a missing message shows as missing points). InfluxDB overwrites a copy with identical series and time, so copies are counted where they arrive: ' +
        '`ingest_messages_accepted_total` for telemetry minus the messages published; the agents\' sent − acknowledged counts re-sends after a lost PUBACK.',
      'What this benchmark found and changed in the edge agent: (1) agents re-sent acknowledged messages whose removal from the outbox was still pending (a pump between the PUBACK and the ' +
        'removal on the next tick, e.g. after a live reading arrived) — 2–15 % of a replay was delivered twice; fixed. (2) Each batch of PUBACKs was removed from the outbox with an fsync ' +
        '(synchronous=FULL), and in the fleet the 13 agents share one thread, so the replay waited on the disk: removals are now committed without fsync (a power cut can only bring back messages ' +
        'the cloud already has, sent again and taken once); appends keep their fsync before the device\'s PUBACK. (3) Historical marking no longer parses and re-serialises each payload. ' +
        'Edge CPU per replayed message went from 65–78 µs to 35–50 µs, influxd and the cloud no longer write the copies; the replay rate itself moves with the CPU the cloud gets on this shared machine.',
      `CPU during the replay (median, cores): cloud ${cores('cloud')}, edge ${cores('edge')}, influxd ${cores('influxd')}, devices ${cores('devices')}, bench process (proxy, polling) ${cores('bench')}; ` +
        `one influxd count poll took ${fmt(median((r) => r.pollMs), 1)} ms.`,
      ...(quick ? ['Quick mode: a 1-minute backlog replays in well under a second once connected, so the reconnect back-off dominates the catch-up time and the rate is not comparable with the full run.'] : []),
      threshold.measured === null
        ? `Target: no measured zero-loss ingest rate in bench/results/ingest.json, so half of its 20,000 msg/s target: ${fmt(threshold.value)} msg/s.`
        : `Target: half the measured zero-loss ingest rate of bench/results/ingest.json (${fmt(threshold.measured)} msg/s): ${fmt(threshold.value)} msg/s.`,
    ];
    return {
      title: `Outage catch-up: ${HUBS.length} hubs, ${outage} outage at 1 msg/s per device, replayed into the cloud and influxd`,
      method:
        `The real cloud process (telemetry in a real influxd), the edge ${mode === 'fleet' ? 'fleet (13 agents in one process, as `npm start` runs them)' : 'agents (13 processes)'} ` +
        `with their cloud link through a TCP proxy, and the region's ${deviceCount} devices in a load-generator process, each an MQTT connection to its hub's agent publishing realistic telemetry ` +
        `(the contract's examples with the region's devices) at QoS 1 with unique ids. Per run: the link goes down (proxy refuses), the devices publish ${outageS} s of messages at 1 msg/s per device ` +
        `(device timestamps spread over the last ${outageS / 60} minutes) as fast as the agents acknowledge them, the link comes back while live traffic continues, and every 100 ms the cloud's ingest counter is read; ` +
        'once it has taken as many messages as the backlog, influxd\'s point counts per measurement (over the outage\'s time range) decide, polled every 100 ms until every point of every acknowledged message is stored. ' +
        'Replay rate = outage messages ÷ (link back → all stored). One warm-up run, then 3 runs on the same deployment.',
      rows,
      notes,
      raw: { outageS, deviceCount, devicesPerHub, mode, backoffMaxS: BACKOFF_MAX_S, threshold, runs: results },
    };
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  }
};

/** The bar: half the zero-loss ingest rate measured in benchmark 1 when there is one, else half its target. */
function targetRate(): { value: number; measured: number | null } {
  const file = path.join(resultsDir(false), 'ingest.json');
  try {
    const rows = (JSON.parse(fs.readFileSync(file, 'utf8')) as { rows?: Row[] }).rows ?? [];
    const row = rows.find((r) => /zero-loss/i.test(r.metric) && typeof r.ours === 'object' && (r.unit ?? '').includes('msg/s'));
    const measured = row && typeof row.ours === 'object' ? row.ours.median : NaN;
    if (Number.isFinite(measured) && measured > 0) return { value: measured / 2, measured };
  } catch {
    /* no ingest results yet */
  }
  return { value: DEFAULT_TARGET, measured: null };
}

interface RunContext {
  run: number;
  outageS: number;
  cloud: CloudProcess;
  influxd: Influxd;
  proxy: TcpProxy;
  edge: Edge;
  devices: Worker<CatchupRequest, unknown>;
  influxPid: number | null;
  log: (line: string) => void;
}

async function oneRun(c: RunContext): Promise<RunResult> {
  const { run, outageS, influxd, proxy, edge, devices } = c;
  // Each run has its own phase within the second, so no device timestamp of one run equals one of
  // another run (influxd would overwrite it, hiding a loss); live traffic has the other half-second.
  const phase = (run * 97) % 500;

  // ---- the link goes down
  await proxy.stop();
  await waitUntil('every agent saw the link drop', async () => (await agentStatuses(edge)).every((s) => !s.uplink.connected), 30_000);
  const endTs = Math.floor(Date.now() / 1000) * 1000;
  const window: [number, number] = [endTs - outageS * 1000, endTs];
  const before = await countPoints(influxd, window);
  const metricsBefore = await cloudMetrics(c.cloud);
  const statusBefore = await agentStatuses(edge);

  // ---- the outage's messages
  const bl = (await devices.call({ op: 'backlog', run, seconds: outageS, endTs, phaseMs: phase, window: DEVICE_WINDOW })) as BacklogReply;
  const backlog = bl.acked;
  const depth = (await agentStatuses(edge)).reduce((n, s) => n + s.outbox.depth, 0);
  if (depth < backlog) c.log(`warning: outboxes hold ${depth} messages, devices had ${backlog} acknowledged`);
  const expected = Object.fromEntries(KINDS.map((k) => [k, before[k] + bl.points[k]])) as Record<Kind, number>;

  // ---- the link comes back; live traffic goes on
  const liveBase = Math.floor(Date.now() / 1000) * 1000 + 1000;
  await devices.call({ op: 'live-start', run, baseTs: liveBase, phaseMs: 500 + phase });
  const procs = { cloud: c.cloud.child.pid ?? null, edge: edge.pids, influxd: c.influxPid, devices: devices.pid };
  const cpuOf = (p: number | number[] | null) => (p === null ? 0 : ([] as number[]).concat(p).reduce((n, pid) => n + cpuSeconds(pid), 0));
  const cpu0 = Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, cpuOf(p)]));
  const bench0 = process.cpuUsage();
  const peak: Record<string, number> = {};
  const acceptedBefore = proxy.stats().accepted;
  const telemetryBefore = sumMetric(metricsBefore, 'ingest_messages_accepted_total', isTelemetry);
  const t0 = performance.now();
  await proxy.start();
  let reconnectS: number | null = null;
  let firstPointS: number | null = null;
  let counts = before;
  let polls = 0;
  let pollMsTotal = 0;
  const deadline = t0 + Math.max(60_000, backlog * 5); // 5 ms per message: far below any useful rate
  // Every 100 ms: the cloud's ingest counter (cheap; it counts a message once its store write
  // succeeded), and — once it says the backlog may be complete — influxd's counts, which decide.
  // Counting in influxd on every poll would load it with queries over a growing range while it is
  // being measured.
  for (;;) {
    const now = performance.now();
    const st = proxy.stats();
    if (reconnectS === null && st.accepted - acceptedBefore >= HUBS.length && st.connections >= HUBS.length) reconnectS = (now - t0) / 1000;
    const accepted = sumMetric(await cloudMetrics(c.cloud), 'ingest_messages_accepted_total', isTelemetry) - telemetryBefore;
    if (firstPointS === null && accepted > 0) firstPointS = (performance.now() - t0) / 1000;
    let tAfter = performance.now();
    if (accepted >= backlog) {
      counts = await countPoints(influxd, window);
      tAfter = performance.now();
      polls++;
      pollMsTotal += tAfter - now;
      if (KINDS.every((k) => counts[k] >= expected[k])) break;
    }
    for (const [k, p] of Object.entries(procs)) for (const pid of ([] as (number | null)[]).concat(p)) if (pid) peak[k] = Math.max(peak[k] ?? 0, rssBytes(pid));
    if (tAfter > deadline) {
      counts = await countPoints(influxd, window);
      break;
    }
    await sleep(Math.max(0, 100 - (tAfter - now)));
  }
  const tDone = performance.now();
  const catchupS = (tDone - t0) / 1000;
  const benchUse = process.cpuUsage(bench0);
  const cpuCores: Record<string, number> = Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, (cpuOf(p) - cpu0[k]!) / catchupS]));
  cpuCores.bench = (benchUse.user + benchUse.system) / 1e6 / catchupS;
  const cpuUsPerMsg = Object.fromEntries(Object.entries(cpuCores).map(([k, v]) => [k, (v * catchupS * 1e6) / Math.max(1, backlog)]));
  const complete = KINDS.every((k) => counts[k] >= expected[k]);
  if (!complete) c.log(`run ${run}: not everything arrived within ${((deadline - t0) / 1000).toFixed(0)} s: ${JSON.stringify({ counts, expected })}`);

  // ---- live traffic stops; everything it published must arrive too
  const live = (await devices.call({ op: 'live-stop' })) as LiveReply;
  const liveWindow: [number, number] = [liveBase, liveBase + 3_600_000];
  let liveCounts = await countPoints(influxd, liveWindow);
  const liveDeadline = performance.now() + 30_000;
  while (KINDS.some((k) => liveCounts[k] < live.points[k]) && performance.now() < liveDeadline) {
    await sleep(100);
    liveCounts = await countPoints(influxd, liveWindow);
  }
  // Settled: outboxes empty, nothing in flight (the agents' status messages are not counted here).
  await waitUntil('the outboxes to empty', async () => (await agentStatuses(edge)).every((s) => s.outbox.depth === 0 && s.uplink.inFlight === 0), 30_000).catch((err: Error) => c.log(err.message));
  const final = await countPoints(influxd, window);
  const statusAfter = await agentStatuses(edge);
  const metricsAfter = await cloudMetrics(c.cloud);

  const missingPoints = Object.fromEntries(KINDS.map((k) => [k, Math.max(0, expected[k] - final[k]) + Math.max(0, live.points[k] - liveCounts[k])])) as Record<Kind, number>;
  const extraPoints = Object.fromEntries(KINDS.map((k) => [k, Math.max(0, final[k] - expected[k]) + Math.max(0, liveCounts[k] - live.points[k])])) as Record<Kind, number>;
  // Points per locker message differ by bank; a missing locker point means at least a part of a message.
  const perLocker = bl.messages.locker > 0 ? bl.points.locker / bl.messages.locker : 1;
  const lostMessages = missingPoints.drone + missingPoints.sensor + Math.ceil(missingPoints.locker / perLocker);
  const delta = (name: string, filter: (labels: string) => boolean) => sumMetric(metricsAfter, name, filter) - sumMetric(metricsBefore, name, filter);
  const deliveredCopies = delta('ingest_messages_accepted_total', isTelemetry);
  const sum = (list: AgentStatus[], f: (s: AgentStatus) => number) => list.reduce((n, s) => n + f(s), 0);
  const dropped = (s: AgentStatus) => Object.values(s.outbox.dropped).reduce((a, b) => a + b, 0);
  const published = backlog + live.acked;
  return {
    run, backlog, backlogPoints: KINDS.reduce((n, k) => n + bl.points[k], 0),
    fillMsgPerS: backlog / (bl.ms / 1000),
    catchupS, replayMsgPerS: backlog / catchupS, replayPointsPerS: KINDS.reduce((n, k) => n + bl.points[k], 0) / catchupS,
    reconnectS, firstPointS, live: live.acked, lostMessages, missingPoints, extraPoints,
    deliveredCopies, deliveredMoreThanOnce: Math.max(0, deliveredCopies - published),
    cloudDuplicatesCounted: delta('ingest_duplicates_total', () => true),
    cloudRejected: delta('ingest_messages_rejected_total', () => true),
    edgeSent: sum(statusAfter, (s) => s.uplink.sent) - sum(statusBefore, (s) => s.uplink.sent),
    edgeAcked: sum(statusAfter, (s) => s.uplink.acked) - sum(statusBefore, (s) => s.uplink.acked),
    ackedHistorical: sum(statusAfter, (s) => s.uplink.ackedHistorical ?? 0) - sum(statusBefore, (s) => s.uplink.ackedHistorical ?? 0),
    ackedLive: sum(statusAfter, (s) => s.uplink.acked - (s.uplink.ackedHistorical ?? 0)) - sum(statusBefore, (s) => s.uplink.acked - (s.uplink.ackedHistorical ?? 0)),
    edgeDropped: sum(statusAfter, dropped) - sum(statusBefore, dropped),
    notAckedByAgents: bl.notAcked + live.notAcked,
    cpuCores, cpuUsPerMsg, pollMs: pollMsTotal / Math.max(1, polls),
    flowMsgPerS: firstPointS === null || firstPointS >= catchupS ? Number.NaN : backlog / (catchupS - firstPointS),
    peakRssMiB: Object.fromEntries(Object.entries(peak).map(([k, v]) => [k, Math.round(v / 2 ** 20)])),
  };
}

// ------------------------------------------------------------------ influxd, cloud and agent probes

/** Points per measurement with device time in [from, to). */
async function countPoints(influxd: Influxd, [from, to]: [number, number]): Promise<Record<Kind, number>> {
  const q = KINDS.map((k) => `SELECT count(${MEASUREMENTS[k]}) FROM ${k} WHERE time >= ${from}ms AND time < ${to}ms`).join('; ');
  const res = await fetch(`${influxd.url}/query?${new URLSearchParams({ db: 'catchup', q })}`, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`influxd ${res.status}: ${await res.text()}`);
  const json = (await res.json()) as { results: { series?: { values: [string, number][] }[]; error?: string }[] };
  return Object.fromEntries(KINDS.map((k, i) => {
    const r = json.results[i];
    if (r?.error) throw new Error(`influxd: ${r.error}`);
    return [k, Number(r?.series?.[0]?.values[0]?.[1] ?? 0)];
  })) as Record<Kind, number>;
}

async function cloudMetrics(cloud: CloudProcess): Promise<string> {
  return (await fetch(`${cloud.urls.http}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
}

function sumMetric(text: string, name: string, filter: (labels: string) => boolean): number {
  let n = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^(\w+)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (m && m[1] === name && filter(m[2] ?? '')) n += Number(m[3]);
  }
  return n;
}

interface AgentStatus {
  hub: string;
  uplink: { connected: boolean; inFlight: number; sent: number; acked: number; ackedHistorical?: number };
  outbox: { depth: number; dropped: Record<string, number> };
}

async function agentStatuses(edge: Edge): Promise<AgentStatus[]> {
  return Promise.all(HUBS.map(async (h) => (await (await fetch(`${edge.urls[h]!.http}/status`, { signal: AbortSignal.timeout(10_000) })).json()) as AgentStatus));
}

// ------------------------------------------------------------------ edge deployments

function edgeNodeArgs(): string[] {
  return (process.env.CATCHUP_EDGE_NODE_ARGS ?? '').split(' ').filter(Boolean);
}

/** Spawns `node --import tsx <script>` and resolves with the JSON after `readyPrefix` on its stdout. */
async function spawnReady<T>(script: string, env: Record<string, string>, readyPrefix: string): Promise<{ child: ChildProcess; ready: T }> {
  const child = spawn(process.execPath, [...edgeNodeArgs(), '--import', 'tsx', path.join(ROOT, script)], {
    cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  const output: string[] = [];
  const logFile = process.env.CATCHUP_LOG_DIR ? fs.createWriteStream(path.join(process.env.CATCHUP_LOG_DIR, `${path.basename(script, '.ts')}-${child.pid}.log`)) : null;
  readline.createInterface({ input: child.stderr! }).on('line', (l) => {
    output.push(l);
    if (output.length > 200) output.shift();
    logFile?.write(`${l}\n`);
  });
  const ready = await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not start in 60 s:\n${output.slice(-20).join('\n')}`)), 60_000);
    readline.createInterface({ input: child.stdout! }).on('line', (l) => {
      if (l.startsWith(readyPrefix)) {
        clearTimeout(timer);
        resolve(JSON.parse(l.slice(readyPrefix.length)) as T);
      } else {
        output.push(l);
        logFile?.write(`${l}\n`);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${script} exited with ${code} before it was ready:\n${output.slice(-20).join('\n')}`));
    });
  });
  return { child, ready };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await gone;
  clearTimeout(timer);
}

async function startFleet(proxy: TcpProxy, cloudDir: string, edgeDir: string): Promise<Edge> {
  const { child, ready } = await spawnReady<Record<string, { mqtt: string; http: string }>>('edge/fleet.ts', {
    CLOUD_MQTT_URL: proxy.url('mqtt'), CREDENTIALS_FILE: path.join(cloudDir, 'credentials.json'), REGION_FILE, DATA_DIR: edgeDir,
    // The load generator plays many devices per connection, anonymously: the agents' bench-only escape hatch.
    EDGE_ALLOW_ANONYMOUS: 'true', EDGE_BIND_HOST: '127.0.0.1', EDGE_BASE_MQTT_PORT: '0', EDGE_BASE_HTTP_PORT: '0', LOG_LEVEL: process.env.CATCHUP_EDGE_LOG_LEVEL ?? 'warn', UPLINK_BACKOFF_MAX_S: String(BACKOFF_MAX_S),
  }, 'EDGE_FLEET_READY ');
  return { urls: ready, pids: [child.pid!], stop: () => stopChild(child) };
}

async function startEdgeProcesses(proxy: TcpProxy, cloudDir: string, edgeDir: string): Promise<Edge> {
  const creds = readCredentials(cloudDir);
  const started = await Promise.all(HUBS.map((hub) => spawnReady<{ mqtt: string; http: string }>('edge/main.ts', {
    HUB_ID: hub, REGION_ID: REGION.id, CLOUD_MQTT_URL: proxy.url('mqtt'), CLOUD_USERNAME: creds[hub]!.username, CLOUD_PASSWORD: creds[hub]!.password,
    EDGE_DATA_DIR: path.join(edgeDir, hub), LOCAL_BIND_HOST: '127.0.0.1', LOCAL_MQTT_PORT: '0', LOCAL_HTTP_PORT: '0', LOG_LEVEL: process.env.CATCHUP_EDGE_LOG_LEVEL ?? 'warn',
    LOCAL_ALLOW_ANONYMOUS: 'true', // anonymous bench devices (see above)
    UPLINK_BACKOFF_MAX_S: String(BACKOFF_MAX_S),
  }, 'EDGE_READY ')));
  return {
    urls: Object.fromEntries(HUBS.map((h, i) => [h, started[i]!.ready])),
    pids: started.map((s) => s.child.pid!),
    stop: async () => {
      await Promise.all(started.map((s) => stopChild(s.child)));
    },
  };
}

// ------------------------------------------------------------------ small helpers

const fmtRecord = (r: Record<string, number>, d: number) => Object.entries(r).map(([k, v]) => `${k} ${fmt(v, d)}`).join(', ');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** The pid of a running process whose command line matches (read-only /proc scan). */
function findPid(match: (cmdline: string) => boolean): number | null {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (match(fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' '))) return Number(entry);
    } catch {
      /* gone */
    }
  }
  return null;
}
