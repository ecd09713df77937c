import path from 'node:path';
import type { ConnectReply, HubClientsRequest, ReconnectReply, RoundReply } from '../load/hub-clients.ts';
import { firstCloudUrlIndex } from '../../edge/uplink.ts';
import { EDGE_DEFAULT_RECONNECT } from './reconnect.ts';
import { epochMs } from '../lib/mqtt-raw.ts';
import { postgresCpuSeconds } from '../lib/bench-database.ts';
import { startNationalCluster, type NationalCluster } from '../lib/national-cluster.ts';
import { COMMUNITY_HALLS_AND_STATIONS, ROADSIDE_STATIONS } from '../lib/national-region.ts';
import { cpuSeconds, startWorker, type Worker } from '../lib/procs.ts';
import { startPublisher } from '../lib/publishers.ts';
import type { Row, Section } from '../lib/report.ts';
import { fmt, summarize } from '../lib/stats.ts';
import { startOurCloud } from '../lib/systems.ts';
import { createInfluxDatabase, startInfluxd } from '../../test/support/influxd.ts';
import { measureOurs } from './fanout.ts';

/**
 * Cluster mode (issue 15, item 4): three cloud nodes sharing PostgreSQL and Redis against the single
 * process on PostgreSQL, in the same run — the emergency fan-out, the failover after `kill -9` of a node,
 * the lease takeover, a node killed during the fan-out, and ingest per CPU-second.
 */
type HubWorker = Worker<HubClientsRequest, unknown>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function connectAll(worker: HubWorker, req: Extract<HubClientsRequest, { op: 'connect' }>): Promise<ConnectReply> {
  const r = (await worker.call(req, 600_000)) as ConnectReply;
  if (r.failed > 0) throw new Error(`${r.failed} of ${req.hubs.length} hub connections failed: ${r.errors.join('; ')}`);
  return r;
}

interface ModeView { desired: { version: number }; allAcknowledged: boolean; counts: { acknowledged: number; total: number } }

/** One switch through node `apiNode`'s API: POST → the last hub's PUBACK of its mode-ack (ms), and the cloud's own view. */
async function switchOnce(c: NationalCluster, worker: HubWorker, version: number, mode: 'emergency' | 'normal', o: { duringSwitch?: () => Promise<void>; timeoutMs?: number; apiNode?: number } = {}) {
  const hubs = c.region.hubs.length;
  await worker.call({ op: 'arm', version, expect: hubs });
  const waiting = worker.call({ op: 'wait', timeoutMs: o.timeoutMs ?? 60_000 }, (o.timeoutMs ?? 60_000) + 10_000) as Promise<RoundReply>;
  const cpu0 = c.nodeCpuSeconds();
  const t0 = epochMs();
  const res = await c.api(`/api/v1/regions/${c.region.id}/mode`, {
    method: 'POST', body: JSON.stringify({ mode, reason: mode === 'emergency' ? 'benchmark: M7 earthquake drill' : 'benchmark: all clear' }),
  }, o.apiNode);
  const body = (await res.json()) as { version: number };
  if (res.status !== 202 || body.version !== version) throw new Error(`switch answered ${res.status}: ${JSON.stringify(body).slice(0, 300)}`);
  await o.duringSwitch?.();
  const w = await waiting;
  const cpu = c.nodeCpuSeconds() - cpu0;
  // The cloud's own view (any node): every hub acknowledged the version.
  let view: ModeView | null = null;
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    view = (await (await c.api(`/api/v1/regions/${c.region.id}/mode`, {}, o.apiNode)).json()) as ModeView;
    if (view.desired.version === version && view.allAcknowledged) break;
    await sleep(200);
  }
  return { lastRecordedMs: w.lastPubackAt === null ? Number.NaN : w.lastPubackAt - t0, lastReceivedMs: w.lastReceivedAt === null ? Number.NaN : w.lastReceivedAt - t0, pubacked: w.pubacked, timedOut: w.timedOut, cpuS: cpu, cloudAllAcknowledged: view?.allAcknowledged === true && view.desired.version === version, acknowledged: view?.counts.acknowledged ?? 0 };
}

