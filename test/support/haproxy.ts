import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitFor } from './ports.ts';

/** Debian's haproxy (package `haproxy`); HAPROXY overrides the path. */
export const HAPROXY = process.env.HAPROXY ?? '/usr/sbin/haproxy';

export interface HaproxyBackendServer {
  /** Server name in HAProxy (e.g. the node id). */
  name: string;
  /** The node's MQTT port on 127.0.0.1. */
  port: number;
  /** The node's HTTP port: checked with GET /healthz. Without it a TCP connect is the check. */
  checkPort?: number;
}

export interface HaproxyOptions {
  /** Health check interval (default 1000 ms). */
  interMs?: number;
  /** Failed checks before a server is marked down (default 2). */
  fall?: number;
  /** Passed checks before it is up again (default 1). */
  rise?: number;
  /** A fixed frontend port (default: freePort()). */
  port?: number;
  /**
   * Global maxconn (default 9,000). HAProxy needs two file descriptors per proxied connection and
   * refuses to start when it cannot raise its fd limit to about twice this (the test machine's hard
   * limit is 20,000).
   */
  maxconn?: number;
  /**
   * PROXY protocol to the servers (`send-proxy-v2` / `send-proxy`, as deploy/haproxy/haproxy.cfg does with
   * v2): each connection to a node starts with a header naming the hub's address. The nodes must then run
   * with MQTT_PROXY_PROTOCOL=required and MQTT_TRUSTED_PROXIES=127.0.0.1. Default: none (the nodes see HAProxy's address).
   */
  sendProxy?: 'v1' | 'v2';
}

export interface HaproxyServerStat {
  name: string;
  /** UP, DOWN, MAINT, DRAIN, NOLB… (the first word of HAProxy's status). */
  status: string;
  /** Current sessions (hub connections) on that server. */
  sessions: number;
}

export interface Haproxy {
  /** mqtt://127.0.0.1:<port> — the hubs' cloud URL. */
  readonly url: string;
  readonly port: number;
  /** The temp dir with haproxy.cfg and the admin socket. */
  readonly dir: string;
  /** The backend servers as HAProxy sees them now (`show stat`). */
  servers(): Promise<HaproxyServerStat[]>;
  /** Waits until HAProxy shows the server with that status (e.g. 'UP' after a restart, 'DOWN' after a kill). */
  waitForStatus(name: string, status: string, timeoutMs?: number): Promise<void>;
  /** Moves a server to another port (and check port), at run time: a node restarted on new ports. */
  setServerAddress(name: string, port: number, checkPort?: number): Promise<void>;
  /** ready | drain (no new connections) | maint (no traffic, sessions cut as when marked down). */
  setServerState(name: string, state: 'ready' | 'drain' | 'maint'): Promise<void>;
  /** A raw runtime API command (stats socket, level admin); returns its output. */
  command(cmd: string): Promise<string>;
  /** Stops HAProxy and removes its dir. Idempotent. */
  stop(): Promise<void>;
  /** HAProxy's recent output. */
  log(): string;
}

/** The backend name in the generated config. */
export const HAPROXY_BACKEND = 'nodes';

/**
 * Debian's HAProxy as a TCP load balancer on a free loopback port in front of N cloud nodes' MQTT
 * ports (issue 15), the way deploy/haproxy/haproxy.cfg does it in production:
 *  - `balance leastconn`: a new hub goes to the node with the fewest connections (MQTT connections
 *    are long-lived, so round robin would not even out after a failover);
 *  - a node is checked over HTTP (`option httpchk GET /healthz` against its HTTP port), not by a TCP
 *    connect: a SIGSTOPped process still completes TCP handshakes (the kernel queues them), only an
 *    answer shows it alive; without a check port, TCP checks;
 *  - `on-marked-down shutdown-sessions`: a node marked down has its hub connections cut, so its hubs
 *    reconnect (to the others) at once instead of waiting for their MQTT keepalive;
 *  - short checks (default inter 1 s, fall 2, rise 1): a dead node is out within ~2 s; until then a
 *    refused connect is retried on another node (`retries 2`, `option redispatch 1`).
 * Client/server timeouts are long (1 h): MQTT keepalive, not HAProxy, decides when an idle link is dead.
 */
