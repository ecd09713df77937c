import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { Command, CommandAck, HubStatus, hubClientId, MessageId, parseTopic, schemaForTopic, topics } from '../contract/index.ts';
import type { DeviceOutput } from './devices/hub-devices.ts';

/**
 * One hub's MQTT connection, as the simulator uses it: QoS 1, the hub's own credentials (or none,
 * on a hub-local broker that admits its devices anonymously), and — when the hub talks to the
 * cloud directly — a retained `hub.status` "online" birth message on every connect and a retained
 * "offline" last will. Behind an edge agent (`publishStatus: false`) the agent owns the hub's
 * status, so the devices send neither.
 *
 * Commands: it subscribes to the hub's `cmd/#` (QoS 1) on every connect, checks each command
 * against the contract and hands it to `onCommand`; `sendAck` publishes the `hub.command-ack`.
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

  private readonly client: MqttClient;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly statusTopic: string;
  private readonly commandFilter: string;
  private readonly publishStatus: boolean;
  private readonly counts = { published: 0, acked: 0, skipped: 0, failed: 0, connects: 0, commands: 0, commandAcks: 0 };
  private pending = 0;
  private readonly sentIds: string[] = [];
  private readonly ackIds: string[] = [];
  private lastError = '';
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
    if (opts.username !== undefined) options.username = opts.username;
    if (opts.password !== undefined) options.password = opts.password;
    if (this.publishStatus) options.will = { topic: this.statusTopic, payload: this.statusPayload('offline'), qos: 1, retain: true };
    this.client = connect(opts.brokerUrl, options);

    let settle!: () => void;
    this.firstAttempt = new Promise<void>((resolve) => (settle = resolve));
    this.client.once('close', () => settle());

    this.client.on('connect', () => {
      settle();
      this.counts.connects += 1;
      this.lastError = '';
      this.log.info({ connects: this.counts.connects, pending: this.pending }, this.counts.connects === 1 ? 'connected' : 'reconnected');
      if (opts.onCommand) this.subscribeToCommands();
      if (!this.publishStatus) return;
      // Birth message (retained): the hub is online; its depth says how much is still queued.
      this.client.publish(this.statusTopic, this.statusPayload('online'), { qos: 1, retain: true }, (err) => {
        if (err && !this.closed) this.log.warn({ err: err.message }, 'birth message not acknowledged');
      });
    });
    this.client.on('message', (topic, payload) => this.receive(topic, payload));
    this.client.on('reconnect', () => {
      // The last will is sent with each CONNECT; give it the time of this attempt.
      if (this.client.options.will) this.client.options.will.payload = this.statusPayload('offline');
    });
    this.client.on('offline', () => {
      if (!this.closed) this.log.warn({ pending: this.pending }, 'disconnected; reconnecting');
    });
    this.client.on('error', (err) => {
      settle();
      // Refused credentials need a person; other errors repeat on every retry, so log each kind once.
      const code = (err as Error & { code?: number | string }).code;
      if (err.message === this.lastError) return;
      this.lastError = err.message;
      if (code === 4 || code === 5 || code === 134 || code === 135) this.log.error({ err: err.message, code }, 'broker refused the hub credentials');
      else this.log.warn({ err: err.message, code }, 'mqtt error');
    });
  }

  get connected(): boolean {
    return this.client.connected;
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
      this.client.publish(topic, JSON.stringify(out.message), { qos: 1 }, (err) => {
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
    this.log.debug({ topic, id: ack.id, commandId: ack.commandId, result: ack.result }, 'publish command ack');
    await this.client.publishAsync(topic, JSON.stringify(checked.data), { qos: 1 });
    this.counts.commandAcks += 1;
  }

  stats(): HubConnectionStats {
    return { ...this.counts, pending: this.pending, connected: this.client.connected };
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
    if (this.client.connected) {
      const offline = this.publishStatus
        ? this.client.publishAsync(this.statusTopic, this.statusPayload('offline'), { qos: 1, retain: true })
        : Promise.resolve();
      // end(false) waits for in-flight messages to be acknowledged.
      const graceful = offline.then(() => this.client.endAsync(false));
      const ok = await withTimeout(graceful, CLOSE_GRACE_MS);
      if (ok) return;
      this.log.warn({ pending: this.pending }, 'broker did not acknowledge in time; closing anyway');
    }
    await this.client.endAsync(true);
  }

  private subscribeToCommands(): void {
    this.client.subscribe(this.commandFilter, { qos: 1 }, (err, granted) => {
      if (this.closed) return;
      // A SUBACK return code of 0x80 (MQTT 5: any code ≥ 0x80) means the broker refused the filter [MQTT-3.9.3].
      if (err || granted?.some((g) => (g.qos as number) >= 0x80)) {
        this.log.error({ filter: this.commandFilter, err: err?.message }, 'broker refused the command subscription; commands will not arrive');
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
