import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { startHaproxy, type Haproxy } from './haproxy.ts';
import { freePort, waitFor } from './ports.ts';
import { redisPing, startRedis, type RedisServer } from './redis.ts';

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('test/support/redis.ts', () => {
  it('starts redis-server on a free loopback port; restart without persistence comes back empty, with appendonly keeps the data', async () => {
    const plain: RedisServer = await startRedis();
    cleanups.push(() => plain.stop());
    const durable = await startRedis({ appendonly: true });
    cleanups.push(() => durable.stop());
    for (const r of [plain, durable]) {
      const c = new Redis(r.url, { maxRetriesPerRequest: 1, lazyConnect: true });
      await c.connect();
      await c.set('k', 'v');
      c.disconnect();
    }
    await plain.restart();
    await durable.restart(); // SIGTERM: the append-only file is flushed
    const get = async (r: RedisServer) => {
      const c = new Redis(r.url, { maxRetriesPerRequest: 1, lazyConnect: true });
      await c.connect();
      try {
        return await c.get('k');
      } finally {
        c.disconnect();
      }
    };
    expect(await get(plain)).toBeNull();
    expect(await get(durable)).toBe('v');
    await durable.kill();
    expect(durable.running).toBe(false);
    expect(await redisPing(durable.port)).toBe(false);
    await durable.start();
    expect(await redisPing(durable.port)).toBe(true);
  });
});

/** A stand-in node: a TCP server that greets with its name, and an HTTP server for /healthz. */
async function fakeNode(name: string) {
  let healthy = true;
  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.write(name);
  });
  const web = http.createServer((req, res) => res.writeHead(req.url === '/healthz' && healthy ? 200 : 503).end());
  const [port, checkPort] = [await freePort(), await freePort()];
  await new Promise<void>((r) => tcp.listen(port, '127.0.0.1', r));
  await new Promise<void>((r) => web.listen(checkPort, '127.0.0.1', r));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => tcp.close(r));
    web.closeAllConnections();
    await new Promise((r) => web.close(r));
  });
  return { name, port, checkPort, sockets, setHealthy: (h: boolean) => (healthy = h) };
}

function connect(h: Haproxy): Promise<{ socket: net.Socket; greeting: string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(h.port, '127.0.0.1');
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.once('error', reject);
    socket.once('data', (b) => resolve({ socket, greeting: b.toString(), closed }));
  });
}

describe('test/support/haproxy.ts', () => {
  it('balances by connection count over healthy nodes; a node failing /healthz is marked down and its sessions are cut', async () => {
    const a = await fakeNode('a');
    const b = await fakeNode('b');
    const h = await startHaproxy([a, b], { interMs: 200 });
    cleanups.push(() => h.stop());
    await h.waitForStatus('a', 'UP');
    await h.waitForStatus('b', 'UP');
    const conns: Awaited<ReturnType<typeof connect>>[] = [];
    for (let i = 0; i < 4; i++) conns.push(await connect(h));
    cleanups.push(async () => conns.forEach((c) => c.socket.destroy()));
    expect(conns.filter((c) => c.greeting === 'a')).toHaveLength(2); // leastconn
    a.setHealthy(false);
    await h.waitForStatus('a', 'DOWN', 5_000);
    await Promise.all(conns.filter((c) => c.greeting === 'a').map((c) => c.closed)); // shutdown-sessions
    await waitFor('a to have no sessions', () => a.sockets.size === 0, 5_000);
    expect((await connect(h)).greeting).toBe('b');
    a.setHealthy(true);
    await h.waitForStatus('a', 'UP', 5_000);
    await h.setServerState('b', 'maint');
    const c = await connect(h);
    c.socket.destroy();
    expect(c.greeting).toBe('a');
  });

  it('moves a server to new ports at run time', async () => {
    const a = await fakeNode('a');
    const a2 = await fakeNode('a2');
    const h = await startHaproxy([{ name: 'a', port: a.port, checkPort: a.checkPort }], { interMs: 200 });
    cleanups.push(() => h.stop());
    await h.waitForStatus('a', 'UP');
    await h.setServerAddress('a', a2.port, a2.checkPort);
    await waitFor('the new address in use', async () => {
      const c = await connect(h);
      c.socket.destroy();
      return c.greeting === 'a2';
    }, 5_000);
  });
});
