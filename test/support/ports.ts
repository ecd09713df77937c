import fs from 'node:fs';
import net from 'node:net';

/**
 * Ports a test hands to a server it starts a moment later. Asking the kernel for port 0 and closing
 * it again returns a port from the ephemeral range, which any outgoing connection (a pg pool, an
 * MQTT client) may take as its local port before our server binds it: a fresh-clone CI run lost a
 * suite to that (EADDRINUSE). So ports come from below the ephemeral range, from a slice of 1,000
 * that belongs to this vitest worker, and none is handed out twice by one process.
 */
const SLICE = 1_000;
const FIRST = 10_000;
const handedOut = new Set<number>();

function ephemeralLow(): number {
  try {
    return Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32_768;
  } catch {
    return 32_768;
  }
}

function sliceStart(): number | undefined {
  const slices = Math.floor((ephemeralLow() - FIRST) / SLICE);
  if (slices < 2) return undefined;
  const worker = Number(process.env.VITEST_POOL_ID ?? process.env.VITEST_WORKER_ID ?? 0) || process.pid;
  return FIRST + (worker % slices) * SLICE;
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** A TCP port that was free on 127.0.0.1 a moment ago and that no outgoing connection will take meanwhile. */
export async function freePort(): Promise<number> {
  const start = sliceStart();
  if (start !== undefined) {
    const offset = Math.floor(Math.random() * SLICE);
    for (let i = 0; i < SLICE; i++) {
      const port = start + ((offset + i) % SLICE);
      if (handedOut.has(port)) continue;
      if (await bindable(port)) {
        handedOut.add(port);
        return port;
      }
    }
  }
  return kernelPort();
}

/** `count` distinct free ports. */
export async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < count; i++) ports.push(await freePort());
  return ports;
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes; throws with `what` on timeout. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 15_000, intervalMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
