import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import { EXAMPLES, hubClientId, topics } from '../../contract/index.ts';
import { benchDeviceId, benchTelemetry, examplePayload as example, DEVICE_PATTERN as PATTERN, eventTarget, MAX_BENCH_DEVICES_PER_HUB } from '../lib/bench-devices.ts';
import { serveWorker } from '../lib/procs.ts';

/**
 * Load generator (its own process, driven by bench/lib/procs.ts `startWorker`): H hub connections —
 * raw MQTT 3.1.1, as cheap per message as possible, since it shares the machine's two cores with the
 * system under test — each carrying D simulated devices that report once a second at QoS 1.
 *
 * Message k of hub h is *scheduled* at start + k/D s (+ a per-hub phase), for device k mod D, and
 * carries that time as its `ts`. A hub keeps at most `window` messages unacknowledged; the rest wait
 * in the hub's queue, as they would in an edge agent's outbox. So a system that acknowledges only
 * after storing pushes back on the publishers (the queue grows), while a broker that acknowledges
 * at once lets the publishers run at the offered rate.
 *
 * Device mix per hub follows a 20-slot pattern: 9 drones, 9 weather/power sensor sets, 2 locker banks
 * of 16 compartments (locker telemetry is one point per compartment: 2.5 points per message on average).
 */

export type PublisherRequest =
  | { cmd: 'connect'; host: string; port: number; region: string; hubs: { id: string; username?: string; password?: string }[]; window: number; clientPrefix: string }
  | { cmd: 'run'; rate: number; seconds: number; runId: string; drainSeconds?: number }
  | { cmd: 'flood'; seconds: number; runId: string }
  | { cmd: 'events'; count: number; intervalMs: number; runId: string; hubIndex?: number }
  | { cmd: 'close' };

export interface RunPlan {
  /** Epoch ms of slot 0. Slice i covers [startedAt + i s, startedAt + (i+1) s) of scheduled times. */
  startedAt: number;
  devicesPerHub: number;
  hubs: number;
  /** Messages scheduled per full one-second slice, by kind. */
  perSlice: { drone: number; sensor: number; locker: number };
  seconds: number;
}

export interface RunReply {
  plan: RunPlan;
  /** Messages created by the simulated devices (scheduled time reached). */
  generated: number;
  /** Written to the socket. */
  sent: number;
  /** PUBACK received. */
  acked: number;
  /** Still queued or unacknowledged at the end (held back by back-pressure). */
  pending: number;
  /** Largest queue (not yet sent) summed over the hubs. */
  maxQueued: number;
  /** Scheduled → PUBACK, ms. */
  ackMs: { p50: number; p99: number; max: number };
  /** Per second of the run: generated, acked. */
  timeline: { generated: number; acked: number }[];
  /** Largest delay (ms) between a message's scheduled time and the moment it was written to the socket. */
  maxSendDelayMs: number;
  cpuSeconds: number;
  errors: string[];
}

export interface EventsReply {
  /** Per event: alarm-raising locker event id, compartment, epoch ms (fractional) when written to the socket. */
  sent: { id: string; hub: string; device: string; compartment: string; at: number }[];
}

/** A payload template: JSON with three holes (id, device, ts), filled by string concatenation. */
function template(obj: Record<string, unknown>): (id: string, device: string, ts: number) => Buffer {
  const json = JSON.stringify({ ...obj, id: '\u0000ID', device: '\u0000DEV', ts: '\u0000TS' });
  // Split at the holes, wherever the key order puts them: parts[0] hole parts[1] hole parts[2] hole parts[3].
  const parts = json.split(/"\\u0000(?:ID|DEV|TS)"/);
  const holes = [...json.matchAll(/"\\u0000(ID|DEV|TS)"/g)].map((m) => m[1]);
  if (parts.length !== 4 || holes.length !== 3) throw new Error(`bad template ${json}`);
  return (id, device, ts) => {
    const v = (h: string | undefined) => (h === 'ID' ? `"${id}"` : h === 'DEV' ? `"${device}"` : String(ts));
    return Buffer.from(parts[0] + v(holes[0]) + parts[1] + v(holes[1]) + parts[2] + v(holes[2]) + parts[3]);
  };
}

