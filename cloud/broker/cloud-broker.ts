import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { createWebSocketStream, WebSocketServer } from 'ws';
import { parseTopic } from '../../contract/index.ts';
import type { HubCredentialStore, HubIdentity } from '../hubs/hub-credentials.ts';
import type { Ingest } from '../ingest/ingest.ts';
import type { LiveState } from '../live/live-state.ts';
import type { Logger } from '../logger.ts';
import type { CloudMetrics } from '../metrics.ts';
import { coversCommands, decidePublish, decideSubscribe, MAX_TOPIC_LEVELS } from './access-policy.ts';
import { limitMqttFrames } from './frame-limiter.ts';
import { indexRetainedMessages } from './retained-index.ts';

export interface CloudBrokerOptions {
  bindHost: string;
  port: number;
  /** null: no WebSocket listener. */
  wsPort: number | null;
  tls?: { port: number; certFile: string; keyFile: string };
  maxPacketBytes: number;
  maxConnections: number;
  maxConnectionsPerHub: number;
  maxInflightPerClient: number;
  credentials: HubCredentialStore;
  ingest: Ingest;
  live: LiveState;
  metrics: CloudMetrics;
  logger: Logger;
  /**
   * A connection of the hub can now receive commands: it subscribed to (part of) its `cmd/#`, or it
   * resumed a persistent session that holds such a subscription. The cloud re-delivers the hub's
   * pending commands then. (Not at TCP connect: a clean-session client subscribes only after CONNACK,
   * so a command published at connect would reach no one.)
   */
  onCommandSubscriber?: (hub: HubIdentity) => void;
}

export interface CloudBroker {
  readonly ports: { mqtt: number; ws: number | null; mqtts: number | null };
  /** Publishes as the cloud (bypasses the hub access policy). */
  publish(topic: string, payload: string | Buffer, opts?: { qos?: 0 | 1; retain?: boolean }): Promise<void>;
  /** Stops listening and disconnects every client (their last wills go through ingest). */
  close(): Promise<void>;
}

const ignore = () => undefined;
const authError = (message: string, returnCode: 3 | 4 | 5): AuthenticateError => Object.assign(new Error(message), { returnCode });

/**
 * The cloud MQTT broker (aedes, MQTT 3.1.1) on TCP, WebSocket and, when configured, TLS.
 * Ingest runs inside `authorizePublish`: aedes writes the QoS 1 PUBACK only after that hook calls
 * back, so a message is acknowledged only once it is durably stored [MQTT-4.3.2-2: the receiver
 * takes ownership when it sends PUBACK].
 */