async function measureCluster(worker: HubWorker, hubs: number, runs: number, log: (l: string) => void) {
  const c = await startNationalCluster(hubs);
  const ports = c.nodes.map((n) => n.mqttPort);
  try {
    log(`cluster of ${c.nodes.length} nodes with ${fmt(hubs, 0)} hubs ready in ${fmt(c.startupMs, 0)} ms`);
    const connect = await connectAll(worker, {
      op: 'connect', port: ports[0]!, ports, region: c.region.id, hubs: c.region.hubs, password: c.seeded.password, concurrency: 200, reconnect: EDGE_DEFAULT_RECONNECT,
    });
    log(`${fmt(hubs, 0)} hubs connected over ${c.nodes.length} nodes in ${fmt(connect.ms / 1000, 1)} s`);
    await sleep(2_000);

    // 1. Fan-out over the nodes.
    const fanout: number[] = [];
    const fanoutCpu: number[] = [];
    let version = 0;
    for (let round = 0; round <= runs; round++) {
      for (const mode of ['emergency', 'normal'] as const) {
        version++;
        const s = await switchOnce(c, worker, version, mode);
        if (s.timedOut || !s.cloudAllAcknowledged) throw new Error(`cluster switch ${version}: ${s.pubacked} of ${hubs} acknowledgements recorded, cloud shows ${s.acknowledged}`);
        log(`cluster ${fmt(hubs, 0)} v${version} ${mode}${round === 0 ? ' (warm-up)' : ''}: last received ${fmt(s.lastReceivedMs, 0)} ms, last ack recorded ${fmt(s.lastRecordedMs, 0)} ms, nodes' CPU ${fmt(s.cpuS, 2)} s`);
        if (round > 0) {
          fanout.push(s.lastRecordedMs);
          fanoutCpu.push(s.cpuS);
        }
        await sleep(500);
      }
    }

    // 2. Failover: kill -9 of node-2; every hub that was on it publishes again (on another node).
    const victim = 1;
    const onVictim = c.region.hubs.filter((h) => firstCloudUrlIndex(h, ports.length) === victim).length;
    await worker.call({ op: 'resetReconnects' });
    const killedAt = epochMs();
    await c.kill(victim);
    const rec = (await worker.call({ op: 'waitReconnected', lost: onVictim, timeoutMs: 90_000 }, 100_000)) as ReconnectReply;
    const failoverMs = rec.readyAt.map((t) => t - killedAt);
    log(`failover: ${rec.reconnected} of ${rec.lost} hubs of the killed node back (expected ${onVictim}); p50 ${fmt(summarize(failoverMs).median, 0)} ms, max ${fmt(Math.max(...failoverMs), 0)} ms; failures ${JSON.stringify(rec.failures)}`);
    await c.start(victim);
    await c.haproxy.waitForStatus(c.nodes[victim]!.id, 'UP', 30_000);

    // 3. Lease takeover: kill -9 of the region's lease holder; another node holds it.
    const lease = `region:${c.region.id}`;
    let holder: { holder: string; token: number } | null = null;
    for (let i = 0; i < 100 && !holder; i++) {
      holder = await c.leaseHolder(lease);
      if (!holder) await sleep(100);
    }
    if (!holder) throw new Error('no node holds the region lease');
    const held: { holder: string; token: number } = holder;
    const holderIndex = c.nodes.findIndex((n) => held.holder.startsWith(`${n.id}/`));
    const leaseKilledAt = epochMs();
    await c.kill(holderIndex);
    let takeoverMs = Number.NaN;
    let next: { holder: string; token: number } | null = null;
    while (epochMs() - leaseKilledAt < 60_000) {
      next = await c.leaseHolder(lease);
      if (next && next.holder !== held.holder) {
        takeoverMs = epochMs() - leaseKilledAt;
        break;
      }
      await sleep(50);
    }
    log(`lease takeover: ${held.holder} (token ${held.token}) killed, ${next?.holder ?? '—'} (token ${next?.token ?? '—'}) after ${fmt(takeoverMs, 0)} ms`);
    await c.start(holderIndex);
    await c.haproxy.waitForStatus(c.nodes[holderIndex]!.id, 'UP', 30_000);
    await sleep(2_000);

    // 4. A node killed during the fan-out (not the one answering the API): every hub acknowledged, also those that reconnect.
    version++;
    const killedDuring = 2;
    // After the earlier kills the hubs are no longer spread by their ids: the victim holds those that moved to it.
    const placement = (await worker.call({ op: 'placement' })) as Record<number, number>;
    const onKilledDuring = placement[ports[killedDuring]!] ?? 0;
    await worker.call({ op: 'resetReconnects' });
    const during = await switchOnce(c, worker, version, 'emergency', { apiNode: 0, timeoutMs: 60_000, duringSwitch: () => c.kill(killedDuring) });
    const duringRec = (await worker.call({ op: 'waitReconnected', lost: onKilledDuring, timeoutMs: 30_000 }, 40_000)) as ReconnectReply;
    log(`node killed during the fan-out: it held ${onKilledDuring} of ${hubs} hubs (per node: ${ports.map((p) => placement[p] ?? 0).join(' / ')}); ${during.pubacked} of ${hubs} acknowledgements recorded at the hubs, last at ${fmt(during.lastRecordedMs, 0)} ms; cloud shows ${during.acknowledged} acknowledged; its hubs back: ${duringRec.reconnected} of ${duringRec.lost}, tries max ${Math.max(0, ...duringRec.tries)}, failures ${JSON.stringify(duringRec.failures)}`);
    await c.start(killedDuring);

    const redisCpu = await c.redisCpuSeconds();
    await worker.call({ op: 'close' });
    return { startupMs: c.startupMs, connectMs: connect.ms, fanout, fanoutCpu, failoverMs, failover: rec, onVictim, takeoverMs, during, onKilledDuring, redisCpuS: redisCpu, nodes: c.nodes.length };
  } finally {
    await worker.call({ op: 'close' }).catch(() => undefined);
    await c.stop();
  }
}

