import fs from 'node:fs';
import path from 'node:path';
import type { BareAedesRequest } from '../load/bare-aedes.ts';
import type { ConnectReply, HubClientsRequest } from '../load/hub-clients.ts';
import { connectInspector, inspectorUrl, type Inspector } from '../lib/inspector.ts';
import { startNationalCloud } from '../lib/national-cloud.ts';
import { COMMUNITY_HALLS_AND_STATIONS, writeNationalRegion } from '../lib/national-region.ts';
import { rssBytes, startMosquitto, startWorker, type Worker } from '../lib/procs.ts';
import type { Row, Section } from '../lib/report.ts';
import { fmt, summarize } from '../lib/stats.ts';
import { tempDir } from '../../test/support/cloud-harness.ts';

/**
 * Memory per connected hub: the broker process's resident memory with 0 hubs connected and with
 * growing numbers of idle hub connections (edge-agent-like: will, three subscriptions, a retained
 * status); the slope of a least-squares line through those points is the cost of one connected hub.
 * Ours (the whole cloud process), Mosquitto, and a bare aedes broker (what aedes itself costs).
 */
type HubWorker = Worker<HubClientsRequest, unknown>;

interface Point {
  hubs: number;
  rss: number;
  /** V8 heap in use after a forced full GC (Node brokers only). */
  heapUsed: number | null;
  /** V8 heap reserved (in use + free pages it keeps) after that GC. */
  heapTotal: number | null;
  /** Memory of Buffers and other off-heap objects V8 knows of (Node brokers only). */
  external: number | null;
}

