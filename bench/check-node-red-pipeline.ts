import fs from 'node:fs';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { EXAMPLES, parseTopic, schemaForTopic, topics, type DeviceMessage } from '../contract/index.ts';
import { lineProtocol } from '../cloud/telemetry/influx-telemetry-store.ts';
import { pointsForMessage } from '../cloud/telemetry/points.ts';
import { createInfluxDatabase, influxAdminQuery, startInfluxd } from '../test/support/influxd.ts';
import { startNodeRedPipeline } from './lib/node-red-pipeline.ts';
import { cpuSeconds, rssBytes } from './lib/procs.ts';

/**
 * Checks bench/lib/node-red-pipeline.ts (the Mosquitto + Node-RED + InfluxDB baseline) against a
 * real influxd, outside `npm test`:
 *
 *   npx tsx bench/check-node-red-pipeline.ts [--messages 300] [--flood 20000] [--rates 2600,5200 --seconds 5]
 *
 *  1. correctness: publishes --messages contract messages (drone / sensor telemetry, locker banks
 *     of 16 compartments, a few events) at QoS 1, waits until all arrived, and compares what Node-RED
 *     stored with what our cloud's mapping (pointsForMessage + lineProtocol) stores for the same
 *     messages in a second database: same measurements, tags, field keys and types, times, values.
 *  2. flood: --flood messages as fast as QoS 1 allows from one MQTT.js client; how many arrive.
 *  3. rates: for each --rates R, R msg/s for --seconds s; how many arrive.
 * Each phase prints how many messages were stored and how many of the lost ones failed inside
 * Node-RED (InfluxDB write errors); the rest were dropped by Mosquitto (max_queued_messages 1000).
 * Then stops everything and checks that Node-RED and Mosquitto are gone. Exit code 1 on a failure.
 * VERBOSE=1 also prints the pipeline's periodic write-error summaries.
 */
const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '300' },
    flood: { type: 'string', default: '20000' },
    rates: { type: 'string', default: '' },
    seconds: { type: 'string', default: '5' },
  },
});
const MESSAGES = Number(args.messages);
const FLOOD = Number(args.flood);
const RATES = args.rates ? args.rates.split(',').map(Number) : [];
const SECONDS = Number(args.seconds);

const REGION = 'ishikawa-nomi';
const HUB = 'nomi-terai';
const t0 = performance.now();
const log = (line: string) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);

// ------------------------------------------------------------------------------------------ messages

const example = (name: string) => EXAMPLES.find((e) => e.name === name)!.payload;
const compartments = Array.from({ length: 16 }, (_, i) => ({
  id: `A${String(i + 1).padStart(2, '0')}`, size: (['S', 'M', 'L'] as const)[i % 3], tempClass: (['ambient', 'chilled', 'frozen'] as const)[i % 3],
  door: i % 5 === 0 ? 'open' : 'closed', occupied: i % 2 === 0, reservedFor: i % 4 === 1 ? `order-${i}` : null,
  tempC: [18, 5, -18][i % 3], fault: i === 7 ? 'sensor' : 'none',
}));

interface Msg { topic: string; payload: Buffer; message: DeviceMessage; kind: 'drone' | 'sensor' | 'locker' | 'event' }

