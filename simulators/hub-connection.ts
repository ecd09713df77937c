import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { Command, CommandAck, HubStatus, hubClientId, MessageId, parseTopic, schemaForTopic, topics, type DeviceKind } from '../contract/index.ts';
import type { DeviceOutput } from './devices/hub-devices.ts';

/**
 * One hub's MQTT connection, as the simulator uses it: QoS 1, the hub's own credentials (or none,
 * on a hub-local broker that admits its devices anonymously), and — when the hub talks to the
 * cloud directly — a retained `hub.status` "online" birth message on every connect and a retained
 * "offline" last will. Behind an edge agent (`publishStatus: false`) the agent owns the hub's
 * status, so the devices send neither.
 *
 * Behind an edge agent that gives each device its own login (`deviceLogins`, from the agent's
 * device-credentials.json [issue 11]) it is one connection per device instead — an MQTT connection
 * has one login — each with client id `<device>.sim`, publishing only that device's messages and
 * subscribed only to that device's commands. Counters and id histories stay per hub.
 *
 * Commands: it subscribes to the hub's `cmd/#` (per device: `cmd/+/<device>`) (QoS 1) on every
 * connect, checks each command against the contract and hands it to `onCommand`; `sendAck`
 * publishes the `hub.command-ack`.
 *
 * Deliberately thin — the edge agent's store-and-forward outbox is what keeps messages across
 * outages; this only keeps mqtt.js from buffering without bound while the broker is unreachable:
 * telemetry is skipped (and counted) once `maxPending` messages await a PUBACK; events get twice
 * that headroom.
 */
export interface HubConnectionOptions {
  brokerUrl: string;
  regionId: string;
  hubId: string;
  /** Omitted: connect without username and password. */
  username?: string;
  password?: string;
  /**
   * Per-device logins (device id → username/password) of a hub-local broker: one connection per
   * device with a login instead of one for the hub. Messages of a device without one fail.
   */
  deviceLogins?: Record<string, { username: string; password: string }>;
  /** Publish the retained birth "online" / last will "offline" `hub.status`. Default true. */
  publishStatus?: boolean;
  /** Called with every command that arrives on the hub's `cmd/#` topics. */
  onCommand?: (incoming: IncomingCommand) => void;
  logger: Logger;
  /** Messages that may await a PUBACK before telemetry is skipped. */
  maxPending: number;
  /** How many published/acked ids to remember for `publishedIds()`/`ackedIds()`. */
  idHistory: number;
  /** Value of the `agent` field of hub.status. */
  agent: string;
  mqttOptions?: Partial<IClientOptions>;
  /** Clock for hub.status timestamps (epoch ms). */
  now?: () => number;
}

export interface HubConnectionStats {
  /** Device messages handed to the MQTT client. */
  published: number;
  /** Device messages the broker acknowledged (PUBACK). */
  acked: number;
  /** Device messages not sent because too many were waiting for a PUBACK. */
  skipped: number;
  /** Device messages whose publish failed (e.g. the connection was closed for good). */
  failed: number;
  /** Messages waiting for a PUBACK now. */
  pending: number;
  connected: boolean;
  /** Times the connection came up (first connect included). */
  connects: number;
  /** Messages received on the hub's command topics (valid or not). */
  commands: number;
  /** Command acknowledgements the broker acknowledged (PUBACK). */
  commandAcks: number;
}

/**
 * A command as it arrived: valid, or invalid but with an id the hub can answer ('rejected').
 * Commands without a usable id cannot be answered; they are logged and dropped.
 */
export type IncomingCommand =
  | { ok: true; command: Command }
  | { ok: false; commandId: string; device: string; reason: string };

export type SendResult = 'sent' | 'skipped';

/** How long `close()` waits for the offline status and in-flight PUBACKs before cutting the link. */
const CLOSE_GRACE_MS = 2000;

export class HubConnection {
  readonly hubId: string;
  /** Resolves after the first connection attempt succeeded or failed (never rejects). */
  readonly firstAttempt: Promise<void>;

