import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { backoffDelayMs, type Backoff } from '../../shared/backoff.ts';
import { checkPassword, hashPassword, LEGACY_SCRYPT } from '../../cloud/accounts/password-hash.ts';
import { openDatabase } from '../../cloud/db/database.ts';
import { generatePassword, hashHubSecret, verifyHubSecret } from '../../cloud/hubs/hub-credentials.ts';
import { CloudEnv } from '../../cloud/config.ts';
import { UPLINK_BACKOFF } from '../../edge/uplink.ts';
import type { ConnectReply, HubClientsRequest, ReconnectPolicy, ReconnectReply, RoundReply } from '../load/hub-clients.ts';
import { DATABASE_LABEL, type BenchDatabaseKind } from '../lib/bench-database.ts';
import { epochMs } from '../lib/mqtt-raw.ts';
import { startNationalCloud, type NationalCloud, type Restart } from '../lib/national-cloud.ts';
import { COMMUNITY_HALLS_AND_STATIONS, ROADSIDE_STATIONS } from '../lib/national-region.ts';
import { cpuSeconds, startWorker, type Worker } from '../lib/procs.ts';
import type { Row, Section } from '../lib/report.ts';
import { fmt, percentile, summarize } from '../lib/stats.ts';

/**
 * Reconnect storm (issue 17, item 3): the cloud process restarts with every hub connected; how long
 * until every hub is connected again and has acknowledged the current mode — with the hubs reconnecting
 * on the edge agent's default back-off, and hub secrets in their production form.
 */
type HubWorker = Worker<HubClientsRequest, unknown>;

/**
 * The edge agent's reconnect, as it is by default: edge/uplink.ts computes
 * `backoffDelayMs({ ...UPLINK_BACKOFF, maxMs: UPLINK_BACKOFF_MAX_S × 1000 }, attempt)` (edge/uplink.ts;
 * shared/backoff.ts: a delay uniform in [d/2, d) for d = min(30 s, 0.5 s · 2^attempt) — "equal jitter"),
 * UPLINK_BACKOFF_MAX_S defaults to 30 (edge/config.ts), and mqtt.js gives a try up after its
 * connectTimeout of 10 s. The attempt counter grows with every failed try and is reset at CONNACK.
 */
export const EDGE_DEFAULT_RECONNECT: ReconnectPolicy = {
  backoff: { ...UPLINK_BACKOFF, maxMs: 30_000 } satisfies Backoff,
  connectTimeoutMs: 10_000,
};

const TARGET_MS = 10_000;
/** The listen backlog before issue 17 raised it, and net.core.somaxconn on most Linux hosts. */
const SHORT_BACKLOG = 4_096;
const listenBacklogDefault = () => CloudEnv.shape.MQTT_LISTEN_BACKLOG.parse(undefined);
/** A kernel setting under /proc/sys, or '—' where it cannot be read. */
function sysctl(name: string): string {
  try {
    return fs.readFileSync(`/proc/sys/${name}`, 'utf8').trim();
  } catch {
    return '—';
  }
}

