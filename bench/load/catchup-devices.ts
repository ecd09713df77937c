import fs from 'node:fs';
import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import { EXAMPLES, RegionFile, topics } from '../../contract/index.ts';
import { serveWorker } from '../lib/procs.ts';

/**
 * The devices of a region for the outage catch-up benchmark (bench/sections/catchup.ts), in their own
 * process. Every device of the region file (drones, locker banks, sensor sets) is one MQTT 3.1.1
 * connection to its hub's edge agent — the local broker — and publishes its telemetry at QoS 1 like
 * a real device: a message counts as published once the agent acknowledged it (PUBACK, which the
 * agent sends only after the message is committed to its outbox).
 *
 * Payloads are the contract's examples with the region's device ids (a locker bank reports every
 * compartment the region file gives it), pre-serialised so that only the message id and timestamp
 * change per message — the generator shares the machine's two cores with what it measures.
 *
 * Requests (one at a time, see bench/lib/procs.ts):
 *  - connect {regionFile, urls}: one connection per device to `urls[hub]`
 *  - backlog {run, seconds, endTs, phaseMs, window}: `seconds` messages per device — the outage's
 *    1 msg/s — with device timestamps endTs − seconds·1000 + k·1000 + phase, oldest first, as fast
 *    as the agents acknowledge them (at most `window` unacknowledged per device)
 *  - live-start {run, baseTs, phaseMs}: from now on one message per device per second (ts baseTs +
 *    k·1000 + phase, published when that time comes); live-stop: stops and waits for the PUBACKs
 *  - close
 */

type Kind = 'drone' | 'locker' | 'sensor';

export interface DeviceCounts {
  messages: Record<Kind, number>;
  /** Storage points: one per drone/sensor message, one per compartment of a locker message. */
  points: Record<Kind, number>;
}

export interface BacklogReply extends DeviceCounts {
  devices: number;
  published: number;
  acked: number;
  /** Published but never acknowledged (connection lost, refused by the agent). */
  notAcked: number;
  ms: number;
  perHub: Record<string, number>;
}

export interface LiveReply extends DeviceCounts {
  published: number;
  acked: number;
  notAcked: number;
  /** Largest device timestamp published. */
  maxTs: number;
}

export type CatchupRequest =
  | { op: 'connect'; regionFile: string; urls: Record<string, string> }
  | { op: 'backlog'; run: number; seconds: number; endTs: number; phaseMs: number; window: number }
  | { op: 'live-start'; run: number; baseTs: number; phaseMs: number }
  | { op: 'live-stop' }
  | { op: 'close' };

const example = (name: string) => EXAMPLES.find((e) => e.name === name)!.payload;

/** JSON with placeholders for id and ts, so a message is one string concatenation. */
function template(obj: Record<string, unknown>): (id: string, ts: number) => Buffer {
  const json = JSON.stringify({ ...obj, id: '\u0000ID', ts: 1 });
  const [head, rest] = json.split('"\\u0000ID"');
  const [mid, tail] = rest!.split('"ts":1');
  return (id, ts) => Buffer.from(`${head}"${id}"${mid}"ts":${ts}${tail}`);
}

class Device {
  readonly topic: string;
  readonly payload: (id: string, ts: number) => Buffer;
  private socket: net.Socket | null = null;
  private nextPacketId = 1;
  private readonly waiting = new Map<number, () => void>();
  private closedError: Error | null = null;

  constructor(
    readonly hub: string,
    readonly kind: Kind,
    readonly id: string,
    readonly points: number,
    /** Position of the device in its hub: spreads the devices' clocks over the second. */
    readonly index: number,
    region: string,
    body: Record<string, unknown>,
  ) {
    this.topic = topics.device(region, hub, kind, id, 'telemetry');
    this.payload = template({ ...body, hub, device: id });
  }

  get inflight(): number {
    return this.waiting.size;
  }