interface BrokerRun {
  name: string;
  points: Point[];
  rssPerHub: number;
  heapPerHub: number | null;
  externalPerHub: number | null;
  connectMs: number[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Readings per point (each after a full GC), the lowest counts: see `sample`. */
const READINGS = 2;
/** Hubs (beyond the measured ones) that connect and disconnect before the baseline is taken. */
const WARM_UP = 500;

/** Least-squares slope of y over x. */
export function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return num / den;
}

/** RSS once it stopped moving: samples every 250 ms until three in a row are within 0.5 %, at most `maxMs`; the median of the last three. */
async function settledRss(pid: number, maxMs = 8_000): Promise<number> {
  const samples: number[] = [];
  const until = Date.now() + maxMs;
  for (;;) {
    samples.push(rssBytes(pid));
    const last = samples.slice(-3);
    if (last.length === 3 && (Math.max(...last) - Math.min(...last)) / Math.max(...last) < 0.005) break;
    if (Date.now() > until) break;
    await sleep(250);
  }
  return [...samples.slice(-3)].sort((a, b) => a - b)[Math.min(1, samples.length - 1)]!;
}

interface Target {
  name: string;
  pid: number;
  port: number;
  region: string;
  hubs: string[];
  password: string | null;
  /** Forces a full GC and returns V8's figures (null: not a Node process). */
  gcAndMemory(): Promise<{ heapUsed: number; heapTotal: number; external: number } | null>;
}

async function measure(worker: HubWorker, t: Target, steps: readonly number[], settleMs: number, log: (l: string) => void): Promise<BrokerRun> {
  const max = t.hubs.length - WARM_UP;
  const points: Point[] = [];
  const connectMs: number[] = [];
  let connected = 0;
  const sample = async (hubs: number) => {
    await sleep(settleMs);
    // The lowest of a few readings, so that a reading caught while periodic work of the broker holds
    // its transient data does not count that as memory per connected hub.
    let v8: Awaited<ReturnType<Target['gcAndMemory']>> = null;
    let rss = Number.POSITIVE_INFINITY;
    for (let i = 0; i < READINGS; i++) {
      await t.gcAndMemory();
      await sleep(500);
      const m = await t.gcAndMemory();
      if (m && (!v8 || m.heapUsed < v8.heapUsed)) v8 = m;
      rss = Math.min(rss, await settledRss(t.pid, 3_000));
    }
    points.push({ hubs, rss, heapUsed: v8?.heapUsed ?? null, heapTotal: v8?.heapTotal ?? null, external: v8?.external ?? null });
    log(`${t.name}: ${fmt(hubs, 0)} hubs → RSS ${fmt(rss / 2 ** 20, 1)} MiB${v8 ? `, heap ${fmt(v8.heapUsed / 2 ** 20, 1)} MiB, external ${fmt(v8.external / 2 ** 20, 1)} MiB` : ''}`);
  };
  try {
    // Warm-up: connections of other hubs come and go first, so that what a broker allocates once (compiled
    // code, grown allocator pools) is in the baseline and not counted per hub.
    const warm = t.hubs.slice(max, max + WARM_UP);
    const w = (await worker.call({ op: 'connect', port: t.port, region: t.region, hubs: warm, password: t.password, concurrency: 200 }, 600_000)) as ConnectReply;
    if (w.failed > 0) throw new Error(`${t.name}: ${w.failed} warm-up connections failed: ${w.errors.join('; ')}`);
    await worker.call({ op: 'close' });
    await sample(0);
    for (const n of steps) {
      const r = (await worker.call({
        op: 'connect', port: t.port, region: t.region, hubs: t.hubs.slice(connected, n), password: t.password, concurrency: 200,
      }, 600_000)) as ConnectReply;
      if (r.failed > 0) throw new Error(`${t.name}: ${r.failed} connections failed: ${r.errors.join('; ')}`);
      connectMs.push(r.ms);
      connected = n;
      await sample(n);
    }
  } finally {
    await worker.call({ op: 'close' }).catch(() => undefined);
  }
  const xs = points.map((p) => p.hubs);
  const perHub = (f: (p: Point) => number | null) => (points.every((p) => f(p) !== null) ? slope(xs, points.map((p) => f(p)!)) : null);
  return { name: t.name, points, rssPerHub: perHub((p) => p.rss)!, heapPerHub: perHub((p) => p.heapUsed), externalPerHub: perHub((p) => p.external), connectMs };
}

const kb = (bytes: number) => bytes / 1024;

export const memory: Section = async ({ quick, log }) => {
  const steps = quick ? [1_000, 2_000] : [1_000, 3_000, 6_000, 10_000, COMMUNITY_HALLS_AND_STATIONS];
  const settleMs = quick ? 1_000 : 2_000;
  const max = steps.at(-1)!;
  // Bare aedes answers each SUBSCRIBE by testing every retained message (one status per hub), so
  // connecting n hubs costs O(n²): past ~6,000 it takes minutes. The slope is per hub either way.
  const bareSteps = steps.filter((n) => n <= 6_000);
  const worker: HubWorker = startWorker(path.join(import.meta.dirname, '../load/hub-clients.ts'));
  const runs: BrokerRun[] = [];
  const notes: string[] = [];
  const dir = tempDir('bench-memory');
  try {
    // ---- ours: the cloud process, with the inspector so a full GC can run before each reading
    // Ops stats (a point per hub of the region and alarm severity, every tick) make the cloud's memory
    // step up at its first tick (at start-up, before the baseline), whatever is connected. No further tick
    // runs while we measure: a write holds its points (~3 per hub of the region, ~12 MB) while under way,
    // and with ticks every 2 s the readings caught one or not (heap 181 or 194 MiB at 13,800 hubs) — noise
    // of ±1 KB per hub in the slope, not memory per connected hub.
    const nc = await startNationalCloud(max + WARM_UP, { nodeArgs: ['--inspect=127.0.0.1:0'], env: { OPS_STATS_INTERVAL_S: '3600' } });
    let insp: Inspector | null = null;
    try {
      const url = inspectorUrl(nc.cloud.output);
      if (!url) throw new Error('the cloud printed no inspector URL');
      insp = await connectInspector(url);
      const inspector = insp;
      await sleep(7_000); // start-up garbage, the first ops-stats ticks
      runs.push(await measure(worker, {
        name: 'ours', pid: nc.cloud.child.pid!, port: nc.mqttPort, region: nc.region.id, hubs: nc.region.hubs, password: nc.seeded.password,
        async gcAndMemory() {
          await inspector.call('HeapProfiler.collectGarbage');
          return inspector.evaluate<{ heapUsed: number; heapTotal: number; external: number }>('process.memoryUsage()');
        },
      }, steps, settleMs, log));
      notes.push(`Ours: cloud started with a region of ${fmt(max + WARM_UP, 0)} hubs in ${fmt(nc.startupMs / 1000, 1)} s (idle RSS with 0 connected ${fmt(runs[0]!.points[0]!.rss / 2 ** 20, 0)} MiB).`);
    } finally {
      insp?.close();
      await nc.stop();
    }

    const region = writeNationalRegion(dir, max + WARM_UP);
    // ---- Mosquitto
    const m = await startMosquitto();
    try {
      runs.push(await measure(worker, {
        name: 'Mosquitto', pid: m.pid, port: m.port, region: region.id, hubs: region.hubs, password: 'anonymous-broker', gcAndMemory: async () => null,
      }, steps, settleMs, log));
    } finally {
      await m.stop();
    }

    // ---- bare aedes
    const bare: Worker<BareAedesRequest, unknown> = startWorker(path.join(import.meta.dirname, '../load/bare-aedes.ts'));
    try {
      const { port } = (await bare.call({ op: 'start' })) as { port: number };
      runs.push(await measure(worker, {
        name: 'bare aedes', pid: bare.pid, port, region: region.id, hubs: region.hubs, password: 'anonymous-broker',
        gcAndMemory: async () => (await bare.call({ op: 'memory', gc: true })) as { heapUsed: number; heapTotal: number; external: number },
      }, bareSteps, settleMs, log));
    } finally {
      await bare.stop();
    }
  } finally {
    await worker.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const [ours, mosq, bare] = runs as [BrokerRun, BrokerRun, BrokerRun];
  const target = 9;
  const rows: Row[] = [
    {
      metric: 'Broker memory per connected hub (RSS growth ÷ hubs, idle connections)',
      ours: summarize([kb(ours.rssPerHub)]), unit: 'KB', decimals: 1,
      alternative: { name: 'Mosquitto', value: summarize([kb(mosq.rssPerHub)]) },
      comparison: `${fmt(ours.rssPerHub / mosq.rssPerHub, 1)}× Mosquitto; bare aedes ${fmt(kb(bare.rssPerHub), 1)} KB`,
      target: `≤ ${target} KB`, met: kb(ours.rssPerHub) <= target,
    },
    {
      metric: '  same, bare aedes 1.x (no authentication, ingest or live state)',
      ours: summarize([kb(bare.rssPerHub)]), unit: 'KB', decimals: 1,
      comparison: `ours costs ${fmt(kb(ours.rssPerHub - bare.rssPerHub), 1)} KB more per hub`,
    },
    {
      metric: '  of which in the V8 heap, after a full GC (ours / bare aedes)',
      ours: `${fmt(kb(ours.heapPerHub!), 1)} KB / ${fmt(kb(bare.heapPerHub!), 1)} KB`,
      comparison: `outside the heap: ${fmt(kb(ours.rssPerHub - ours.heapPerHub!), 1)} KB / ${fmt(kb(bare.rssPerHub - bare.heapPerHub!), 1)} KB`,
    },
    {
      metric: `Broker RSS, 0 → ${fmt(max, 0)} idle hubs connected`,
      ours: `${fmt(ours.points[0]!.rss / 2 ** 20, 0)} → ${fmt(ours.points.at(-1)!.rss / 2 ** 20, 0)} MiB`,
      alternative: { name: 'Mosquitto', value: `${fmt(mosq.points[0]!.rss / 2 ** 20, 1)} → ${fmt(mosq.points.at(-1)!.rss / 2 ** 20, 1)} MiB` },
    },
  ];
  for (const r of runs) {
    notes.push(
      `${r.name}: ${r.points.map((p) => `${fmt(p.hubs, 0)} hubs ${fmt(p.rss / 2 ** 20, 1)} MiB${p.heapUsed !== null ? ` (heap ${fmt(p.heapUsed / 2 ** 20, 1)} used / ${fmt(p.heapTotal! / 2 ** 20, 1)} reserved)` : ''}`).join('; ')}; ` +
        `connecting took ${r.connectMs.map((ms) => `${fmt(ms / 1000, 1)} s`).join(', ')}.`,
    );
  }
  notes.push(`Bare aedes is measured up to ${fmt(bareSteps.at(-1)!, 0)} hubs only: it answers each SUBSCRIBE by testing every retained message (one status per hub), so connecting n hubs costs O(n²) — minutes beyond that. The cloud indexes retained messages by topic level (cloud/broker/retained-index.ts).`);
  return {
    title: 'Memory per connected hub: broker RSS growth with idle hub connections',
    method:
      `The broker process's resident set (VmRSS) with 0 hubs connected and after connecting ${steps.map((s) => fmt(s, 0)).join(', ')} idle hubs; ` +
      `the figure is the slope of a least-squares line through those points (KB = 1,024 bytes). Before the baseline, ${WARM_UP} other hubs ` +
      'connect and disconnect (so one-time allocations are not counted per hub; their retained statuses stay in every broker). Each hub is one raw MQTT 3.1.1 connection from a ' +
      'load-generator process that behaves like an edge agent when it connects: clean session, keepalive 30 s (pinged), retained last will, ' +
      'three QoS 1 subscriptions (its cmd/#, its ack topic, the region mode topic) and a retained birth status — so each broker also keeps one ' +
      'retained message and one will per hub. Ours is the whole cloud process (cloud/main.ts, SQLite, a synthetic national region file of ' +
      `${fmt(max + WARM_UP, 0)} hubs loaded from the start, hub credentials pre-seeded in the production form (HMAC-SHA-256, issue 17), OPS_STATS_INTERVAL_S=3600: the ` +
      'memory its first ops-stats tick (at start-up) leaves for the whole region is in the baseline, and no later tick runs while measuring — ' +
      'a write holds ~3 points per hub of the region while under way, ~12 MB that readings with ticks every 2 s caught or not); Mosquitto 2 with a default configuration; ' +
      'bare aedes is `Aedes.createBroker()` with a net server in its own Node process. Before each reading the Node brokers run a full GC ' +
      '(HeapProfiler.collectGarbage through the inspector protocol: ours started with --inspect on loopback, bare aedes from an inspector session ' +
      `to itself), then RSS is sampled until it stops moving; each point is the lowest of ${READINGS} such readings. ` +
      'RSS of a Node process moves in steps as V8 reserves and releases heap pages, so ' +
      'the slope over 2,000 hubs (quick mode) is rough; the V8-heap slope is the steadier figure.',
    rows, notes,
    raw: runs,
  };
};