/** Message `seq` of the mix used by the ingest benchmark (bench/load/publisher.ts): 45 % drone, 45 % sensor, 10 % locker bank. */
function makeMessage(seq: number, ts: number, withEvents = false): Msg {
  const r = seq % 20;
  let kind: Msg['kind'];
  let obj: Record<string, unknown>;
  let topic: string;
  if (withEvents && r === 19) {
    const [deviceKind, device] = ([['drone', 'drone-1'], ['locker', 'locker-a'], ['sensor', 'wx']] as const)[Math.floor(seq / 20) % 3]!;
    kind = 'event';
    obj = { ...example(`${deviceKind}.event`), hub: HUB, device };
    topic = topics.device(REGION, HUB, deviceKind, device, 'event');
  } else if (r < 9) {
    const device = `drone-${seq % 3}`;
    kind = 'drone';
    obj = { ...example('drone.telemetry'), hub: HUB, device, batteryPct: 50 + (seq % 50) / 2 };
    if (seq % 2) delete obj.batteryTempC; // an optional field left out
    topic = topics.device(REGION, HUB, 'drone', device, 'telemetry');
  } else if (r < 18) {
    kind = 'sensor';
    obj = { ...example('sensor.telemetry'), hub: HUB, device: 'wx', windSpeedMps: (seq % 100) / 10, gridPowerUp: seq % 3 !== 0 };
    topic = topics.device(REGION, HUB, 'sensor', 'wx', 'telemetry');
  } else {
    kind = 'locker';
    obj = { ...example('locker.telemetry'), hub: HUB, device: 'locker-a', compartments };
    topic = topics.device(REGION, HUB, 'locker', 'locker-a', 'telemetry');
  }
  const message = { ...obj, id: `nr-${seq}`, ts } as unknown as DeviceMessage;
  return { topic, payload: Buffer.from(JSON.stringify(message)), message, kind };
}

/** Validates a message as the cloud would (so the reference mapping sees only contract messages). */
function assertValid(m: Msg): void {
  const parsed = parseTopic(m.topic);
  if (!parsed) throw new Error(`bad topic ${m.topic}`);
  const r = schemaForTopic(parsed).safeParse(m.message);
  if (!r.success) throw new Error(`invalid ${m.topic}: ${r.error.message}`);
}

// ------------------------------------------------------------------------------------------ influx

interface Series { name: string; columns: string[]; values: unknown[][] }

async function query(url: string, db: string, q: string): Promise<Series[]> {
  const res = await fetch(`${url}/query?${new URLSearchParams({ db, q, epoch: 'ms' })}`, { signal: AbortSignal.timeout(30_000) });
  const json = (await res.json()) as { results?: { series?: Series[]; error?: string }[]; error?: string };
  const error = json.error ?? json.results?.find((r) => r.error)?.error;
  if (!res.ok || error) throw new Error(`influxd ${res.status} for ${q}: ${error}`);
  return json.results?.[0]?.series ?? [];
}

async function count(url: string, db: string, q: string): Promise<number> {
  const s = await query(url, db, q);
  return Number(s[0]?.values[0]?.[1] ?? 0);
}

/** Messages stored: one drone point, one sensor point or one A01 locker point per message. */
async function counts(url: string, db: string): Promise<{ drone: number; sensor: number; locker: number; total: number }> {
  const [drone, sensor, locker] = await Promise.all([
    count(url, db, 'SELECT count(battery_pct) FROM drone'),
    count(url, db, 'SELECT count(wind_speed_mps) FROM sensor'),
    count(url, db, "SELECT count(occupied) FROM locker WHERE compartment='A01'"),
  ]);
  return { drone, sensor, locker, total: drone + sensor + locker };
}

