import mqtt, { type MqttClient } from 'mqtt';

/**
 * A test device that behaves like a careful real one: it keeps every message until the broker
 * acknowledged it (PUBACK) and, after a reconnect, re-sends everything unacknowledged with the same
 * message id. It opens a fresh MQTT connection each time instead of relying on mqtt.js's in-memory
 * replay (which re-sends one message per round trip and can stall when new publishes reuse packet ids).
 */
export interface ResendingDevice {
  publish(id: string, topic: string, payload: string): void;
  readonly acked: ReadonlySet<string>;
  readonly published: number;
  readonly unacked: number;
  readonly connected: boolean;
  readonly connections: number;
  close(): Promise<void>;
}

export function startResendingDevice(url: string, opts: { username?: string; password?: string; clientId: string; retryMs?: number }): ResendingDevice {
  const pending = new Map<string, { topic: string; payload: string }>();
  const acked = new Set<string>();
  let published = 0;
  let client: MqttClient | null = null;
  let connections = 0;
  let stopped = false;

  const send = (c: MqttClient, id: string, m: { topic: string; payload: string }) => {
    c.publish(m.topic, m.payload, { qos: 1 }, (err) => {
      if (err || !pending.has(id)) return;
      pending.delete(id);
      acked.add(id);
    });
  };

  const open = () => {
    if (stopped) return;
    const c = mqtt.connect(url, { username: opts.username, password: opts.password, clientId: opts.clientId, reconnectPeriod: 0, connectTimeout: 2000, protocolVersion: 4 });
    client = c;
    c.on('connect', () => {
      connections++;
      for (const [id, m] of pending) send(c, id, m);
    });
    c.on('error', () => undefined);
    c.on('close', () => {
      if (client !== c) return;
      client = null;
      c.end(true);
      setTimeout(open, opts.retryMs ?? 200);
    });
  };
  open();

  return {
    publish(id, topic, payload) {
      published++;
      const m = { topic, payload };
      pending.set(id, m);
      if (client?.connected) send(client, id, m);
    },
    get acked() {
      return acked;
    },
    get published() {
      return published;
    },
    get unacked() {
      return pending.size;
    },
    get connected() {
      return client?.connected ?? false;
    },
    get connections() {
      return connections;
    },
    async close() {
      stopped = true;
      const c = client;
      client = null;
      await c?.endAsync();
    },
  };
}
