import { PassThrough, Duplex } from 'node:stream';
import { generate } from 'mqtt-packet';
import { describe, expect, it } from 'vitest';
import { MqttFrameLimiter } from './frame-limiter.ts';

function pair() {
  const incoming = new PassThrough();
  const outgoing = new PassThrough();
  const socket = Duplex.from({ readable: incoming, writable: outgoing });
  return { incoming, socket };
}

const publish = (size: number) => generate({ cmd: 'publish', topic: 't/x', payload: Buffer.alloc(size, 1), qos: 0, retain: false, dup: false });

describe('MqttFrameLimiter', () => {
  it('passes packets under the limit through unchanged, even split across chunks', async () => {
    const { incoming, socket } = pair();
    const violations: string[] = [];
    const limiter = new MqttFrameLimiter(socket, 1000, (r) => violations.push(r));
    const data = Buffer.concat([publish(10), publish(900), publish(0)]);
    const received: Buffer[] = [];
    limiter.on('data', (c: Buffer) => received.push(c));
    for (let i = 0; i < data.length; i += 7) incoming.write(data.subarray(i, i + 7));
    await new Promise((r) => setImmediate(r));
    expect(Buffer.concat(received).equals(data)).toBe(true);
    expect(violations).toEqual([]);
  });

  it('closes the connection when a header announces more than the limit, before the body arrives', async () => {
    const { incoming, socket } = pair();
    const violations: [string, number][] = [];
    const limiter = new MqttFrameLimiter(socket, 1000, (r, n) => violations.push([r, n]));
    limiter.on('data', () => undefined);
    const closed = new Promise((r) => limiter.once('close', r));
    incoming.write(publish(10));
    incoming.write(publish(5000).subarray(0, 4)); // header only
    await closed;
    expect(violations).toHaveLength(1);
    expect(violations[0]![0]).toBe('oversized');
    expect(violations[0]![1]).toBeGreaterThan(5000);
    expect(socket.destroyed).toBe(true);
  });

  it('closes on a malformed five-byte remaining length', async () => {
    const { incoming, socket } = pair();
    const violations: string[] = [];
    const limiter = new MqttFrameLimiter(socket, 1 << 28, (r) => violations.push(r));
    limiter.on('data', () => undefined);
    const closed = new Promise((r) => limiter.once('close', r));
    incoming.write(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]));
    await closed;
    expect(violations).toEqual(['malformed']);
  });
});
