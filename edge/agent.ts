import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Aedes, type AuthenticateError } from 'aedes';
import {
  Command,
  filterWithin,
  parseTopic,
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
import type { Logger } from '../cloud/logger.ts';
import type { EdgeConfig } from './config.ts';
import { EdgeState, type ModeState } from './edge-state.ts';
import { buildLocalApi } from './local-api.ts';
import { createEdgeMetrics } from './edge-metrics.ts';
import { laneOf } from './outbox/lanes.ts';
import { Outbox, type AppendOutcome } from './outbox/outbox.ts';
import { Uplink } from './uplink.ts';

export const AGENT_NAME = 'chiiki-edge/0.1.0';

export interface EdgeAgent {
  readonly hubId: string;
  readonly ports: { mqtt: number; http: number };
  readonly localMqttUrl: string;
  readonly localHttpUrl: string;
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
  const metrics = createEdgeMetrics(() => outbox.stats(), () => uplink.stats(), now);
  const bootId = `${now().toString(36)}${crypto.randomBytes(2).toString('hex')}`;
  let seq = 0;
  const nextId = () => `agent-${bootId}-${++seq}`;
  const latest = { lockers: new Map<string, LockerTelemetry>(), sensors: new Map<string, SensorTelemetry>() };
  const { region, hubId } = config;

  // ------------------------------------------------------------------ outbox appends
  const append = async (v: ValidMessage, topic: string, payload: Buffer): Promise<AppendOutcome> => {
    const msg = v.message as { id?: string; ts: number; device?: string };
    const outcome = await outbox.append({
      lane: laneOf(v), topic, payload, msgId: msg.id ?? `status-${msg.ts}`, device: msg.device ?? '', deviceTs: msg.ts,
      offline: !uplink.connected,
    });
    metrics.accepted.inc({ outcome });
    uplink.requestPump();
    return outcome;
  };

  /** Messages the agent itself produces (command and mode acks) go through the same checks and outbox. */
  const enqueue = async (topic: string, message: CommandAck | ModeAck): Promise<void> => {
    const payload = Buffer.from(JSON.stringify(message));
    const v = validateUplinkMessage(topic, payload, config.maxPayloadBytes);
    if (!v.ok) {
      log.error({ topic, reason: v.reason, detail: v.detail }, 'the agent produced an invalid message; not sent');
      return;
    }
    await append(v, topic, payload);
  };

  const commandAck = (commandId: string, device: string, result: CommandAck['result'], detail?: string): CommandAck => ({
    v: 1, type: 'hub.command-ack', id: nextId(), ts: now(), hub: hubId, device, commandId, result, ...(detail ? { detail } : {}),
  });

  // ------------------------------------------------------------------ local broker
  const broker = await Aedes.createBroker({
    concurrency: 200,
    maxClientsIdLength: 128,
    connectTimeout: 10_000,
    authenticate: (_client, username, password, cb) => {
      if (!config.local.username) return cb(null, true);
      const ok = username === config.local.username && password !== undefined && safeEqual(password.toString('utf8'), config.local.password ?? '');
      if (ok) return cb(null, true);
      metrics.localAuthFailures.inc();
      cb(Object.assign(new Error('bad username or password'), { returnCode: 4 }) as AuthenticateError, null);
    },
    authorizePublish: (client, packet, cb) => {
      if (!client) return cb(null); // our own relays
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
      if (v.topic.region !== region || v.topic.hub !== hubId) return refuse('foreign_hub', `this agent serves ${region}/${hubId}`);
      if (v.route === 'status' || v.route === 'mode-ack') return refuse('agent_owned', `${v.route} is published by the agent, not by devices`);
      if (v.route === 'cmd-ack') onDeviceCommandAck(v.message);
      if (v.route === 'device' && v.message.type === 'locker.telemetry') latest.lockers.set(v.message.device, v.message);
      if (v.route === 'device' && v.message.type === 'sensor.telemetry') latest.sensors.set(v.message.device, v.message);
      append(v, packet.topic, payload).then(
        (outcome) => (outcome === 'refused_full' ? cb(new Error('outbox full')) : cb(null)),
        (err: Error) => {
          log.error({ err }, 'outbox append failed; the device will re-send');
          cb(err);
        },
      );
    },
    authorizeSubscribe: (_client, sub, cb) => {
      if (filterWithin(sub.topic, `v1/${region}/${hubId}/cmd/#`)) return cb(null, sub);
      metrics.rejected.inc({ reason: 'subscribe_denied' });
      cb(null, null);
    },
  });
  const mqttServer = net.createServer(broker.handle);
  const mqttPort = await listen(mqttServer, config.local.bindHost, config.local.mqttPort);

  // ------------------------------------------------------------------ commands (at most once)
  const timers = new Map<string, NodeJS.Timeout>();
  function onDeviceCommandAck(ack: CommandAck): void {
    const known = state.command(ack.commandId);
    if (known?.state === 'relayed') state.setCommand(ack.commandId, ack.result === 'duplicate' ? 'done' : ack.result === 'expired' ? 'expired' : ack.result, ack.detail ?? null);
    const t = timers.get(ack.commandId);
    if (t) clearTimeout(t);
    timers.delete(ack.commandId);
  }

  const onCommand = (topicName: string, payload: Buffer) => {
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
    timers.set(cmd.id, setTimeout(() => {
      timers.delete(cmd.id);
      if (state.command(cmd.id)?.state !== 'relayed') return;
      const detail = `the device did not answer within ${config.commandTimeoutMs / 1000} s`;
      state.setCommand(cmd.id, 'failed', detail);
      void enqueue(topics.commandAck(region, hubId), commandAck(cmd.id, cmd.device, 'failed', detail));
    }, config.commandTimeoutMs));
  };

  // A restart while a device had not answered: say so instead of leaving the command open.
  for (const c of state.relayedCommands()) {
    state.setCommand(c.commandId, 'failed', 'the hub agent restarted before the device answered');
    void enqueue(topics.commandAck(region, hubId), commandAck(c.commandId, c.device, 'failed', 'the hub agent restarted before the device answered'));
  }

  // ------------------------------------------------------------------ mode
  const modeAck = (m: ModeState): ModeAck => ({
    v: 1, type: 'hub.mode-ack', id: nextId(), ts: now(), hub: hubId, version: m.version, mode: m.mode, source: m.source, ...(m.reason ? { reason: m.reason.slice(0, 500) } : {}),
  });
  const onRegionMode = (payload: Buffer) => {
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
    const next: ModeState = { mode: rm.hubs[hubId] ?? rm.mode, version: rm.version, source: 'cloud', reason: rm.reason, changedAt: now() };
    state.setMode(next);
    log.info({ mode: next.mode, version: next.version }, 'region mode applied');
    void enqueue(topics.modeAck(region, hubId), modeAck(next));
  };

  const uplink = new Uplink({
    url: config.cloud.url, username: config.cloud.username, password: config.cloud.password,
    ca: config.cloud.caFile ? fs.readFileSync(config.cloud.caFile) : undefined,
    region, hubId, agent: AGENT_NAME, window: config.uplink.window, backoffMaxMs: config.uplink.backoffMaxMs,
    historicalAfterMs: config.uplink.historicalAfterMs, statusIntervalMs: config.uplink.statusIntervalMs, outbox, logger: log, now,
    onMessage: (topicName, payload) => {
      const t = parseTopic(topicName);
      if (t?.route === 'command') onCommand(topicName, payload);
      else if (t?.route === 'region-mode') onRegionMode(payload);
      else if (t?.route === 'ack') log.info({ payload: payload.toString('utf8').slice(0, 300) }, 'acknowledgement from the cloud');
    },
  });
  uplink.start();

  const maintenance = setInterval(() => {
    outbox.maintain();
    state.pruneCommands(now());
  }, 10_000);

  const switchModeLocally = async (mode: Mode, reason: string): Promise<ModeState> => {
    const next: ModeState = { mode, version: state.mode().version, source: 'local', reason, changedAt: now() };
    state.setMode(next);
    log.warn({ mode, reason }, 'mode switched locally by hub staff');
    await enqueue(topics.modeAck(region, hubId), modeAck(next));
    return next;
  };

  const api = await buildLocalApi({
    hubId, region, agent: AGENT_NAME, outbox, uplink, state, metrics, logger: log, latest, switchModeLocally, now,
  });
  await api.listen({ host: config.local.bindHost, port: config.local.httpPort });
  const httpPort = (api.server.address() as net.AddressInfo).port;
  const host = config.local.bindHost === '0.0.0.0' ? '127.0.0.1' : config.local.bindHost;
  log.info({ localMqtt: mqttPort, localHttp: httpPort, outboxDepth: outbox.depth }, 'edge agent ready');

  let closing: Promise<void> | null = null;
  return {
    hubId, outbox, uplink, state, switchModeLocally,
    ports: { mqtt: mqttPort, http: httpPort },
    localMqttUrl: `mqtt://${host}:${mqttPort}`,
    localHttpUrl: `http://${host}:${httpPort}`,
    close: () =>
      (closing ??= (async () => {
        clearInterval(maintenance);
        for (const t of timers.values()) clearTimeout(t);
        mqttServer.close();
        await new Promise<void>((r) => broker.close(() => r()));
        await api.close();
        await uplink.close();
        outbox.close();
        state.close();
      })()),
  };
}

function safeEqual(a: string, b: string): boolean {
  const x = crypto.createHash('sha256').update(a).digest();
  const y = crypto.createHash('sha256').update(b).digest();
  return crypto.timingSafeEqual(x, y);
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
