import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import mqttPacket from 'mqtt-packet';
import { EXAMPLES, topics } from '../contract/index.ts';
import { readCredentials, spawnCloud, tempDir, testCloudEnv } from '../test/support/cloud-harness.ts';
import { freePort } from '../test/support/ports.ts';

/**
 * `npm run bench`: validated-ingest throughput of the real cloud process (broker → validation →
 * group commit → store) on this machine. Publishers are raw MQTT 3.1.1 connections (one per hub)
 * that keep WINDOW QoS 1 messages in flight and count PUBACKs — a message counts once the cloud has
 * stored it. The message mix is 45 % drone telemetry, 45 % hub sensors, 10 % locker banks (16
 * compartments). Options (env): BENCH_SECONDS (20), BENCH_WINDOW (500), BENCH_STORE (sqlite|influx
 * with INFLUX_URL), SQLITE_SYNC (full).
 */
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 500);

const example = (name: string) => EXAMPLES.find((e) => e.name === name)!.payload;
const compartments = Array.from({ length: 16 }, (_, i) => ({
  id: `A${String(i + 1).padStart(2, '0')}`, size: (['S', 'M', 'L'] as const)[i % 3], tempClass: (['ambient', 'chilled', 'frozen'] as const)[i % 3],
  door: 'closed', occupied: i % 2 === 0, reservedFor: null, tempC: [18, 5, -18][i % 3], fault: 'none',
}));

/**
 * Payloads are built from pre-serialised templates (only id and ts change), so the load generator,
 * which shares the machine's two cores with the cloud, spends as little CPU as possible.
 */
function template(obj: Record<string, unknown>): (id: string, ts: number) => Buffer {
  const json = JSON.stringify({ ...obj, id: '\u0000ID', ts: 1 });
  const [head, rest] = json.split('"\\u0000ID"');
  const [mid, tail] = rest!.split('"ts":1');
  return (id, ts) => Buffer.from(`${head}"${id}"${mid}"ts":${ts}${tail}`);
}

function messageMaker(region: string, hub: string) {
  const drones = [0, 1, 2].map((n) => ({
    topic: topics.device(region, hub, 'drone', `drone-${n}`, 'telemetry'),
    payload: template({ ...example('drone.telemetry'), hub, device: `drone-${n}` }),
  }));
  const sensor = { topic: topics.device(region, hub, 'sensor', 'wx', 'telemetry'), payload: template({ ...example('sensor.telemetry'), hub, device: 'wx' }) };
  const locker = { topic: topics.device(region, hub, 'locker', 'locker-a', 'telemetry'), payload: template({ ...example('locker.telemetry'), hub, device: 'locker-a', compartments }) };
  return (seq: number, ts: number): { topic: string; payload: Buffer } => {
    const r = seq % 20;
    const t = r < 9 ? drones[seq % 3]! : r < 18 ? sensor : locker;
    return { topic: t.topic, payload: t.payload(`b-${seq}`, ts) };
  };
}

interface PublisherStats { acked: number; latencies: number[] }

async function publisher(port: number, region: string, hub: string, cred: { username: string; password: string }, until: number, stats: PublisherStats): Promise<void> {
  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const sentAt = new Map<number, number>();
  let seq = 0;
  let nextPacketId = 1;
  let inflight = 0;
  let done: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const base = Date.now() - 3_600_000;
  const makeMessage = messageMaker(region, hub);

  const pump = () => {
    const chunks: Buffer[] = [];
    while (inflight < WINDOW && Date.now() < until) {
      const m = makeMessage(seq, base + seq);
      seq++;
      const messageId = nextPacketId;
      nextPacketId = nextPacketId === 65_535 ? 1 : nextPacketId + 1;
      chunks.push(mqttPacket.generate({ cmd: 'publish', topic: m.topic, payload: m.payload, qos: 1, messageId, retain: false, dup: false }));
      sentAt.set(messageId, performance.now());
      inflight++;
    }
    if (chunks.length) socket.write(Buffer.concat(chunks));
    if (inflight === 0 && Date.now() >= until) {
      socket.end();
      done();
    }
  };

  parser.on('packet', (p) => {
    if (p.cmd === 'connack') {
      if (p.returnCode !== 0) throw new Error(`connect refused: ${p.returnCode}`);
      pump();
    } else if (p.cmd === 'puback') {
      const t0 = sentAt.get(p.messageId!);
      sentAt.delete(p.messageId!);
      if (t0 !== undefined && stats.latencies.length < 200_000) stats.latencies.push(performance.now() - t0);
      stats.acked++;
      inflight--;
      if (inflight < WINDOW / 2 || Date.now() >= until) pump();
    }
  });
  socket.on('data', (d) => parser.parse(d));
  socket.on('error', (err) => {
    console.error(`${hub}: ${err.message}`);
    done();
  });
  socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `bench-${hub}`, keepalive: 60, username: cred.username, password: Buffer.from(cred.password) }));
  return finished;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
};