export async function startCloudBroker(o: CloudBrokerOptions): Promise<CloudBroker> {
  const log = o.logger.child({ component: 'broker' });
  const identities = new WeakMap<Client, HubIdentity>();
  const counted = new Set<Client>();
  const inflight = new WeakMap<Client, number>();

  const aedes = await Aedes.createBroker({
    concurrency: 1000,
    queueLimit: 100,
    maxInflightInbound: o.maxInflightPerClient,
    maxClientsIdLength: 128,
    maxTopicLevels: MAX_TOPIC_LEVELS + 2,
    connectTimeout: 10_000,
    drainTimeout: 30_000,
    heartbeatInterval: 60_000,
    keepaliveLimit: 1200,
    preConnect: (_client, _packet, cb) => cb(null, aedes.connectedClients < o.maxConnections),
    authenticate: (client, username, password, cb) => {
      if (!username || !password) {
        o.metrics.authFailures.inc({ reason: 'no_credentials' });
        return cb(authError('username and password are required', 4), null);
      }
      o.credentials.verify(username, password.toString('utf8')).then(
        (identity) => {
          if (!identity) {
            o.metrics.authFailures.inc({ reason: 'bad_credentials' });
            log.warn({ username, clientId: client.id }, 'MQTT login refused: wrong username or password');
            return cb(authError('bad username or password', 4), null);
          }
          const hub = o.live.hubs.get(identity.hubId);
          if (hub && hub.link.connections >= o.maxConnectionsPerHub) {
            o.metrics.authFailures.inc({ reason: 'hub_connection_limit' });
            log.warn({ hub: identity.hubId, clientId: client.id }, 'MQTT login refused: hub connection limit reached');
            return cb(authError('too many connections for this hub', 3), null);
          }
          identities.set(client, identity);
          cb(null, true);
        },
        (err) => {
          log.error({ err }, 'credential check failed');
          cb(authError('server error', 3), null);
        },
      );
    },
    authorizePublish: (client, packet, cb) => {
      let from = client ? (identities.get(client) ?? null) : null;
      if (!client) {
        // A stored last will published after its client is long gone: it was checked when set.
        const t = parseTopic(packet.topic);
        if (t?.route !== 'status') return cb(new Error('orphan will refused'));
        from = { hubId: t.hub, region: t.region };
      }
      if (!from) return cb(new Error('not authenticated'));
      const decision = client ? decidePublish(from, packet.topic) : ({ ok: true, retainAllowed: true } as const);
      if (!decision.ok) {
        o.metrics.publishDenied.inc({ reason: decision.reason });
        log.warn({ hub: from.hubId, clientId: client?.id, topic: packet.topic.slice(0, 300), reason: decision.reason }, 'publish refused; closing the connection');
        return cb(new Error(`publish to ${packet.topic.slice(0, 100)} refused: ${decision.reason}`));
      }
      if (!decision.retainAllowed) packet.retain = false;
      if (client) {
        const n = (inflight.get(client) ?? 0) + 1;
        if (n > o.maxInflightPerClient) {
          o.metrics.inflightExceeded.inc();
          log.warn({ hub: from.hubId, clientId: client.id }, 'too many unacknowledged messages in flight; closing the connection');
          return cb(new Error('in-flight limit exceeded'));
        }
        inflight.set(client, n);
      }
      const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
      o.ingest.handle({ topic: packet.topic, payload, from, clientId: client?.id ?? null, receivedAt: Date.now() }).then(
        () => {
          if (client) inflight.set(client, (inflight.get(client) ?? 1) - 1);
          cb(null);
        },
        (err: Error) => {
          if (client) inflight.set(client, (inflight.get(client) ?? 1) - 1);
          cb(err);
        },
      );
    },
    authorizeSubscribe: (client, sub, cb) => {
      const from = identities.get(client);
      if (from && decideSubscribe(from, sub.topic)) return cb(null, sub);
      o.metrics.subscribeDenied.inc();
      log.warn({ hub: from?.hubId, clientId: client.id, filter: sub.topic.slice(0, 300) }, 'subscription refused');
      cb(null, null); // SUBACK return code 0x80 [MQTT-3.9.3]
    },
  });
  // Every hub's status is retained: find retained messages for a SUBSCRIBE by topic level, not by
  // testing all of them (see retained-index.ts).
  indexRetainedMessages(aedes);

  const updateGauges = () => {
    o.metrics.mqttConnections.set(counted.size);
    o.metrics.hubsConnected.set(o.live.connectedCount());
  };
  const commandSubscriber = (id: HubIdentity) => {
    try {
      o.onCommandSubscriber?.(id);
    } catch (err) {
      log.error({ err, hub: id.hubId }, 're-delivering pending commands failed');
    }
  };
  aedes.on('clientReady', (client) => {
    const id = identities.get(client);
    if (!id || counted.has(client)) return;
    counted.add(client);
    o.live.connectionOpened(id.hubId, id.region, Date.now());
    log.info({ hub: id.hubId, clientId: client.id }, 'hub connected');
    updateGauges();
    // A resumed session got its subscriptions back without a SUBSCRIBE [MQTT-3.1.2-4].
    if (!client.clean) commandSubscriber(id);
  });
  aedes.on('subscribe', (subs, client) => {
    const id = client ? identities.get(client) : undefined;
    // Subscriptions restored while connecting are covered by clientReady (after CONNACK).
    if (!id || !counted.has(client)) return;
    if (subs.some((s) => (s.qos as number) !== 128 && coversCommands(id, s.topic))) commandSubscriber(id);
  });
  aedes.on('clientDisconnect', (client) => {
    const id = identities.get(client);
    if (!id || !counted.delete(client)) return;
    o.live.connectionClosed(id.hubId, id.region, Date.now());
    log.info({ hub: id.hubId, clientId: client.id }, 'hub disconnected');
    updateGauges();
  });
  aedes.on('clientError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'client error'));
  aedes.on('connectionError', (_client, err) => log.debug({ err: err.message }, 'connection error'));

  const oversized = (reason: 'oversized' | 'malformed', announced: number) => {
    o.metrics.oversizedPackets.inc();
    log.warn({ reason, announced, limit: o.maxPacketBytes }, 'MQTT packet over the size limit; connection closed');
  };
  const handle = (stream: Duplex, req?: http.IncomingMessage) => {
    limitMqttFrames(stream, o.maxPacketBytes, oversized);
    stream.on('error', ignore); // aedes reports errors itself while it has the client; this covers the moments around that
    aedes.handle(stream, req);
  };

  const servers: (net.Server | http.Server)[] = [];
  const tcp = net.createServer((socket) => handle(socket));
  const mqttPort = await listen(tcp, o.bindHost, o.port);
  servers.push(tcp);

  let wsPort: number | null = null;
  let wss: WebSocketServer | null = null;
  if (o.wsPort !== null) {
    const httpServer = http.createServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket: connect to /mqtt with the "mqtt" subprotocol\n');
    });
    wss = new WebSocketServer({ server: httpServer, path: '/mqtt', maxPayload: o.maxPacketBytes + 1024 });
    wss.on('connection', (ws, req) => {
      const stream = createWebSocketStream(ws);
      stream.on('error', () => undefined);
      handle(stream, req);
    });
    wsPort = await listen(httpServer, o.bindHost, o.wsPort);
    servers.push(httpServer);
  }

  let mqttsPort: number | null = null;
  if (o.tls) {
    const secure = tls.createServer({ cert: fs.readFileSync(o.tls.certFile), key: fs.readFileSync(o.tls.keyFile), minVersion: 'TLSv1.2' }, (socket) => handle(socket));
    secure.on('tlsClientError', (err) => log.debug({ err: err.message }, 'TLS handshake failed'));
    mqttsPort = await listen(secure, o.bindHost, o.tls.port);
    servers.push(secure);
  }

  return {
    ports: { mqtt: mqttPort, ws: wsPort, mqtts: mqttsPort },
    publish(topic, payload, opts = {}) {
      return new Promise((resolve, reject) => {
        aedes.publish(
          { cmd: 'publish', topic, payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload), qos: opts.qos ?? 1, retain: opts.retain ?? false, dup: false },
          (err) => (err ? reject(err) : resolve()),
        );
      });
    },
    async close() {
      for (const s of servers) s.close();
      wss?.close();
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    },
  };
}

function listen(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}