/** Polls until `expected` messages are stored or the count has not grown for `quietMs`. */
async function waitForArrival(url: string, db: string, expected: number, quietMs = 3_000, timeoutMs = 180_000): Promise<{ total: number; lastGrowthAt: number }> {
  const until = Date.now() + timeoutMs;
  let last = -1;
  let lastGrowthAt = performance.now();
  for (;;) {
    const { total } = await counts(url, db);
    if (total !== last) {
      last = total;
      lastGrowthAt = performance.now();
    }
    if (total >= expected || performance.now() - lastGrowthAt > quietMs || Date.now() > until) return { total, lastGrowthAt };
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function writeReference(url: string, db: string, msgs: Msg[]): Promise<void> {
  const lines = msgs.flatMap((m) => pointsForMessage(parseTopic(m.topic)!.region, m.message).map(lineProtocol));
  const res = await fetch(`${url}/write?${new URLSearchParams({ db, precision: 'ms' })}`, { method: 'POST', body: lines.join('\n') });
  if (res.status !== 204) throw new Error(`reference write: ${res.status} ${await res.text()}`);
}

/** Differences between the two databases: field keys/types, tag keys, and every row of every measurement. */
async function compareDatabases(url: string, a: string, b: string): Promise<string[]> {
  const problems: string[] = [];
  const canon = async (db: string, q: string) => {
    const series = await query(url, db, q);
    return series
      .flatMap((s) => s.values.map((v) => JSON.stringify([s.name, Object.fromEntries(s.columns.map((c, i) => [c, v[i]]).sort())])))
      .sort();
  };
  for (const q of ['SHOW MEASUREMENTS', 'SHOW FIELD KEYS', 'SHOW TAG KEYS', 'SHOW SERIES', ...['drone', 'sensor', 'locker', 'event'].map((m) => `SELECT * FROM "${m}"`)]) {
    const [ra, rb] = await Promise.all([canon(a, q), canon(b, q)]);
    const sa = new Set(ra);
    const sb = new Set(rb);
    const onlyA = ra.filter((x) => !sb.has(x));
    const onlyB = rb.filter((x) => !sa.has(x));
    if (onlyA.length || onlyB.length || ra.length !== rb.length) {
      problems.push(`${q}: ${ra.length} vs ${rb.length} rows; only Node-RED: ${onlyA.slice(0, 3).join(' ')}; only cloud: ${onlyB.slice(0, 3).join(' ')}`);
    } else log(`  same in both: ${q} (${ra.length} rows)`);
  }
  return problems;
}

// ------------------------------------------------------------------------------------------ publish

async function connect(port: number): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { protocolVersion: 4, clean: true, reconnectPeriod: 0 });
}

/** Publishes all at once (as fast as QoS 1 allows: MQTT.js keeps no window in 3.1.1); resolves on the last PUBACK. */
async function flood(client: mqtt.MqttClient, msgs: Msg[]): Promise<void> {
  await Promise.all(msgs.map((m) => client.publishAsync(m.topic, m.payload, { qos: 1 })));
}

/** Publishes at `rate` msg/s (a tick every 10 ms) and resolves on the last PUBACK. */
async function paced(client: mqtt.MqttClient, msgs: Msg[], rate: number): Promise<void> {
  const acks: Promise<unknown>[] = [];
  const start = performance.now();
  let i = 0;
  while (i < msgs.length) {
    const due = Math.min(msgs.length, Math.floor(((performance.now() - start) / 1000) * rate));
    for (; i < due; i++) acks.push(client.publishAsync(msgs[i]!.topic, msgs[i]!.payload, { qos: 1 }));
    await new Promise((r) => setTimeout(r, 10));
  }
  await Promise.all(acks);
}

// ------------------------------------------------------------------------------------------ main

/** Failed InfluxDB writes between two `writeErrors()` snapshots (messages lost inside Node-RED). */
function failedWrites(before: Record<string, number>, after: Record<string, number>): string {
  const diff = Object.entries(after).map(([e, n]) => [e, n - (before[e] ?? 0)] as const).filter(([, n]) => n > 0);
  return diff.length ? `; failed InfluxDB writes: ${diff.map(([e, n]) => `${n}× "${e}"`).join(', ')}` : '';
}