async function main(): Promise<void> {
  const dataDir = tempDir('bench');
  const extra: Record<string, string> = { HTTP_PORT: String(await freePort()), MQTT_PORT: String(await freePort()), MQTT_WS_PORT: 'off', LOG_LEVEL: 'warn', SQLITE_SYNC: process.env.SQLITE_SYNC ?? 'full' };
  if (process.env.BENCH_STORE === 'influx') {
    if (!process.env.INFLUX_URL) throw new Error('BENCH_STORE=influx needs INFLUX_URL');
    Object.assign(extra, { INFLUX_URL: process.env.INFLUX_URL, INFLUX_DB: process.env.INFLUX_DB ?? 'bench', INFLUX_CREATE_DB: 'true' });
  }
  const cloud = await spawnCloud(testCloudEnv(dataDir, extra));
  const creds = readCredentials(dataDir);
  const hubs = Object.keys(creds).slice(0, 8);
  const port = Number(new URL(cloud.urls.mqtt).port);
  const stats: PublisherStats[] = hubs.map(() => ({ acked: 0, latencies: [] }));

  const cloudCpu = () => {
    const f = fs.readFileSync(`/proc/${cloud.child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, clock ticks (USER_HZ = 100)
  };
  const cloudCpuBefore = cloudCpu();
  const benchCpuBefore = process.cpuUsage();
  const started = Date.now();
  const until = started + SECONDS * 1000;
  let peakRss = 0;
  const sampler = setInterval(() => {
    try {
      const status = fs.readFileSync(`/proc/${cloud.child.pid}/status`, 'utf8');
      const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      peakRss = Math.max(peakRss, kb * 1024);
    } catch {
      /* process gone */
    }
  }, 250);
  await Promise.all(hubs.map((hub, i) => publisher(port, 'ishikawa-nomi', hub, creds[hub]!, until, stats[i]!)));
  const elapsed = (Date.now() - started) / 1000;
  clearInterval(sampler);
  const cloudCpuSeconds = cloudCpu() - cloudCpuBefore;
  const benchUsage = process.cpuUsage(benchCpuBefore);
  const benchCpuSeconds = (benchUsage.user + benchUsage.system) / 1e6;
  const metrics = await (await fetch(`${cloud.urls.http}/metrics`)).text();
  await cloud.kill('SIGTERM');
  fs.rmSync(dataDir, { recursive: true, force: true });

  const acked = stats.reduce((n, s) => n + s.acked, 0);
  const latencies = stats.flatMap((s) => s.latencies);
  const rejected = metrics.split('\n').filter((l) => l.startsWith('ingest_messages_rejected_total') && !l.endsWith(' 0'));
  const result = {
    date: new Date().toISOString(), machine: `${os.cpus().length} cores, ${os.cpus()[0]?.model}`, node: process.version,
    store: extra.INFLUX_URL ? 'influxdb' : `sqlite (synchronous=${extra.SQLITE_SYNC})`, connections: hubs.length, window: WINDOW,
    seconds: Number(elapsed.toFixed(1)), messagesAcked: acked, messagesPerSecond: Math.round(acked / elapsed),
    ackLatencyMs: { p50: Number(pct(latencies, 50).toFixed(1)), p99: Number(pct(latencies, 99).toFixed(1)) },
    cloudPeakRssMiB: Math.round(peakRss / 1024 / 1024),
    cpu: {
      cloudCores: Number((cloudCpuSeconds / elapsed).toFixed(2)),
      loadGeneratorCores: Number((benchCpuSeconds / elapsed).toFixed(2)),
      cloudCpuMicrosecondsPerMessage: Math.round((cloudCpuSeconds * 1e6) / acked),
    },
    rejected,
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  const out = process.env.BENCH_OUT;
  if (out) fs.appendFileSync(path.resolve(out), `${JSON.stringify(result)}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
