import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePorts } from '../../test/support/influxd.ts';
import { startMosquitto, waitForPort, type Mosquitto } from './procs.ts';

/**
 * The baseline the benchmark compares our cloud with: what a town would otherwise build from stock
 * parts — Mosquitto with a generic MQTT → InfluxDB pipeline in Node-RED. One flow:
 *
 *   [mqtt in  v1/#, QoS 1, clean session, parsed JSON]
 *     → [function  contract message → array of InfluxDB points]
 *     → [influxdb batch  (node-red-contrib-influxdb), InfluxDB 1.x, precision ms]
 *
 * Everything is configured the way a user would do it in the editor, with the nodes' defaults
 * wherever the editor offers one; nothing is tuned:
 *  - Mosquitto runs with its default settings (startMosquitto adds none), so its default
 *    `max_queued_messages 1000` applies: once 1000 QoS 1 messages are queued for Node-RED's
 *    subscription (beyond the 20 in flight, `max_inflight_messages`), Mosquitto drops further ones
 *    for it. That is where such a pipeline loses messages when it cannot keep up — deliberately left
 *    as it is, since that is what a town would run.
 *  - The broker config node: MQTT 3.1.1, keepalive 60 s, clean session, no birth/close/will message.
 *  - `influxdb batch`, not `influxdb out`: one contract message becomes several points in different
 *    measurements (a locker bank of 16 compartments is 16 `locker` points), and `influxdb out` writes
 *    one measurement per message; the batch node takes an array of
 *    `{ measurement, tags, fields, timestamp }` and writes it with one HTTP POST /write per message,
 *    as soon as the message arrives: no batching across messages, no limit on concurrent requests.
 *    The node's client (node-influx, defaults) retries a 5xx or network error twice, but also takes
 *    the host out of its pool after one (backoff from 300 ms up to 10 s), and meanwhile every write
 *    fails at once with "No host available". Under overload influxd 1.6 answers some of these many
 *    small concurrent writes with 500 "engine: error syncing wal" (a known 1.x behaviour), so loss
 *    then comes in bursts. A failed write is logged by Node-RED (no catch node) and the message is
 *    gone; `writeErrors()` counts them.
 *  - No debug node, no catch node, info-level console log without metrics or audit.
 *
 * The function maps messages to exactly the points our cloud stores (cloud/telemetry/points.ts
 * `pointsForMessage`): measurements `drone`, `sensor`, `locker` (one point per compartment) and
 * `event`, the same tags (region from the topic, hub and device from the message), time = the
 * message's `ts` in ms, numbers as floats (node-influx writes a JS number without the `i` suffix,
 * like our line protocol), booleans as 0/1. So the same InfluxQL count queries work on both
 * databases. Unlike the cloud it validates nothing beyond the message's type and the topic's shape,
 * and does not reversibly escape newlines in string fields (cloud: encodeStringField).
 *
 * Node-RED 4 (the repo's dependency) runs as its own process, editor and admin API on a free
 * loopback port, userDir in a temp dir removed by stop(). It finds node-red-contrib-influxdb (a
 * devDependency) without any setting: the registry scans every `node_modules` directory above its
 * core nodes (node_modules/@node-red/nodes), which includes the repo's node_modules. Start-up checks
 * through the admin API that the module is loaded.
 */
export interface NodeRedPipeline {
  mqttPort: number;
  mosquittoPid: number;
  nodeRedPid: number;
  database: string;
  /**
   * Failed InfluxDB writes since start, by error text (each is one message lost after Node-RED got
   * it; the rest of any loss was dropped by Mosquitto's queue limit before Node-RED read it).
   */
  writeErrors(): Record<string, number>;
  stop(): Promise<void>;
}

const REPO = path.resolve(import.meta.dirname, '..', '..');
const RED_JS = path.join(REPO, 'node_modules', 'node-red', 'red.js');
const CONTRIB_MODULE = 'node-red-contrib-influxdb';

/**
 * Function node body (runs inside Node-RED): one contract message (msg.payload, already parsed) on
 * `v1/<region>/<hub>/<kind>/<device>/<channel>` → msg.payload = array of node-influx points.
 * Mirrors pointsForMessage in cloud/telemetry/points.ts; anything else is dropped (return null).
 */
