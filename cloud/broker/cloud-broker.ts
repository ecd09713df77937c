import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { createWebSocketStream, WebSocketServer } from 'ws';
import { checkHubClientId, parseTopic } from '../../contract/index.ts';
import type { HubCredentialStore, HubIdentity } from '../hubs/hub-credentials.ts';
import type { Ingest } from '../ingest/ingest.ts';
import type { LiveState } from '../live/live-state.ts';
import type { Logger } from '../logger.ts';
import type { CloudMetrics } from '../metrics.ts';
import { coversCommands, decidePublish, decideSubscribe, decideWill, MAX_TOPIC_LEVELS, storedWillRefusal } from './access-policy.ts';
import { limitMqttFrames, type FrameViolation } from './frame-limiter.ts';
import { backlogWarning, kernelBacklogCap } from './listen-backlog.ts';
import { peerKey, proxiedListener, TrustedProxies, type ProxyRefusal } from './proxy-protocol.ts';
import { HubConnections } from './hub-connections.ts';
import { DEFAULT_LOGIN_THROTTLE, LoginThrottle, type LoginThrottleLimits } from './login-throttle.ts';
import { createBrokerCluster, type BrokerCluster } from './cluster-broker.ts';
import { indexRetainedMessages } from './retained-index.ts';
import { SessionExpiry } from './session-expiry.ts';

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
  /** A packet must arrive whole within this time of its first byte (MQTT_PACKET_TIMEOUT_S). */
  packetTimeoutMs: number;
  /**
   * The MQTT listeners' accept queue (listen(2) backlog; Node's default 511). When a node dies its
   * hubs come back at the survivors within the first back-off window (0.25–0.5 s): 2,300 CONNECTs per
   * survivor at once with 3 nodes and 13,800 hubs. Beyond the backlog the kernel drops the handshake
   * (ListenOverflows) and the hub's TCP retries it 1, 3, 7 s later — into mqtt.js's 10 s CONNACK
   * timeout, then the agent's back-off (issue 15: a node killed during the fan-out).
   */
  listenBacklog: number;
  /** A persistent session without a connection this long is removed with its queued messages (MQTT_SESSION_EXPIRY_S). */
  sessionExpiryMs: number;
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
  /** Connections from one address that have not logged in yet; more are closed on arrival (default 128). */
  maxUnauthenticatedPerAddress?: number;
  /** Persistent sessions one hub may keep without a connection; more remove its longest idle ones (default 64). */
  maxIdleSessionsPerHub?: number;
  /** Bounds on MQTT password checks (login-throttle.ts); defaults fit a national fleet. */
  loginThrottle?: LoginThrottleLimits;
  /**
   * Cluster mode (issue 15): the broker shares sessions, wills, retained messages and the message
   * bus with the other nodes through Redis (cluster-broker.ts); aedes' broker id is the node id.
   * Absent or null: the single process, everything in memory.
   */
  cluster?: { nodeId: string; redisUrl: string } | null;
  /**
   * PROXY protocol v1/v2 on every MQTT listener (TCP, WebSocket, TLS; proxy-protocol.ts): each connection
   * must come from one of `trustedProxies` (addresses, CIDRs, host names) and start with a header within
   * `headerTimeoutMs`, else it is closed; the header's client address then counts for every per-address
   * limit and in the logs. Absent or null: off (clients connect directly).
   */
  proxyProtocol?: { trustedProxies: readonly string[]; headerTimeoutMs: number } | null;
}

export interface CloudBroker {
  readonly ports: { mqtt: number; ws: number | null; mqtts: number | null };
  /** Publishes as the cloud (bypasses the hub access policy). */
  publish(topic: string, payload: string | Buffer, opts?: { qos?: 0 | 1; retain?: boolean }): Promise<void>;
  /** Stops listening and disconnects every client (their last wills go through ingest). */
  close(): Promise<void>;
}

const ignore = () => undefined;
/** Idle persistent sessions a hub may keep: an agent and a few tools need a handful (see SessionExpiry). */
export const DEFAULT_MAX_IDLE_SESSIONS_PER_HUB = 64;
/**
 * Connections from one address that have not logged in yet (issue 11). Each costs a file descriptor
 * and ~8 KB until its login or connectTimeout (10 s); measured, 9,000 idle anonymous sockets from one
 * address took 7,100 fds and +75 MB of the cloud, enough at scale to reach the fd limit and lock every
 * hub out. Generous, since hubs behind one carrier NAT may reconnect together.
 */
