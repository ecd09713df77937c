import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitFor } from './ports.ts';

/** Debian's redis-server (package `redis-server`); REDIS_SERVER overrides the path. */
export const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server';

export interface RedisOptions {
  /**
   * Append-only file (`appendonly yes`, fsync every second): a stop and start keeps the data, as a
   * production Redis would. Default off (`--save '' --appendonly no`): a restart comes back empty.
   */
  appendonly?: boolean;
  /** A fixed port (default: a free loopback port from freePort()). */
  port?: number;
  /** Extra `--name value` arguments for redis-server. */
  args?: string[];
}

export interface StopOptions {
  /** Keep the data dir (for a later start()); default: removed. */
  keepData?: boolean;
  /** SIGKILL instead of SIGTERM (SIGTERM lets Redis flush its append-only file). */
  crash?: boolean;
}

export interface RedisServer {
  /** redis://127.0.0.1:<port> */
  readonly url: string;
  readonly port: number;
  /** The working dir (append-only file, logs). */
  readonly dir: string;
  /** Whether the process is running (started and not yet exited). */
  readonly running: boolean;
  /** Starts it again on the same port and dir (after stop({ keepData: true }) or kill()); waits for PING. */
  start(): Promise<void>;
  /** Stops it and waits for the exit; removes the dir unless `keepData`. Idempotent. */
  stop(o?: StopOptions): Promise<void>;
  /** stop({ keepData: true, crash }) then start() after `downMs` (default 0). */
  restart(o?: { crash?: boolean; downMs?: number }): Promise<void>;
  /** SIGKILL, keeping the dir (a crash; start() brings it back). */
  kill(): Promise<void>;
  /** The last few KB of redis-server's output (for failure messages). */
  log(): string;
}

/**
 * A throw-away redis-server on a free loopback port in a temp dir, for tests (cluster mode, issue 15).
 * Runs in the foreground (`--daemonize no`) as a child of the test; fine as root. Always stop() it.
 */
export async function startRedis(o: RedisOptions = {}): Promise<RedisServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chiiki-redis-'));
  const port = o.port ?? (await freePort());
  let child: ChildProcess | null = null;
  let output = '';
  const persistence = o.appendonly ? ['--appendonly', 'yes', '--appendfsync', 'everysec'] : ['--appendonly', 'no'];
  const start = async () => {
    if (child) return;
    const proc = spawn(
      REDIS_SERVER,
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', ...persistence, '--daemonize', 'no', '--protected-mode', 'no', ...(o.args ?? [])],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = proc;
    const keep = (b: Buffer) => (output = (output + b.toString()).slice(-8000));
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
    proc.once('exit', () => {
      if (child === proc) child = null;
    });
    await waitFor('redis-server to answer PING', () => {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`redis-server exited (${proc.exitCode ?? proc.signalCode})`);
      return redisPing(port);
    }, 10_000, 20).catch((err: Error) => {
      proc.kill('SIGKILL');
      throw new Error(`${err.message}\n${output}`);
    });
  };
  const halt = async (crash: boolean) => {
    const proc = child;
    child = null;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill(crash ? 'SIGKILL' : 'SIGTERM');
      await gone;
    }
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    get running() {
      return child !== null;
    },
    start,
    async stop(s = {}) {
      await halt(s.crash ?? false);
      if (!s.keepData) fs.rmSync(dir, { recursive: true, force: true });
    },
    async restart(r = {}) {
      await halt(r.crash ?? false);
      if (r.downMs) await new Promise((res) => setTimeout(res, r.downMs));
      await start();
    },
    kill: () => halt(true),
    log: () => output,
  };
}

/** Whether a Redis on 127.0.0.1:`port` answers PING with PONG within `timeoutMs`. Never throws. */
export function redisPing(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    let reply = '';
    const s = net.connect(port, host);
    const done = (ok: boolean) => {
      resolve(ok);
      s.destroy();
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('error', () => done(false));
    s.once('close', () => done(false));
    s.once('connect', () => s.write('PING\r\n'));
    s.on('data', (b) => {
      reply += b.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

/** Waits until the Redis at `url` (redis://host:port) answers PING. */
export async function waitForRedis(url: string, timeoutMs = 10_000): Promise<void> {
  const u = new URL(url);
  await waitFor(`Redis at ${u.host} to answer PING`, () => redisPing(Number(u.port || 6379), u.hostname), timeoutMs, 20);
}
