import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { CLOUD_NODE_FLAGS, ConfigError, isLoopback, loadCloudConfig, type CloudConfig } from '../cloud/config.ts';
import { DemoControlError, openDemoControl, type CloudChange, type CloudState, type DemoControl, type HubChange } from './demo-control.ts';

/**
 * `npm start`: the whole system on embedded defaults, as three processes started in order — the
 * cloud; one edge agent per hub of the region (each forwarding to the cloud with its hub's own
 * login); and the simulated devices, each publishing to its hub's agent. Ctrl-C stops all three.
 *
 * The cloud can be stopped and started again on its own (`npm run demo -- cloud stop|start`, through
 * the control channel in demo-control.ts) while the agents and devices keep running: the README's
 * outage story. It comes back on the same addresses, so the agents reconnect by themselves.
 */
const env = { ...process.env, DEMO_CREDENTIALS: process.env.DEMO_CREDENTIALS ?? 'true', DEMO_ACCOUNTS: process.env.DEMO_ACCOUNTS ?? 'true' };
let config: CloudConfig;
try {
  config = loadCloudConfig(env);
} catch (err) {
  process.stderr.write(`${err instanceof ConfigError ? err.message : String(err)}\n`);
  process.exit(2);
}

type CloudUrls = { http: string; mqtt: string; ws: string | null; mqtts: string | null };

const children = new Set<ChildProcess>();
let control: DemoControl | null = null;
let stopping = false;

function spawnChild(script: string, extraEnv: Record<string, string>, nodeArgs: readonly string[] = [], ipc = false): ChildProcess {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', script], {
    env: { ...env, ...extraEnv },
    // The edge agents and the simulator take drill-mode changes over a private IPC channel (no listener).
    stdio: ipc ? ['ignore', 'pipe', 'inherit', 'ipc'] : ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** A child whose end, unless asked for, ends the demo (the edge agents, the simulator). */
function run(name: string, script: string, extraEnv: Record<string, string>): ChildProcess {
  const child = spawnChild(script, extraEnv, [], true);
  child.on('exit', (code, signal) => {
    if (!stopping) {
      process.stderr.write(`${name} exited (${signal ?? code}); stopping the demo\n`);
      stop(1);
    }
  });
  return child;
}

function stop(code: number): void {
  if (stopping) return;
  stopping = true;
  void control?.close();
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  const timer = setTimeout(() => process.exit(code), 15_000);
  timer.unref();
  Promise.all([...children].map((c) => new Promise((r) => c.once('exit', r)))).then(() => process.exit(code));
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));

/** Passes a child's stdout through; resolves with the JSON after `marker`, rejects if the child ends first. */
function readyLine<T>(child: ChildProcess, marker: string): Promise<T> {
  return new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith(`${marker} `)) resolve(JSON.parse(line.slice(marker.length + 1)) as T);
      else process.stdout.write(`${line}\n`);
    });
    child.once('exit', (code, signal) => reject(new Error(`exited (${signal ?? code}) before it was ready`)));
  });
}