  /** The hub's one connection (key null), or one per device (key: device id). */
  private readonly links = new Map<string | null, MqttClient>();
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly statusTopic: string;
  private readonly commandFilter: string;
  private readonly publishStatus: boolean;
  private readonly counts = { published: 0, acked: 0, skipped: 0, failed: 0, connects: 0, commands: 0, commandAcks: 0 };
  private pending = 0;
  private readonly sentIds: string[] = [];
  private readonly ackIds: string[] = [];
  private closed = false;

  constructor(private readonly opts: HubConnectionOptions) {
    this.hubId = opts.hubId;
    this.now = opts.now ?? Date.now;
    this.log = opts.logger.child({ hub: opts.hubId });
    this.statusTopic = topics.status(opts.regionId, opts.hubId);
    this.publishStatus = opts.publishStatus ?? true;
    const commandFilter = topics.hubSubscriptions(opts.regionId, opts.hubId).find((f) => f.endsWith('/cmd/#'));
    if (!commandFilter) throw new Error('the contract lists no command subscription for a hub');
    this.commandFilter = commandFilter;

    const options: IClientOptions = {
      clientId: hubClientId(opts.hubId, 'sim'), // the cloud takes only the hub's own ids (contract/client-id.ts)
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      clean: true,
      ...opts.mqttOptions,
      // Subscribed explicitly on every connect (clean session), so mqtt.js must not do it a second time.
      resubscribe: false,
    };
    delete options.username;
    delete options.password;
    delete options.will;
    if (opts.deviceLogins) {
      // The agent owns the hub's status; devices send none (publishStatus is false behind an agent).
      for (const [device, login] of Object.entries(opts.deviceLogins)) {
        const filter = topics.command(opts.regionId, opts.hubId, '+' as DeviceKind, device);
        this.links.set(device, this.open({ ...options, clientId: `${device}.sim`, username: login.username, password: login.password }, filter, device));
      }
    } else {
      if (opts.username !== undefined) options.username = opts.username;
      if (opts.password !== undefined) options.password = opts.password;
      if (this.publishStatus) options.will = { topic: this.statusTopic, payload: this.statusPayload('offline'), qos: 1, retain: true };
      this.links.set(null, this.open(options, this.commandFilter, null));
    }
    this.firstAttempt = Promise.all(this.firstAttempts).then(() => undefined);
  }

  private readonly firstAttempts: Promise<void>[] = [];

  /** Opens one connection: the hub's (device null) or one device's. */
  private open(options: IClientOptions, commandFilter: string, device: string | null): MqttClient {
    const client = connect(this.opts.brokerUrl, options);
    const log = device === null ? this.log : this.log.child({ device });
    let settle!: () => void;
    this.firstAttempts.push(new Promise<void>((resolve) => (settle = resolve)));
    client.once('close', () => settle());
    let connects = 0;
    let lastError = '';

    client.on('connect', () => {
      settle();
      connects += 1;
      this.counts.connects += 1;
      lastError = '';
      log.info({ connects, pending: this.pending }, connects === 1 ? 'connected' : 'reconnected');
      if (this.opts.onCommand) this.subscribeToCommands(client, commandFilter);
      if (!this.publishStatus || device !== null) return;
      // Birth message (retained): the hub is online; its depth says how much is still queued.
      client.publish(this.statusTopic, this.statusPayload('online'), { qos: 1, retain: true }, (err) => {
        if (err && !this.closed) log.warn({ err: err.message }, 'birth message not acknowledged');
      });
    });
    client.on('message', (topic, payload) => this.receive(topic, payload));
    client.on('reconnect', () => {
      // The last will is sent with each CONNECT; give it the time of this attempt.
      if (client.options.will) client.options.will.payload = this.statusPayload('offline');
    });
    client.on('offline', () => {
      if (!this.closed) log.warn({ pending: this.pending }, 'disconnected; reconnecting');
    });
    client.on('error', (err) => {
      settle();
      // Refused credentials need a person; other errors repeat on every retry, so log each kind once.
      const code = (err as Error & { code?: number | string }).code;
      if (err.message === lastError) return;
      lastError = err.message;
      if (code === 4 || code === 5 || code === 134 || code === 135) log.error({ err: err.message, code }, device === null ? 'broker refused the hub credentials' : 'broker refused the device login');
      else log.warn({ err: err.message, code }, 'mqtt error');
    });
    return client;
  }

