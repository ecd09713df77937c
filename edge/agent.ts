import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Aedes, type AuthenticateError, type Client, type PublishPacket } from 'aedes';
import {
  Command,
  DEVICE_KINDS,
  parseTopic,
  RegionFile,
  RegionMode,
  topics,
  validateUplinkMessage,
  type CommandAck,
  type LockerTelemetry,
  type Mode,
  type ModeAck,
  type SensorTelemetry,
  type ValidMessage,
} from '../contract/index.ts';
import type { Logger } from '../shared/logger.ts';
import { CLIENT_ID_SUFFIX } from '../contract/client-id.ts';
import { limitMqttFrames } from '../shared/mqtt-frame-limiter.ts';
import type { EdgeConfig } from './config.ts';
import { openDeviceCredentials } from './device-credentials.ts';
import { EdgeState, type ModeState } from './edge-state.ts';
import { buildLocalApi } from './local-api.ts';
import { openStaffToken } from './staff-token.ts';
import { createEdgeMetrics } from './edge-metrics.ts';
import { StorageHealth } from './storage-health.ts';
import { laneOf } from './outbox/lanes.ts';
import { Outbox, type AppendOutcome } from './outbox/outbox.ts';
import { fitsWhenMarked, Uplink } from './uplink.ts';

export const AGENT_NAME = 'chiiki-edge/0.1.0';

/** Ids of the messages the agent itself produces (command and mode acks) start with this; devices may not use it. */
export const AGENT_ID_PREFIX = 'agent-';

/**
 * Room in an MQTT packet beyond its payload (fixed header, topic of at most 256 bytes, packet id,
 * MQTT 5 properties). A larger packet closes the connection before its body is read.
 */
export const PACKET_HEADROOM_BYTES = 4096;

/** A packet must arrive whole within this time of its first byte (no half-sent packet held open). */
export const PACKET_TIMEOUT_MS = 10_000;

export interface EdgeAgent {
  readonly hubId: string;
  readonly ports: { mqtt: number; http: number };
  readonly localMqttUrl: string;
  readonly localHttpUrl: string;
  /** The device logins of this hub (`device-credentials.json`, 0600) — devices and the simulator read it. */
  readonly deviceCredentialsFile: string;
  /** The generated hub-staff token's file; null when LOCAL_STAFF_TOKEN is configured. */
  readonly staffTokenFile: string | null;
  readonly outbox: Outbox;
  readonly uplink: Uplink;
  readonly state: EdgeState;
  /** Switches the hub's mode locally (hub staff, e.g. while the cloud is unreachable). */
  switchModeLocally(mode: Mode, reason: string): Promise<ModeState>;
  close(): Promise<void>;
}

/**
 * The hub gateway. Devices publish to its local broker; each message is checked against the
 * shared contract and committed to the durable outbox before the device gets its PUBACK; the uplink
 * forwards the outbox to the cloud. Commands from the cloud are relayed to devices at most once;
 * the region's mode is applied and acknowledged.
 */