  async connect(url: string): Promise<void> {
    const u = new URL(url);
    const socket = net.connect(Number(u.port), u.hostname);
    socket.setNoDelay(true);
    this.socket = socket;
    this.closedError = null;
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    await new Promise<void>((resolve, reject) => {
      parser.on('packet', (p) => {
        if (p.cmd === 'connack') {
          if (p.returnCode === 0) resolve();
          else reject(new Error(`${this.hub}/${this.id}: connect refused (${p.returnCode})`));
        } else if (p.cmd === 'puback') {
          const done = this.waiting.get(p.messageId!);
          this.waiting.delete(p.messageId!);
          done?.();
        }
      });
      socket.on('data', (d) => parser.parse(d));
      socket.on('error', (err) => reject(err)); // 'close' follows
      socket.on('close', () => {
        this.closedError = new Error(`${this.hub}/${this.id}: connection to the agent closed`);
        reject(this.closedError);
        // Unacknowledged messages stay unacknowledged: counted as notAcked by the callers.
        this.waiting.clear();
      });
      socket.write(mqttPacket.generate({
        cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `bench-${this.hub}-${this.id}`, keepalive: 60,
      }));
    });
  }

  /** Writes the packets for these messages; `onAck` runs once per PUBACK. */
  publish(messages: { id: string; ts: number }[], onAck: () => void): void {
    if (!this.socket || this.closedError) return;
    const chunks: Buffer[] = [];
    for (const m of messages) {
      const messageId = this.nextPacketId;
      this.nextPacketId = this.nextPacketId === 65_535 ? 1 : this.nextPacketId + 1;
      this.waiting.set(messageId, onAck);
      chunks.push(mqttPacket.generate({ cmd: 'publish', topic: this.topic, payload: this.payload(m.id, m.ts), qos: 1, messageId, retain: false, dup: false }));
    }
    this.socket.write(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
  }

  get failed(): boolean {
    return this.closedError !== null;
  }

  close(): void {
    if (this.socket && !this.socket.destroyed) {
      this.socket.write(mqttPacket.generate({ cmd: 'disconnect' }));
      this.socket.end();
    }
    this.socket = null;
  }
}

const zeroCounts = (): DeviceCounts => ({ messages: { drone: 0, locker: 0, sensor: 0 }, points: { drone: 0, locker: 0, sensor: 0 } });

let devices: Device[] = [];
let live: { timer: NodeJS.Timeout; counts: DeviceCounts; published: number; acked: number; maxTs: number; stop: () => void } | null = null;

function buildDevices(regionFile: string): Device[] {
  const region = RegionFile.parse(JSON.parse(fs.readFileSync(regionFile, 'utf8')));
  const out: Device[] = [];
  for (const hub of region.hubs) {
    let i = 0;
    for (const d of hub.drones) out.push(new Device(hub.id, 'drone', d.id, 1, i++, region.id, example('drone.telemetry')));
    for (const l of hub.lockers) {
      const compartments = l.compartments.map((c, n) => ({
        id: c.id, size: c.size, tempClass: c.tempClass, door: 'closed', occupied: n % 3 === 0, reservedFor: n % 5 === 1 ? `order-${l.id}-${c.id}` : null,
        tempC: c.tempClass === 'frozen' ? -18.2 : c.tempClass === 'chilled' ? 5.1 : 18.4, fault: 'none',
      }));
      out.push(new Device(hub.id, 'locker', l.id, compartments.length, i++, region.id, { ...example('locker.telemetry'), compartments }));
    }
    for (const s of hub.sensors) out.push(new Device(hub.id, 'sensor', s, 1, i++, region.id, example('sensor.telemetry')));
  }
  return out;
}

/** Device timestamps of one device never collide across runs: each run has its own phase within the second. */
const deviceTs = (d: Device, base: number, k: number, phaseMs: number) => base + k * 1000 + ((phaseMs + d.index * 3) % 1000);

async function backlog(req: Extract<CatchupRequest, { op: 'backlog' }>): Promise<BacklogReply> {
  const counts = zeroCounts();
  const perHub: Record<string, number> = {};
  let published = 0;
  let acked = 0;
  const t0 = performance.now();
  const start = req.endTs - req.seconds * 1000;
  await Promise.all(devices.map((d) => new Promise<void>((resolve) => {
    let next = 0;
    let ackedHere = 0;
    const pump = () => {
      if (d.failed) return resolve();
      const batch: { id: string; ts: number }[] = [];
      while (next < req.seconds && d.inflight + batch.length < req.window) {
        batch.push({ id: `c${req.run}-${d.id}-${next}`, ts: deviceTs(d, start, next, req.phaseMs) });
        next++;
      }
      published += batch.length;
      if (batch.length) d.publish(batch, onAck);
    };
    const onAck = () => {
      acked++;
      ackedHere++;
      counts.messages[d.kind]++;
      counts.points[d.kind] += d.points;
      perHub[d.hub] = (perHub[d.hub] ?? 0) + 1;
      if (ackedHere === req.seconds) return resolve();
      if (d.inflight < req.window / 2) pump();
    };
    pump();
    // A device whose connection dropped stops; what it had not got acknowledged is counted below.
    const check = setInterval(() => {
      if (d.failed || ackedHere === req.seconds) {
        clearInterval(check);
        resolve();
      }
    }, 200);
  })));
  return { ...counts, devices: devices.length, published, acked, notAcked: published - acked, ms: performance.now() - t0, perHub };
}

function liveStart(req: Extract<CatchupRequest, { op: 'live-start' }>): void {
  const state = { counts: zeroCounts(), published: 0, acked: 0, maxTs: 0 };
  let k = 0;
  let stopped = false;
  const tick = () => {
    if (stopped) return;
    // One message per device for second k, published at (about) its device timestamp.
    for (const d of devices) {
      const ts = deviceTs(d, req.baseTs, k, req.phaseMs);
      state.published++;
      state.maxTs = Math.max(state.maxTs, ts);
      d.publish([{ id: `l${req.run}-${d.id}-${k}`, ts }], () => {
        state.acked++;
        state.counts.messages[d.kind]++;
        state.counts.points[d.kind] += d.points;
      });
    }
    k++;
    live!.timer = setTimeout(tick, Math.max(0, req.baseTs + k * 1000 + req.phaseMs - Date.now()));
  };
  live = {
    timer: setTimeout(tick, Math.max(0, req.baseTs + req.phaseMs - Date.now())),
    get counts() { return state.counts; },
    get published() { return state.published; },
    get acked() { return state.acked; },
    get maxTs() { return state.maxTs; },
    stop: () => { stopped = true; },
  };
}

async function liveStop(): Promise<LiveReply> {
  const l = live;
  live = null;
  if (!l) throw new Error('live traffic was not started');
  l.stop();
  clearTimeout(l.timer);
  const until = Date.now() + 30_000;
  while (l.acked < l.published && Date.now() < until && !devices.some((d) => d.failed)) await new Promise((r) => setTimeout(r, 20));
  return { ...l.counts, published: l.published, acked: l.acked, notAcked: l.published - l.acked, maxTs: l.maxTs };
}

serveWorker<CatchupRequest, unknown>(async (req) => {
  switch (req.op) {
    case 'connect': {
      for (const d of devices) d.close();
      devices = buildDevices(req.regionFile);
      await Promise.all(devices.map((d) => {
        const url = req.urls[d.hub];
        if (!url) throw new Error(`no agent for hub ${d.hub}`);
        return d.connect(url);
      }));
      return { devices: devices.length, perHub: Object.fromEntries(Object.keys(req.urls).map((h) => [h, devices.filter((d) => d.hub === h).length])) };
    }
    case 'backlog':
      return backlog(req);
    case 'live-start':
      liveStart(req);
      return {};
    case 'live-stop':
      return liveStop();
    case 'close':
      for (const d of devices) d.close();
      devices = [];
      return {};
  }
});