interface Hub {
  id: string;
  index: number;
  socket: net.Socket;
  parser: ReturnType<typeof mqttPacket.parser>;
  connected: Promise<void>;
  nextPacketId: number;
  inflight: Map<number, number>; // packet id → scheduled ts
  queue: { topic: string; payload: Buffer; ts: number }[];
  queueHead: number;
  onAck: (scheduledTs: number) => void;
  closed: boolean;
  error: string | null;
}

let hubs: Hub[] = [];
let region = '';
let windowSize = 500;
const errors: string[] = [];

function connectHub(host: string, port: number, id: string, index: number, clientId: string, username?: string, password?: string): Hub {
  const socket = net.connect(port, host);
  socket.setNoDelay(true);
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const connected = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
  const hub: Hub = { id, index, socket, parser, connected, nextPacketId: 1, inflight: new Map(), queue: [], queueHead: 0, onAck: () => {}, closed: false, error: null };
  parser.on('packet', (p) => {
    if (p.cmd === 'connack') {
      if (p.returnCode !== 0) reject(new Error(`${id}: connect refused (${p.returnCode})`));
      else resolve();
    } else if (p.cmd === 'puback') {
      const ts = hub.inflight.get(p.messageId!);
      if (ts !== undefined) {
        hub.inflight.delete(p.messageId!);
        hub.onAck(ts);
      }
    }
  });
  socket.on('data', (d) => parser.parse(d));
  socket.on('error', (err) => {
    hub.error = err.message;
    reject(err);
  });
  socket.on('close', () => {
    hub.closed = true;
    if (!hub.error) hub.error = 'connection closed by the server';
    reject(new Error(`${id}: ${hub.error}`));
  });
  // Keep-alive: a side may sit idle for minutes while the other systems are measured (the broker closes a connection silent for 1.5 × keepalive).
  const ping = setInterval(() => {
    if (!hub.closed) hub.socket.write(mqttPacket.generate({ cmd: 'pingreq' }));
  }, 30_000);
  ping.unref();
  socket.on('close', () => clearInterval(ping));
  socket.write(mqttPacket.generate({
    cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 120,
    ...(username ? { username, password: Buffer.from(password ?? '') } : {}),
  }));
  return hub;
}