/** Linux's count of connections dropped because a listen queue was full (/proc/net/netstat TcpExt ListenOverflows); null elsewhere. */
function listenOverflows(): number | null {
  try {
    const lines = fs.readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
    const [names, values] = lines.map((l) => l.split(/\s+/));
    const i = names?.indexOf('ListenOverflows') ?? -1;
    return i > 0 && values ? Number(values[i]) : null;
  } catch {
    return null;
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const load = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');

interface StormSample {
  hubs: number;
  database: BenchDatabaseKind;
  /** 'fast': secrets in the production form; 'scrypt': every secret still a scrypt N=2^14 hash (as stored before issue 17). */
  secrets: 'fast' | 'scrypt';
  /** All ms after the restart signal. */
  exitedMs: number;
  readyMs: number;
  switchAnsweredMs: number;
  /** Per hub: start of the try that brought it back (the end of its back-off wait). */
  tryMs: number[];
  /** Per hub: CONNACK of the connection that brought it back. */
  connackMs: number[];
  /** Median time the hubs lost their link. */
  lostMs: number;
  /** Per hub: subscribed and birth status acknowledged. */
  backMs: number[];
  /** Every hub back and its acknowledgement of the switch made at readiness stored (PUBACK). */
  allAckedMs: number;
  lastAckMs: number;
  tries: number[];
  failures: Record<string, number>;
  /** Links lost beyond one per hub (a hub dropped again after it was back), and mode-acks sent again after a reconnect. */
  extraLosses: number;
  ackResends: number;
  /** Cloud CPU from readiness until every hub was back and had acknowledged, s. */
  cloudCpuS: number;
  /** Connections the kernel dropped for a full listen queue during the restart (Linux), or null. */
  listenOverflows: number | null;
  loadBefore: string;
  loadAfter: string;
}

async function connectAll(worker: HubWorker, req: Extract<HubClientsRequest, { op: 'connect' }>): Promise<ConnectReply> {
  const r = (await worker.call(req, 600_000)) as ConnectReply;
  if (r.failed > 0) throw new Error(`${r.failed} of ${req.hubs.length} hub connections failed: ${r.errors.join('; ')}`);
  return r;
}

/** A coordinator's switch; resolves with its version. */
async function switchMode(nc: NationalCloud, mode: 'emergency' | 'normal'): Promise<number> {
  const res = await nc.api(`/api/v1/regions/${nc.region.id}/mode`, {
    method: 'POST', body: JSON.stringify({ mode, reason: mode === 'emergency' ? 'benchmark: reconnect storm drill' : 'benchmark: all clear' }),
  });
  const body = (await res.json()) as { version: number };
  if (res.status !== 202) throw new Error(`switch answered ${res.status}: ${JSON.stringify(body).slice(0, 300)}`);
  return body.version;
}

/** Every hub's stored secret replaced by one scrypt N=2^14 hash of its password: what a cloud before issue 17 had stored. */
async function plantLegacySecrets(nc: NationalCloud): Promise<void> {
  const db = await openDatabase({ url: nc.databaseUrl, dataDir: nc.dataDir, synchronous: 'normal', maxConnections: 1 });
  try {
    await db.sql.run('UPDATE hub_credentials SET secret = ?', [await hashPassword(nc.seeded.password, LEGACY_SCRYPT)]);
  } finally {
    await db.close();
  }
}

/**
 * One restart: the cloud gets SIGTERM with every hub connected and is started again at once; as soon
 * as it is ready a coordinator switches the region's mode (so "acknowledged the current mode" is a
 * fresh acknowledgement from every hub, not one stored before the restart); done when every hub is
 * back and the cloud has stored its acknowledgement.
 */
async function restartOnce(worker: HubWorker, nc: NationalCloud, hubs: number, mode: 'emergency' | 'normal', version: number, secrets: 'fast' | 'scrypt', database: BenchDatabaseKind, timeoutMs: number): Promise<StormSample> {
  await worker.call({ op: 'resetReconnects' });
  await worker.call({ op: 'arm', version, expect: hubs });
  const loadBefore = load();
  const overflowsBefore = listenOverflows();
  // Both waits run in the worker at once: the reconnect wait first (the worker answers one call at a
  // time, so the acknowledgement wait is asked for after it, and returns at once if already done).
  const back = worker.call({ op: 'waitReconnected', lost: hubs, timeoutMs }, timeoutMs + 60_000) as Promise<ReconnectReply>;
  let restart: Restart;
  try {
    restart = await nc.restart('SIGTERM');
  } catch (err) {
    await back.catch(() => undefined);
    throw err;
  }
  const cpu0 = cpuSeconds(nc.cloud.child.pid!);
  const switched = await switchMode(nc, mode);
  const switchAnsweredAt = epochMs();
  if (switched !== version) throw new Error(`switch made version ${switched}, expected ${version}`);
  const r = await back;
  const acks = (await worker.call({ op: 'wait', timeoutMs }, timeoutMs + 60_000)) as RoundReply;
  const cloudCpuS = cpuSeconds(nc.cloud.child.pid!) - cpu0;
  const overflowsAfter = listenOverflows();
  if (r.timedOut || r.reconnected < hubs) throw new Error(`${DATABASE_LABEL[database]} ${secrets}: only ${r.reconnected} of ${r.lost} hubs back within ${timeoutMs} ms (failures ${JSON.stringify(r.failures)})`);
  if (acks.timedOut || acks.pubacked < hubs) throw new Error(`${DATABASE_LABEL[database]} ${secrets}: only ${acks.pubacked} of ${hubs} acknowledgements of v${version} stored within ${timeoutMs} ms`);
  const t0 = restart.signalledAt;
  const backMs = r.readyAt.map((t) => t - t0);
  const lastAckMs = acks.lastPubackAt! - t0;
  return {
    hubs, database, secrets, exitedMs: restart.exitedAt - t0, readyMs: restart.readyAt - t0, switchAnsweredMs: switchAnsweredAt - t0,
    tryMs: r.tryAt.map((t) => t - t0), connackMs: r.connackAt.map((t) => t - t0), lostMs: percentile(r.lostAt.map((t) => t - t0), 50), backMs, lastAckMs, allAckedMs: Math.max(lastAckMs, Math.max(...backMs)),
    tries: r.tries, failures: r.failures, extraLosses: r.lost - hubs, ackResends: r.ackResends, cloudCpuS, loadBefore, loadAfter: load(),
    listenOverflows: overflowsBefore === null || overflowsAfter === null ? null : overflowsAfter - overflowsBefore,
  };
}

/** Per hub, the end of its back-off wait (the try that worked) after readiness, and the time from that try until it was back. */
const waits = (s: StormSample) => s.tryMs.map((t) => t - s.readyMs);
const services = (s: StormSample) => s.backMs.map((b, i) => b - s.tryMs[i]!);

/**
 * The back-off alone, simulated for `hubs` hubs with the agent's formula: every try before `downMs` is
 * refused at once; how long after `downMs` each hub's first try comes (p50, p99, max) — what no cloud
 * can make shorter.
 */
function backoffFloor(hubs: number, downMs: number, backoff: Backoff = EDGE_DEFAULT_RECONNECT.backoff): { p50: number; p99: number; max: number } {
  const after: number[] = [];
  for (let i = 0; i < hubs; i++) {
    let t = 0;
    for (let attempt = 0; t < downMs; attempt++) t += backoffDelayMs(backoff, attempt);
    after.push(t - downMs);
  }
  return { p50: percentile(after, 50), p99: percentile(after, 99), max: Math.max(...after) };
}

const describeSample = (s: StormSample) =>
  `${DATABASE_LABEL[s.database]}, ${fmt(s.hubs, 0)} hubs, ${s.secrets} secrets: links lost ${fmt(s.lostMs, 0)} ms (median), exited ${fmt(s.exitedMs, 0)} ms, ready ${fmt(s.readyMs, 0)} ms, ` +
  `switch answered ${fmt(s.switchAnsweredMs, 0)} ms; hubs back p50 ${fmt(percentile(s.backMs, 50), 0)} / p99 ${fmt(percentile(s.backMs, 99), 0)} / max ${fmt(Math.max(...s.backMs), 0)} ms; ` +
  `back-off wait after ready (to the try that worked) p50 ${fmt(percentile(waits(s), 50), 0)} / p99 ${fmt(percentile(waits(s), 99), 0)} / max ${fmt(Math.max(...waits(s)), 0)} ms, ` +
  `that try → back p50 ${fmt(percentile(services(s), 50), 0)} / p99 ${fmt(percentile(services(s), 99), 0)} / max ${fmt(Math.max(...services(s)), 0)} ms; ` +
  `every hub back and acknowledged ${fmt(s.allAckedMs, 0)} ms; tries p50 ${percentile(s.tries, 50)} max ${Math.max(...s.tries)}; failed tries ${JSON.stringify(s.failures)}; links lost again after being back ${s.extraLosses}, mode-acks sent again ${s.ackResends}; ` +
  `connections dropped for a full listen queue (Linux ListenOverflows) ${s.listenOverflows ?? '—'}; ` +
  `cloud CPU ${fmt(s.cloudCpuS, 2)} s (${fmt((1000 * s.cloudCpuS) / s.hubs, 2)} ms per hub); load ${s.loadBefore} → ${s.loadAfter}`;

/** A cloud with `hubs` connected hubs (reconnecting like agents) that all acknowledged one switch; then `restarts` restarts, and optionally one more with every secret planted back as scrypt. */
async function measure(worker: HubWorker, hubs: number, restarts: number, database: BenchDatabaseKind, legacyRestart: boolean, log: (l: string) => void, env: Record<string, string> = {}): Promise<StormSample[]> {
  const nc = await startNationalCloud(hubs, { database, env });
  const samples: StormSample[] = [];
  try {
    const label = DATABASE_LABEL[database];
    const connected = await connectAll(worker, {
      op: 'connect', port: nc.mqttPort, region: nc.region.id, hubs: nc.region.hubs, password: nc.seeded.password, concurrency: 200, reconnect: EDGE_DEFAULT_RECONNECT,
    });
    log(`${label}: ${fmt(hubs, 0)} hubs connected in ${fmt(connected.ms / 1000, 1)} s (cloud ready in ${fmt(nc.startupMs, 0)} ms)`);
    // The current mode before the restart, acknowledged by every hub (each then holds its version).
    let version = 1;
    await worker.call({ op: 'arm', version, expect: hubs });
    const first = worker.call({ op: 'wait', timeoutMs: 120_000 }, 130_000) as Promise<RoundReply>;
    if ((await switchMode(nc, 'emergency')) !== version) throw new Error('the first switch is not version 1');
    const w = await first;
    if (w.timedOut) throw new Error(`only ${w.pubacked} of ${hubs} hubs acknowledged the first switch`);
    await sleep(1_000);
    const runs: ('fast' | 'scrypt')[] = [...Array.from({ length: restarts }, () => 'fast' as const), ...(legacyRestart ? ['scrypt' as const] : [])];
    for (const secrets of runs) {
      if (secrets === 'scrypt') await plantLegacySecrets(nc);
      version++;
      const s = await restartOnce(worker, nc, hubs, version % 2 === 0 ? 'normal' : 'emergency', version, secrets, database, secrets === 'scrypt' ? 600_000 : 240_000);
      samples.push(s);
      log(describeSample(s));
      await sleep(1_000);
    }
    return samples;
  } finally {
    await worker.call({ op: 'close' }).catch(() => undefined);
    await nc.stop();
  }
}

/** CPU per hub-secret check in this process: the production form, and scrypt N=2^14 as before issue 17. */
async function checkCost(): Promise<{ fastUs: number; scryptMs: number }> {
  const secret = generatePassword();
  const stored = hashHubSecret(secret);
  const n = 20_000;
  for (let i = 0; i < 1_000; i++) verifyHubSecret(secret, stored);
  let c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) verifyHubSecret(secret, stored);
  let c = process.cpuUsage(c0);
  const fastUs = (c.user + c.system) / n;
  const legacy = await hashPassword(secret, LEGACY_SCRYPT);
  c0 = process.cpuUsage();
  for (let i = 0; i < 5; i++) await checkPassword(secret, legacy);
  c = process.cpuUsage(c0);
  return { fastUs, scryptMs: (c.user + c.system) / 1000 / 5 };
}

export const reconnect: Section = async ({ quick, log }) => {
  const hubs = quick ? ROADSIDE_STATIONS : COMMUNITY_HALLS_AND_STATIONS;
  const restarts = 2;
  const databases: BenchDatabaseKind[] = quick ? ['sqlite'] : ['sqlite', 'postgres'];
  const legacyHubs = ROADSIDE_STATIONS;
  const worker: HubWorker = startWorker(path.join(import.meta.dirname, '../load/hub-clients.ts'));
  const rows: Row[] = [];
  const notes: string[] = [];
  const raw: Record<string, unknown> = {};
  try {
    const cost = await checkCost();
    log(`hub secret check: ${fmt(cost.fastUs, 1)} µs CPU (HMAC-SHA-256), ${fmt(cost.scryptMs, 1)} ms (scrypt N=2^14); load ${load()}`);
    raw.checkCost = cost;
    const byDb: Partial<Record<BenchDatabaseKind, StormSample[]>> = {};
    for (const database of databases) {
      // The legacy restart goes with the 1,230-hub run (quick) or a run of its own at 1,230 hubs (full):
      // 13,800 scrypt checks would take ~11 CPU-minutes.
      byDb[database] = await measure(worker, hubs, restarts, database, quick && database === 'sqlite', log);
    }
    const legacy = quick ? byDb.sqlite!.filter((s) => s.secrets === 'scrypt') : await measure(worker, legacyHubs, 1, 'sqlite', true, log);
    // The same restarts with the listeners' accept queue at 4,096: MQTT_LISTEN_BACKLOG's default before
    // it was raised, and net.core.somaxconn on most hosts (which caps any backlog).
    const shortQueue = quick ? [] : await measure(worker, hubs, restarts, 'sqlite', false, (l) => log(`MQTT_LISTEN_BACKLOG 4096: ${l}`), { MQTT_LISTEN_BACKLOG: String(SHORT_BACKLOG) });
    const fastAtLegacySize = quick ? byDb.sqlite!.filter((s) => s.secrets === 'fast') : legacy.filter((s) => s.secrets === 'fast');
    raw.samples = { ...byDb, legacy: quick ? undefined : legacy };
    raw.shortQueue = shortQueue;

    for (const database of databases) {
      const samples = byDb[database]!.filter((s) => s.secrets === 'fast');
      const label = `${fmt(hubs, 0)} hubs, ${DATABASE_LABEL[database]}`;
      const all = summarize(samples.map((s) => s.allAckedMs));
      const down = summarize(samples.map((s) => s.readyMs - s.lostMs)).median;
      const floor = backoffFloor(hubs, down);
      rows.push({
        metric: `Cloud restart (SIGTERM) → every hub connected again and its acknowledgement of the current mode stored, ${label}`,
        ours: all, unit: 'ms', decimals: 0,
        target: `≤ ${fmt(TARGET_MS, 0)} ms`, met: all.max <= TARGET_MS,
        comparison: `cloud down ${fmt(down, 0)} ms (links lost → ready); the back-off alone then puts the last hub's first try ${fmt(floor.max, 0)} ms after ready (p99 ${fmt(floor.p99, 0)} ms, simulated)`,
      });
      rows.push({
        metric: `  restart → a hub back (subscribed, birth status stored): p50 / p99 over hubs, ${label}`,
        ours: summarize(samples.map((s) => percentile(s.backMs, 50))), unit: 'ms', decimals: 0,
        alternative: { name: 'p99', value: summarize(samples.map((s) => percentile(s.backMs, 99))) },
      });
      rows.push({
        metric: `  of the last hub's time: back-off wait after ready (to the try that worked) / that try → back, max over hubs, ${label}`,
        ours: summarize(samples.map((s) => Math.max(...waits(s)))), unit: 'ms', decimals: 0,
        alternative: { name: 'try → back', value: summarize(samples.map((s) => Math.max(...services(s)))) },
      });
      rows.push({
        metric: `  cloud CPU per reconnecting hub (ready → all back and acknowledged), ${label}`,
        ours: summarize(samples.map((s) => (1000 * s.cloudCpuS) / s.hubs)), unit: 'ms', decimals: 2,
      });
    }
    if (shortQueue.length > 0) {
      const ours = byDb.sqlite!.filter((s) => s.secrets === 'fast');
      const short = summarize(shortQueue.map((s) => s.allAckedMs));
      const overflowText = (xs: StormSample[]) => fmt(summarize(xs.map((s) => s.listenOverflows ?? Number.NaN)).median, 0);
      const timeoutText = (xs: StormSample[]) => fmt(summarize(xs.map((s) => s.failures.connack_timeout ?? 0)).median, 0);
      rows.push({
        metric: `Same restart, ${fmt(hubs, 0)} hubs (SQLite): the listeners' accept queue at ${fmt(listenBacklogDefault(), 0)} (MQTT_LISTEN_BACKLOG default; net.core.somaxconn ${sysctl('net/core/somaxconn')} here) against ${fmt(SHORT_BACKLOG, 0)}`,
        ours: summarize(ours.map((s) => s.allAckedMs)), unit: 'ms', decimals: 0,
        alternative: { name: `accept queue ${fmt(SHORT_BACKLOG, 0)} (the default before; net.core.somaxconn on most hosts)`, value: short },
        comparison: `handshakes dropped for a full queue (ListenOverflows, median per restart) ${overflowText(ours)} vs ${overflowText(shortQueue)}; tries that hit the 10 s CONNACK timeout ${timeoutText(ours)} vs ${timeoutText(shortQueue)}`,
      });
      for (const x of shortQueue) notes.push(`MQTT_LISTEN_BACKLOG ${SHORT_BACKLOG}: ${describeSample(x)}`);
    }
    const legacyAll = summarize(legacy.map((s) => s.allAckedMs));
    const fastSame = summarize(fastAtLegacySize.map((s) => s.allAckedMs));
    rows.push({
      metric: `Same restart, ${fmt(legacyHubs, 0)} hubs (SQLite), secrets in the production form`,
      ours: fastSame, unit: 'ms', decimals: 0,
      alternative: { name: 'every secret still a scrypt N=2^14 hash, as stored before issue 17 (re-stored in the fast form during this restart)', value: legacyAll },
      comparison: `${fmt(legacyAll.median / fastSame.median, 1)}× the time; cloud CPU ${fmt(summarize(legacy.map((s) => s.cloudCpuS)).median, 1)} s vs ${fmt(summarize(fastAtLegacySize.map((s) => s.cloudCpuS)).median, 1)} s`,
    });
    rows.push({
      metric: 'Hub secret check, CPU per login (bench process)',
      ours: `${fmt(cost.fastUs, 1)} µs`,
      alternative: { name: 'scrypt N=2^14, r=8, p=1 (before issue 17)', value: `${fmt(cost.scryptMs, 1)} ms` },
      comparison: `${fmt((cost.scryptMs * 1000) / cost.fastUs, 0)}× less`,
    });

    for (const s of [...Object.values(byDb).flat(), ...(quick ? [] : legacy)]) notes.push(describeSample(s!));
    const f1 = backoffFloor(COMMUNITY_HALLS_AND_STATIONS, 1_000);
    const f2 = backoffFloor(COMMUNITY_HALLS_AND_STATIONS, 2_000);
    const full2 = backoffFloor(COMMUNITY_HALLS_AND_STATIONS, 2_000, { ...EDGE_DEFAULT_RECONNECT.backoff, jitter: 'full' });
    const fast = Object.values(byDb).flat().filter((s) => s!.secrets === 'fast') as StormSample[];
    const timeouts = summarize(fast.map((s) => s.failures.connack_timeout ?? 0));
    const cpuPerHub = summarize(fast.map((s) => (1000 * s.cloudCpuS) / s.hubs));
    const overflows = summarize(fast.map((s) => s.listenOverflows ?? Number.NaN));
    notes.push(
      'Back-off: the edge agent\'s default (edge/uplink.ts UPLINK_BACKOFF with shared/backoff.ts): equal jitter, a delay uniform in [d/2, d) for d = min(30 s, 0.5 s · 2^attempt), ' +
        'the attempt counter reset at CONNACK, a try given up after 10 s without CONNACK. While the cloud is down every try is refused at once (ECONNREFUSED) and raises the attempt counter. ' +
        `Simulated with the same formula (13,800 hubs, no cloud cost at all): cloud down 1 s → the last hub's first try comes ${fmt(f1.max / 1000, 1)} s after it is back (p99 ${fmt(f1.p99 / 1000, 1)} s); ` +
        `down 2 s → ${fmt(f2.max / 1000, 1)} s (p99 ${fmt(f2.p99 / 1000, 1)} s); with full jitter (uniform in [0, d)) down 2 s → ${fmt(full2.max / 1000, 1)} s.`,
      `What limits it (13,800 hubs): the cloud's main thread. Each reconnecting hub costs the cloud ${fmt(cpuPerHub.median, 2)} ms of CPU (TCP accept, CONNECT, the secret check, three subscriptions ` +
        `with the retained mode, the birth status stored, the mode acknowledgement stored), so 13,800 hubs need ~${fmt((cpuPerHub.median * 13_800) / 1000, 1)} CPU-seconds of one thread after the cloud is ready; ` +
        'with ~2.5–2.9 s from the signal to ready, that is the 10 s target with little to spare. ' +
        `The kernel's accept queue: with MQTT_LISTEN_BACKLOG ${fmt(listenBacklogDefault(), 0)} and net.core.somaxconn raised to match, no handshake was dropped (Linux ListenOverflows ${fmt(overflows.median, 0)} per restart, median; ` +
        `CONNACK timeouts ${fmt(timeouts.median, 0)}); at ${fmt(SHORT_BACKLOG, 0)} (the row above) tens of thousands were, each retried by TCP 1, 3 and 7 s later, and a restart whose retried ` +
        'handshakes then reached the client\'s 10 s CONNACK timeout sent those hubs into long back-offs: the runs of 2026-12-05 were bimodal, ~12.4–12.8 s without such timeouts and 17–21 s with a few thousand. ' +
        'Down time (2026-12-06, instrumented probe runs): SIGTERM → exit 1.0–1.4 s (closing 13,800 connections, each hub\'s last will through ingest); it was ~1.3–1.6 s while the connections were ' +
        'closed oldest first, as aedes.close() does — a region\'s mode topic keeps one listener per hub in subscription order and mqemitter removes each with a search from the end, so that order was ' +
        'quadratic (qlobber\'s _remove_value 14 % of the shutdown\'s CPU; newest first, 1 %); process start → modules loaded 0.55–0.9 s (tsx), → ready another 0.4–0.7 s. ' +
        'Commit pacing (cloud/ingest/ingest.ts URGENT_PACING_MS, 5 ms): unpaced, the statuses and mode acknowledgements of a storm were ~3 per commit — on SQLite 8,248 fsynced commits, 1.7 s of the thread, ' +
        'on PostgreSQL ~5,900 transactions of four statements; paced on SQLite since 2026-12-05 and on PostgreSQL since 2026-12-06 (storm CPU on PostgreSQL 8.8–9.4 → 7.9–8.1 s in probe runs). ' +
        'Profile of the restarted cloud on SQLite (--cpu-prof, main thread, ready → all back, 2026-12-06): socket writes (writev) 13 %, better-sqlite3 statements 9 % and our SQL layer around them 9 %, the embedded ' +
        'telemetry store\'s writes 5 %, GC 5 %, the secret check with its read 6 % (HMAC 2 %), the login scheduler 4 %, a DOMException per closed stream pipeline 2 %. On PostgreSQL the driver\'s sends and ' +
        'parses add ~20 % (one socket write per statement). Reading the secrets of logins waiting at once with one statement was tried and dropped: under the storm the checks come one per turn ' +
        'of the event loop, so the statements stayed single (in a counted 4-s window: 8,446 read one secret, 26 read 3–8). What more margin would take: a shorter start (the modules compiled ahead instead of through tsx), ' +
        'fewer statements per hub on PostgreSQL, or the cluster (several processes share the storm; section 7).',
    );
  } finally {
    await worker.stop();
  }
  return {
    title: `Reconnect storm: cloud restart → every hub connected and acknowledged (${fmt(hubs, 0)} hubs)`,
    method:
      `The real cloud process (cloud/main.ts, default limits except the per-address ones lifted for a one-address load generator) with a synthetic national region of ${fmt(hubs, 0)} hubs, ` +
      `${quick ? 'on SQLite' : 'on SQLite and then on PostgreSQL (a durable PostgreSQL 15 on loopback TCP, a database of its own)'}; hub secrets pre-seeded in the production form ` +
      '(issue 17: HMAC-SHA-256, a key per row). A load-generator process holds one raw MQTT 3.1.1 connection per hub that behaves like the edge agent ' +
      '(bench/load/hub-clients.ts: clean session, will, three QoS 1 subscriptions, retained birth status; on a newer region mode a QoS 1 hub.mode-ack) and reconnects ' +
      'like it: the agent\'s default back-off (below), connect timeout 10 s, and on every reconnect subscribe and birth status again. After every hub acknowledged a first switch, ' +
      'the cloud is sent SIGTERM and started again at once on the same data and MQTT port (as a supervisor restarts it); as soon as it is ready (CLOUD_READY) a coordinator ' +
      'switches the region\'s mode (POST …/mode), so every hub has to acknowledge a mode it has not seen. t0 is the signal; the figure is when the last hub is back ' +
      '(CONNACK, SUBACK, PUBACK of its birth status) and the cloud has stored its acknowledgement (the PUBACK of its mode-ack, sent after the write). ' +
      `${restarts} restarts per database; ` +
      `and one restart of a ${fmt(legacyHubs, 0)}-hub cloud whose stored secrets were all set back to scrypt N=2^14 (what a cloud before issue 17 stored; each is re-stored in the fast form at its login), ` +
      'beside restarts of the same size with the production form. ' +
      `${quick ? '' : `Then ${restarts} more restarts on SQLite with MQTT_LISTEN_BACKLOG=${SHORT_BACKLOG} (the default before issue 17 raised it to ${fmt(listenBacklogDefault(), 0)}). `}` +
      `Kernel settings of the run: net.core.somaxconn ${sysctl('net/core/somaxconn')} (it caps every listen backlog), net.ipv4.tcp_max_syn_backlog ${sysctl('net/ipv4/tcp_max_syn_backlog')}, tcp_syncookies ${sysctl('net/ipv4/tcp_syncookies')}. ` +
      'Everything shares the machine\'s two cores with the load generator and with other work on the machine: ' +
      'the load average (1, 5, 15 min) before and after each restart is in the notes.',
    rows, notes, raw,
  };
};
