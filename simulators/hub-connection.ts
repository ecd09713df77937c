import { connect, type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { HubStatus, parseTopic, schemaForTopic, topics } from '../contract/index.ts';
import type { DeviceOutput } from './devices/hub-devices.ts';

/**
 * One hub's MQTT connection, as the simulator uses it: the hub's own credentials, QoS 1,
 * a retained `hub.status` "online" birth message on every connect and a retained "offline"
 * last will. Deliberately thin — the edge agent replaces direct publishing with a
 * store-and-forward outbox; until then this keeps mqtt.js from buffering without bound while the
 * broker is unreachable: telemetry is skipped (and counted) once `maxPending` messages await a
 * PUBACK; events get twice that headroom.
 */
export interface HubConnectionOptions {
  brokerUrl: string;
  regionId: string;
  hubId: string;
  username: string;
  password: string;
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
}

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
  private readonly counts = { published: 0, acked: 0, skipped: 0, failed: 0, connects: 0 };
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

    this.client = connect(opts.brokerUrl, {
      clientId: `sim-${opts.hubId}`,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      clean: true,
      ...opts.mqttOptions,
      username: opts.username,
      password: opts.password,
      will: { topic: this.statusTopic, payload: this.statusPayload('offline'), qos: 1, retain: true },
    });

    let settle!: () => void;
    this.firstAttempt = new Promise<void>((resolve) => (settle = resolve));
    this.client.once('close', () => settle());

    this.client.on('connect', () => {
      settle();
      this.counts.connects += 1;
      this.lastError = '';
      this.log.info({ connects: this.counts.connects, pending: this.pending }, this.counts.connects === 1 ? 'connected' : 'reconnected');
      // Birth message (retained): the hub is online; its depth says how much is still queued.
      this.client.publish(this.statusTopic, this.statusPayload('online'), { qos: 1, retain: true }, (err) => {
        if (err && !this.closed) this.log.warn({ err: err.message }, 'birth message not acknowledged');
      });
    });
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
   * Says "offline" (retained) and disconnects. A clean DISCONNECT suppresses the last will
   * [MQTT-3.14.4-3], so without this the retained status would stay "online".
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.client.connected) {
      const offline = this.client.publishAsync(this.statusTopic, this.statusPayload('offline'), { qos: 1, retain: true });
      const graceful = offline.then(() => this.client.endAsync(false));
      const ok = await withTimeout(graceful, CLOSE_GRACE_MS);
      if (ok) return;
      this.log.warn({ pending: this.pending }, 'broker did not acknowledge in time; closing anyway');
    }
    await this.client.endAsync(true);
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