/** Writes queued messages while the hub's window has room; one socket write per call. */
function pump(hub: Hub, now: number, onSent: (delay: number) => void): void {
  if (hub.closed) return;
  const chunks: Buffer[] = [];
  while (hub.inflight.size < windowSize && hub.queueHead < hub.queue.length) {
    const m = hub.queue[hub.queueHead++]!;
    const messageId = hub.nextPacketId;
    hub.nextPacketId = hub.nextPacketId === 65_535 ? 1 : hub.nextPacketId + 1;
    chunks.push(mqttPacket.generate({ cmd: 'publish', topic: m.topic, payload: m.payload, qos: 1, messageId, retain: false, dup: false }));
    hub.inflight.set(messageId, m.ts);
    onSent(now - m.ts);
  }
  if (hub.queueHead > 4096 && hub.queueHead * 2 > hub.queue.length) {
    hub.queue = hub.queue.slice(hub.queueHead);
    hub.queueHead = 0;
  }
  if (chunks.length) hub.socket.write(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
}

function deviceTable(hub: Hub, devicesPerHub: number) {
  if (devicesPerHub > MAX_BENCH_DEVICES_PER_HUB) throw new Error(`${devicesPerHub} devices per hub: the bench region declares locker banks for ${MAX_BENCH_DEVICES_PER_HUB} (bench/lib/bench-devices.ts)`);
  const makers = {
    d: template(benchTelemetry('d', hub.id)),
    s: template(benchTelemetry('s', hub.id)),
    l: template(benchTelemetry('l', hub.id)),
  };
  return Array.from({ length: devicesPerHub }, (_, j) => {
    const k = PATTERN[j % PATTERN.length] as 'd' | 's' | 'l';
    const device = benchDeviceId(j);
    const kind = k === 'd' ? 'drone' : k === 's' ? 'sensor' : 'locker';
    return { device, topic: topics.device(region, hub.id, kind, device, 'telemetry'), make: makers[k] };
  });
}

function kindsPerSlice(devicesPerHub: number, hubCount: number): RunPlan['perSlice'] {
  const n = { drone: 0, sensor: 0, locker: 0 };
  for (let j = 0; j < devicesPerHub; j++) {
    const k = PATTERN[j % PATTERN.length];
    if (k === 'd') n.drone++;
    else if (k === 's') n.sensor++;
    else n.locker++;
  }
  return { drone: n.drone * hubCount, sensor: n.sensor * hubCount, locker: n.locker * hubCount };
}

function pct(xs: Float64Array, p: number): number {
  if (xs.length === 0) return Number.NaN;
  return xs[Math.min(xs.length - 1, Math.max(0, Math.ceil((p / 100) * xs.length) - 1))]!;
}

async function run(req: { rate: number; seconds: number; runId: string; drainSeconds?: number; flood?: boolean }, emit: (e: unknown) => void): Promise<RunReply> {
  const live = hubs.filter((h) => !h.closed);
  if (live.length !== hubs.length) throw new Error(`${hubs.length - live.length} hub connections are closed: ${hubs.find((h) => h.closed)?.error}`);
  const devicesPerHub = req.flood ? PATTERN.length : Math.max(1, Math.round(req.rate / hubs.length));
  const tables = hubs.map((h) => deviceTable(h, devicesPerHub));
  // A whole second, so slices line up (a flood has no slices: it starts at once).
  const startedAt = req.flood ? Date.now() : Math.ceil(Date.now() / 1000) * 1000 + 1000;
  const plan: RunPlan = { startedAt, devicesPerHub, hubs: hubs.length, perSlice: kindsPerSlice(devicesPerHub, hubs.length), seconds: req.seconds };
  emit({ type: 'plan', plan });
  const cpu0 = process.cpuUsage();
  const endAt = startedAt + req.seconds * 1000;
  const timeline = Array.from({ length: req.seconds + Math.ceil(req.drainSeconds ?? 10) + 2 }, () => ({ generated: 0, acked: 0 }));
  const lat = new Float64Array(4_000_000);
  let latN = 0;
  let generated = 0;
  let sent = 0;
  let acked = 0;
  let maxQueued = 0;
  let maxSendDelayMs = 0;
  const slot = (t: number) => Math.min(timeline.length - 1, Math.max(0, Math.floor((t - startedAt) / 1000)));
  const onSent = (delay: number) => {
    sent++;
    if (delay > maxSendDelayMs) maxSendDelayMs = delay;
  };
  const next = hubs.map(() => 0); // next k per hub
  const phase = hubs.map((_, i) => (i / hubs.length) * (1000 / devicesPerHub));
  for (const h of hubs) {
    h.onAck = (ts) => {
      const now = Date.now();
      acked++;
      timeline[slot(now)]!.acked++;
      if (latN < lat.length) lat[latN++] = now - ts;
      pump(h, now, onSent);
    };
  }
  await new Promise((r) => setTimeout(r, Math.max(0, startedAt - Date.now())));
  const drainUntil = endAt + (req.drainSeconds ?? 10) * 1000;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = Date.now();
      let queued = 0;
      for (let i = 0; i < hubs.length; i++) {
        const h = hubs[i]!;
        const table = tables[i]!;
        if (req.flood) {
          // As fast as the window allows: keep the queue just full enough.
          while (now < endAt && h.queue.length - h.queueHead + h.inflight.size < windowSize * 2) {
            const k = next[i]!++;
            const d = table[k % devicesPerHub]!;
            h.queue.push({ topic: d.topic, payload: d.make(`${req.runId}.${k}`, d.device, now), ts: now });
            generated++;
            timeline[slot(now)]!.generated++;
          }
        } else {
          for (;;) {
            const k = next[i]!;
            const ts = Math.floor(startedAt + phase[i]! + (k * 1000) / devicesPerHub);
            if (ts > now || ts >= endAt) break;
            next[i] = k + 1;
            const d = table[k % devicesPerHub]!;
            h.queue.push({ topic: d.topic, payload: d.make(`${req.runId}.${k}`, d.device, ts), ts });
            generated++;
            timeline[slot(ts)]!.generated++;
          }
        }
        pump(h, now, onSent);
        queued += h.queue.length - h.queueHead;
      }
      if (queued > maxQueued) maxQueued = queued;
      const pending = hubs.reduce((n, h) => n + h.queue.length - h.queueHead + h.inflight.size, 0);
      const closed = hubs.find((h) => h.closed);
      if (closed) errors.push(`${closed.id}: ${closed.error}`);
      if ((now >= endAt && pending === 0) || now >= drainUntil || closed) resolve();
      else setTimeout(tick, 2);
    };
    tick();
  });
  const cpu = process.cpuUsage(cpu0);
  const sorted = lat.subarray(0, latN).sort();
  const pending = hubs.reduce((n, h) => n + h.queue.length - h.queueHead + h.inflight.size, 0);
  // Whatever is still pending is dropped from the queues now (the next run starts clean).
  for (const h of hubs) {
    h.queue = [];
    h.queueHead = 0;
    h.onAck = () => {};
  }
  return {
    plan, generated, sent, acked, pending, maxQueued, maxSendDelayMs,
    ackMs: { p50: pct(sorted, 50), p99: pct(sorted, 99), max: latN ? sorted[latN - 1]! : Number.NaN },
    timeline: timeline.slice(0, slot(Date.now()) + 1), cpuSeconds: (cpu.user + cpu.system) / 1e6, errors: errors.splice(0),
  };
}