export const DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS = 128;
const authError = (message: string, returnCode: 2 | 3 | 4 | 5): AuthenticateError => Object.assign(new Error(message), { returnCode });

/**
 * The cloud MQTT broker (aedes, MQTT 3.1.1) on TCP, WebSocket and, when configured, TLS.
 * Ingest runs inside `authorizePublish`: aedes writes the QoS 1 PUBACK only after that hook calls
 * back, so a message is acknowledged only once it is durably stored [MQTT-4.3.2-2: the receiver
 * takes ownership when it sends PUBACK].
 */
export async function startCloudBroker(o: CloudBrokerOptions): Promise<CloudBroker> {
  const log = o.logger.child({ component: 'broker' });
  const identities = new WeakMap<Client, HubIdentity>();
  const inflight = new WeakMap<Client, number>();
  /** A message of the client was answered; a client with none in flight has no entry (~30 bytes per idle hub, issue 17). */
  const answered = (client: Client) => {
    const n = (inflight.get(client) ?? 1) - 1;
    if (n > 0) inflight.set(client, n);
    else inflight.delete(client);
  };
  /** Clients that sent an empty client id (aedes has replaced it with a generated one by `authenticate`). */
  const emptyClientIds = new WeakSet<Client>();
  /** The topic of each connecting client's CONNECT last will, checked once its identity is known (decideWill). */
  const willTopics = new WeakMap<Client, string>();
  /** Clients whose transport has closed (emitted 'close'): nothing may be counted for them any more. */
  const transportClosed = new WeakSet<Client>();
  const sessions = new SessionExpiry(o.sessionExpiryMs, o.maxIdleSessionsPerHub ?? DEFAULT_MAX_IDLE_SESSIONS_PER_HUB);
  /** The address each connection came from (per-address login limits). */
  const addresses = new WeakMap<Client, string>();
  const logins = new LoginThrottle(o.loginThrottle ?? DEFAULT_LOGIN_THROTTLE);
  const connections = new HubConnections<Client>({
    onOpen: (client, hubId) => {
      const id = identities.get(client)!;
      o.live.connectionOpened(hubId, id.region, Date.now());
      log.info({ hub: hubId, clientId: client.id, address: addresses.get(client) }, 'hub connected');
    },
    onClose: (client, hubId) => {
      const id = identities.get(client)!;
      o.live.connectionClosed(hubId, id.region, Date.now());
      log.info({ hub: hubId, clientId: client.id }, 'hub disconnected');
    },
  });

  const concurrency = 1000;
  const cluster: BrokerCluster | null = o.cluster
    ? createBrokerCluster({ ...o.cluster, logger: o.logger, concurrency, onWillRefused: (reason) => o.metrics.publishDenied.inc({ reason: `will_${reason}` }) })
    : null;
  const aedes = await Aedes.createBroker({
    ...(cluster?.aedesOptions as object | undefined),
    concurrency,
    queueLimit: 100,
    maxInflightInbound: o.maxInflightPerClient,
    maxClientsIdLength: 128,
    maxTopicLevels: MAX_TOPIC_LEVELS + 2,
    connectTimeout: 10_000,
    drainTimeout: 30_000,
    heartbeatInterval: cluster?.aedesOptions.heartbeatInterval ?? 60_000,
    keepaliveLimit: 1200,
    preConnect: (client, packet, cb) => {
      if (!packet.clientId) emptyClientIds.add(client);
      if (packet.will) willTopics.set(client, packet.will.topic);
      // A last will is published by the broker itself, never held for a PUBREL: one asked for with QoS 2 goes
      // out with QoS 1, like every hub message (authorizePublish refuses QoS 2 from a client).
      if (packet.will && (packet.will.qos as number) === 2) packet.will.qos = 1;
      cb(null, connections.total < o.maxConnections);
    },
    authenticate: (client, username, password, cb) => {
      if (closing) return cb(authError('server shutting down', 3), null);
      if (!username || !password) {
        o.metrics.authFailures.inc({ reason: 'no_credentials' });
        return cb(authError('username and password are required', 4), null);
      }
      // Each check may cost a scrypt run: scheduled fairly between client addresses, and refused at
      // once (CONNACK 3, server unavailable: the client backs off) for an address that floods or keeps
      // failing (login-throttle.ts).
      const address = addresses.get(client) ?? 'unknown';
      logins.schedule(address, () => o.credentials.verify(username, password.toString('utf8')), (identity) => identity === null, () => !client.closed && !transportClosed.has(client)).then(
        (scheduled) => {
          if (!scheduled.ran) {
            if (scheduled.reason === 'gone') return cb(authError('connection closed', 3), null);
            o.metrics.authFailures.inc({ reason: scheduled.reason });
            log.warn({ username: username.slice(0, 128), address, reason: scheduled.reason }, 'MQTT login refused before its password check: too many attempts from this address');
            return cb(authError('too many login attempts from this address; retry later', 3), null);
          }
          const identity = scheduled.value;
          if (!identity) {
            o.metrics.authFailures.inc({ reason: 'bad_credentials' });
            log.warn({ username: username.slice(0, 128), clientId: client.id.slice(0, 128), address }, 'MQTT login refused: wrong username or password');
            return cb(authError('bad username or password', 4), null);
          }
          // The client id must be the hub's own (contract/client-id.ts): the broker keeps one session per
          // client id and drops the older connection on a duplicate [MQTT-3.1.4-2], so a foreign id
          // would knock that hub offline or hand over its session. 0x02 [MQTT-3.2.2-3 table 3.1].
          const refusal = checkHubClientId(identity.hubId, emptyClientIds.has(client) ? '' : client.id);
          if (refusal) {
            o.metrics.authFailures.inc({ reason: refusal });
            log.warn({ hub: identity.hubId, clientId: client.id.slice(0, 128), reason: refusal }, 'MQTT login refused: client id does not belong to the hub');
            return cb(authError(`client id must be "${identity.hubId}" or "${identity.hubId}.<suffix>"`, 2), null);
          }
          // The last will is published when the link dies — by another node if this one dies — as a
          // message from this hub: it must be one this hub may publish, on its own status topic
          // (access-policy.ts decideWill). Refused with the connection, 0x05 not authorized.
          const willTopic = willTopics.get(client);
          willTopics.delete(client); // needed only here
          const will = willTopic === undefined ? null : decideWill(identity, willTopic, o.live.regions);
          if (will && !will.ok) {
            o.metrics.authFailures.inc({ reason: `will_${will.reason}` });
            log.warn({ hub: identity.hubId, clientId: client.id.slice(0, 128), willTopic: willTopic!.slice(0, 300), reason: will.reason }, 'MQTT login refused: its last will is not on the hub\'s own status topic');
            return cb(authError('last will refused: it must be on the hub\'s own status topic', 5), null);
          }
          // A reconnect with the hub's own client id replaces that connection: it needs no second slot
          // (a hub at its limit whose old link is half-open must still get back in).
          const replaced = clientsById()[client.id];
          if (connections.count(identity.hubId, replaced && connections.holds(replaced, identity.hubId) ? replaced : undefined) >= o.maxConnectionsPerHub) {
            o.metrics.authFailures.inc({ reason: 'hub_connection_limit' });
            log.warn({ hub: identity.hubId, clientId: client.id }, 'MQTT login refused: hub connection limit reached');
            return cb(authError('too many connections for this hub', 3), null);
          }
          // Gone while its password was checked: aedes drops it; taking a slot now would never be undone.
          if (client.closed || transportClosed.has(client)) return cb(authError('connection closed', 3), null);
          // The broker began closing while the password was checked: close() has taken its list of
          // clients, so one admitted now would stay connected to a process that is going away (and in
          // cluster mode its will stored in Redis) — refused, 0x03 server unavailable: the hub backs off
          // and reconnects to whichever cloud answers next. (aedes.close() does this through its
          // `closed` flag, but close() below closes the clients before calling it.)
          if (closing) return cb(authError('server shutting down', 3), null);
          identities.set(client, identity);
          connections.admit(client, identity.hubId);
          leftWaiting(client);
          updateGauges();
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
        // A stored last will published after its client is long gone (its node died, or this node's
        // previous run left it). It was checked at login (decideWill); its identity is now only what
        // it carries: the client id, which the login tied to the credential's hub, must be that of the
        // hub its topic names (cluster-broker.ts skips such wills before they get here).
        const refusal = storedWillRefusal(packet as { topic: string; clientId?: unknown });
        if (refusal) {
          o.metrics.publishDenied.inc({ reason: `will_${refusal}` });
          log.warn({ clientId: String((packet as { clientId?: unknown }).clientId).slice(0, 128), topic: packet.topic.slice(0, 300), reason: refusal }, 'stored last will refused');
          return cb(new Error(`stored last will refused: ${refusal}`));
        }
        const t = parseTopic(packet.topic)!;
        if (t.route === 'status') from = { hubId: t.hub, region: t.region };
      }
      if (!from) return cb(new Error('not authenticated'));
      // Hubs publish with QoS 1 (the contract). aedes keeps a QoS 2 message with the session until its
      // PUBREL, which need never come: one hub login sending them under new client ids grew the cloud by
      // ~250 MB a session (found in review). Refused before it is stored; the connection is closed.
      if (client && (packet.qos as number) === 2) {
        o.metrics.publishDenied.inc({ reason: 'qos2' });
        log.warn({ hub: from.hubId, clientId: client.id, topic: packet.topic.slice(0, 300) }, 'QoS 2 publish refused (hubs publish with QoS 1); closing the connection');
        return cb(new Error('QoS 2 is not accepted: publish with QoS 1'));
      }
      const decision = decidePublish(from, packet.topic, o.live.regions);
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
          if (client) answered(client);
          cb(null);
        },
        (err: Error) => {
          if (client) answered(client);
          cb(err);
        },
      );
    },
    authorizeSubscribe: (client, sub, cb) => {
      const from = identities.get(client);
      if (from && decideSubscribe(from, sub.topic, o.live.regions)) return cb(null, sub);
      o.metrics.subscribeDenied.inc();
      log.warn({ hub: from?.hubId, clientId: client.id, filter: sub.topic.slice(0, 300) }, 'subscription refused');
      // Before CONNACK this is a persistent session's stored subscription being restored: one its hub
      // may not have was stored by a version before the session store was filtered (fcea167). aedes
      // skips it now but leaves it stored, so messages on it were still queued for the session while
      // away (never delivered: authorizeForward drops them). Removed from the session store here.
      if (!client.clean && !(client as unknown as { connackSent?: boolean }).connackSent) forgetRefused(client, sub.topic);
      cb(null, null); // SUBACK return code 0x80 [MQTT-3.9.3]
    },
    // A persistent session's queued messages are forwarded only on topics its hub may subscribe to
    // (aedes asks this for queued messages at reconnect too, and drops the refused ones); clean
    // sessions — every hub of the reference agent — receive only what their granted subscriptions
    // match, so the check (~1 µs) is not paid on every delivery of a fan-out.
    authorizeForward: (client, packet) => {
      if (client.clean) return packet;
      const from = identities.get(client);
      return from && decideSubscribe(from, packet.topic, o.live.regions) ? packet : null;
    },
  });
  // aedes (1.x, lib/handlers/subscribe.js storeSubscriptions) stores a persistent session's SUBSCRIBE
  // once per topic, each time with all its topics — the refused ones too: a hub subscribing to its
  // own topic and another hub's `cmd/#` with clean=false had the other hub's commands queued for it
  // while away, and delivered at its reconnect (found in review; test in mqtt-identity.test.ts). In a
  // cluster the repeated store also hung the SUBACK: aedes-persistence's broadcast waits for its
  // confirmation under one key for all those calls and answers only the last (upstream
  // moscajs/aedes#458). Stored here once per SUBSCRIBE, only what the hub may subscribe to.
  const sessionStore = (aedes as unknown as {
    persistence: { addSubscriptions(client: Client, subs: { topic: string }[]): Promise<unknown>; removeSubscriptions(client: Client, topics: string[]): Promise<unknown> };
  }).persistence;
  const addSubscriptions = sessionStore.addSubscriptions.bind(sessionStore);
  // One store at a time per client, too: the broadcast's wait key is the client and the first topic
  // stored, so two SUBSCRIBEs in flight whose first allowed topics are the same left one unanswered
  // (the third review: [other hub's cmd/#, own ack] with [own ack]).
  const storing = new WeakMap<object, Promise<unknown>>();
  const lastStore = new WeakMap<Client, Promise<unknown>>();
  /** Removes a refused subscription from a restored session (see authorizeSubscribe), in turn with the client's stores. */
  const forgetRefused = (client: Client, topic: string) => {
    const removed = (lastStore.get(client) ?? Promise.resolve()).catch(() => undefined)
      .then(() => sessionStore.removeSubscriptions(client, [topic]));
    lastStore.set(client, removed);
    removed.then(
      () => log.warn({ clientId: client.id, filter: topic.slice(0, 300) }, 'a refused subscription stored in a persistent session removed'),
      (err: unknown) => log.error({ err, clientId: client.id }, 'removing a refused subscription from a persistent session failed'),
    );
  };
  sessionStore.addSubscriptions = (client, subs) => {
    const running = storing.get(subs);
    if (running) return running;
    const from = identities.get(client);
    const allowed = from ? subs.filter((sub) => decideSubscribe(from, sub.topic, o.live.regions)) : [];
    const stored = (lastStore.get(client) ?? Promise.resolve()).catch(() => undefined)
      .then(() => (allowed.length > 0 ? addSubscriptions(client, allowed) : undefined));
    storing.set(subs, stored);
    lastStore.set(client, stored);
    return stored;
  };
  // Every hub's status is retained: find retained messages for a SUBSCRIBE by topic level, not by
  // testing all of them (see retained-index.ts). In cluster mode the index is mirrored through Redis.
  if (cluster) {
    // aedes reports a failed round of dead nodes' wills (Redis down) as 'error': logged, not fatal.
    (aedes as unknown as NodeJS.EventEmitter).on('error', (err: Error) => log.warn({ err: err.message }, 'broker error (cluster)'));
    const authorize = (aedes as unknown as { authorizePublish: (c: null, p: unknown, cb: (err?: Error | null) => void) => void }).authorizePublish;
    await cluster.attach(aedes, (will) => new Promise((resolve, reject) => authorize(null, will, (err) => (err ? reject(err) : resolve()))));
    // A command from another node may have been lost while this node's Redis link was down: every
    // connected hub gets its pending commands again (cluster-broker.ts, guarantees).
    cluster.onReconnect(() => {
      const hubs = new Map<string, HubIdentity>();
      for (const client of Object.values(clientsById())) {
        const id = client && connections.isOpen(client) ? identities.get(client) : undefined;
        if (id) hubs.set(id.hubId, id);
      }
      log.info({ hubs: hubs.size }, 'Redis link back: re-delivering pending commands to the hubs on this node');
      for (const id of hubs.values()) commandSubscriber(id);
    });
  } else {
    indexRetainedMessages(aedes);
  }

  const clientsById = () => (aedes as unknown as { clients: Record<string, Client | undefined> }).clients;
  /** Set by close(): logins still being checked are refused (see authenticate). */
  let closing = false;
  const updateGauges = () => {
    o.metrics.mqttConnections.set(connections.total);
    o.metrics.hubsConnected.set(o.live.connectedCount());
  };
  const commandSubscriber = (id: HubIdentity) => {
    try {
      o.onCommandSubscriber?.(id);
    } catch (err) {
      log.error({ err, hub: id.hubId }, 're-delivering pending commands failed');
    }
  };
  /** The connection ended, on whichever path: gives its slot back (once) and starts its session's expiry. */
  const ended = (client: Client) => {
    if (!connections.end(client)) return;
    const hub = identities.get(client)?.hubId;
    if (!client.clean) {
      for (const id of sessions.disconnected(client.id, Date.now(), hub)) {
        const live = clientsById()[id];
        if (live && !live.closed) continue; // taken over meanwhile: in use again
        log.warn({ hub, clientId: id, limit: o.maxIdleSessionsPerHub ?? DEFAULT_MAX_IDLE_SESSIONS_PER_HUB }, 'persistent MQTT session removed: the hub keeps too many without a connection');
        purgeSession(id).catch((err: unknown) => log.error({ err, clientId: id }, 'removing a persistent MQTT session failed'));
      }
    }
    updateGauges();
  };
  /**
   * Connections whose command subscription came before `clientReady`: aedes handles a client's packets
   * as soon as CONNACK is written, but emits `clientReady` only after its last connect step (reading
   * the session's queued messages — in a cluster a Redis round trip), so a hub's SUBSCRIBE sent on
   * CONNACK often arrives in between. Skipped there, a command issued while the hub was away was
   * not re-delivered in 13 of 60 reconnects to a cluster node (until its next reconnect): the cluster
   * fault test's command left pending.
   */
  const subscribedBeforeReady = new WeakSet<Client>();
  aedes.on('clientReady', (client) => {
    releaseConnectPacket(client);
    const id = identities.get(client);
    // CONNACK went out; a client that closed meanwhile is ended by its own events, not opened.
    if (!id || client.closed || transportClosed.has(client) || !connections.ready(client)) return;
    sessions.connected(client.id);
    updateGauges();
    // A resumed session got its subscriptions back without a SUBSCRIBE [MQTT-3.1.2-4]; a SUBSCRIBE
    // handled before this event (below) asked for its commands too.
    const subscribed = subscribedBeforeReady.delete(client);
    if (!client.clean || subscribed) commandSubscriber(id);
  });
  aedes.on('subscribe', (subs, client) => {
    const id = client ? identities.get(client) : undefined;
    if (!id || !subs.some((s) => (s.qos as number) !== 128 && coversCommands(id, s.topic))) return;
    if (connections.isOpen(client)) commandSubscriber(id);
    // Restored while connecting, or sent on CONNACK: re-delivered once the connection is ready.
    else subscribedBeforeReady.add(client);
  });
  // aedes emits clientDisconnect only for a client still in its id table; one that was refused,
  // closed while connecting, or lost its table entry to a same-id client ends only with its transport.
  aedes.on('clientDisconnect', ended);
  aedes.on('clientError', (client, err) => log.debug({ clientId: client.id, err: err.message }, 'client error'));
  aedes.on('connectionError', (_client, err) => log.debug({ err: err.message }, 'connection error'));

  const frameViolation = (reason: FrameViolation, announced: number) => {
    if (reason === 'stalled') {
      o.metrics.stalledPackets.inc();
      log.warn({ reason, timeoutMs: o.packetTimeoutMs }, 'MQTT packet not completed in time; connection closed');
      return;
    }
    o.metrics.oversizedPackets.inc();
    log.warn({ reason, announced, limit: o.maxPacketBytes }, 'MQTT packet over the size limit; connection closed');
  };
  /** Connections per address that have not logged in yet; each is counted until its login or its close. */
  const unauthenticated = new Map<string, number>();
  /** The connections not logged in yet (each until its login or its close): close() ends those still here. */
  const counted = new Set<Client>();
  const maxUnauthenticated = o.maxUnauthenticatedPerAddress ?? DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS;
  const leftWaiting = (client: Client) => {
    if (!counted.has(client)) return;
    counted.delete(client);
    const address = addresses.get(client)!;
    const n = (unauthenticated.get(address) ?? 1) - 1;
    if (n > 0) unauthenticated.set(address, n);
    else unauthenticated.delete(address);
  };
  /** PROXY protocol: the client address of each proxied connection, by its proxy-side peer address and port. */
  const proxy = o.proxyProtocol ? { trusted: new TrustedProxies(o.proxyProtocol.trustedProxies), timeoutMs: o.proxyProtocol.headerTimeoutMs } : null;
  const proxiedAddresses = new Map<string, string>();
  // Logged at most once a second (a flood of direct connections would otherwise flood the log); every one is counted.
  let proxyLoggedAt = 0;
  let proxyUnlogged = 0;
  const proxyRefused = (reason: ProxyRefusal, peer: string, detail: string) => {
    o.metrics.authFailures.inc({ reason: `proxy_${reason}` });
    const now = Date.now();
    if (now - proxyLoggedAt < 1_000) {
      proxyUnlogged++;
      return;
    }
    log.warn({ peer, reason, detail, notLoggedSince: proxyUnlogged }, 'MQTT connection refused: no valid PROXY protocol header from a trusted proxy (MQTT_PROXY_PROTOCOL=required)');
    proxyLoggedAt = now;
    proxyUnlogged = 0;
  };
  /** `rest`: bytes after a PROXY header, fed through the frame limiter like any received bytes. */
  const handle = (stream: Duplex, req?: http.IncomingMessage, rest?: Buffer) => {
    const peer = req?.socket ?? (stream as net.Socket);
    const address = addressKey((proxy ? proxiedAddresses.get(peerKey(peer)) : undefined) ?? peer.remoteAddress);
    const waiting = unauthenticated.get(address) ?? 0;
    if (waiting >= maxUnauthenticated) {
      o.metrics.authFailures.inc({ reason: 'address_connections' });
      log.warn({ address, limit: maxUnauthenticated }, 'MQTT connection refused: too many connections from this address have not logged in');
      stream.on('error', ignore);
      stream.destroy();
      return;
    }
    limitMqttFrames(stream, o.maxPacketBytes, frameViolation, o.packetTimeoutMs);
    // The socket's buffer is empty here (the header was read in flowing mode, handed over in the same
    // tick): pushed bytes come first, as received.
    if (rest && rest.length > 0) stream.push(rest);
    // From here aedes keeps an 'error' listener on the stream for its whole life (a no-op one once the
    // client is closed): no listener of ours, whose third entry would grow the listener array ~150 bytes
    // per connection (issue 17).
    const client = aedes.handle(stream, req);
    addresses.set(client, address);
    unauthenticated.set(address, waiting + 1);
    counted.add(client);
    (stream as ClientStream)[clientOf] = client;
    stream.on('close', streamClosed);
  };
  /**
   * Every path ends here, including those that never emit clientDisconnect. One listener for all
   * streams, which carry their client: a closure and a `once` wrapper per connection cost ~250 bytes
   * (issue 17). A stream emits 'close' once.
   */
  const streamClosed = function (this: ClientStream) {
    const client = this[clientOf];
    transportClosed.add(client);
    leftWaiting(client);
    ended(client);
  };

  // Persistent sessions of clients that stay away expire with their queued messages.
  const persistence = (aedes as unknown as { persistence: SessionPersistence }).persistence;
  const purgeSession = async (clientId: string) => {
    const who = { id: clientId };
    await persistence.cleanSubscriptions(who);
    let queued = 0;
    for await (const packet of persistence.outgoingStream(who)) {
      await persistence.outgoingClearMessageId(who, packet);
      queued++;
    }
    await persistence.cleanIncoming?.(who);
    log.info({ clientId, queued, idleS: Math.round(o.sessionExpiryMs / 1000) }, 'persistent MQTT session expired');
  };
  const sweep = setInterval(() => {
    const live = clientsById();
    for (const id of sessions.sweep(Date.now(), (cid) => live[cid] !== undefined && !live[cid]!.closed)) {
      purgeSession(id).catch((err: unknown) => log.error({ err, clientId: id }, 'removing an expired MQTT session failed'));
    }
  }, Math.max(50, Math.min(60_000, Math.floor(o.sessionExpiryMs / 4))));
  sweep.unref();

  const servers: (net.Server | http.Server)[] = [];
  const tcp = proxy ? proxiedListener(proxy, proxiedAddresses, 'mqtt', (socket, rest) => handle(socket, undefined, rest), proxyRefused) : net.createServer((socket) => handle(socket));
  const mqttPort = await listen(tcp, o.bindHost, o.port, o.listenBacklog);
  servers.push(tcp);
  const somaxconn = kernelBacklogCap();
  const capped = backlogWarning(o.listenBacklog, somaxconn, o.live.regions.all().reduce((n, r) => n + r.hubs.length, 0));
  if (capped) log.warn({ listenBacklog: o.listenBacklog, somaxconn }, capped);

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
    // Behind a PROXY protocol balancer the HTTP server gets its connections from a front listener that read the header.
    const front = proxy ? proxiedListener(proxy, proxiedAddresses, 'http', (socket) => httpServer.emit('connection', socket), proxyRefused) : httpServer;
    wsPort = await listen(front, o.bindHost, o.wsPort, o.listenBacklog);
    servers.push(front);
  }

  let mqttsPort: number | null = null;
  if (o.tls) {
    const secure = tls.createServer({ cert: fs.readFileSync(o.tls.certFile), key: fs.readFileSync(o.tls.keyFile), minVersion: 'TLSv1.2' }, (socket) => handle(socket));
    secure.on('tlsClientError', (err) => log.debug({ err: err.message }, 'TLS handshake failed'));
    const front = proxy ? proxiedListener(proxy, proxiedAddresses, 'tls', (socket) => secure.emit('connection', socket), proxyRefused) : secure;
    mqttsPort = await listen(front, o.bindHost, o.tls.port, o.listenBacklog);
    servers.push(front);
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
      closing = true;
      clearInterval(sweep);
      for (const s of servers) s.close();
      wss?.close();
      // Newest connection first. A topic every hub of a region subscribes to (its mode) keeps one
      // listener per client in subscription order, and mqemitter removes each with a search from the
      // end (qlobber's lastIndexOf) and a splice: closed oldest first, as aedes.close() does, that is
      // quadratic — a fifth of the shutdown's CPU with 13,800 hubs (issue 17, item 3); newest first,
      // each listener is found at the end. aedes.close() then finds no client left.
      const open = Object.values(clientsById()).filter((c): c is Client => c !== undefined).reverse();
      await Promise.all(open.map((c) => new Promise<void>((resolve) => c.close(() => resolve()))));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      // Connections still logging in are not aedes' clients yet: a password check that has not come
      // back (its database closing under it) would keep such a socket, and the process, alive until
      // the hub gives up or MQTT_PACKET_TIMEOUT_S. Found by test; the hub reconnects elsewhere.
      for (const c of [...counted]) (c as unknown as { conn: Duplex }).conn.destroy();
      await cluster?.close();
    },
  };
}

