import net from 'node:net';
import { PassThrough, Duplex } from 'node:stream';
import { generate } from 'mqtt-packet';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FrameScanner, limitMqttFrames } from './frame-limiter.ts';

function pair() {
  const incoming = new PassThrough();
  const outgoing = new PassThrough();
  const socket = Duplex.from({ readable: incoming, writable: outgoing });
  socket.on('error', () => undefined); // destroying a Duplex.from pair reports an AbortError (the cloud ignores socket errors too)
  return { incoming, socket };
}

const publish = (size: number) => generate({ cmd: 'publish', topic: 't/x', payload: Buffer.alloc(size, 1), qos: 0, retain: false, dup: false });

describe('limitMqttFrames', () => {
  it('passes packets under the limit through unchanged, even split across chunks', async () => {
    const { incoming, socket } = pair();
    const violations: string[] = [];
    limitMqttFrames(socket, 1000, (r) => violations.push(r));
    const data = Buffer.concat([publish(10), publish(900), publish(0)]);
    const received: Buffer[] = [];
    socket.on('data', (c: Buffer) => received.push(c));
    for (let i = 0; i < data.length; i += 7) incoming.write(data.subarray(i, i + 7));
    await new Promise((r) => setImmediate(r));
    expect(Buffer.concat(received).equals(data)).toBe(true);
    expect(violations).toEqual([]);
  });

  it('closes the connection when a header announces more than the limit, before the body arrives', async () => {
    const { incoming, socket } = pair();
    const violations: [string, number][] = [];
    limitMqttFrames(socket, 1000, (r, n) => violations.push([r, n]));
    const received: Buffer[] = [];
    socket.on('data', (c: Buffer) => received.push(c));
    const closed = new Promise((r) => socket.once('close', r));
    incoming.write(publish(10));
    incoming.write(publish(5000).subarray(0, 4)); // header only
    await closed;
    expect(violations).toHaveLength(1);
    expect(violations[0]![0]).toBe('oversized');
    expect(violations[0]![1]).toBeGreaterThan(5000);
    expect(socket.destroyed).toBe(true);
    expect(Buffer.concat(received).length).toBeLessThanOrEqual(publish(10).length); // the refused header never reached the reader
  });

  it('closes on a malformed five-byte remaining length', async () => {
    const { incoming, socket } = pair();
    const violations: string[] = [];
    limitMqttFrames(socket, 1 << 28, (r) => violations.push(r));
    socket.on('data', () => undefined);
    const closed = new Promise((r) => socket.once('close', r));
    incoming.write(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]));
    await closed;
    expect(violations).toEqual(['malformed']);
  });

  it('works on a real TCP socket read the way aedes reads it (readable + read())', async () => {
    const got: Buffer[] = [];
    const violations: string[] = [];
    let serverSide: net.Socket | null = null;
    const server = net.createServer((s) => {
      serverSide = s;
      limitMqttFrames(s, 1000, (r) => violations.push(r));
      s.on('readable', () => {
        for (let b = s.read() as Buffer | null; b; b = s.read() as Buffer | null) got.push(b);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    await new Promise((r) => client.once('connect', r));
    client.write(publish(100));
    await new Promise((r) => setTimeout(r, 50));
    expect(Buffer.concat(got).equals(publish(100))).toBe(true);
    const closed = new Promise((r) => client.once('close', r));
    client.write(publish(2000));
    await closed;
    expect(violations).toEqual(['oversized']);
    expect(serverSide!.destroyed).toBe(true);
    server.close();
  });
});

describe('limitMqttFrames packet timeout', () => {
  const stalledWithin = (ms: number, socket: Duplex, violations: string[]) =>
    new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve(violations.includes('stalled'));
      });
    });

  it('closes a connection whose packet stops half-way, after the timeout from its first byte', async () => {
    const { incoming, socket } = pair();
    const violations: string[] = [];
    limitMqttFrames(socket, 10_000, (r) => violations.push(r), 100);
    socket.on('data', () => undefined);
    const started = Date.now();
    const p = publish(500);
    incoming.write(p.subarray(0, 3));
    setTimeout(() => incoming.write(p.subarray(3, 100)), 50); // more bytes do not restart the clock
    expect(await stalledWithin(1_000, socket, violations)).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(95);
    expect(Date.now() - started).toBeLessThan(400);
  });

  it('keeps a connection idle between whole packets, and one whose packets complete in time', async () => {
    const { incoming, socket } = pair();
    const violations: string[] = [];
    limitMqttFrames(socket, 10_000, (r) => violations.push(r), 100);
    socket.on('data', () => undefined);
    const p = publish(500);
    incoming.write(p.subarray(0, 200));
    await new Promise((r) => setTimeout(r, 60));
    incoming.write(Buffer.concat([p.subarray(200), publish(10).subarray(0, 2)])); // completes, and a new one starts
    await new Promise((r) => setTimeout(r, 60));
    incoming.write(publish(10).subarray(2));
    expect(await stalledWithin(300, socket, violations)).toBe(false); // 300 ms idle after whole packets
    expect(violations).toEqual([]);
    expect(socket.destroyed).toBe(false);
    socket.destroy();
  });
});

describe('limitMqttFrames packet timeout, on a clock of its own', () => {
  afterEach(() => void vi.useRealTimers());

  it('reports nothing for a connection that closed mid-packet when its packet clock runs out', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { incoming, socket } = pair();
    const violations: string[] = [];
    limitMqttFrames(socket, 10_000, (r) => violations.push(r), 100);
    const arrived = new Promise((r) => socket.once('data', r));
    incoming.write(publish(500).subarray(0, 10));
    await arrived;
    const closed = new Promise((r) => socket.once('close', r));
    socket.destroy();
    await closed;
    vi.advanceTimersByTime(1_000);
    expect(violations).toEqual([]);
  });

  it('refuses to limit a stream twice', () => {
    const { socket } = pair();
    limitMqttFrames(socket, 1000, () => undefined);
    expect(() => limitMqttFrames(socket, 1000, () => undefined)).toThrow(/already/);
  });
});

describe('FrameScanner', () => {
  it('follows packet boundaries byte by byte', () => {
    const s = new FrameScanner(200);
    const data = Buffer.concat([publish(150), publish(0), publish(127), publish(128)]);
    for (const b of data) expect(s.scan(Buffer.from([b]))).toBeNull();
    expect(s.scan(publish(300))).toBe('oversized');
    expect(s.announced).toBeGreaterThan(300);
  });
});