/** Telemetry group commits (InfluxDB writes) so far, read from a process's /metrics (a cluster node's shows the whole cluster). */
async function influxCommits(httpUrl: string): Promise<number> {
  const text = await (await fetch(`${httpUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  const line = text.split('\n').find((l) => l.startsWith('store_write_duration_seconds_count{') && l.includes('store="influxdb"'));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : Number.NaN;
}

interface IngestSide { acked: number; generated: number; cpuS: number; redisCpuS: number; pgCpuS: number; perCpuSecond: number; ackP99: number; commits: number }

/**
 * Ingest per CPU-second: the same publisher load through HAProxy into the cluster and into one process
 * (both on PostgreSQL, same influxd); then both at once — the single process at one node's share of the
 * rate while the cluster takes the whole rate — so that both see the same machine load and the same rate
 * per process, and what is left between them is what only a node pays.
 */
async function measureIngest(log: (l: string) => void, quick: boolean) {
  const hubs = 100;
  const rate = quick ? 1_500 : 3_000;
  const seconds = quick ? 4 : 15;
  const togetherRuns = quick ? 1 : 3;
  const influx = await startInfluxd();
  const stops: (() => Promise<void>)[] = [() => influx.stop()];
  try {
    await createInfluxDatabase(influx.url, 'cluster');
    const single = await startOurCloud({ hubs, database: 'postgres', influx: { url: influx.url, database: 'single' } });
    stops.unshift(() => single.stop());
    const c = await startNationalCluster(hubs, { benchRegion: true, env: { INFLUX_URL: influx.url, INFLUX_DB: 'cluster', INFLUX_CREATE_DB: 'true', SQLITE_SYNC: 'full' } });
    stops.unshift(() => c.stop());
    const clusterHttp = `http://127.0.0.1:${c.nodes[0]!.httpPort}`;
    const results: Record<string, IngestSide> = {};
    // singleShare: the single process at one node's share of the load. A process's CPU per message falls
    // as its rate rises (per-write and per-tick costs are shared by more messages), so the cluster at
    // `rate` (rate / 3 per node) is also compared with one process at rate / 3.
    const nodes = c.nodes.length;
    for (const side of ['single', 'singleShare', 'cluster'] as const) {
      const onSingle = side !== 'cluster';
      const sideRate = side === 'singleShare' ? Math.round(rate / nodes) : rate;
      const pub = startPublisher();
      try {
        const port = onSingle ? single.mqttPort : c.haproxy.port;
        await pub.connect({ port, region: c.benchRegion!.id, hubs: onSingle ? single.region.hubs : c.benchRegion!.hubs, clientPrefix: side, window: 200 });
        await pub.run({ rate: sideRate, seconds: 2, runId: `warm-${side}-${Date.now()}`, drainSeconds: 10 });
        const cpu = () => (onSingle ? cpuSeconds(single.pid) : c.nodeCpuSeconds());
        const commits = () => influxCommits(onSingle ? single.httpUrl : clusterHttp);
        const commits0 = await commits();
        const cpu0 = cpu();
        const redis0 = await c.redisCpuSeconds();
        const pg0 = await postgresCpuSeconds();
        const r = await pub.run({ rate: sideRate, seconds, runId: `${side}-${Date.now()}`, drainSeconds: 15 });
        const cpuS = cpu() - cpu0;
        const redisCpuS = side === 'cluster' ? (await c.redisCpuSeconds()) - redis0 : 0;
        const pgCpuS = (await postgresCpuSeconds()) - pg0;
        results[side] = { acked: r.acked, generated: r.generated, cpuS, redisCpuS, pgCpuS, perCpuSecond: r.acked / cpuS, ackP99: r.ackMs.p99, commits: (await commits()) - commits0 };
        log(`ingest ${side}: ${fmt(r.acked, 0)} of ${fmt(r.generated, 0)} acknowledged at ${fmt(sideRate, 0)}/s; cloud CPU ${fmt(cpuS, 2)} s → ${fmt(r.acked / cpuS, 0)} msg per CPU-second; ${fmt(results[side]!.commits, 0)} InfluxDB writes; Redis ${fmt(redisCpuS, 2)} s, PostgreSQL ${fmt(pgCpuS, 2)} s; ack p99 ${fmt(r.ackMs.p99, 0)} ms`);
      } finally {
        await pub.stop();
      }
    }
    // Both at once: the same machine load and the same rate per process on both sides.
    const together: { single: number; cluster: number; ratio: number }[] = [];
    const ps = startPublisher();
    const pc = startPublisher();
    try {
      const shareRate = Math.round(rate / nodes);
      await ps.connect({ port: single.mqttPort, region: c.benchRegion!.id, hubs: single.region.hubs, clientPrefix: 'together-single', window: 200 });
      await pc.connect({ port: c.haproxy.port, region: c.benchRegion!.id, hubs: c.benchRegion!.hubs, clientPrefix: 'together-cluster', window: 200 });
      for (let i = 0; i < togetherRuns; i++) {
        const s0 = cpuSeconds(single.pid);
        const c0 = c.nodeCpuSeconds();
        const [rs, rc] = await Promise.all([
          ps.run({ rate: shareRate, seconds, runId: `together-single-${i}-${Date.now()}`, drainSeconds: 15 }),
          pc.run({ rate, seconds, runId: `together-cluster-${i}-${Date.now()}`, drainSeconds: 15 }),
        ]);
        const s = rs.acked / (cpuSeconds(single.pid) - s0);
        const cl = rc.acked / (c.nodeCpuSeconds() - c0);
        together.push({ single: s, cluster: cl, ratio: cl / s });
        log(`ingest both at once ${i + 1}: single process at ${fmt(shareRate, 0)}/s ${fmt(s, 0)} msg per CPU-second (${fmt(rs.acked, 0)} acknowledged), cluster at ${fmt(rate, 0)}/s ${fmt(cl, 0)} (${fmt(rc.acked, 0)}) → ${fmt((cl / s) * 100, 0)} %`);
      }
    } finally {
      await ps.stop();
      await pc.stop();
    }
    return { rate, seconds, hubs, nodes, together, ...results } as { rate: number; seconds: number; hubs: number; nodes: number; together: typeof together; single: IngestSide; singleShare: IngestSide; cluster: IngestSide };
  } finally {
    for (const s of stops) await s().catch(() => undefined);
  }
}

export const cluster: Section = async ({ quick, log }) => {
  const hubs = quick ? ROADSIDE_STATIONS : COMMUNITY_HALLS_AND_STATIONS;
  const runs = quick ? 1 : 2;
  const worker: HubWorker = startWorker(path.join(import.meta.dirname, '../load/hub-clients.ts'));
  const rows: Row[] = [];
  const notes: string[] = [];
  let raw: Record<string, unknown> = {};
  try {
    const single = await measureOurs(worker, hubs, runs, log, 'postgres');
    const singleFanout = summarize(single.samples.filter((s) => !s.warmUp).map((s) => s.lastRecordedMs));
    const cl = await measureCluster(worker, hubs, runs, log);
    const ingest = await measureIngest(log, quick);
    raw = { single: single.samples, cluster: cl, ingest };
    const label = `${fmt(hubs, 0)} hubs`;
    const fan = summarize(cl.fanout);
    rows.push({
      metric: `Emergency switch → last hub acknowledgement, ${label} over ${cl.nodes} nodes`, ours: fan, unit: 'ms', decimals: 0,
      alternative: { name: 'single process on PostgreSQL, same run', value: singleFanout },
      comparison: `${fmt(fan.median / singleFanout.median, 2)}× the single process's time`, target: '≤ 2,000 ms', met: fan.median <= 2_000,
    });
    const fo = summarize(cl.failoverMs);
    const foMax = cl.failoverMs.length ? Math.max(...cl.failoverMs) : Number.NaN;
    rows.push({
      metric: `Failover: kill -9 of a node → every one of its hubs publishing again on another (${fmt(cl.onVictim, 0)} hubs; p50 / p99 / max)`,
      ours: `${fmt(fo.median, 0)} / ${fmt(percentile(cl.failoverMs, 0.99), 0)} / ${fmt(foMax, 0)} ms`,
      comparison: `${cl.failover.reconnected} of ${cl.onVictim} back`, target: 'max ≤ 15 s', met: cl.failover.reconnected >= cl.onVictim && foMax <= 15_000,
    });
    rows.push({ metric: 'Lease takeover: kill -9 of the region\'s lease holder → another node holds it', ours: `${fmt(cl.takeoverMs, 0)} ms`, target: '≤ 10 s', met: cl.takeoverMs <= 10_000 });
    rows.push({
      metric: `A node killed during the fan-out → every hub acknowledged (surviving and reconnected), ${label}`,
      ours: `${fmt(cl.during.lastRecordedMs, 0)} ms`, comparison: `${fmt(cl.during.pubacked, 0)} of ${fmt(hubs, 0)} hubs (${fmt(cl.onKilledDuring, 0)} on the killed node); cloud shows ${fmt(cl.during.acknowledged, 0)} acknowledged`,
      target: '≤ 20 s, every hub', met: !cl.during.timedOut && cl.during.cloudAllAcknowledged && cl.during.lastRecordedMs <= 20_000,
    });
    const ratio = ingest.cluster.perCpuSecond / ingest.single.perCpuSecond;
    rows.push({
      metric: `Ingest per CPU-second of the cloud processes (${fmt(ingest.rate, 0)} msg/s for ${ingest.seconds} s, ${ingest.hubs} hubs)`,
      ours: `${fmt(ingest.cluster.perCpuSecond, 0)} msg/CPU-s (3 nodes)`, alternative: { name: 'single process on PostgreSQL', value: `${fmt(ingest.single.perCpuSecond, 0)} msg/CPU-s` },
      comparison: `${fmt(ratio * 100, 0)} % of the single process`, target: '≥ 80 %', met: ratio >= 0.8,
    });
    const shareRatio = ingest.cluster.perCpuSecond / ingest.singleShare.perCpuSecond;
    rows.push({
      metric: `  same, against the single process at one node's share of the load (${fmt(Math.round(ingest.rate / ingest.nodes), 0)} msg/s)`,
      ours: `${fmt(ingest.cluster.perCpuSecond, 0)} msg/CPU-s (3 nodes)`, alternative: { name: `single process at ${fmt(Math.round(ingest.rate / ingest.nodes), 0)} msg/s`, value: `${fmt(ingest.singleShare.perCpuSecond, 0)} msg/CPU-s` },
      comparison: `${fmt(shareRatio * 100, 0)} % of the single process at the same load per process`,
    });
    const together = summarize(ingest.together.map((t) => t.ratio * 100));
    rows.push({
      metric: `  same, both at once: the single process at one node's share (${fmt(Math.round(ingest.rate / ingest.nodes), 0)} msg/s) while the cluster takes ${fmt(ingest.rate, 0)} msg/s — the same machine load and rate per process`,
      ours: `${fmt(summarize(ingest.together.map((t) => t.cluster)).median, 0)} msg/CPU-s (3 nodes)`,
      alternative: { name: 'single process, same seconds', value: `${fmt(summarize(ingest.together.map((t) => t.single)).median, 0)} msg/CPU-s` },
      comparison: `${fmt(together.median, 0)} % of the single process (${ingest.together.map((t) => fmt(t.ratio * 100, 0)).join(', ')} %): what only a node pays`,
    });
    rows.push({
      metric: '  Redis and PostgreSQL CPU per stored message (cluster / single process)',
      ours: `Redis ${fmt((ingest.cluster.redisCpuS / ingest.cluster.acked) * 1e6, 1)} µs, PostgreSQL ${fmt((ingest.cluster.pgCpuS / ingest.cluster.acked) * 1e6, 1)} µs`,
      alternative: { name: 'single process', value: `PostgreSQL ${fmt((ingest.single.pgCpuS / ingest.single.acked) * 1e6, 1)} µs` },
    });
    notes.push(
      `Cluster start-up (3 nodes one after the other, then HAProxy marking each UP) ${fmt(cl.startupMs / 1000, 1)} s; ${fmt(hubs, 0)} hubs connected over the nodes in ${fmt(cl.connectMs / 1000, 1)} s. ` +
        `Nodes' CPU per switch ${fmt(summarize(cl.fanoutCpu).median, 2)} s in all (single process: ${fmt(summarize(single.samples.filter((s) => !s.warmUp).map((s) => s.brokerCpuS)).median, 2)} s). Redis CPU over the whole cluster run ${fmt(cl.redisCpuS, 1)} s.`,
      `Failover tries per hub: median ${fmt(summarize(cl.failover.tries).median, 0)}, max ${fmt(Math.max(0, ...cl.failover.tries), 0)}; failed tries by cause ${JSON.stringify(cl.failover.failures)}.`,
      `Cloud CPU per stored message: single process ${fmt((ingest.single.cpuS / ingest.single.acked) * 1e6, 0)} µs at ${fmt(ingest.rate, 0)} msg/s and ${fmt((ingest.singleShare.cpuS / ingest.singleShare.acked) * 1e6, 0)} µs at ${fmt(Math.round(ingest.rate / ingest.nodes), 0)} msg/s; cluster ${fmt((ingest.cluster.cpuS / ingest.cluster.acked) * 1e6, 0)} µs (each node at ~${fmt(Math.round(ingest.rate / ingest.nodes), 0)} msg/s). ` +
        `InfluxDB writes (group commits) per 100 messages: single process ${fmt((ingest.single.commits / ingest.single.acked) * 100, 1)} at ${fmt(ingest.rate, 0)} msg/s, ${fmt((ingest.singleShare.commits / ingest.singleShare.acked) * 100, 1)} at ${fmt(Math.round(ingest.rate / ingest.nodes), 0)} msg/s; cluster ${fmt((ingest.cluster.commits / ingest.cluster.acked) * 100, 1)}. ` +
        'A batch waits up to INGEST_LINGER_MS (5 ms) for company unless it holds 500 points, two writes at most in flight, so below a few thousand messages a second a process writes about as often whatever its rate, and each of three nodes writes batches a third the size; a write costs its process ~0.3 ms of CPU (the request, its answer, the acknowledgements it releases, timers). ' +
        'Spreading one load over three processes therefore costs CPU per message by itself, and so does the machine: the same functions take longer per message when a process is busy a smaller share of the time among more processes on two cores. ' +
        'The "both at once" row removes both: at the same rate per process and the same machine load, what is left is what only a node pays (live-state changes sent to and applied from the other nodes through Redis, ~10 % of a node\'s main thread in a profile).',
      'On this 2-core machine three nodes, PostgreSQL, Redis and the load generators share two cores: the cluster cannot show linear scaling in absolute figures, so ingest is compared per CPU-second of the cloud processes.',
    );
  } finally {
    await worker.stop();
  }
  return {
    title: `Cluster: 3 nodes on PostgreSQL and Redis against one process (${fmt(hubs, 0)} hubs)`,
    method:
      'Three cloud nodes (cloud/main.ts, real processes, NODE_ID node-1…3, default LEASE_TTL_S=6) share a database in a durable PostgreSQL 15 on loopback (fsync on) and one redis-server 7 ' +
      '(the MQTT message bus and sessions, retained messages, wills, live state between nodes); HAProxy 2.6 in TCP mode fronts their MQTT ports with HTTP health checks on /healthz (inter 1 s, fall 2) and cuts a dead node\'s sessions. ' +
      'The hubs of the fan-out and failover runs connect straight to the nodes the way the edge agent does with a list of cloud URLs (each hub starts at a hash of its id and moves to the next URL on a lost or refused connection, after the agent\'s jittered back-off) — ' +
      'HAProxy cannot carry 13,800 connections on this machine (two descriptors per connection, hard limit 20,000); the ingest run goes through HAProxy. ' +
      'The hub load generator is the fan-out section\'s (raw MQTT connections that behave like edge agents: clean session, retained will and birth status, mode acknowledgements). ' +
      'The single process is the same cloud on PostgreSQL alone, measured first in the same invocation with the same hubs. ' +
      'Failover: kill -9 of node-2; the figure per hub is kill → its SUBACK and birth-status PUBACK on another node. Lease takeover: kill -9 of the node named in the leases table for the region, polled every 50 ms until another holds it. ' +
      'Ingest: the ingest section\'s publisher (100 hubs, the device mix, QoS 1, window 200) at a fixed rate into each side (both writing telemetry to one influxd), CPU of the cloud processes from /proc, Redis\'s own INFO cpu, PostgreSQL\'s processes.',
    rows, notes, raw,
  };
};

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}