export async function startEdgeAgent(config: EdgeConfig, logger: Logger, now: () => number = Date.now): Promise<EdgeAgent> {
  const log = logger.child({ hub: config.hubId });
  fs.mkdirSync(config.dataDir, { recursive: true });
  const outbox = new Outbox(path.join(config.dataDir, 'outbox.db'), { ...config.outbox, now });
  const state = new EdgeState(path.join(config.dataDir, 'state.db'));
  const metrics = createEdgeMetrics(() => outbox.stats(), () => uplink.stats(), now, () => storage.status());
  // Storage errors (a full disk) at every event boundary are reported here, never thrown [issue 12].
  const storage = new StorageHealth(log, now, (where) => metrics.storageErrors.inc({ where }));
  // Unguessable, so nobody on the LAN can pre-send the ids of the agent's own acks (devices may not
  // use the prefix either, see authorizePublish).
  const bootId = crypto.randomBytes(9).toString('base64url').replace(/[^A-Za-z0-9]/g, '0');
  let seq = 0;
  const nextId = () => `${AGENT_ID_PREFIX}${bootId}-${++seq}`;
  const latest = { lockers: new Map<string, LockerTelemetry>(), sensors: new Map<string, SensorTelemetry>() };
  const { region, hubId } = config;
  const deviceCredentials = openDeviceCredentials(config.dataDir, hubId, hubDevices(config));
  if (deviceCredentials.created.length > 0) log.info({ file: deviceCredentials.file, devices: deviceCredentials.created }, 'device logins created');
  if (deviceCredentials.devices.length === 0) log.warn({ file: deviceCredentials.file }, 'no device has a local login: set REGION_FILE or EDGE_DEVICES');
  if (config.local.allowAnonymous) log.warn('LOCAL_ALLOW_ANONYMOUS=true: devices may connect without a login and publish as any device (bench/dev only)');
  const staffToken = openStaffToken(config.dataDir, config.local.staffToken);
  /** Device id of each connection's login; null for an anonymous one (LOCAL_ALLOW_ANONYMOUS). */
  const loginOf = new WeakMap<Client, string | null>();

  // ------------------------------------------------------------------ outbox appends
  const append = async (v: ValidMessage, topic: string, payload: Buffer): Promise<AppendOutcome> => {
    const msg = v.message as { id?: string; ts: number; device?: string };
    // The outbox deduplicates by (device, id) [issue 11]: one device's ids cannot suppress another's messages.
    let outcome: AppendOutcome;
    try {
      outcome = await outbox.append({
        lane: laneOf(v), topic, payload, msgId: msg.id ?? `status-${msg.ts}`, device: msg.device ?? '', deviceTs: msg.ts,
        offline: !uplink.connected,
      });
    } catch (err) {
      storage.failed('outbox_append', err);
      throw err;
    }
    // Only a row written proves the disk takes writes again: a duplicate (a device's resend of a
    // message already held) or a refusal wrote nothing, and reading "ok" after it misled (issue 12).
    if (outcome === 'stored') storage.succeeded();
    metrics.accepted.inc({ outcome });
    uplink.requestPump();
    return outcome;
  };

  /** Messages the agent itself produces (command and mode acks) go through the same checks and outbox. */
  /**
   * Puts one of the agent's own messages into the outbox. Never rejects (callers run it from timers
   * and handlers): while the disk is full it is tried again every second, with the same id, until
   * stored [issue 12]; then `onStored` runs.
   */
  const retries = new Set<NodeJS.Timeout>();
  let closed = false;
  const enqueue = async (topic: string, message: CommandAck | ModeAck, onStored?: () => void): Promise<boolean> => {
    const payload = Buffer.from(JSON.stringify(message));
    const v = validateUplinkMessage(topic, payload, config.maxPayloadBytes);
    if (!v.ok) {
      log.error({ topic, reason: v.reason, detail: v.detail }, 'the agent produced an invalid message; not sent');
      return false;
    }
    let stored = false;
    try {
      const outcome = await append(v, topic, payload);
      stored = outcome === 'stored' || outcome === 'duplicate';
    } catch {
      /* counted in append */
    }
    if (stored) {
      if (onStored) storage.guard('own_message', onStored);
      return true;
    }
    if (!closed) {
      const t = setTimeout(() => {
        retries.delete(t);
        void enqueue(topic, message, onStored);
      }, 1000);
      retries.add(t);
    }
    return false;
  };

  const commandAck = (commandId: string, device: string, result: CommandAck['result'], detail?: string): CommandAck => ({
    v: 1, type: 'hub.command-ack', id: nextId(), ts: now(), hub: hubId, device, commandId, result, ...(detail ? { detail } : {}),
  });

  // ------------------------------------------------------------------ local broker
  const broker = await Aedes.createBroker({
    concurrency: 200,
    // A device's last will goes out with QoS 1 (publishes with QoS 2 are refused, see authorizeDevicePublish).
    preConnect: (_client, packet, cb) => {
      if (packet.will && (packet.will.qos as number) === 2) packet.will.qos = 1;
      cb(null, true);
    },
    maxClientsIdLength: 128,
    connectTimeout: 10_000,
    // Per-device logins [issue 11]: the username is the device id, the password its secret from
    // device-credentials.json. The client id must be the device id or `<device>.<suffix>`, so no
    // login can take over another device's client id or session (aedes drops the older connection
    // of a client id [MQTT-3.1.4-2]).
    authenticate: (client, username, password, cb) => {
      const refuse = (returnCode: 4 | 5, why: string) => {
        metrics.localAuthFailures.inc({ reason: why });
        log.warn({ clientId: client.id, username, reason: why }, 'device login refused');
        cb(Object.assign(new Error(why), { returnCode }) as AuthenticateError, null);
      };
      if (username === undefined) {
        if (!config.local.allowAnonymous) return refuse(5, 'anonymous');
        loginOf.set(client, null);
        notLoggedIn.delete((client as unknown as { conn: net.Socket }).conn);
        return cb(null, true);
      }
      if (!deviceCredentials.verify(username, password)) return refuse(4, 'bad_credentials');
      // Same shape as the cloud's rule for hubs (contract/client-id.ts): `<device>` or `<device>.<suffix>`.
      if (client.id !== username && !(client.id.startsWith(`${username}.`) && CLIENT_ID_SUFFIX.test(client.id.slice(username.length + 1)))) {
        return refuse(5, 'client_id');
      }
      loginOf.set(client, username);
      notLoggedIn.delete((client as unknown as { conn: net.Socket }).conn);
      cb(null, true);
    },
    // A storage error (full disk) refuses the message without a PUBACK: the device keeps it and
    // re-sends (back-pressure) [issue 12]; it never escapes into aedes.
    authorizePublish: (client, packet, cb) => {
      try {
        authorizeDevicePublish(client, packet, cb);
      } catch (err) {
        storage.failed('device_publish', err);
        cb(err as Error);
      }
    },
    // A device subscribes only to its own commands: v1/<region>/<hub>/cmd/<kind or +>/<device>
    // (an anonymous bench client: any command of the hub).
    authorizeSubscribe: (client, sub, cb) => {
      const login = client ? loginOf.get(client) : undefined;
      if (login !== undefined && isOwnCommandFilter(sub.topic, region, hubId, login)) return cb(null, sub);
      metrics.rejected.inc({ reason: 'subscribe_denied' });
      log.debug({ clientId: client?.id, filter: sub.topic }, 'subscription refused');
      cb(null, null);
    },
  });
  function authorizeDevicePublish(client: Client | null, packet: PublishPacket, cb: (err?: Error | null) => void): void {
    if (!client) return cb(null); // our own relays
    // Devices publish with QoS 1 (the contract). aedes keeps a QoS 2 message in memory until its PUBREL,
    // which need never come: one login sending them under new client ids grew the agent by ~70 MB a
    // session (found in review). Refused before it is stored: the connection is closed.
    if (packet.qos === 2) {
      metrics.rejected.inc({ reason: 'qos2' });
      log.warn({ clientId: client.id, topic: packet.topic.slice(0, 200) }, 'QoS 2 publish refused (devices publish with QoS 1); connection closed');
      return cb(new Error('QoS 2 is not accepted: publish with QoS 1'));
    }
    packet.retain = false;
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    const v = validateUplinkMessage(packet.topic, payload, config.maxPayloadBytes);
    const refuse = (reason: string, detail: string) => {
      state.addReject(now(), packet.topic, reason, detail, payload);
      metrics.rejected.inc({ reason });
      log.debug({ topic: packet.topic, reason, detail }, 'device message refused');
      cb(null); // acknowledged: re-sending it would not help; it is kept for inspection
    };
    if (!v.ok) return refuse(v.reason, v.detail);
    if (!fitsWhenMarked(packet.topic, payload, config.maxPayloadBytes)) {
      return refuse('too_large', `payload is ${payload.length} bytes: a replay after an outage adds "historical": true, and it would then be over ${config.maxPayloadBytes} bytes`);
    }
    if (v.topic.region !== region || v.topic.hub !== hubId) return refuse('foreign_hub', `this agent serves ${region}/${hubId}`);
    if (v.route === 'status' || v.route === 'mode-ack') return refuse('agent_owned', `${v.route} is published by the agent, not by devices`);
    // A device publishes only as itself: the topic's device (which the contract ties to the
    // payload's) or, for a command ack, the payload's device must be its login.
    const login = loginOf.get(client);
    const claimed = v.route === 'device' ? v.topic.device : v.route === 'cmd-ack' ? v.message.device : undefined;
    if (login !== null && claimed !== login) return refuse('not_this_device', `login ${String(login)} may not publish as device ${String(claimed)}`);
    const id = (v.message as { id?: string }).id ?? '';
    if (id.startsWith(AGENT_ID_PREFIX)) return refuse('agent_id', `message ids starting with "${AGENT_ID_PREFIX}" belong to the agent`);
    if (v.route === 'cmd-ack') {
      // Only a command this agent relayed can be answered, and only by its device: an answer to one it
      // does not know (its link down, or the answer ahead of the command) let a device settle another
      // device's command, whose id it can predict (found in review).
      const known = state.command(v.message.commandId);
      if (!known) return refuse('unknown_command', `command ${v.message.commandId} was not relayed by this agent`);
      if (known.device !== v.message.device) return refuse('not_this_device', `command ${v.message.commandId} was sent to device ${known.device}`);
    }
    if (v.route === 'device' && v.message.type === 'locker.telemetry') latest.lockers.set(v.message.device, v.message);
    if (v.route === 'device' && v.message.type === 'sensor.telemetry') latest.sensors.set(v.message.device, v.message);
    append(v, packet.topic, payload).then(
      (outcome) => {
        if (outcome === 'refused_full') return cb(new Error('outbox full'));
        // Settled only once the answer is in the outbox: refused (full, or a disk error) it is not
        // acknowledged to the device, and the command's timeout still stands should it never come again.
        // The answer is stored: a failed state write is reported, and the device still gets its PUBACK.
        if (v.route === 'cmd-ack') storage.guard('command_ack', () => onDeviceCommandAck(v.message));
        cb(null);
      },
      (err: Error) => {
        log.debug({ err: err.message }, 'outbox append failed; the device will re-send');
        cb(err);
      },
    );
  }
  // Devices talk to the agent, never to each other [issue 11]. Whatever a device publishes (accepted,
  // refused, or its last will) ends in authorizePublish — in the outbox or the dead letters — and is
  // not delivered on the local broker: a refused message is acknowledged (re-sending would not help),
  // and aedes would otherwise still hand it to subscribers — a forged command on another device's
  // cmd topic — or to its own $SYS listeners, where `$SYS/<broker>/new/clients` makes it close the
  // client of that id. Only the agent's relays and aedes' own $SYS messages (no client) go out.
  const deliver = broker.publish.bind(broker) as (packet: unknown, client: unknown, done?: (err?: Error) => void) => void;
  (broker as unknown as { publish: typeof deliver }).publish = (packet, client, done) => {
    if (typeof client === 'function') return deliver(packet, null, client as (err?: Error) => void);
    if (client) return done?.();
    return deliver(packet, client, done);
  };
  // Packet size limit like the cloud's: a packet announcing more than the payload limit plus
  // headroom closes the connection before its body is buffered (aedes has no such limit itself).
  const maxPacketBytes = config.maxPayloadBytes + PACKET_HEADROOM_BYTES;
  // Connections are capped in all and per address [issue 11]: every TCP connection costs a file
  // descriptor and ~9 KB until it logs in or connectTimeout (10 s) ends it, so without a cap anyone on
  // the hub's Wi-Fi could hold thousands open (measured: 9,000 → 6,300 fds, +56 MB) and, at the fd
  // limit, starve the agent's own uplink and databases.
  const perAddress = new Map<string, number>();
  /** Connections that have not logged in yet, oldest first (LOCAL_MAX_UNAUTHENTICATED). */
  const notLoggedIn = new Set<net.Socket>();
  const mqttServer = net.createServer((socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    const held = perAddress.get(address) ?? 0;
    if (held >= config.local.maxConnectionsPerAddress) {
      metrics.refusedConnections.inc({ reason: 'per_address' });
      log.warn({ remote: address, limit: config.local.maxConnectionsPerAddress }, 'local MQTT connection refused: too many from this address');
      socket.destroy();
      return;
    }
    perAddress.set(address, held + 1);
    socket.once('close', () => {
      const n = (perAddress.get(address) ?? 1) - 1;
      if (n > 0) perAddress.set(address, n);
      else perAddress.delete(address);
      notLoggedIn.delete(socket);
    });
    // Not logged in yet: a device logs in within milliseconds of connecting, so when the pool is full
    // the connection waiting longest is an idle one — closed to make room. Without the pool, idle
    // sockets from a few addresses on the LAN held every slot of LOCAL_MAX_CONNECTIONS and kept the
    // hub's devices out (48 of 50 logins refused, found in review).
    if (notLoggedIn.size >= config.local.maxUnauthenticated) {
      const oldest = notLoggedIn.values().next().value!;
      notLoggedIn.delete(oldest);
      metrics.refusedConnections.inc({ reason: 'not_logged_in_evicted' });
      log.warn({ remote: oldest.remoteAddress, limit: config.local.maxUnauthenticated }, 'local MQTT connection closed: it had not logged in and a new one needed its place');
      oldest.destroy();
    }
    notLoggedIn.add(socket);
    limitMqttFrames(socket, maxPacketBytes, (reason, announced) => {
      metrics.refusedPackets.inc({ reason });
      log.warn({ reason, announced, limit: maxPacketBytes, remote: socket.remoteAddress }, 'MQTT packet refused (over the size limit, malformed or stalled); connection closed');
    }, PACKET_TIMEOUT_MS);
    broker.handle(socket);
  });
  mqttServer.maxConnections = config.local.maxConnections; // beyond it node closes the socket and emits 'drop'
  mqttServer.on('drop', (data) => {
    metrics.refusedConnections.inc({ reason: 'total' });
    log.warn({ remote: data?.remoteAddress, limit: config.local.maxConnections }, 'local MQTT connection refused: connection limit reached');
  });
  const mqttPort = await listen(mqttServer, config.local.bindHost, config.local.mqttPort);

  // ------------------------------------------------------------------ commands (at most once)
  const timers = new Map<string, NodeJS.Timeout>();
  const noAnswerDetail = `the device did not answer within ${config.commandTimeoutMs / 1000} s`;
  function onDeviceCommandAck(ack: CommandAck): void {
    const known = state.command(ack.commandId);
    // The device's own answer settles the command — also after the agent gave up waiting ("failed",
    // provisional): a late answer says what the device did [issue 12, defect 5]; the cloud keeps both.
    const settled = known?.state === 'relayed' || (known?.state === 'failed' && known.detail === noAnswerDetail);
    // The timeout first: the answer is in the outbox, so a state write failing below must not also send "did not answer".
    const t = timers.get(ack.commandId);
    if (t) clearTimeout(t);
    timers.delete(ack.commandId);
    if (settled) state.setCommand(ack.commandId, ack.result === 'duplicate' ? 'done' : ack.result === 'expired' ? 'expired' : ack.result, ack.detail ?? null);
  }

  const onCommand = (topicName: string, payload: Buffer) => storage.guard('command', () => relayCommand(topicName, payload));
  const relayCommand = (topicName: string, payload: Buffer) => {
    let json: unknown;
    try {
      json = JSON.parse(payload.toString('utf8'));
    } catch {
      log.warn({ topic: topicName }, 'command is not JSON; ignored');
      return;
    }
    const parsed = Command.safeParse(json);
    const t = parseTopic(topicName);
    if (!parsed.success || t?.route !== 'command' || parsed.data.hub !== hubId || parsed.data.device !== t.device) {
      log.warn({ topic: topicName }, 'invalid command; ignored');
      metrics.commands.inc({ result: 'invalid' });
      return;
    }
    const cmd = parsed.data;
    const seen = state.command(cmd.id);
    if (seen) {
      metrics.commands.inc({ result: 'duplicate' });
      void enqueue(topics.commandAck(region, hubId), commandAck(cmd.id, cmd.device, 'duplicate', `already ${seen.state}`));
      return;
    }
    if (cmd.expiresAt < now()) {
      state.addCommand(cmd.id, cmd.device, cmd.command, now(), cmd.expiresAt, 'expired', 'expired before it reached the hub');
      metrics.commands.inc({ result: 'expired' });
      void enqueue(topics.commandAck(region, hubId), commandAck(cmd.id, cmd.device, 'expired', 'expired before it reached the hub'));
      return;
    }
    state.addCommand(cmd.id, cmd.device, cmd.command, now(), cmd.expiresAt, 'relayed', null);
    metrics.commands.inc({ result: 'relayed' });
    broker.publish({ cmd: 'publish', topic: topicName, payload, qos: 1, retain: false, dup: false }, () => undefined);
    timers.set(cmd.id, setTimeout(() => storage.guard('command_timeout', () => {
      timers.delete(cmd.id);
      if (state.command(cmd.id)?.state !== 'relayed') return;
      const detail = noAnswerDetail;
      // Recorded failed once the result is in the outbox (a full disk: tried again until it is).
      void enqueue(topics.commandAck(region, hubId), commandAck(cmd.id, cmd.device, 'failed', detail), () => {
        if (state.command(cmd.id)?.state === 'relayed') state.setCommand(cmd.id, 'failed', detail);
      });
    }), config.commandTimeoutMs));
  };

  // ------------------------------------------------------------------ mode
  const modeAck = (m: ModeState): ModeAck => ({
    v: 1, type: 'hub.mode-ack', id: nextId(), ts: now(), hub: hubId, version: m.version, mode: m.mode, source: m.source, ...(m.reason ? { reason: m.reason.slice(0, 500) } : {}),
  });
  const onRegionMode = (payload: Buffer) => storage.guard('region_mode', () => applyRegionMode(payload));
  const applyRegionMode = (payload: Buffer) => {
    let parsed;
    try {
      parsed = RegionMode.safeParse(JSON.parse(payload.toString('utf8')));
    } catch {
      return;
    }
    if (!parsed.success || parsed.data.region !== region) return;
    const rm = parsed.data;
    const current = state.mode();
    // A newer desired state from the cloud wins; the same version re-delivered (retained) does not
    // undo a local switch made since. Reconciliation beyond that belongs to the cloud.
    if (rm.version <= current.version) return;
    const desired = rm.hubs[hubId] ?? rm.mode;
    // A switch hub staff made here after the coordinator's (wall clock), while the link was down, is not
    // undone by it, not even for a moment: the hub keeps its own mode. Its local acknowledgement (in the
    // outbox) tells the cloud, which shows the two as a conflict and keeps the later; a coordinator
    // decides with a newer switch [issue 12, defect 10].
    if (current.source === 'local' && current.changedAt > rm.ts && desired !== current.mode) {
      log.warn({ mode: current.mode, coordinatorVersion: rm.version, coordinatorMode: desired }, 'region mode older than the local switch; the local switch is kept');
      return;
    }
    const next: ModeState = { mode: desired, version: rm.version, source: 'cloud', reason: rm.reason, changedAt: now() };
    state.setMode(next);
    log.info({ mode: next.mode, version: next.version }, 'region mode applied');
    void enqueue(topics.modeAck(region, hubId), modeAck(next));
  };

  const uplink = new Uplink({
    urls: config.cloud.urls, username: config.cloud.username, password: config.cloud.password,
    ca: config.cloud.caFile ? fs.readFileSync(config.cloud.caFile) : undefined,
    onStorageError: (where, err) => storage.failed(where, err),
    region, hubId, agent: AGENT_NAME, window: config.uplink.window, backoffMaxMs: config.uplink.backoffMaxMs, homeReturnMs: config.uplink.homeReturnMs,
    historicalAfterMs: config.uplink.historicalAfterMs, statusIntervalMs: config.uplink.statusIntervalMs, outbox, logger: log, now,
    onMessage: (topicName, payload) => {
      const t = parseTopic(topicName);
      if (t?.route === 'command') onCommand(topicName, payload);
      else if (t?.route === 'region-mode') onRegionMode(payload);
      else if (t?.route === 'ack') log.info({ payload: payload.toString('utf8').slice(0, 300) }, 'acknowledgement from the cloud');
    },
  });
  uplink.start();

  // A restart while a device had not answered: say so instead of leaving the command open. This runs
  // only once the uplink exists (appends read its link state) [issue 12: before, the first append
  // hit the uplink's temporal dead zone, an un-awaited rejection that crashed the process, and the
  // result was never sent]. The command is marked failed once its result is in the outbox, so a
  // result that could not be stored is tried again at the next start.
  const RESTARTED = 'the hub agent restarted before the device answered';
  for (const c of state.relayedCommands()) {
    void enqueue(topics.commandAck(region, hubId), commandAck(c.commandId, c.device, 'failed', RESTARTED), () => state.setCommand(c.commandId, 'failed', RESTARTED));
  }

  const maintenance = setInterval(() => {
    storage.guard('outbox_maintenance', () => outbox.maintain());
    storage.guard('state_maintenance', () => state.pruneCommands(now()));
  }, 10_000);

  const switchModeLocally = async (mode: Mode, reason: string): Promise<ModeState> => {
    const next: ModeState = { mode, version: state.mode().version, source: 'local', reason, changedAt: now() };
    state.setMode(next);
    log.warn({ mode, reason }, 'mode switched locally by hub staff');
    await enqueue(topics.modeAck(region, hubId), modeAck(next));
    return next;
  };

  /** Hub staff re-send a quarantined message [issue 12]: it goes back into the outbox at its old place. */
  const resendQuarantined = (seq: number): 'requeued' | 'not_found' | 'invalid' => {
    const q = outbox.quarantined(seq);
    if (!q) return 'not_found';
    const v = validateUplinkMessage(q.topic, q.payload, config.maxPayloadBytes);
    if (!v.ok) return 'invalid';
    if (!outbox.requeue(seq, laneOf(v), (v.message as { ts: number }).ts)) return 'not_found';
    log.warn({ seq, topic: q.topic, device: q.device, id: q.msgId }, 'quarantined message re-sent by hub staff');
    uplink.requestPump();
    return 'requeued';
  };

  const api = await buildLocalApi({
    hubId, region, agent: AGENT_NAME, outbox, uplink, state, metrics, logger: log, latest, switchModeLocally, resendQuarantined, storage, now,
    isStaff: (authorization) => staffToken.verifyHeader(authorization),
  });
  await api.listen({ host: config.local.httpBindHost, port: config.local.httpPort });
  const httpPort = (api.server.address() as net.AddressInfo).port;
  const reachable = (bind: string) => (bind === '0.0.0.0' || bind === '::' ? '127.0.0.1' : bind.includes(':') ? `[${bind}]` : bind);
  log.info({
    localMqtt: `${config.local.bindHost}:${mqttPort}`, localHttp: `${config.local.httpBindHost}:${httpPort}`, outboxDepth: outbox.depth,
    deviceLogins: deviceCredentials.devices.length, deviceCredentialsFile: deviceCredentials.file, staffTokenFile: staffToken.file,
  }, 'edge agent ready');

  let closing: Promise<void> | null = null;
  return {
    hubId, outbox, uplink, state, switchModeLocally,
    ports: { mqtt: mqttPort, http: httpPort },
    localMqttUrl: `mqtt://${reachable(config.local.bindHost)}:${mqttPort}`,
    localHttpUrl: `http://${reachable(config.local.httpBindHost)}:${httpPort}`,
    deviceCredentialsFile: deviceCredentials.file,
    staffTokenFile: staffToken.file,
    close: () =>
      (closing ??= (async () => {
        closed = true;
        clearInterval(maintenance);
        for (const t of timers.values()) clearTimeout(t);
        for (const t of retries) clearTimeout(t);
        mqttServer.close();
        await new Promise<void>((r) => broker.close(() => r()));
        await api.close();
        await uplink.close();
        outbox.close();
        state.close();
      })()),
  };
}

