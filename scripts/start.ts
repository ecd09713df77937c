import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { CLOUD_NODE_FLAGS, ConfigError, isLoopback, loadCloudConfig, type CloudConfig } from '../cloud/config.ts';

/**
 * `npm start`: the whole system on embedded defaults, as three processes started in order — the
 * cloud; one edge agent per hub of the region (each forwarding to the cloud with its hub's own
 * login); and the simulated devices, each publishing to its hub's agent. Ctrl-C stops all three.
 */
const env = { ...process.env, DEMO_CREDENTIALS: process.env.DEMO_CREDENTIALS ?? 'true', DEMO_ACCOUNTS: process.env.DEMO_ACCOUNTS ?? 'true' };
let config: CloudConfig;
try {
  config = loadCloudConfig(env);
} catch (err) {
  process.stderr.write(`${err instanceof ConfigError ? err.message : String(err)}\n`);
  process.exit(2);
}

const children: ChildProcess[] = [];

let stopping = false;

function run(name: string, script: string, extraEnv: Record<string, string>, nodeArgs: readonly string[] = []): ChildProcess {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', script], { env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
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
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  const timer = setTimeout(() => process.exit(code), 15_000);
  timer.unref();
  Promise.all(children.map((c) => (c.exitCode !== null ? Promise.resolve() : new Promise((r) => c.once('exit', r))))).then(() => process.exit(code));
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));

/** Resolves with the JSON after `marker` on a child's stdout; passes other lines through. */
function readyLine<T>(child: ChildProcess, marker: string): Promise<T> {
  return new Promise((resolve) => {
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith(`${marker} `)) resolve(JSON.parse(line.slice(marker.length + 1)) as T);
      else process.stdout.write(`${line}\n`);
    });
  });
}

async function main(): Promise<void> {
  const cloud = run('cloud', 'cloud/main.ts', {}, CLOUD_NODE_FLAGS);
  const urls = await readyLine<{ http: string; mqtt: string; ws: string | null; mqtts: string | null }>(cloud, 'CLOUD_READY');
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
      '  Ctrl-C stops everything.',
      '',
    ].join('\n') + '\n',
  );
}

void main();
