import fs from 'node:fs';
import path from 'node:path';
import { topics } from '../../contract/index.ts';
import type { ConnectReply, HubClientsRequest, RoundReply } from '../load/hub-clients.ts';
import { epochMs, RawMqtt } from '../lib/mqtt-raw.ts';
import { startNationalCloud } from '../lib/national-cloud.ts';
import { COMMUNITY_HALLS_AND_STATIONS, ROADSIDE_STATIONS, writeNationalRegion } from '../lib/national-region.ts';
import { cpuSeconds, rssBytes, startMosquitto, startWorker, type Worker } from '../lib/procs.ts';
import { DATABASE_LABEL, postgresCommits, postgresCpuSeconds, versusSqlite, type BenchDatabaseKind } from '../lib/bench-database.ts';
import type { Row, Section } from '../lib/report.ts';
import { fmt, summarize } from '../lib/stats.ts';
import { tempDir } from '../../test/support/cloud-harness.ts';

/**
 * Emergency-mode fan-out: a coordinator's switch (POST /api/v1/regions/:id/mode) until the last hub's
 * acknowledgement is recorded by the cloud, with 1,230 and 13,800 connected hubs; and the same
 * fan-out of one retained message through Mosquitto, measured in the same run.
 */
type HubWorker = Worker<HubClientsRequest, unknown>;