/** The hub's devices that get a local login: EDGE_DEVICES plus the hub's devices in REGION_FILE. */
function hubDevices(config: EdgeConfig): string[] {
  const ids = new Set(config.devices.ids);
  if (config.devices.regionFile) {
    const region = RegionFile.parse(JSON.parse(fs.readFileSync(config.devices.regionFile, 'utf8')));
    const hub = region.hubs.find((h) => h.id === config.hubId);
    if (!hub) throw new Error(`REGION_FILE=${config.devices.regionFile}: hub ${config.hubId} is not in region ${region.id}`);
    for (const d of [...hub.drones.map((x) => x.id), ...hub.lockers.map((x) => x.id), ...hub.sensors]) ids.add(d);
  }
  return [...ids];
}

/** `v1/<region>/<hub>/cmd/<kind>/<device>` with kind a device kind or `+`, and device = the login (any device when anonymous). */
function isOwnCommandFilter(filter: string, region: string, hubId: string, login: string | null): boolean {
  if (login === null && filter === `v1/${region}/${hubId}/cmd/#`) return true;
  const p = filter.split('/');
  if (p.length !== 6 || p[0] !== 'v1' || p[1] !== region || p[2] !== hubId || p[3] !== 'cmd') return false;
  const kindOk = p[4] === '+' || (DEVICE_KINDS as readonly string[]).includes(p[4]!);
  const deviceOk = login === null ? p[5] === '+' || /^[a-z0-9-]+$/.test(p[5]!) : p[5] === login;
  return kindOk && deviceOk;
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