export async function startHaproxy(servers: HaproxyBackendServer[], o: HaproxyOptions = {}): Promise<Haproxy> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chiiki-haproxy-'));
  const port = o.port ?? (await freePort());
  const socket = path.join(dir, 'admin.sock');
  const httpCheck = servers.some((s) => s.checkPort !== undefined);
  const cfg = [
    'global',
    `  maxconn ${o.maxconn ?? 9000}`,
    `  stats socket ${socket} mode 600 level admin`,
    'defaults',
    '  mode tcp',
    '  timeout connect 1s',
    '  timeout client 1h',
    '  timeout server 1h',
    '  timeout check 1s',
    // A connect refused by a dead node that is not marked down yet goes to another node.
    '  retries 2',
    '  option redispatch 1',
    'frontend mqtt',
    `  bind 127.0.0.1:${port}`,
    `  default_backend ${HAPROXY_BACKEND}`,
    `backend ${HAPROXY_BACKEND}`,
    '  balance leastconn',
    ...(httpCheck ? ['  option httpchk GET /healthz', '  http-check expect status 200'] : []),
    `  default-server inter ${o.interMs ?? 1000}ms fall ${o.fall ?? 2} rise ${o.rise ?? 1} on-marked-down shutdown-sessions`,
    ...servers.map((s) => `  server ${s.name} 127.0.0.1:${s.port} check${s.checkPort !== undefined ? ` port ${s.checkPort}` : ''}${o.sendProxy ? ` ${o.sendProxy === 'v2' ? 'send-proxy-v2' : 'send-proxy'}` : ''}`),
    '',
  ].join('\n');
  const cfgFile = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(cfgFile, cfg);
  // -db: foreground, no daemon; -Ws is not needed (no reloads: servers change through the runtime API).
  const child = spawn(HAPROXY, ['-db', '-f', cfgFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (b: Buffer) => (output = (output + b.toString()).slice(-8000));
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));

  const command = (cmd: string) =>
    new Promise<string>((resolve, reject) => {
      const s = net.connect(socket);
      let out = '';
      s.once('error', reject);
      s.on('data', (b) => (out += b.toString()));
      s.once('close', () => resolve(out));
      s.once('connect', () => s.end(`${cmd}\n`));
    });
  const stat = async (): Promise<HaproxyServerStat[]> => {
    const csv = await command('show stat');
    const lines = csv.split('\n').filter(Boolean);
    const header = lines[0]!.replace(/^# /, '').split(',');
    const col = (name: string) => header.indexOf(name);
    return lines
      .slice(1)
      .map((l) => l.split(','))
      .filter((f) => f[col('pxname')] === HAPROXY_BACKEND && f[col('svname')] !== 'BACKEND')
      .map((f) => ({ name: f[col('svname')]!, status: f[col('status')]!.split(' ')[0]!, sessions: Number(f[col('scur')]) }));
  };
  /** Runtime API commands answer an empty line on success; anything else is an error message. */
  const admin = async (cmd: string) => {
    const out = (await command(cmd)).trim();
    if (out !== '') throw new Error(`haproxy "${cmd}": ${out}`);
  };
  await waitFor('HAProxy to start', async () => {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`haproxy exited with ${child.exitCode ?? child.signalCode}`);
    return (await stat()).length === servers.length;
  }, 10_000, 50).catch((err: Error) => {
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`${err.message}\n${output}\n${cfg}`);
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    dir,
    servers: stat,
    async waitForStatus(name, status, timeoutMs = 20_000) {
      await waitFor(`HAProxy to show ${name} ${status}`, async () => (await stat()).find((s) => s.name === name)?.status === status, timeoutMs, 50);
    },
    async setServerAddress(name, p, checkPort) {
      // "set server … addr" answers with a description of the change, not an empty line.
      const out = await command(`set server ${HAPROXY_BACKEND}/${name} addr 127.0.0.1 port ${p}`);
      if (!/changed|no need to change/i.test(out)) throw new Error(`haproxy set server addr: ${out.trim()}`);
      if (checkPort !== undefined) await admin(`set server ${HAPROXY_BACKEND}/${name} check-port ${checkPort}`);
    },
    setServerState: (name, state) => admin(`set server ${HAPROXY_BACKEND}/${name} state ${state}`),
    command,
    stop,
    log: () => output,
  };
}
