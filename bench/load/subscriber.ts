import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import { serveWorker } from '../lib/procs.ts';

/**
 * Counting subscriber (own process): one raw MQTT 3.1.1 connection subscribed at QoS 1, acknowledging
 * every delivery. Used for the raw broker pub→sub ceiling.
 */
export type SubscriberRequest =
  | { cmd: 'subscribe'; host: string; port: number; filter: string; username?: string; password?: string }
  | { cmd: 'count' }
  | { cmd: 'close' };

let socket: net.Socket | null = null;
let received = 0;
let firstAt = 0;
let lastAt = 0;

serveWorker<SubscriberRequest, unknown>(async (req) => {
  switch (req.cmd) {
    case 'subscribe': {
      const s = net.connect(req.port, req.host);
      socket = s;
      s.setNoDelay(true);
      const parser = mqttPacket.parser({ protocolVersion: 4 });
      const ready = new Promise<void>((resolve, reject) => {
        parser.on('packet', (p) => {
          if (p.cmd === 'connack') {
            if (p.returnCode !== 0) reject(new Error(`subscriber refused: ${p.returnCode}`));
            s.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: req.filter, qos: 1 }] }));
          } else if (p.cmd === 'suback') resolve();
          else if (p.cmd === 'publish') {
            const now = performance.now();
            if (received === 0) firstAt = now;
            lastAt = now;
            received++;
            if (p.qos === 1) s.write(mqttPacket.generate({ cmd: 'puback', messageId: p.messageId! }));
          }
        });
        s.on('error', reject);
      });
      s.on('data', (d) => parser.parse(d));
      s.write(mqttPacket.generate({
        cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `bench-sub-${process.pid}`, keepalive: 120,
        ...(req.username ? { username: req.username, password: Buffer.from(req.password ?? '') } : {}),
      }));
      await ready;
      return { subscribed: true };
    }
    case 'count': {
      const r = { received, seconds: (lastAt - firstAt) / 1000 };
      received = 0;
      return r;
    }
    case 'close':
      socket?.end(mqttPacket.generate({ cmd: 'disconnect' }));
      return { closed: true };
  }
});