interface SwitchSample {
  hubs: number;
  version: number;
  mode: 'emergency' | 'normal';
  warmUp: boolean;
  /** All ms after t0 (just before the POST / the publish). */
  apiResponseMs: number | null;
  firstReceivedMs: number;
  lastReceivedMs: number;
  lastAckSentMs: number;
  /** Last PUBACK of a mode-ack at the hubs: the cloud has stored and applied every acknowledgement. */
  lastRecordedMs: number;
  /** First poll of GET …/mode that showed every hub acknowledged (resolution: poll interval + response time). */
  polledMs: number | null;
  /** Cloud clock: lastAcknowledgedAt − the switch's `at` (receive time of the last ack at the broker, ms resolution). */
  cloudClockMs: number | null;
  pollResponseMs: number[];
  /** CPU seconds the broker process used for this switch. */
  brokerCpuS: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** GET …/mode answers every hub's state (3 MB and ~40 ms of cloud CPU at 13,800 hubs): poll a large region less often, so polling does not slow what it watches. */
const pollIntervalMs = (hubs: number) => (hubs > 5_000 ? 200 : 25);

async function connectAll(worker: HubWorker, req: Extract<HubClientsRequest, { op: 'connect' }>): Promise<ConnectReply> {
  const r = (await worker.call(req, 600_000)) as ConnectReply;
  if (r.failed > 0) throw new Error(`${r.failed} of ${req.hubs.length} hub connections failed: ${r.errors.join('; ')}`);
  return r;
}

interface ModeView { desired: { version: number }; allAcknowledged: boolean; lastAcknowledgedAt: string | null; counts: { acknowledged: number } }

export async function measureOurs(worker: HubWorker, hubs: number, runs: number, log: (l: string) => void, database: BenchDatabaseKind) {
  const nc = await startNationalCloud(hubs, { legacyScryptHubs: 3, database });
  const label = DATABASE_LABEL[database];
  const samples: SwitchSample[] = [];
  const dbCpuS: number[] = [];
  try {
    log(`cloud on ${label} with ${fmt(hubs, 0)} hubs ready in ${fmt(nc.startupMs, 0)} ms`);
    const { region, seeded } = nc;
    const base = { op: 'connect' as const, port: nc.mqttPort, region: region.id, password: seeded.password };
    // One at a time: a hub's first connect with a secret still stored as scrypt N=2^14 (before issue 17), then with the production form.
    const prod = await connectAll(worker, { ...base, hubs: region.hubs.slice(0, 3), passwords: seeded.legacyScrypt, concurrency: 1 });
    const low = await connectAll(worker, { ...base, hubs: region.hubs.slice(3, 6), concurrency: 1 });
    const bulk = await connectAll(worker, { ...base, hubs: region.hubs.slice(6), concurrency: 200 });
    log(`${fmt(hubs, 0)} hubs connected (${fmt(bulk.ms / 1000, 1)} s for ${fmt(hubs - 6, 0)}); cloud RSS ${fmt(rssBytes(nc.cloud.child.pid!) / 2 ** 20, 0)} MiB`);
    await sleep(2_000);
    const pollInterval = pollIntervalMs(hubs);
    const commits0 = nc.databaseUrl ? await postgresCommits(nc.databaseUrl) : null;
    let version = 0;
    for (let round = 0; round <= runs; round++) {
      for (const mode of ['emergency', 'normal'] as const) {
        version++;
        await worker.call({ op: 'arm', version, expect: hubs });
        const waiting = worker.call({ op: 'wait', timeoutMs: 120_000 }, 130_000) as Promise<RoundReply>;
        const cpu0 = cpuSeconds(nc.cloud.child.pid!);
        const db0 = database === 'postgres' ? await postgresCpuSeconds() : 0;
        const t0 = epochMs();
        const res = await nc.api(`/api/v1/regions/${region.id}/mode`, {
          method: 'POST', body: JSON.stringify({ mode, reason: mode === 'emergency' ? 'benchmark: M7 earthquake drill' : 'benchmark: all clear' }),
        });
        const apiResponseMs = epochMs() - t0;
        const sw = (await res.json()) as { version: number; at: string };
        if (res.status !== 202 || sw.version !== version) throw new Error(`switch answered ${res.status}: ${JSON.stringify(sw).slice(0, 300)}`);
        let polledMs: number | null = null;
        let cloudClockMs: number | null = null;
        const pollResponseMs: number[] = [];
        const deadline = Date.now() + 120_000;
        while (Date.now() < deadline) {
          const tq = epochMs();
          const v = (await (await nc.api(`/api/v1/regions/${region.id}/mode`)).json()) as ModeView;
          const tr = epochMs();
          pollResponseMs.push(tr - tq);
          if (v.desired.version === version && v.allAcknowledged) {
            polledMs = tr - t0;
            cloudClockMs = v.lastAcknowledgedAt ? Date.parse(v.lastAcknowledgedAt) - Date.parse(sw.at) : null;
            break;
          }
          await sleep(pollInterval);
        }
        const w = await waiting;
        const brokerCpuS = cpuSeconds(nc.cloud.child.pid!) - cpu0;
        if (database === 'postgres') dbCpuS.push((await postgresCpuSeconds()) - db0);
        if (w.timedOut || polledMs === null) throw new Error(`switch ${version}: only ${w.pubacked} of ${hubs} acknowledgements recorded in time`);
        const s: SwitchSample = {
          hubs, version, mode, warmUp: round === 0, apiResponseMs,
          firstReceivedMs: w.firstReceivedAt! - t0, lastReceivedMs: w.lastReceivedAt! - t0, lastAckSentMs: w.lastAckSentAt! - t0,
          lastRecordedMs: w.lastPubackAt! - t0, polledMs, cloudClockMs, pollResponseMs, brokerCpuS,
        };
        samples.push(s);
        log(`ours on ${label} ${fmt(hubs, 0)} v${version} ${mode}${s.warmUp ? ' (warm-up)' : ''}: API ${fmt(apiResponseMs, 0)} ms, last received ${fmt(s.lastReceivedMs, 0)} ms, last ack recorded ${fmt(s.lastRecordedMs, 0)} ms, polled ${fmt(polledMs, 0)} ms, cloud clock ${cloudClockMs ?? '—'} ms, cloud CPU ${fmt(brokerCpuS, 2)} s`);
        await sleep(500);
      }
    }
    let commits: { perSwitch: number; insertedPerSwitch: number; activeMsPerSwitch: number; idleInTransactionMsPerSwitch: number } | null = null;
    if (commits0 && nc.databaseUrl) {
      await sleep(11_000); // an idle backend reports its counts within 10 s
      const c1 = await postgresCommits(nc.databaseUrl);
      commits = {
        perSwitch: (c1.commits - commits0.commits) / version, insertedPerSwitch: (c1.inserted - commits0.inserted) / version,
        activeMsPerSwitch: (c1.activeMs - commits0.activeMs) / version, idleInTransactionMsPerSwitch: (c1.idleInTransactionMs - commits0.idleInTransactionMs) / version,
      };
      log(`ours on ${label} ${fmt(hubs, 0)}: per switch ${fmt(commits.perSwitch, 0)} commits, ${fmt(commits.insertedPerSwitch, 0)} rows inserted, sessions active ${fmt(commits.activeMsPerSwitch, 0)} ms, idle in transaction ${fmt(commits.idleInTransactionMsPerSwitch, 0)} ms (pg_stat_database)`);
    }
    const closed = (await worker.call({ op: 'close' })) as number;
    return {
      samples, dbCpuS, commits, startupMs: nc.startupMs, connect: { prodMs: Object.values(prod.connackMs), lowMs: Object.values(low.connackMs), bulkMs: bulk.ms, bulkHubs: hubs - 6 },
      rssMiB: rssBytes(nc.cloud.child.pid!) / 2 ** 20, closed, warnings: nc.cloud.output.filter((l) => /"level":(40|50|60)/.test(l)).slice(0, 5),
    };
  } finally {
    await worker.call({ op: 'close' }).catch(() => undefined);
    await nc.stop();
  }
}

async function measureMosquitto(worker: HubWorker, hubs: number, runs: number, log: (l: string) => void) {
  // One subscriber takes every acknowledgement: no in-flight or queue limit may drop or hold any of them.
  const m = await startMosquitto(['max_inflight_messages 0', 'max_queued_messages 0']);
  const dir = tempDir('bench-fanout-mosquitto');
  const region = writeNationalRegion(dir, hubs);
  const samples: SwitchSample[] = [];
  let counter: RawMqtt | null = null;
  let publisher: RawMqtt | null = null;
  try {
    const bulk = await connectAll(worker, { op: 'connect', port: m.port, region: region.id, hubs: region.hubs, password: 'anonymous-broker', concurrency: 200 });
    log(`${fmt(hubs, 0)} hubs connected to Mosquitto (${fmt(bulk.ms / 1000, 1)} s)`);
    counter = await RawMqtt.connect({ port: m.port, clientId: 'bench-ack-counter' });
    publisher = await RawMqtt.connect({ port: m.port, clientId: 'bench-cloud' });
    await counter.subscribe([`v1/${region.id}/+/mode-ack`], 1);
    let current = 0;
    let seen = 0;
    let lastSeenAt = 0;
    let allSeen: (() => void) | null = null;
    counter.onPublish = (p) => {
      const v = (JSON.parse(p.payload.toString()) as { version: number }).version;
      if (v !== current) return;
      seen++;
      lastSeenAt = epochMs();
      if (seen === hubs) allSeen?.();
    };
    await sleep(1_000);
    let version = 0;
    for (let round = 0; round <= runs; round++) {
      for (const mode of ['emergency', 'normal'] as const) {
        version++;
        current = version;
        seen = 0;
        const done = new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`Mosquitto: only ${seen} of ${hubs} acknowledgements in 120 s`)), 120_000);
          allSeen = () => (clearTimeout(timer), resolve());
        });
        await worker.call({ op: 'arm', version, expect: hubs });
        const waiting = worker.call({ op: 'wait', timeoutMs: 120_000 }, 130_000) as Promise<RoundReply>;
        const cpu0 = cpuSeconds(m.pid);
        const payload = JSON.stringify({
          v: 1, type: 'region.mode', region: region.id, version, ts: Date.now(), mode, hubs: {},
          reason: mode === 'emergency' ? 'benchmark: M7 earthquake drill' : 'benchmark: all clear',
        });
        const t0 = epochMs();
        await publisher.publish(topics.regionMode(region.id), payload, { qos: 1, retain: true });
        const publishAckedMs = epochMs() - t0;
        await done;
        const w = await waiting;
        const s: SwitchSample = {
          hubs, version, mode, warmUp: round === 0, apiResponseMs: publishAckedMs,
          firstReceivedMs: w.firstReceivedAt! - t0, lastReceivedMs: w.lastReceivedAt! - t0, lastAckSentMs: w.lastAckSentAt! - t0,
          lastRecordedMs: lastSeenAt - t0, polledMs: null, cloudClockMs: null, pollResponseMs: [], brokerCpuS: cpuSeconds(m.pid) - cpu0,
        };
        samples.push(s);
        log(`Mosquitto ${fmt(hubs, 0)} v${version} ${mode}${s.warmUp ? ' (warm-up)' : ''}: last received ${fmt(s.lastReceivedMs, 0)} ms, last ack at the counter ${fmt(s.lastRecordedMs, 0)} ms`);
        await sleep(300);
      }
    }
    return { samples };
  } finally {
    counter?.disconnect();
    publisher?.disconnect();
    await worker.call({ op: 'close' }).catch(() => undefined);
    await m.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

type OursResult = Awaited<ReturnType<typeof measureOurs>>;

/** Blocks of one database measured at different times, as one result: samples in the order taken; start-up and connect figures of the first block. */
function mergeBlocks(blocks: OursResult[]): OursResult {
  const [first, ...rest] = blocks;
  if (!first) throw new Error('no block measured');
  return {
    ...first,
    samples: blocks.flatMap((b) => b.samples), dbCpuS: blocks.flatMap((b) => b.dbCpuS),
    commits: first.commits && rest.every((b) => b.commits)
      ? Object.fromEntries(Object.keys(first.commits).map((k) => [k, blocks.reduce((n, b) => n + b.commits![k as keyof typeof first.commits], 0) / blocks.length])) as OursResult['commits']
      : first.commits,
    rssMiB: Math.max(...blocks.map((b) => b.rssMiB)), warnings: blocks.flatMap((b) => b.warnings).slice(0, 5),
  };
}

export const fanout: Section = async ({ quick, log }) => {
  const sizes = quick ? [ROADSIDE_STATIONS] : [ROADSIDE_STATIONS, COMMUNITY_HALLS_AND_STATIONS];
  /** Rounds per block (two switches each): a 1,230-hub switch takes ~1 s, and its spread (±30 %) needs more of them for a median to within a few per cent. */
  const runsFor = (hubs: number) => (quick ? 3 : hubs <= ROADSIDE_STATIONS ? 6 : 3);
  /**
   * SQLite and PostgreSQL alternate in blocks (S, P, S, P…): the PostgreSQL target is a ratio to
   * SQLite's time in the same run (issue 14), and one block of each measured a minute apart let the
   * machine's drift between them decide a few per cent.
   */
  const blocks = quick ? 1 : 2;
  const worker: HubWorker = startWorker(path.join(import.meta.dirname, '../load/hub-clients.ts'));
  const rows: Row[] = [];
  const notes: string[] = [];
  const raw: Record<string, unknown> = {};
  try {
    for (const hubs of sizes) {
      const sqliteBlocks: OursResult[] = [];
      const postgresBlocks: OursResult[] = [];
      for (let b = 0; b < blocks; b++) {
        sqliteBlocks.push(await measureOurs(worker, hubs, runsFor(hubs), log, 'sqlite'));
        postgresBlocks.push(await measureOurs(worker, hubs, runsFor(hubs), log, 'postgres'));
      }
      const ours = mergeBlocks(sqliteBlocks);
      const pg = mergeBlocks(postgresBlocks);
      const mosq = await measureMosquitto(worker, hubs, 3, log);
      raw[`hubs_${hubs}`] = { ours, postgres: pg, mosquitto: mosq };
      const measured = (s: SwitchSample[]) => s.filter((x) => !x.warmUp);
      const o = measured(ours.samples);
      const g = measured(pg.samples);
      const a = measured(mosq.samples);
      const recorded = summarize(o.map((s) => s.lastRecordedMs));
      const pgRecorded = summarize(g.map((s) => s.lastRecordedMs));
      const alt = summarize(a.map((s) => s.lastRecordedMs));
      const targetMs = hubs <= ROADSIDE_STATIONS ? 300 : 1_500;
      const label = `${fmt(hubs, 0)} hubs`;
      const vs = versusSqlite(pgRecorded.median, recorded.median, false);
      rows.push({
        metric: `Emergency switch → last hub acknowledgement recorded, ${label} (SQLite)`,
        ours: recorded, unit: 'ms', decimals: 0,
        alternative: { name: 'Mosquitto: retained publish → last ack at a subscriber', value: alt },
        comparison: `${fmt(recorded.median / alt.median, 1)}× Mosquitto's time`,
        target: `≤ ${fmt(targetMs, 0)} ms`, met: recorded.median <= targetMs,
      });
      rows.push({
        metric: `Emergency switch → last hub acknowledgement recorded, ${label} (PostgreSQL)`,
        ours: pgRecorded, unit: 'ms', decimals: 0,
        alternative: { name: 'SQLite, same run', value: recorded },
        comparison: `${vs.comparison}; ${pgRecorded.median <= targetMs ? 'within' : 'over'} the ${fmt(targetMs, 0)} ms target`,
        target: vs.target, met: vs.met,
      });
      rows.push({
        metric: `  same, observed by polling GET …/mode, ${label} (SQLite / PostgreSQL)`,
        ours: summarize(o.map((s) => s.polledMs!)), unit: 'ms', decimals: 0,
        alternative: { name: 'PostgreSQL', value: summarize(g.map((s) => s.polledMs!)) },
      });
      rows.push({
        metric: `  switch → last hub received the mode message, ${label} (SQLite / PostgreSQL)`,
        ours: summarize(o.map((s) => s.lastReceivedMs)), unit: 'ms', decimals: 0,
        alternative: { name: 'PostgreSQL', value: summarize(g.map((s) => s.lastReceivedMs)) },
        comparison: `Mosquitto ${fmt(summarize(a.map((s) => s.lastReceivedMs)).median, 0)} ms`,
      });
      for (const [side, m, samples] of [['SQLite', ours, o], ['PostgreSQL', pg, g]] as const) {
        const polls = samples.flatMap((s) => s.pollResponseMs).sort((x, y) => x - y);
        const measuredDbCpu = m.dbCpuS.filter((_, i) => !m.samples[i]!.warmUp);
        notes.push(
          `${label}, ${side}: the POST answered in ${fmt(summarize(samples.map((s) => s.apiResponseMs!)).median, 0)} ms (median); the load generator sent its last mode-ack at ` +
            `${fmt(summarize(samples.map((s) => s.lastAckSentMs)).median, 0)} ms; polling GET …/mode saw every hub acknowledged at ${fmt(summarize(samples.map((s) => s.polledMs!)).median, 0)} ms ` +
            `(polled every ${pollIntervalMs(hubs)} ms plus the response time, median ${fmt(polls[polls.length >> 1] ?? Number.NaN, 0)} ms — so that figure is late by up to both); ` +
            `the cloud's own clock (lastAcknowledgedAt − switch time, receive time at the broker) gave ${fmt(summarize(samples.map((s) => s.cloudClockMs ?? Number.NaN)).median, 0)} ms. ` +
            `Cloud CPU per switch ${fmt(summarize(samples.map((s) => s.brokerCpuS)).median, 2)} s` +
            (measuredDbCpu.length ? `, PostgreSQL server ${fmt(summarize(measuredDbCpu).median, 2)} s` : '') +
            (m.commits ? `; PostgreSQL commits per switch (pg_stat_database, every statement outside a transaction counted, with the polling and the cloud's timers) ${fmt(m.commits.perSwitch, 0)}, rows inserted ${fmt(m.commits.insertedPerSwitch, 0)}, its sessions executing statements ${fmt(m.commits.activeMsPerSwitch, 0)} ms and idle inside a transaction (waiting for the cloud) ${fmt(m.commits.idleInTransactionMsPerSwitch, 0)} ms, summed over the pool's connections` : '') +
            (side === 'SQLite' ? ` (Mosquitto ${fmt(summarize(a.map((s) => s.brokerCpuS)).median, 2)} s).` : '.'),
        );
        notes.push(
          `${label}, ${side}: cloud start-up ${fmt(m.startupMs / 1000, 1)} s; ${fmt(m.connect.bulkHubs, 0)} hubs connected in ${fmt(m.connect.bulkMs / 1000, 1)} s ` +
            `(${fmt(m.connect.bulkHubs / (m.connect.bulkMs / 1000), 0)}/s, 200 at a time); cloud RSS with every hub connected after the switches ${fmt(m.rssMiB, 0)} MiB.` +
            (m.warnings.length ? ` Cloud warnings: ${m.warnings.join(' | ').slice(0, 400)}` : ''),
        );
      }
      if (hubs === sizes[0]) {
        const prod = summarize(ours.connect.prodMs);
        const low = summarize(ours.connect.lowMs);
        rows.push({
          metric: "A hub's first connect (CONNECT → CONNACK), hub secret in the production form (HMAC-SHA-256, issue 17)",
          ours: low, unit: 'ms', decimals: 0,
          alternative: { name: 'secret still stored as scrypt N=2^14 (before issue 17; re-stored in the fast form at that login)', value: prod },
        });
      }
    }
  } finally {
    await worker.stop();
  }
  return {
    title: 'Emergency-mode fan-out: API call → last hub acknowledgement (1,230 and 13,800 hubs)',
    method:
      'The real cloud process (cloud/main.ts, default limits) is started with a synthetic national region file of N hubs ' +
      '(1,230 = roadside stations; 13,800 = with community halls), once on SQLite (SQLITE_SYNC=full) and once on PostgreSQL (DATABASE_URL, pool of 10; a durable PostgreSQL 15 on loopback TCP, ' +
      'fsync and synchronous_commit on; a database of its own), in the same invocation, alternating: SQLite, PostgreSQL, SQLite, PostgreSQL (each block a fresh cloud with every hub connected again). Hub credentials are pre-seeded in the operational database (SQLite: cloud.db; PostgreSQL: batched INSERTs in one transaction) ' +
      'in the production form (issue 17: HMAC-SHA-256 with a key per row, ~3 µs a check; every hub shares one generated secret, each row its own HMAC of it). ' +
      'Until issue 17 they were scrypt at N=2^8 instead of production\'s 2^14, which cost ~48 ms per first connect, ~11 CPU-minutes for 13,800 hubs; ' +
      'a hub\'s first connect with a secret still stored that way (re-stored in the fast form at that login) is measured separately. ' +
      'A load-generator process holds N raw MQTT 3.1.1 connections (mqtt-packet) that behave on the wire like edge agents: clean session, keepalive 30 s, ' +
      'retained last will, QoS 1 subscriptions to their cmd/#, ack and the region mode topic, a retained birth status; on a region mode message with a newer ' +
      'version each publishes the hub.mode-ack the agent builds (QoS 1). t0 is taken just before POST /api/v1/regions/:id/mode (admin API token); the figure is ' +
      'when the last hub got the PUBACK of its mode-ack — the cloud sends it only after the acknowledgement was stored and applied to the mode state. ' +
      'Each round switches to emergency and back (2 measurements); per block one warm-up round, then 6 rounds at 1,230 hubs and 3 at 13,800: median and spread of 24 / 12 switches per database (Mosquitto: 6). ' +
      'Mosquitto 2 gets the same N connections with the same packets; a publisher sends one retained QoS 1 region mode message and a subscriber to ' +
      'v1/<region>/+/mode-ack sees the last acknowledgement (max_inflight/max_queued unlimited so that subscriber drops nothing). ' +
      'Everything shares the machine\'s cores with the load generator.',
    rows, notes, raw,
  };
};