  /** The connection that carries `device`'s messages; undefined for a device without a login. */
  private linkFor(device: string): MqttClient | undefined {
    return this.links.get(null) ?? this.links.get(device);
  }

  /** True while every connection of the hub is up. */
  get connected(): boolean {
    return [...this.links.values()].every((c) => c.connected);
  }

  /**
   * Publishes one device message (QoS 1). Resolves with 'sent' once the broker acknowledged it,
   * or 'skipped' at once when the pending bound is reached (unless `force`). Throws if the
   * message does not pass its contract schema — that is a simulator bug, never sent.
   */
  send(out: DeviceOutput, { force = false }: { force?: boolean } = {}): Promise<SendResult> {
    const topic = topics.device(this.opts.regionId, this.hubId, out.kind, out.device, out.channel);
    const parsed = parseTopic(topic);
    const check = parsed ? schemaForTopic(parsed).safeParse(out.message) : null;
    if (!check?.success) {
      throw new Error(`simulator produced an invalid ${out.message.type} for ${topic}: ${check?.error.message ?? 'topic outside the contract'}`);
    }
    const client = this.linkFor(out.device);
    if (!client) {
      this.counts.failed += 1;
      return Promise.reject(new Error(`no local login for device ${out.device} of hub ${this.hubId}; ${out.message.type} not sent`));
    }
    const bound = out.channel === 'event' ? 2 * this.opts.maxPending : this.opts.maxPending;
    if (!force && this.pending >= bound) {
      this.counts.skipped += 1;
      if (this.counts.skipped === 1 || this.counts.skipped % 1000 === 0) {
        this.log.warn({ skipped: this.counts.skipped, pending: this.pending }, 'broker not acknowledging; skipping messages');
      }
      return Promise.resolve('skipped');
    }
    const id = out.message.id;
    this.pending += 1;
    this.counts.published += 1;
    remember(this.sentIds, id, this.opts.idHistory);
    this.log.debug({ topic, id }, 'publish');
    return new Promise<SendResult>((resolve, reject) => {
      client.publish(topic, JSON.stringify(out.message), { qos: 1 }, (err) => {
        this.pending -= 1;
        if (err) {
          this.counts.failed += 1;
          reject(new Error(`publish of ${id} on ${topic} failed: ${err.message}`));
          return;
        }
        this.counts.acked += 1;
        remember(this.ackIds, id, this.opts.idHistory);
        resolve('sent');
      });
    });
  }

  /** Publishes a command acknowledgement (QoS 1); resolves once the broker acknowledged it. */
  async sendAck(ack: CommandAck): Promise<void> {
    const checked = CommandAck.safeParse(ack);
    if (!checked.success) throw new Error(`simulator produced an invalid hub.command-ack: ${checked.error.message}`);
    const topic = topics.commandAck(this.opts.regionId, this.hubId);
    const client = this.linkFor(ack.device);
    if (!client) throw new Error(`no local login for device ${ack.device} of hub ${this.hubId}; command ack not sent`);
    this.log.debug({ topic, id: ack.id, commandId: ack.commandId, result: ack.result }, 'publish command ack');
    await client.publishAsync(topic, JSON.stringify(checked.data), { qos: 1 });
    this.counts.commandAcks += 1;
  }

  stats(): HubConnectionStats {
    return { ...this.counts, pending: this.pending, connected: this.connected };
  }

  publishedIds(): string[] {
    return [...this.sentIds];
  }

  ackedIds(): string[] {
    return [...this.ackIds];
  }