export const MAP_FUNCTION = String.raw`
// v1/<region>/<hub>/<kind>/<device>/<channel> (contract/topics.ts)
const p = msg.topic.split('/');
if (p.length !== 6 || p[0] !== 'v1') return null;
const m = msg.payload;
if (m === null || typeof m !== 'object' || typeof m.type !== 'string') return null;
const region = p[1];
const base = { region: region, hub: m.hub, device: m.device };
const b = (x) => (x ? 1 : 0);
const put = (f, k, v) => { if (v !== null && v !== undefined) f[k] = v; };
let points;
switch (m.type) {
  case 'drone.telemetry': {
    const fields = {
      msg_id: m.id, lat: m.lat, lon: m.lon, alt_m: m.altM, ground_speed_mps: m.groundSpeedMps,
      heading_deg: m.headingDeg, battery_pct: m.batteryPct, battery_time_remaining_s: m.batteryTimeRemainingS,
      flight_state: m.flightState, payload_kg: m.payloadKg, remote_id_active: b(m.remoteIdActive),
    };
    put(fields, 'battery_voltage_v', m.batteryVoltageV);
    put(fields, 'battery_temp_c', m.batteryTempC);
    put(fields, 'geofence', m.geofence);
    put(fields, 'mission_id', m.missionId);
    points = [{ measurement: 'drone', tags: base, fields: fields, timestamp: m.ts }];
    break;
  }
  case 'locker.telemetry':
    points = (m.compartments || []).map((c) => {
      const fields = {
        msg_id: m.id, occupied: b(c.occupied), door_open: b(c.door === 'open'), reserved: b(c.reservedFor !== null),
        faulted: b(c.fault !== 'none'), fault: c.fault,
      };
      put(fields, 'temp_c', c.tempC);
      put(fields, 'order_id', c.reservedFor);
      return {
        measurement: 'locker',
        tags: Object.assign({}, base, { compartment: c.id, size: c.size, temp_class: c.tempClass }),
        fields: fields, timestamp: m.ts,
      };
    });
    break;
  case 'sensor.telemetry':
    points = [{
      measurement: 'sensor', tags: base, timestamp: m.ts,
      fields: {
        msg_id: m.id, wind_speed_mps: m.windSpeedMps, wind_gust_mps: m.windGustMps, wind_dir_deg: m.windDirDeg,
        rain_mm_per_h: m.rainMmPerH, air_temp_c: m.airTempC, grid_up: b(m.gridPowerUp),
        backup_battery_pct: m.backupBatteryPct, link_quality_pct: m.linkQualityPct,
      },
    }];
    break;
  case 'drone.event':
  case 'locker.event':
  case 'sensor.event': {
    const tags = Object.assign({}, base, { kind: m.type.slice(0, m.type.indexOf('.')), event: m.event, severity: m.severity });
    const fields = { msg_id: m.id };
    put(fields, 'detail', m.detail);
    if (m.type === 'drone.event') put(fields, 'mission_id', m.missionId);
    if (m.type === 'locker.event') {
      tags.compartment = m.compartment;
      put(fields, 'order_id', m.orderId);
      put(fields, 'temp_c', m.tempC);
    }
    if (m.type === 'sensor.event') put(fields, 'value', m.value);
    points = [{ measurement: 'event', tags: tags, fields: fields, timestamp: m.ts }];
    break;
  }
  default:
    return null;
}
if (points.length === 0) return null;
msg.payload = points;
return msg;
`;

/** The flow file: mqtt in → function → influxdb batch, plus the two config nodes. */
export function pipelineFlow(o: { mqttPort: number; influxUrl: string; database: string }): unknown[] {
  const influx = new URL(o.influxUrl);
  const https = influx.protocol === 'https:';
  return [
    { id: 'tab-ingest', type: 'tab', label: 'MQTT → InfluxDB', disabled: false, info: '' },
    {
      id: 'mosquitto-broker', type: 'mqtt-broker', name: 'mosquitto', broker: '127.0.0.1', port: String(o.mqttPort), clientid: '',
      autoConnect: true, usetls: false, protocolVersion: '4', keepalive: '60', cleansession: true, autoUnsubscribe: true,
      birthTopic: '', birthQos: '0', birthRetain: 'false', birthPayload: '', birthMsg: {},
      closeTopic: '', closeQos: '0', closeRetain: 'false', closePayload: '', closeMsg: {},
      willTopic: '', willQos: '0', willRetain: 'false', willPayload: '', willMsg: {},
      userProps: '', sessionExpiry: '',
    },
    {
      id: 'influxdb-config', type: 'influxdb', hostname: influx.hostname, port: influx.port || (https ? '443' : '8086'),
      protocol: https ? 'https' : 'http', database: o.database, name: 'influxd', usetls: https, tls: '',
      influxdbVersion: '1.x', url: 'http://localhost:8086', timeout: '10', rejectUnauthorized: true,
    },
    {
      id: 'mqtt-in', type: 'mqtt in', z: 'tab-ingest', name: '', topic: 'v1/#', qos: '1', datatype: 'json', broker: 'mosquitto-broker',
      nl: false, rap: true, rh: 0, inputs: 0, x: 120, y: 100, wires: [['to-points']],
    },
    {
      id: 'to-points', type: 'function', z: 'tab-ingest', name: 'contract → points', func: MAP_FUNCTION, outputs: 1,
      timeout: 0, noerr: 0, initialize: '', finalize: '', libs: [], x: 330, y: 100, wires: [['influx-batch']],
    },
    {
      id: 'influx-batch', type: 'influxdb batch', z: 'tab-ingest', influxdb: 'influxdb-config', precision: 'ms', retentionPolicy: '',
      name: '', database: 'database', precisionV18FluxV20: 'ms', retentionPolicyV18Flux: '', org: 'organisation', bucket: 'bucket',
      x: 550, y: 100, wires: [],
    },
  ];
}

