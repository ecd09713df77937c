import net from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.ts';

/** An echo server on loopback that remembers its server-side sockets. */
async function startEchoServer() {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    sockets,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  await once(socket, 'connect');
  return socket;
}

/** Resolves with the first `n` bytes that arrive on `socket`. */
function readBytes(socket: net.Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      got += chunk.length;
      if (got >= n) {
        socket.off('data', onData);
        resolve(Buffer.concat(chunks).subarray(0, n));
      }
    };
    socket.on('data', onData);
    socket.once('close', () => (got < n ? reject(new Error(`closed after ${got} of ${n} bytes`)) : undefined));
  });
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function setUp(bytesPerSecond?: number): Promise<{ echo: Awaited<ReturnType<typeof startEchoServer>>; proxy: TcpProxy }> {
  const echo = await startEchoServer();
  cleanups.push(() => echo.close());
  const proxy = await startTcpProxy({ target: { host: '127.0.0.1', port: echo.port }, bytesPerSecond });
  cleanups.push(() => proxy.stop());
  return { echo, proxy };
}

describe('startTcpProxy', () => {
  it('passes data both ways and counts it', async () => {
    const { proxy } = await setUp();
    expect(proxy.url()).toBe(`mqtt://127.0.0.1:${proxy.port}`);
    expect(proxy.url('ws')).toBe(`ws://127.0.0.1:${proxy.port}`);
    const socket = await connect(proxy.port);
    socket.write('hello');
    expect((await readBytes(socket, 5)).toString()).toBe('hello');

    const big = Buffer.alloc(1_000_000, 7);
    const echoed = readBytes(socket, big.length);
    socket.write(big);
    expect((await echoed).equals(big)).toBe(true);
    expect(proxy.stats()).toEqual({ connections: 1, accepted: 1, bytesUp: 1_000_005, bytesDown: 1_000_005 });

    // A clean end passes through after the data before it.
    const tail = readBytes(socket, 3);
    socket.end('bye');
    expect((await tail).toString()).toBe('bye');
    await once(socket, 'close');
    await vi.waitFor(() => expect(proxy.stats().connections).toBe(0));
  });

  it('cut() closes both sides of every connection at once, and new connections still work', async () => {
    const { echo, proxy } = await setUp();
    const clients = [await connect(proxy.port), await connect(proxy.port)];
    await vi.waitFor(() => expect(echo.sockets.size).toBe(2));
    const serverSides = [...echo.sockets];
    const closed = [...clients, ...serverSides].map((s) => once(s, 'close'));

    proxy.cut();
    await Promise.all(closed);
    expect(proxy.stats().connections).toBe(0);

    const again = await connect(proxy.port);
    again.write('still here');
    expect((await readBytes(again, 10)).toString()).toBe('still here');
    again.destroy();
  });

  it('stop() refuses connections and cuts the open ones; start() accepts again on the same port', async () => {
    const { proxy } = await setUp();
    const port = proxy.port;
    const open = await connect(port);
    const closed = once(open, 'close');

    await proxy.stop();
    await closed;
    const refused = net.connect({ host: '127.0.0.1', port });
    const [err] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
    expect(err.code).toBe('ECONNREFUSED');

    await proxy.start();
    expect(proxy.port).toBe(port);
    const back = await connect(port);
    back.write('back');
    expect((await readBytes(back, 4)).toString()).toBe('back');
    back.destroy();
    await proxy.start(); // already listening: nothing to do
  });

  it('closes the client side when the target refuses', async () => {
    const { echo, proxy } = await setUp();
    await echo.close();
    const socket = await connect(proxy.port);
    await once(socket, 'close');
    await vi.waitFor(() => expect(proxy.stats().connections).toBe(0));
  });

  it('throttles both directions to the set rate, and setRate(null) lifts it', async () => {
    const { proxy } = await setUp(20_000);
    const socket = await connect(proxy.port);
    const payload = Buffer.alloc(100_000, 1);
    const started = performance.now();
    const echoed = readBytes(socket, payload.length);
    socket.write(payload);
    await echoed;
    const seconds = (performance.now() - started) / 1000;
    // 100 kB at 20 kB/s each way (up and down overlap): ~5 s; allow for the burst and timer slack.
    expect(seconds).toBeGreaterThanOrEqual(4);
    expect(seconds).toBeLessThan(7);

    proxy.setRate(null);
    const fast = performance.now();
    const again = readBytes(socket, payload.length);
    socket.write(payload);
    await again;
    expect(performance.now() - fast).toBeLessThan(1000);
    expect(() => proxy.setRate(0)).toThrow(/positive number or null/);
    socket.destroy();
  });
});