  /**
   * Says "offline" (retained, unless `publishStatus` is off) and disconnects. A clean DISCONNECT
   * suppresses the last will [MQTT-3.14.4-3], so without this the retained status would stay "online".
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.links].map(async ([device, client]) => {
      if (client.connected) {
        const offline = this.publishStatus && device === null
          ? client.publishAsync(this.statusTopic, this.statusPayload('offline'), { qos: 1, retain: true })
          : Promise.resolve();
        // end(false) waits for in-flight messages to be acknowledged.
        const graceful = offline.then(() => client.endAsync(false));
        const ok = await withTimeout(graceful, CLOSE_GRACE_MS);
        if (ok) return;
        this.log.warn({ pending: this.pending, device }, 'broker did not acknowledge in time; closing anyway');
      }
      await client.endAsync(true);
    }));
  }

  private subscribeToCommands(client: MqttClient, filter: string): void {
    client.subscribe(filter, { qos: 1 }, (err, granted) => {
      if (this.closed) return;
      // A SUBACK return code of 0x80 (MQTT 5: any code ≥ 0x80) means the broker refused the filter [MQTT-3.9.3].
      if (err || granted?.some((g) => (g.qos as number) >= 0x80)) {
        this.log.error({ filter, err: err?.message }, 'broker refused the command subscription; commands will not arrive');
      }
    });
  }

  /** Checks one message from the command topics and hands it on; never throws (it runs inside mqtt.js). */
  private receive(topicName: string, payload: Buffer): void {
    const topic = parseTopic(topicName);
    if (topic?.route !== 'command' || topic.region !== this.opts.regionId || topic.hub !== this.hubId) {
      this.log.warn({ topic: topicName }, 'message on a topic that is not this hub\'s command topic; ignored');
      return;
    }
    this.counts.commands += 1;
    const reject = (commandId: unknown, reason: string): void => {
      const id = MessageId.safeParse(commandId);
      if (!id.success) {
        this.log.warn({ topic: topicName, reason }, 'invalid command without a usable id; dropped');
        return;
      }
      this.log.warn({ topic: topicName, commandId: id.data, reason }, 'invalid command; rejecting it');
      this.deliver({ ok: false, commandId: id.data, device: topic.device, reason });
    };
    let json: unknown;
    try {
      json = JSON.parse(payload.toString('utf8'));
    } catch (err) {
      reject(undefined, `not JSON: ${(err as Error).message}`);
      return;
    }
    const parsed = Command.safeParse(json);
    if (!parsed.success) {
      const issues = parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
      reject((json as { id?: unknown } | null)?.id, `invalid command: ${issues.join('; ')}`);
      return;
    }
    const cmd = parsed.data;
    if (cmd.hub !== this.hubId) return reject(cmd.id, `command for hub ${cmd.hub} on hub ${this.hubId}'s topic`);
    if (cmd.device !== topic.device) return reject(cmd.id, `device ${cmd.device} in the payload differs from ${topic.device} in the topic`);
    if (!cmd.command.startsWith(`${topic.kind}.`)) return reject(cmd.id, `${cmd.command} sent on a ${topic.kind} topic`);
    this.log.debug({ commandId: cmd.id, device: cmd.device, command: cmd.command }, 'command received');
    this.deliver({ ok: true, command: cmd });
  }

  private deliver(incoming: IncomingCommand): void {
    try {
      this.opts.onCommand?.(incoming);
    } catch (err) {
      this.log.error({ err: (err as Error).message, commandId: incoming.ok ? incoming.command.id : incoming.commandId }, 'command handler failed');
    }
  }

  private statusPayload(state: 'online' | 'offline'): string {
    const status: HubStatus = {
      v: 1,
      type: 'hub.status',
      hub: this.hubId,
      state,
      ts: Math.round(this.now()),
      agent: this.opts.agent,
      ...(state === 'online' ? { outboxDepth: Math.max(0, this.pending) } : {}),
    };
    return JSON.stringify(HubStatus.parse(status));
  }
}

function remember(list: string[], id: string, limit: number): void {
  list.push(id);
  if (list.length > limit * 1.5) list.splice(0, list.length - limit);
}

async function withTimeout(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([p.then(() => true, () => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