/**
 * Node-RED settings (CommonJS, loaded by red.js in its own process). Like flows/settings.cjs minus
 * our own config and admin auth (the editor is bound to loopback); no credentials in the flow, so no
 * credentialSecret. Plus harness plumbing: when the benchmark process goes away (its end of
 * Node-RED's stdin closes, also after a SIGKILL) Node-RED stops itself and removes its userDir.
 */
function settingsFile(o: { uiPort: number; userDir: string; flowFile: string }): string {
  return `'use strict';
// Written by bench/lib/node-red-pipeline.ts. Harness plumbing first: when the benchmark process is
// gone (its end of this process's stdin closed, also after a SIGKILL), stop and remove the userDir.
process.stdin.on('error', () => {});
process.stdin.on('end', () => {
  process.on('exit', () => require('node:fs').rmSync(${JSON.stringify(o.userDir)}, { recursive: true, force: true }));
  setTimeout(() => process.exit(1), 5000).unref();
  process.kill(process.pid, 'SIGTERM');
});
process.stdin.resume();
module.exports = {
  uiPort: ${o.uiPort},
  uiHost: '127.0.0.1',
  flowFile: ${JSON.stringify(o.flowFile)},
  contextStorage: { default: { module: 'memory' } },
  editorTheme: { tours: false },
  telemetry: { enabled: false },
  diagnostics: { enabled: false },
  externalModules: { autoInstall: false, palette: { allowInstall: false } },
  logging: { console: { level: 'info', metrics: false, audit: false } },
};
`;
}

