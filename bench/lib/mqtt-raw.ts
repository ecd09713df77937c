import net from 'node:net';
import mqttPacket, { type IPublishPacket, type Packet } from 'mqtt-packet';

/**
 * A minimal MQTT 3.1.1 client on `mqtt-packet` for benchmarks: one socket, one parser and a map of
 * packets waiting for their acknowledgement — cheap enough to hold 13,800 of them in one process.
 * Inbound QoS 1 publishes are acknowledged at once; `onPublish` sees them after the PUBACK is queued.
 */
export interface RawConnectOptions {
  port: number;
  host?: string;
  clientId: string;
  username?: string;
  password?: string;
  clean?: boolean;
  keepalive?: number;
  will?: { topic: string; payload: Buffer | string; qos: 0 | 1; retain: boolean };
  /** Refuses the connection attempt after this long (default 30 s). */
  timeoutMs?: number;
}

/** Epoch milliseconds with sub-millisecond resolution, comparable between processes on one machine. */
export const epochMs = (): number => performance.timeOrigin + performance.now();

export class RawMqtt {
  onPublish: ((p: IPublishPacket) => void) | null = null;
  onClose: (() => void) | null = null;
  private readonly parser = mqttPacket.parser({ protocolVersion: 4 });
  private readonly waiting = new Map<number, (p: Packet) => void>();
  private nextId = 1;
  private closed = false;

  private constructor(readonly socket: net.Socket) {}

  /** Connects and resolves at CONNACK with return code 0 (rejects on any other outcome). */
  static connect(o: RawConnectOptions): Promise<RawMqtt> {
    const socket = net.connect(o.port, o.host ?? '127.0.0.1');
    socket.setNoDelay(true);
    const c = new RawMqtt(socket);
    return new Promise<RawMqtt>((resolve, reject) => {
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      const timer = setTimeout(() => fail(new Error(`${o.clientId}: no CONNACK within ${o.timeoutMs ?? 30_000} ms`)), o.timeoutMs ?? 30_000);
      c.parser.on('packet', (p: Packet) => {
        if (!settled) {
          if (p.cmd !== 'connack') return fail(new Error(`${o.clientId}: expected CONNACK, got ${p.cmd}`));
          if (p.returnCode !== 0) return fail(new Error(`${o.clientId}: connection refused (return code ${p.returnCode})`));
          settled = true;
          clearTimeout(timer);
          return resolve(c);
        }
        c.handle(p);
      });
      c.parser.on('error', (err: Error) => fail(err));
      socket.on('data', (d: Buffer) => c.parser.parse(d));
      socket.on('error', (err) => fail(err));
      socket.on('close', () => {
        c.closed = true;
        fail(new Error(`${o.clientId}: connection closed before CONNACK`));
        c.onClose?.();
      });
      socket.write(
        mqttPacket.generate({
          cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: o.clean ?? true, clientId: o.clientId, keepalive: o.keepalive ?? 30,
          ...(o.username !== undefined ? { username: o.username } : {}),
          ...(o.password !== undefined ? { password: Buffer.from(o.password) } : {}),
          ...(o.will ? { will: { ...o.will, payload: Buffer.isBuffer(o.will.payload) ? o.will.payload : Buffer.from(o.will.payload) } } : {}),
        }),
      );
    });
  }

  get connected(): boolean {
    return !this.closed;
  }

  private handle(p: Packet): void {
    switch (p.cmd) {
      case 'publish':
        if (p.qos === 1) this.socket.write(mqttPacket.generate({ cmd: 'puback', messageId: p.messageId! }));
        this.onPublish?.(p);
        return;
      case 'puback':
      case 'suback': {
        const w = this.waiting.get(p.messageId!);
        this.waiting.delete(p.messageId!);
        w?.(p);
        return;
      }
      default:
        return; // pingresp and anything else
    }
  }

  private id(): number {
    const id = this.nextId;
    this.nextId = id === 65_535 ? 1 : id + 1;
    return id;
  }

  /** QoS 1 resolves at PUBACK; `onSent` is called right after the packet was handed to the socket. */
  publish(topic: string, payload: Buffer | string, opts: { qos?: 0 | 1; retain?: boolean } = {}): Promise<void> {
    const qos = opts.qos ?? 1;
    const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
    if (qos === 0) {
      this.socket.write(mqttPacket.generate({ cmd: 'publish', topic, payload: body, qos: 0, retain: opts.retain ?? false, dup: false }));
      return Promise.resolve();
    }
    const messageId = this.id();
    return new Promise<void>((resolve) => {
      this.waiting.set(messageId, () => resolve());
      this.socket.write(mqttPacket.generate({ cmd: 'publish', topic, payload: body, qos: 1, messageId, retain: opts.retain ?? false, dup: false }));
    });
  }

  /** Resolves with the granted QoS per filter (128 = refused). */
  subscribe(filters: readonly string[], qos: 0 | 1 = 1): Promise<number[]> {
    const messageId = this.id();
    return new Promise<number[]>((resolve) => {
      this.waiting.set(messageId, (p) => resolve(p.cmd === 'suback' ? (p.granted as number[]) : []));
      this.socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId, subscriptions: filters.map((topic) => ({ topic, qos })) }));
    });
  }

  ping(): void {
    if (!this.closed) this.socket.write(mqttPacket.generate({ cmd: 'pingreq' }));
  }

  /** Sends DISCONNECT (the will is discarded) and closes. */
  disconnect(): void {
    if (this.closed) return;
    this.socket.end(mqttPacket.generate({ cmd: 'disconnect' }));
  }

  destroy(): void {
    this.socket.destroy();
  }
}