/**
 * mqtt-packet's parser keeps a connection's CONNECT packet — password, will payload and all — as its
 * `settings` for the connection's life, and reads only `protocolVersion` and `bridgeMode` of it later
 * (mqtt-packet 9, parser.js). Once CONNACK is out it gets a shared object with just those two: the
 * password no longer stays in memory, and each connection keeps ~250 bytes less (issue 17).
 */
function releaseConnectPacket(client: Client): void {
  const parser = (client as unknown as { _parser?: { settings?: { cmd?: string; protocolVersion?: number; bridgeMode?: boolean } } })._parser;
  const connect = parser?.settings;
  if (connect?.cmd !== 'connect' || typeof connect.protocolVersion !== 'number') return;
  const key = `${connect.protocolVersion}/${connect.bridgeMode === true}`;
  let settings = parserSettings.get(key);
  if (!settings) parserSettings.set(key, (settings = Object.freeze({ protocolVersion: connect.protocolVersion, bridgeMode: connect.bridgeMode === true })));
  parser!.settings = settings;
}
/** At most one per protocol version the parser accepts (3, 4, 5) and bridge flag. */
const parserSettings = new Map<string, { protocolVersion: number; bridgeMode: boolean }>();

const clientOf = Symbol('aedesClient');
type ClientStream = Duplex & { [clientOf]: Client };

/** The part of aedes' persistence (aedes-persistence 11) that removing a session needs. */
interface SessionPersistence {
  cleanSubscriptions(client: { id: string }): Promise<unknown>;
  outgoingStream(client: { id: string }): AsyncIterable<{ messageId?: number }>;
  outgoingClearMessageId(client: { id: string }, packet: { messageId?: number }): Promise<unknown>;
  cleanIncoming?(client: { id: string }): Promise<unknown>;
}

/**
 * The key per-address login limits use: the IPv4 address (also when IPv4-mapped), or the /64 of an
 * IPv6 one (a single host commonly holds a whole /64, so counting per IPv6 address would not limit it).
 */
export function addressKey(remote: string | undefined): string {
  if (!remote) return 'unknown';
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(remote);
  if (v4) return v4[1]!;
  if (!net.isIPv6(remote)) return remote;
  const [head = '', tail = ''] = remote.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const full = remote.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${full.slice(0, 4).map((h) => h.toLowerCase().replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

function listen(server: net.Server, host: string, port: number, backlog: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host, backlog }, () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}
