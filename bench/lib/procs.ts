import { fork, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePorts } from '../../test/support/influxd.ts';

/** Process helpers for benchmarks: Mosquitto, load-generator child processes, /proc readers. */

export interface Mosquitto {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/**
 * Starts Debian's mosquitto on a free loopback port with a throw-away config: anonymous access,
 * no persistence, no limits beyond `extraConfig` (e.g. `max_queued_messages 1000`, its default).
 */
export async function startMosquitto(extraConfig: string[] = []): Promise<Mosquitto> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-mosquitto-'));
  const [port] = await freePorts(1);
  const conf = path.join(dir, 'mosquitto.conf');
  fs.writeFileSync(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'log_dest none', ...extraConfig, ''].join('\n'));
  const child = spawn('/usr/sbin/mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  await waitForPort(port!, 10_000, () => (child.exitCode !== null ? `mosquitto exited: ${stderr}` : null));
  return {
    port: port!,
    pid: child.pid!,
    async stop() {
      process.off('exit', killOnExit);
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function waitForPort(port: number, timeoutMs: number, failed: () => string | null = () => null): Promise<void> {
  const net = await import('node:net');
  const until = Date.now() + timeoutMs;
  for (;;) {
    const why = failed();
    if (why) throw new Error(why);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`port ${port} did not open within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Resident set size of a process, bytes (0 when it is gone). */
export function rssBytes(pid: number): number {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // USER_HZ = 100
  } catch {
    return 0;
  }
}

/**
 * A load generator in its own process (`bench/load/*.ts`, run by Node with tsx), driven over IPC:
 * `call(request)` sends one message and resolves with the child's next reply.
 */
export interface Worker<Req, Res> {
  pid: number;
  call(req: Req, timeoutMs?: number): Promise<Res>;
  /** Messages the child sends on its own (progress, samples). */
  onMessage(fn: (m: unknown) => void): void;
  stop(): Promise<void>;
}

export function startWorker<Req, Res>(script: string, args: string[] = [], execArgv: string[] = []): Worker<Req, Res> {
  const child: ChildProcess = fork(script, args, { execArgv: ['--import', 'tsx', ...execArgv], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const listeners: ((m: unknown) => void)[] = [];
  let pending: { resolve: (r: Res) => void; reject: (e: Error) => void } | null = null;
  child.on('message', (m: unknown) => {
    const msg = m as { reply?: Res; error?: string; event?: unknown };
    if (msg && typeof msg === 'object' && ('reply' in msg || 'error' in msg)) {
      const p = pending;
      pending = null;
      if (msg.error !== undefined) p?.reject(new Error(msg.error));
      else p?.resolve(msg.reply as Res);
    } else for (const l of listeners) l(m);
  });
  child.on('exit', (code, signal) => {
    pending?.reject(new Error(`load generator ${path.basename(script)} exited (${code ?? signal})`));
    pending = null;
  });
  return {
    pid: child.pid!,
    call(req, timeoutMs = 600_000) {
      if (pending) return Promise.reject(new Error('one call at a time'));
      return new Promise<Res>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending = null;
          reject(new Error(`load generator ${path.basename(script)}: no reply within ${timeoutMs} ms`));
        }, timeoutMs);
        pending = {
          resolve: (r) => (clearTimeout(timer), resolve(r)),
          reject: (e) => (clearTimeout(timer), reject(e)),
        };
        child.send(req as object);
      });
    },
    onMessage(fn) {
      listeners.push(fn);
    },
    async stop() {
      process.off('exit', killOnExit);
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await Promise.race([new Promise((r) => child.once('exit', r)), new Promise((r) => setTimeout(r, 3_000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/**
 * Child side of `startWorker`: answers each request with `handler`'s result (or its error).
 * Requests are handled one at a time.
 */
export function serveWorker<Req, Res>(handler: (req: Req, emit: (event: unknown) => void) => Promise<Res>): void {
  const emit = (event: unknown) => process.send?.({ event });
  process.on('message', (req: Req) => {
    handler(req, emit).then(
      (reply) => process.send?.({ reply: reply ?? null }),
      (err: Error) => process.send?.({ error: err?.stack ?? String(err) }),
    );
  });
  process.on('SIGTERM', () => process.exit(0));
}