let eventsSent = 0;

/** Alarm-raising locker events ('tamper' on distinct compartments), paced, on one hub. */
async function events(req: { count: number; intervalMs: number; runId: string; hubIndex?: number }): Promise<EventsReply> {
  const hub = hubs[req.hubIndex ?? 0]!;
  const base = example('locker.event');
  const sentList: EventsReply['sent'] = [];
  for (let i = 0; i < req.count; i++) {
    const { device, compartment } = eventTarget(eventsSent++); // declared in the bench region; new for every event of this process
    const id = `${req.runId}.ev.${i}`;
    const payload = JSON.stringify({ ...base, id, hub: hub.id, device, compartment, event: 'tamper', severity: 'critical', ts: Date.now() });
    const messageId = hub.nextPacketId;
    hub.nextPacketId = hub.nextPacketId === 65_535 ? 1 : hub.nextPacketId + 1;
    hub.inflight.set(messageId, Date.now());
    hub.socket.write(mqttPacket.generate({ cmd: 'publish', topic: topics.device(region, hub.id, 'locker', device, 'event'), payload, qos: 1, messageId, retain: false, dup: false }));
    sentList.push({ id, hub: hub.id, device, compartment, at: performance.timeOrigin + performance.now() });
    await new Promise((r) => setTimeout(r, req.intervalMs));
  }
  return { sent: sentList };
}

serveWorker<PublisherRequest, unknown>(async (req, emit) => {
  switch (req.cmd) {
    case 'connect': {
      region = req.region;
      windowSize = req.window;
      const created = req.hubs.map((h, i) => connectHub(req.host, req.port, h.id, i, hubClientId(h.id, req.clientPrefix), h.username, h.password));
      hubs.push(...created);
      // Connect in groups so a broker is not hit by thousands of simultaneous CONNECTs.
      await Promise.all(created.map((h) => h.connected));
      return { connected: hubs.length };
    }
    case 'run':
      return run(req, emit);
    case 'flood':
      return run({ rate: 0, seconds: req.seconds, runId: req.runId, flood: true, drainSeconds: 10 }, emit);
    case 'events':
      return events(req);
    case 'close': {
      for (const h of hubs) {
        if (!h.closed) h.socket.end(mqttPacket.generate({ cmd: 'disconnect' }));
      }
      hubs = [];
      return { closed: true };
    }
  }
});