/** Requests over a child's IPC channel, answered `{ id, ok, … }` (edge/fleet.ts, simulators/main.ts). */
const pendingCalls = new Map<number, { resolve(v: Record<string, unknown>): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
let callId = 0;
const listening = new WeakSet<ChildProcess>();
function call(child: ChildProcess, request: Record<string, unknown>): Promise<Record<string, unknown>> {
  if (!listening.has(child)) {
    listening.add(child);
    child.on('message', (m: { id?: unknown }) => {
      const p = typeof m?.id === 'number' ? pendingCalls.get(m.id) : undefined;
      if (!p) return;
      pendingCalls.delete(m.id as number);
      clearTimeout(p.timer);
      p.resolve(m as Record<string, unknown>);
    });
  }
  return new Promise((resolve, reject) => {
    const id = ++callId;
    const timer = setTimeout(() => {
      pendingCalls.delete(id);
      reject(new DemoControlError('the demo process did not answer within 10 s', 504));
    }, 10_000);
    pendingCalls.set(id, { resolve, reject, timer });
    child.send({ id, ...request }, (err) => {
      if (!err) return;
      pendingCalls.delete(id);
      clearTimeout(timer);
      reject(new DemoControlError(`the demo process is gone: ${err.message}`, 503));
    });
  });
}

const STATUS_OF_CODE: Record<string, number> = { unknown_hub: 404, unknown_device: 404, bad_request: 400, unavailable: 409 };

/** A drill-mode change (demo-control.ts): devices → the simulator, the link → the edge agents. */
async function changeHub(fleet: ChildProcess, sim: ChildProcess, hub: string, change: HubChange): Promise<unknown> {
  let answer: Record<string, unknown>;
  switch (change.kind) {
    case 'link':
      answer = await call(fleet, { link: { hub, state: change.body.state } });
      break;
    case 'weather':
      answer = await call(sim, { control: { kind: 'weather', hub, weather: 'clear' in change.body ? null : change.body } });
      break;
    case 'power':
      answer = await call(sim, { control: { kind: 'power', hub, power: change.body.state === 'lost' ? { backupDrainPctPerH: change.body.backupDrainPctPerH } : null } });
      break;
    case 'fleet':
      answer = await call(sim, { control: { kind: 'fleet', hub, inService: change.body.state === 'in_service', ...(change.body.drones ? { drones: change.body.drones } : {}) } });
      break;
  }
  if (answer.ok !== true) {
    throw new DemoControlError(String(answer.message ?? 'refused'), STATUS_OF_CODE[String(answer.code)] ?? 500);
  }
  const { id: _id, ok: _ok, ...rest } = answer;
  return { hub, change: change.kind, ...rest };
}

/** The cloud: started, stopped on request, started again on the addresses it had. */
const cloud = {
  state: 'stopped' as CloudState,
  child: null as ChildProcess | null,
  urls: null as CloudUrls | null,

  async start(): Promise<CloudChange> {
    if (this.state === 'running') return { cloud: 'running', changed: false };
    if (this.state !== 'stopped') throw new DemoControlError(`the cloud is ${this.state}; try again in a moment`);
    this.state = 'starting';
    // After the first start, the ports it chose (HTTP_PORT=0 etc. pick free ones): the edge agents
    // keep the cloud's MQTT address, and a console tab keeps its URL.
    const port = (url: string | null | undefined) => (url ? new URL(url).port : undefined);
    const samePorts: Record<string, string> = this.urls
      ? { HTTP_PORT: port(this.urls.http)!, MQTT_PORT: port(this.urls.mqtt)!, MQTT_WS_PORT: port(this.urls.ws) ?? 'off', ...(this.urls.mqtts ? { MQTTS_PORT: port(this.urls.mqtts)! } : {}) }
      : {};
    const child = spawnChild('cloud/main.ts', samePorts, CLOUD_NODE_FLAGS);
    this.child = child;
    child.on('exit', (code, signal) => {
      const asked = this.state === 'stopping' || this.state === 'starting';
      this.child = null;
      this.state = 'stopped';
      if (!asked && !stopping) {
        process.stderr.write(`cloud exited (${signal ?? code}); stopping the demo\n`);
        stop(1);
      }
    });
    try {
      this.urls = await readyLine<CloudUrls>(child, 'CLOUD_READY');
    } catch (err) {
      throw new DemoControlError(`the cloud did not start: ${(err as Error).message} (its log is in the demo's terminal)`, 500);
    }
    this.state = 'running';
    return { cloud: 'running', changed: true };
  },

  async stop(): Promise<CloudChange> {
    if (this.state === 'stopped') return { cloud: 'stopped', changed: false };
    if (this.state !== 'running' || !this.child) throw new DemoControlError(`the cloud is ${this.state}; try again in a moment`);
    this.state = 'stopping';
    const child = this.child;
    // The cloud shuts down gracefully on SIGTERM (it finishes writing what it acknowledged).
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const force = setTimeout(() => child.kill('SIGKILL'), 25_000);
    await exited;
    clearTimeout(force);
    return { cloud: 'stopped', changed: true };
  },
};

async function main(): Promise<void> {
  try {
    await cloud.start();
  } catch (err) {
    if (!stopping) {
      process.stderr.write(`${(err as Error).message}; stopping the demo\n`);
      stop(1);
    }
    return;
  }
  const urls = cloud.urls!;
  const credentials = path.join(config.dataDir, 'credentials.json');
  // One edge agent per hub between the devices and the cloud, as on real hubs.
  const fleet = run('edge agents', 'edge/fleet.ts', { CLOUD_MQTT_URL: urls.mqtt, CREDENTIALS_FILE: credentials, REGION_FILE: config.regionFile, DATA_DIR: config.dataDir });
  const agents = await readyLine<Record<string, { mqtt: string; http: string; deviceLogins: string }>>(fleet, 'EDGE_FLEET_READY');
  const brokers = Object.fromEntries(Object.entries(agents).map(([hub, a]) => [hub, a.mqtt]));
  // Each simulated device logs in to its hub's agent with its own login from the agent's device-credentials.json.
  const logins = Object.fromEntries(Object.entries(agents).map(([hub, a]) => [hub, a.deviceLogins]));
  const sim = run('simulator', 'simulators/main.ts', {
    SIM_LOCAL_BROKERS: JSON.stringify(brokers), SIM_LOCAL_LOGINS: JSON.stringify(logins), CREDENTIALS_FILE: credentials, REGION_FILE: config.regionFile,
  });
  sim.stdout!.pipe(process.stdout);
  control = await openDemoControl(config.dataDir, {
    status: () => ({
      cloud: cloud.state, cloudHttp: urls.http, hubs: Object.fromEntries(Object.entries(agents).map(([hub, a]) => [hub, { status: `${a.http}/status` }])),
      simTimeScale: Number(process.env.SIM_TIME_SCALE ?? 1),
    }),
    stopCloud: () => cloud.stop(),
    startCloud: () => cloud.start(),
    hubs: { ids: () => Object.keys(agents), change: (hub, change) => changeHub(fleet, sim, hub, change) },
  });
  if (stopping) void control.close();
  const first = Object.entries(agents)[0];
  process.stdout.write(
    [
      '',
      '  地域生活圏 drone logistics — demo is running',
      `  API        ${urls.http}/api/v1/hubs   (sign in first: POST /api/v1/auth/login)`,
      '  Accounts   coordinator / demo-coordinator-pass, staff-terai / demo-staff-pass, admin / demo-admin-pass (README "Two commands")',
      `  API docs   ${urls.http}/docs`,
      `  Metrics    ${urls.http}/metrics`,
      `  MQTT       ${urls.mqtt}${urls.ws ? `   (WebSocket ${urls.ws})` : ''}${urls.mqtts ? `   (TLS ${urls.mqtts})` : ''}`,
      `  Hub logins ${credentials}`,
      `  Edge       ${Object.keys(agents).length} hub agents; e.g. ${first ? `${first[0]}: devices ${first[1].mqtt}, staff ${first[1].http}/status` : '-'}`,
      `  Data       ${config.dataDir} (${config.influx ? `telemetry → ${config.influx.url}` : 'telemetry in SQLite'})`,
      isLoopback(config.bindHost)
        ? `  Listening  on ${config.bindHost} only: the demo accounts' passwords are public (set BIND_HOST to open it to the network)`
        : `  WARNING    listening on ${config.bindHost} with demo accounts whose passwords are public: anyone who reaches this machine can sign in`,
      '  Outage     in another terminal: npm run demo -- cloud stop, npm run demo -- outbox, npm run demo -- cloud start (README "What the demo shows")',
      '  Drill      in another terminal: npm run drill -- <scenario file> --time-scale 60 (plays its weather, link cuts, orders and bulletins here)',
      '  Ctrl-C stops everything.',
      '',
    ].join('\n') + '\n',
  );
}

void main();
