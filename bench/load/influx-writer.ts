import http from 'node:http';
import { topics } from '../../contract/index.ts';
import { validateUplinkMessage } from '../../contract/validate-message.ts';
import type { DeviceMessage } from '../../contract/index.ts';
import { lineProtocol } from '../../cloud/telemetry/influx-telemetry-store.ts';
import { pointsForMessage } from '../../cloud/telemetry/points.ts';
import { benchDeviceId, benchTelemetry, DEVICE_PATTERN } from '../lib/bench-devices.ts';
import { serveWorker } from '../lib/procs.ts';

/**
 * The store's own ceiling (issue 17, item 2): the points our cloud writes for benchmark 1's device mix,
 * written by a minimal batched writer straight into influxd over the v1 `/write` API — no broker, no
 * validation, no acknowledgements. Each device's line-protocol lines are made once by the cloud's own
 * code (`pointsForMessage`, `lineProtocol`) and then only get a new message id and timestamp, so the
 * writer costs little CPU next to influxd's (both share the machine's two cores).
 */
export interface WriterRequest {
  cmd: 'run';
  url: string;
  db: string;
  region: string;
  hubs: string[];
  devicesPerHub: number;
  seconds: number;
  /** Messages per POST (each 1–16 points: ~2.5 on average in this mix). */
  batchMessages: number;
  /** POSTs in flight at once. */
  concurrency: number;
  runId: string;
}

export interface WriterReply {
  messages: number;
  points: number;
  seconds: number;
  requests: number;
  errors: string[];
  cpuSeconds: number;
}

const ID_TOKEN = 'QQQQQQQQQQQQ';
/** A valid timestamp for the template; every line's is replaced. */
const TS_TOKEN = 1_700_000_000_000;
/** One device's lines: each a list of parts to join with the message id, then " <ts>". */
function deviceLines(region: string, hub: string, j: number): string[][] {
  const k = DEVICE_PATTERN[j % DEVICE_PATTERN.length] as 'd' | 's' | 'l';
  const kind = k === 'd' ? 'drone' : k === 's' ? 'sensor' : 'locker';
  const device = benchDeviceId(j);
  const topic = topics.device(region, hub, kind, device, 'telemetry');
  const v = validateUplinkMessage(topic, Buffer.from(JSON.stringify({ ...benchTelemetry(k, hub), device, id: ID_TOKEN, ts: TS_TOKEN })), 1 << 20);
  if (!v.ok) throw new Error(`bench message refused: ${v.reason} ${v.detail}`);
  return pointsForMessage(region, v.message as DeviceMessage).map((p) => {
    const line = lineProtocol(p);
    if (!line.endsWith(` ${TS_TOKEN}`)) throw new Error(`unexpected line protocol: ${line}`);
    return line.slice(0, -(String(TS_TOKEN).length + 1)).split(ID_TOKEN);
  });
}

async function run(req: WriterRequest): Promise<WriterReply> {
  const devices = req.hubs.flatMap((hub) => Array.from({ length: req.devicesPerHub }, (_, j) => deviceLines(req.region, hub, j)));
  const agent = new http.Agent({ keepAlive: true, maxSockets: req.concurrency });
  const target = new URL('/write', req.url);
  target.search = new URLSearchParams({ db: req.db, precision: 'ms' }).toString();
  let next = 0;
  let ts = Date.now() - 3_600_000; // distinct timestamps per point of a device, in the past hour
  const body = (): { text: string; messages: number; points: number } => {
    let text = '';
    let points = 0;
    for (let i = 0; i < req.batchMessages; i++) {
      const lines = devices[next % devices.length]!;
      const id = `${req.runId}.${(next++).toString(36)}`;
      if (next % devices.length === 0) ts++;
      for (const parts of lines) {
        text += `${parts.join(id)} ${ts}\n`;
        points++;
      }
    }
    return { text, messages: req.batchMessages, points };
  };
  const post = (text: string) => new Promise<void>((resolve, reject) => {
    const r = http.request(target, { method: 'POST', agent, headers: { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => (res.statusCode === 204 ? resolve() : reject(new Error(`influxd answered ${res.statusCode}: ${Buffer.concat(chunks).toString().slice(0, 200)}`))));
    });
    r.on('error', reject);
    r.end(text);
  });
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const endAt = started + req.seconds * 1000;
  const out: WriterReply = { messages: 0, points: 0, seconds: 0, requests: 0, errors: [], cpuSeconds: 0 };
  await Promise.all(Array.from({ length: req.concurrency }, async () => {
    while (performance.now() < endAt && out.errors.length === 0) {
      const b = body();
      try {
        await post(b.text);
        out.messages += b.messages;
        out.points += b.points;
        out.requests++;
      } catch (err) {
        out.errors.push((err as Error).message);
      }
    }
  }));
  out.seconds = (performance.now() - started) / 1000;
  const c = process.cpuUsage(cpu0);
  out.cpuSeconds = (c.user + c.system) / 1e6;
  agent.destroy();
  return out;
}

serveWorker<WriterRequest, WriterReply>((req) => run(req));