export async function startNodeRedPipeline(o: { influxUrl: string; database: string; log?: (l: string) => void }): Promise<NodeRedPipeline> {
  const log = o.log ?? (() => {});
  const mosquitto: Mosquitto = await startMosquitto();
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-node-red-'));
  let child: ChildProcess | null = null;
  const killOnExit = () => {
    child?.kill('SIGKILL');
    fs.rmSync(userDir, { recursive: true, force: true });
  };
  process.once('exit', killOnExit);

  // Failed InfluxDB writes by error text. Node-RED logs one line per message whose write failed (the
  // flow has no catch node); under overload that is thousands of lines, so they are counted and
  // summarised in `log` every few seconds instead of being passed on one by one.
  const writeErrors = new Map<string, number>();
  const unreported = new Map<string, number>();
  const reportWriteErrors = () => {
    if (unreported.size === 0) return;
    log(`node-red: failed InfluxDB writes (one message each): ${[...unreported].map(([e, n]) => `${n}× ${e}`).join(', ')}`);
    unreported.clear();
  };
  const reporter = setInterval(reportWriteErrors, 5_000).unref();

  const stopNodeRed = async (): Promise<void> => {
    const proc = child;
    if (!proc) return;
    if (proc.exitCode === null && proc.signalCode === null) {
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await gone;
      clearTimeout(timer);
    }
    child = null;
  };
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    clearInterval(reporter);
    try {
      await stopNodeRed();
    } finally {
      reportWriteErrors();
      process.off('exit', killOnExit);
      fs.rmSync(userDir, { recursive: true, force: true });
      await mosquitto.stop();
    }
  };

  try {
    const [uiPort] = await freePorts(1);
    const flowFile = path.join(userDir, 'flows.json');
    fs.writeFileSync(flowFile, JSON.stringify(pipelineFlow({ mqttPort: mosquitto.port, influxUrl: o.influxUrl, database: o.database }), null, 2));
    const settings = path.join(userDir, 'settings.cjs');
    fs.writeFileSync(settings, settingsFile({ uiPort: uiPort!, userDir, flowFile }));

    const proc = spawn(process.execPath, [RED_JS, '--userDir', userDir, '--settings', settings, flowFile], {
      cwd: userDir,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child = proc;
    let tail = '';
    let started = false;
    let connected = false;
    let missing = '';
    let ready = false;
    let startError = '';
    const onLine = (line: string) => {
      if (!line.trim()) return;
      const writeError = /\[error\] \[influxdb batch:[^\]]*\] (.*)$/.exec(line)?.[1];
      if (writeError !== undefined) {
        writeErrors.set(writeError, (writeErrors.get(writeError) ?? 0) + 1);
        unreported.set(writeError, (unreported.get(writeError) ?? 0) + 1);
        return;
      }
      tail = (tail + line + '\n').slice(-4_000);
      if (/\[info\] Started flows/.test(line)) started = true;
      if (/Connected to broker/.test(line)) connected = true;
      if (/Missing node types|Waiting for missing types/.test(line)) missing = line;
      if (!ready && !startError && /\[error\]|^Error:/.test(line)) startError = line;
      // Start-up chatter stays out of the log (it is in the error if start-up fails); after it,
      // everything but info lines (e.g. a lost broker connection, a function node's error) goes in.
      if (ready && !/ - \[info\] /.test(line)) log(`node-red: ${line}`);
    };
    for (const stream of [proc.stdout!, proc.stderr!]) {
      let buf = '';
      stream.on('data', (d: Buffer) => {
        buf += d.toString('utf8');
        const lines = buf.split('\n');
        buf = lines.pop()!;
        lines.forEach(onLine);
      });
    }
    proc.once('exit', (code, signal) => {
      if (!stopped) log(`node-red: exited unexpectedly (${code ?? signal}):\n${tail}`);
    });
    const failed = () =>
      proc.exitCode !== null || proc.signalCode !== null
        ? `Node-RED exited during start-up (${proc.exitCode ?? proc.signalCode}):\n${tail}`
        : missing
          ? `Node-RED misses node types (is ${CONTRIB_MODULE} installed?): ${missing}`
          : startError
            ? `Node-RED failed to start the flow: ${startError}\n${tail}`
            : null;

    const t0 = performance.now();
    await waitForPort(uiPort!, 60_000, failed);
    const until = Date.now() + 60_000;
    while (!(started && connected)) {
      const why = failed();
      if (why) throw new Error(why);
      if (Date.now() > until) throw new Error(`Node-RED did not start its flows and connect to Mosquitto within 60 s:\n${tail}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const contrib = await checkContribLoaded(`http://127.0.0.1:${uiPort}`);
    const why = failed();
    if (why) throw new Error(why);
    ready = true;
    // "Connected to broker" is logged on CONNACK; the SUBSCRIBE follows on the same connection.
    // Give its SUBACK a moment so that messages published right after start-up are not missed.
    await new Promise((r) => setTimeout(r, 300));
    log(
      `node-red: up in ${((performance.now() - t0) / 1000).toFixed(1)} s — pid ${proc.pid}, editor http://127.0.0.1:${uiPort}, ` +
        `${CONTRIB_MODULE} ${contrib}, mosquitto :${mosquitto.port} (pid ${mosquitto.pid}), influxdb ${o.influxUrl} db ${o.database}`,
    );
    return {
      mqttPort: mosquitto.port,
      mosquittoPid: mosquitto.pid,
      nodeRedPid: proc.pid!,
      database: o.database,
      writeErrors: () => Object.fromEntries(writeErrors),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Asks the admin API which modules are loaded; throws unless node-red-contrib-influxdb is. Returns its version. */
async function checkContribLoaded(adminUrl: string): Promise<string> {
  const res = await fetch(`${adminUrl}/nodes`, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`Node-RED GET /nodes: ${res.status} ${await res.text()}`);
  const sets = (await res.json()) as { module: string; version: string; enabled: boolean; types: string[]; err?: string }[];
  const set = sets.find((s) => s.module === CONTRIB_MODULE);
  if (!set || !set.enabled || set.err || !set.types.includes('influxdb batch')) {
    throw new Error(`Node-RED has not loaded ${CONTRIB_MODULE}: ${JSON.stringify(set ?? 'not found')}`);
  }
  return set.version;
}