async function main(): Promise<void> {
  let failures = 0;
  const fail = (why: string) => {
    failures++;
    log(`FAIL ${why}`);
  };
  const influxd = await startInfluxd();
  const DB = 'nodered';
  const REF = 'cloud_reference';
  await createInfluxDatabase(influxd.url, DB);
  await createInfluxDatabase(influxd.url, REF);
  log(`influxd ${influxd.url}`);

  const tStart = performance.now();
  const pipeline = await startNodeRedPipeline({ influxUrl: influxd.url, database: DB, log: (l) => (process.env.VERBOSE || !/failed InfluxDB writes/.test(l)) && log(l) });
  log(`pipeline up in ${((performance.now() - tStart) / 1000).toFixed(1)} s (mosquitto and Node-RED)`);
  const { nodeRedPid, mosquittoPid } = pipeline;
  const client = await connect(pipeline.mqttPort);
  const base = Date.now() - 3_600_000;
  let seq = 0;
  let expectedTotal = 0;
  const results: string[] = [];

  const phase = async (label: string, n: number, publish: (msgs: Msg[]) => Promise<void>, withEvents = false): Promise<Msg[]> => {
    const msgs = Array.from({ length: n }, () => makeMessage(seq, base + seq++, withEvents));
    const counted = msgs.filter((m) => m.kind !== 'event').length;
    const before = await counts(influxd.url, DB);
    const errorsBefore = pipeline.writeErrors();
    const cpu0 = cpuSeconds(nodeRedPid) + cpuSeconds(mosquittoPid);
    const p0 = performance.now();
    await publish(msgs);
    const p1 = performance.now();
    const { total, lastGrowthAt } = await waitForArrival(influxd.url, DB, before.total + counted);
    const arrived = total - before.total;
    expectedTotal += counted;
    const publishS = (p1 - p0) / 1000;
    const drainS = (lastGrowthAt - p0) / 1000;
    const line =
      `${label}: published ${n} in ${publishS.toFixed(2)} s (${(n / publishS).toFixed(0)} msg/s acked by mosquitto); ` +
      `stored ${arrived}/${counted} (${((100 * arrived) / counted).toFixed(1)} %, lost ${counted - arrived}) ` +
      `by ${drainS.toFixed(2)} s → ${(arrived / drainS).toFixed(0)} msg/s end to end; ` +
      `node-red+mosquitto CPU ${(cpuSeconds(nodeRedPid) + cpuSeconds(mosquittoPid) - cpu0).toFixed(1)} s, ` +
      `node-red RSS ${(rssBytes(nodeRedPid) / 2 ** 20).toFixed(0)} MiB` +
      failedWrites(errorsBefore, pipeline.writeErrors());
    log(line);
    results.push(line);
    return msgs;
  };

  try {
    // 1. correctness
    const checkMsgs = await phase(`check (${MESSAGES} msgs)`, MESSAGES, (m) => flood(client, m), true);
    checkMsgs.forEach(assertValid);
    const got = await counts(influxd.url, DB);
    const want = { drone: checkMsgs.filter((m) => m.kind === 'drone').length, sensor: checkMsgs.filter((m) => m.kind === 'sensor').length, locker: checkMsgs.filter((m) => m.kind === 'locker').length };
    log(`counts: drone ${got.drone}/${want.drone}, sensor ${got.sensor}/${want.sensor}, locker A01 ${got.locker}/${want.locker}`);
    if (got.drone !== want.drone || got.sensor !== want.sensor || got.locker !== want.locker) fail('not every message of the check arrived');
    const lockerPoints = await count(influxd.url, DB, 'SELECT count(occupied) FROM locker');
    if (lockerPoints !== want.locker * 16) fail(`locker points ${lockerPoints}, want ${want.locker * 16}`);
    await writeReference(influxd.url, REF, checkMsgs);
    const problems = await compareDatabases(influxd.url, DB, REF);
    problems.forEach(fail);
    if (!problems.length) log('Node-RED stored exactly what the cloud mapping stores (measurements, tags, fields, types, times, values)');

    // 2. flood, 3. fixed rates
    if (FLOOD > 0) await phase(`flood (${FLOOD} msgs, as fast as QoS 1 allows)`, FLOOD, (m) => flood(client, m));
    for (const rate of RATES) await phase(`rate ${rate} msg/s for ${SECONDS} s`, Math.round(rate * SECONDS), (m) => paced(client, m, rate));
  } finally {
    await client.endAsync();
    const s0 = performance.now();
    await pipeline.stop();
    log(`pipeline stopped in ${((performance.now() - s0) / 1000).toFixed(1)} s`);
    await influxd.stop();
  }

  for (const [name, pid] of [['node-red', nodeRedPid], ['mosquitto', mosquittoPid]] as const) {
    if (fs.existsSync(`/proc/${pid}`)) fail(`${name} (pid ${pid}) still running after stop()`);
  }
  log(`after stop: pids ${nodeRedPid} (node-red) and ${mosquittoPid} (mosquitto) gone: ${!fs.existsSync(`/proc/${nodeRedPid}`) && !fs.existsSync(`/proc/${mosquittoPid}`)}`);
  process.stdout.write(`\n${results.join('\n')}\n${failures ? `${failures} check(s) FAILED` : 'all checks passed'}\n`);
  if (failures) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
