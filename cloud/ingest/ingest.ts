import type { CommandAck, DeviceMessage, ModeAck } from '../../contract/index.ts';
import { isDataError, type Sql } from '../db/sql.ts';
import type { HubIdentity } from '../hubs/hub-credentials.ts';
import type { LiveState } from '../live/live-state.ts';
import type { Logger } from '../logger.ts';
import type { CloudMetrics } from '../metrics.ts';
import { pointForHubStatus, pointsForMessage } from '../telemetry/points.ts';
import { TelemetryStoreError, type TelemetryPoint, type TelemetryStore } from '../telemetry/telemetry-store.ts';
import { classifyPublish, type RejectionReason } from './classify.ts';
import type { DeadLetterInput, DeadLetterStore } from './dead-letter-store.ts';
import { GroupCommitter } from './group-commit.ts';
import type { KnownCompartments } from './known-compartments.ts';
import { dedupeKeyOf, HUB_LEVEL_DEVICE, type SeenMessage, type SeenMessageStore } from './seen-messages.ts';

/** One PUBLISH as it reached the broker, before any checks. */
export interface InboundPublish {
  topic: string;
  payload: Buffer;
  /** The authenticated hub of the connection; null for a last will published after its client left. */
  from: HubIdentity | null;
  clientId: string | null;
  receivedAt: number;
}

interface Item {
  inbound: InboundPublish;
  /** A mode acknowledgement of a version not issued as far as this process knows: refused only after the region's versions were read again (cluster). */
  recheckModeVersionOf?: string;
  type: string;
  points: TelemetryPoint[];
  deadLetter: DeadLetterInput | null;
  /** Applied to live state after the write succeeded; may return a hook's work still under way. */
  apply: (() => unknown) | null;
  /** Dedupe key of a message with side effects; recorded in the same group commit as its write. */
  seen: SeenMessage | null;
  /**
   * A re-sent copy of a message already taken: acknowledged, but not applied again. Known on receipt
   * for a copy of a message still in flight or recently committed by this process, else found in the
   * group commit (its dedupe id was already remembered) and set there.
   */
  duplicate: boolean;
  /** For a copy of a message still being written: the original's outcome (the copy shares it). */
  original: Promise<void> | null;
  /** Goes through the urgent lane (events, acknowledgements). */
  urgent?: boolean;
  /** A mode acknowledgement, recorded by `hooks.recordModeAcks` inside the group commit. */
  modeAck?: { ack: ModeAck; region: string; receivedAt: number };
  /** A command acknowledgement, applied by `hooks.recordCommandAcks` inside the group commit. */
  commandAck?: { ack: CommandAck; region: string; receivedAt: number };
}

/**
 * Called after the message was stored, once per (hub, device, message id) — re-sent copies are not
 * passed on — in the order the messages arrived. A hook that continues asynchronously returns its
 * promise: `Ingest.close` waits for it, so shutdown does not close the stores under it.
 */
export interface IngestHooks {
  onCommandAck?: (ack: CommandAck, region: string, receivedAt: number) => void | Promise<unknown>;
  onModeAck?: (ack: ModeAck, region: string, receivedAt: number) => void | Promise<unknown>;
  /**
   * Writes mode acknowledgements durably in the group commit's transaction `tx` (with the batch's
   * dedupe ids and dead letters, issue 14); rejects when it could not. Those messages are then
   * neither acknowledged nor remembered, so the hub re-sends them (issue 12, defect 10); the rest of
   * the batch is committed without them. Must be idempotent: it is called with the dedupe ids'
   * write, before they tell which messages are copies, so a copy may be among them (never twice the
   * same message id in one call).
   */
  recordModeAcks?: (acks: { ack: ModeAck; region: string; receivedAt: number }[], tx?: Sql) => Promise<void>;
  /**
   * Applies command acknowledgements (their results) in the group commit's transaction `tx`, with
   * their dedupe ids: a result is recorded exactly when its message is remembered, so neither a crash
   * nor a re-sent copy loses or repeats it (issue 14). Rejects when it could not; those messages are
   * then refused like mode acknowledgements (not acknowledged, not remembered: the hub re-sends them).
   */
  recordCommandAcks?: (acks: { ack: CommandAck; region: string; receivedAt: number }[], tx?: Sql) => Promise<void>;
  /**
   * A device message (telemetry or event, live or historical), after live state took it. Events come once;
   * telemetry has no dedupe memory, so a re-sent copy of telemetry comes again (same id and ts).
   */
  onDeviceMessage?: (message: DeviceMessage, region: string, receivedAt: number) => void | Promise<unknown>;
  /**
   * A device event as soon as it is validated (and is not a re-sent copy), before it is stored: for
   * alarm rules, so an alarm does not wait for the telemetry store. The event is still stored,
   * applied (`onDeviceMessage`) and acknowledged after its write; if the cloud stops before that, the
   * device re-sends it and this hook sees it again — alarm raising is idempotent (a repeat of an
   * active alarm counts, it does not raise another).
   */
  onEventReceived?: (message: DeviceMessage, region: string, receivedAt: number) => void;
}

export interface IngestOptions {
  store: TelemetryStore;
  /** The operational database (`Database.sql`): each group commit's dead letters, dedupe ids and mode acknowledgements go in one transaction. */
  sql: Sql;
  deadLetters: DeadLetterStore;
  live: LiveState;
  metrics: CloudMetrics;
  logger: Logger;
  maxPayloadBytes: number;
  maxBatchPoints: number;
  /**
   * Telemetry lane only: a store write of fewer than `LINGER_MIN_POINTS` points waits up to this
   * long for more (`GroupCommitOptions.linger`; INGEST_LINGER_MS). Absent or 0: written at once.
   */
  lingerMs?: number;
  maxDevicesPerHub: number;
  /** A device timestamp further than this ahead of the cloud's clock is refused (`future_timestamp`). */
  maxFutureSkewMs: number;
  /** The compartments of each locker bank (region file); others are refused (`unknown_compartment`). */
  compartments: KnownCompartments;
  /** The newest mode version the cloud issued for a region (0 before the first switch); a higher acknowledged one is refused. */
  issuedModeVersion: (region: string) => number;
  /**
   * Cluster mode (issue 15): reads the region's newest issued version again before an acknowledgement
   * of a higher one is refused. Another node's switch reaches this node's hubs through the shared broker
   * within milliseconds, before this node learns of the version; refused, those acknowledgements were
   * dead-lettered and PUBACKed, and the hubs stayed "pending" for good. One read serves every message
   * received before it started. Its failure leaves the message unacknowledged (the hub re-sends it).
   */
  refreshIssuedModeVersion?: (region: string, receivedAt: number) => Promise<number>;
  hooks?: IngestHooks;
  /** Dedupe memory for messages with side effects; without it every copy is applied. */
  seen?: SeenMessageStore;
  /** Dedupe keys this process committed lately, kept in memory to know most copies on receipt (default 50,000). */
  recentlySeen?: number;
  /** The newest entries of the dedupe memory at start (`seen.newest`), so copies re-sent right after a restart are known on receipt too. */
  seenAtStart?: readonly SeenMessage[];
}

/**
 * The ingest path: classify → dedupe → group commit (telemetry store + dead letters + dedupe memory)
 * → live state and hooks. `handle` resolves only once the message is durably stored (or durably
 * dead-lettered); the broker sends the QoS 1 PUBACK after that, so a crash before the write loses
 * nothing: the device re-sends.
 *
 * Values are checked against what the cloud knows before anything is stored (issue 11): a device
 * timestamp too far in the future (`future_timestamp`: one bad clock must not pin newest-wins state),
 * a compartment the region file does not give the locker bank (`unknown_compartment`), a mode
 * acknowledgement for a version never issued (`unknown_mode_version`). Such messages are dead-lettered.
 *
 * Dedupe (issue 3): device events, command and mode acknowledgements have side effects, so a re-sent
 * copy — same hub, device and message id — is acknowledged, counted in `ingest_duplicates_total`, and
 * not applied again. The dedupe memory (`seen_messages`) decides, once per group commit and without a
 * database round trip per message (issue 14): the batch's keys are recorded in the commit's
 * transaction, and those already remembered are copies. While the first copy is still being written
 * a copy is recognised from `inFlight` (acknowledged only when the first copy is, and failing with
 * it), and a copy of one this process committed lately (or the memory's newest entries at start,
 * `seenAtStart`) from `recent`, so neither reaches the hooks. A copy only the commit finds (sent to
 * another cloud process, or older) has passed `onEventReceived`, which is idempotent; it is not applied.
 * Telemetry needs no memory: its storage keys make a second write a no-op.
 *
 * One group commit (issue 14): the telemetry write first (its own store), then ONE transaction in the
 * operational database with the batch's dedupe ids, its mode and command acknowledgements
 * (`hooks.recordModeAcks`, `hooks.recordCommandAcks`) and its dead letters: a side effect is recorded
 * exactly when its message is remembered.
 */
export class Ingest {
  private readonly committer: GroupCommitter<Item>;
  /**
   * The urgent lane: device events and command/mode acknowledgements get their own group commits, so
   * an alarm or an acknowledgement is stored and applied within milliseconds instead of waiting behind
   * a batch of thousands of telemetry points. PUBACKs stay in arrival order per connection across both
   * lanes [MQTT-4.6.0-2]: an urgent message is acknowledged only after the earlier telemetry of its
   * connection, and telemetry submitted while urgent messages of its connection are outstanding waits
   * for them. (The broker reads a connection's next packets only once the current ones are
   * acknowledged, so waiting on other connections would delay alarms behind everyone's telemetry.)
   */
  private readonly urgent: GroupCommitter<Item>;
  /** Per connection (client id): its last telemetry message's acknowledgement and its outstanding urgent messages. */
  private readonly order = new Map<string, { telemetryTail: Promise<void>; urgentTail: Promise<void>; urgentOutstanding: number }>();

  private orderOf(clientId: string) {
    let o = this.order.get(clientId);
    if (!o) {
      if (this.order.size >= 50_000) {
        // Connections come and go; forget the quiet ones (their tails are long settled).
        for (const [id, e] of this.order) if (e.urgentOutstanding === 0) this.order.delete(id);
      }
      // One shared settled promise, not two new ones per connection (issue 17: memory per hub).
      o = { telemetryTail: SETTLED, urgentTail: SETTLED, urgentOutstanding: 0 };
      this.order.set(clientId, o);
    }
    return o;
  }
  private readonly log: Logger;
  /** Messages with side effects submitted but not yet settled, by dedupe key. */
  private readonly inFlight = new Map<string, Promise<void>>();
  /** Dedupe keys committed lately, oldest first (insertion order), at most `recentlySeen`. */
  private readonly recent = new Set<string>();

  constructor(private readonly o: IngestOptions) {
    this.log = o.logger.child({ component: 'ingest' });
    for (const e of o.seenAtStart ?? []) this.remember(dedupeKey(e));
    const storeKind = o.store.kind;
    const lane = (name: Lane): GroupCommitter<Item> => new GroupCommitter<Item>({
      maxBatchWeight: o.maxBatchPoints,
      // Group commits under way at once. On PostgreSQL a commit waits for round trips, each a turn of
      // the (busy) event loop: two more in flight on the urgent lane let a mode switch's thousands of
      // acknowledgements flow while earlier commits wait (issue 14, fan-out). Four of the pool's
      // connections at most; SQLite commits in the calling thread, where more would change nothing.
      concurrency: name === 'urgent' && o.sql.dialect === 'postgres' ? 4 : 2,
      linger: name === 'telemetry' && o.lingerMs ? { maxDelayMs: o.lingerMs, minWeight: LINGER_MIN_POINTS } : undefined,
      minIntervalMs: name === 'urgent' ? URGENT_PACING_MS : undefined,
      weight: (it) => Math.max(1, it.points.length),
      write: (items) => this.write(items, name),
      // Permanent: a value the telemetry store or the operational database refuses (PostgreSQL refuses
      // U+0000 in TEXT, SQLSTATE class 22): retried, it would block every hub's messages behind it
      // forever; bisected, it stands alone and is dead-lettered while the rest is committed (issue 14).
      isRetryable: (err) => (err instanceof TelemetryStoreError ? err.retryable : !isDataError(err)),
      onPoison: async (it, err) => {
        const by = err instanceof TelemetryStoreError ? 'the telemetry store' : 'the operational database';
        const detail = `${by} refused it: ${(err as Error).message}`;
        this.log.error({ topic: it.inbound.topic, hub: it.inbound.from?.hubId, err }, `${by} rejected a message permanently; dead-lettered`);
        await this.o.deadLetters.addMany([this.deadLetter(it.inbound, 'store_rejected', detail)]);
        this.o.metrics.rejected.inc({ reason: 'store_rejected' });
      },
      onPoisonFailed: (it, err) => {
        // Never acknowledged: the hub re-sends it and it is dead-lettered once the store can take it (issue 12, defect 9).
        this.o.metrics.unacknowledged.inc({ reason: 'dead_letter_failed' });
        this.log.error({ topic: it.inbound.topic, hub: it.inbound.from?.hubId, err }, 'dead-lettering a message the telemetry store refused failed; left unacknowledged');
      },
      onCommitted: (items) => this.applyStored(items),
      onCallbackError: (err) => this.log.error({ err }, 'applying stored messages failed'),
      onWriteError: (err, attempt, retryInMs) => {
        o.metrics.storeWriteFailures.inc({ store: storeKind });
        const log = attempt === 1 || attempt % 10 === 0 ? this.log.error.bind(this.log) : this.log.warn.bind(this.log);
        const what = this.operationalFailing.has(name) ? 'operational database write failed' : 'telemetry store write failed';
        log({ err, attempt, retryInMs: Math.round(retryInMs), store: storeKind }, `${what}; holding acknowledgements and retrying`);
      },
      onWritten: (items, ms) => {
        const points = items.reduce((n, it) => n + it.points.length, 0);
        if (points > 0) {
          o.metrics.storeWriteSeconds.observe({ store: storeKind }, ms / 1000);
          o.metrics.storeBatchPoints.observe({ store: storeKind }, points);
        }
      },
    });
    this.committer = lane('telemetry');
    this.urgent = lane('urgent');
  }

  /**
   * Lanes whose last group commit failed in the operational database for a reason worth retrying
   * (unreachable, …): their messages are held unacknowledged until it succeeds (for /healthz).
   */
  private readonly operationalFailing = new Set<Lane>();

  /** False while a group commit's operational transaction keeps failing (messages held unacknowledged). */
  get operationalHealthy(): boolean {
    return this.operationalFailing.size === 0;
  }

  get pending(): number {
    return this.committer.pending + this.urgent.pending;
  }

  handle(inbound: InboundPublish): Promise<void> {
    const item = this.prepare(inbound);
    if (item.recheckModeVersionOf !== undefined && this.o.refreshIssuedModeVersion) {
      return this.o.refreshIssuedModeVersion(item.recheckModeVersionOf, inbound.receivedAt).then(() => this.submit(this.prepare(inbound, true)));
    }
    return this.submit(item);
  }

  private submit(item: Item): Promise<void> {
    const inbound = item.inbound;
    // ingest_pending_messages is set once per group commit (see write), not per message: at 20,000
    // messages/s two gauge updates per message cost more than the figure is worth between scrapes.
    const order = this.orderOf(inbound.clientId ?? '');
    let done: Promise<void>;
    if (item.urgent) {
      const own = this.urgent.submit(item);
      const after = order.telemetryTail.catch(noop);
      done = Promise.all([own, after]).then(() => undefined);
      order.urgentOutstanding++;
      order.urgentTail = done;
      const clientId = inbound.clientId ?? '';
      const settle = () => {
        // A connection whose messages are all settled keeps no entry: nothing is left to order
        // behind (~190 bytes per idle hub, issue 17).
        if (--order.urgentOutstanding === 0 && order.telemetryTail === SETTLED && this.order.get(clientId) === order) this.order.delete(clientId);
      };
      done.then(settle, settle);
    } else {
      const own = this.committer.submit(item);
      done = order.urgentOutstanding > 0 ? Promise.all([own, order.urgentTail.catch(noop)]).then(() => undefined) : own;
      order.telemetryTail = done;
      const tail = done;
      const clientId = inbound.clientId ?? '';
      const settled = (): void => {
        if (order.telemetryTail !== tail) return;
        order.telemetryTail = SETTLED;
        if (order.urgentOutstanding === 0 && this.order.get(clientId) === order) this.order.delete(clientId);
      };
      tail.then(settled, settled);
    }
    if (item.original) return Promise.all([done, item.original]).then(() => undefined);
    if (item.seen && !item.duplicate) {
      const key = dedupeKey(item.seen);
      this.inFlight.set(key, done);
      const forget = () => {
        if (this.inFlight.get(key) === done) this.inFlight.delete(key);
      };
      done.then(forget, forget);
    }
    return done;
  }

  /**
   * For a message with side effects: its dedupe key, and a duplicate item to submit instead when the
   * message is being written or was committed lately by this process (others are found in the group
   * commit). Null when there is no dedupe memory.
   */
  private dedupe(inbound: InboundPublish, type: string, hub: string, device: string, msgId: string): { seen: SeenMessage; duplicate: Item | null } | null {
    if (!this.o.seen) return null;
    const seen = { hub, device, msgId, seenAt: inbound.receivedAt };
    const key = dedupeKey(seen);
    const original = this.inFlight.get(key) ?? null;
    if (!original && !this.recent.has(key)) return { seen, duplicate: null };
    this.log.debug({ hub, device, msgId, type, topic: inbound.topic }, 're-sent message acknowledged without applying it again');
    return { seen, duplicate: { inbound, type, points: [], deadLetter: null, apply: null, seen: null, duplicate: true, original } };
  }

  /** `rechecked`: the issued mode versions were read again for this message (no second read). */
  private prepare(inbound: InboundPublish, rechecked = false): Item {
    const c = classifyPublish(inbound.topic, inbound.payload, this.o.maxPayloadBytes);
    if (!c.ok) return this.rejectItem(inbound, c.reason, c.detail);
    const region = c.topic.region;
    const now = inbound.receivedAt;
    // Every message carries a device timestamp; newest-wins state must not be pinned by a clock in the future.
    if (c.message.ts > now + this.o.maxFutureSkewMs) {
      const aheadS = Math.round((c.message.ts - now) / 1000);
      return this.rejectItem(inbound, 'future_timestamp',
        `ts ${new Date(c.message.ts).toISOString()} is ${aheadS} s ahead of the cloud's clock (limit ${Math.round(this.o.maxFutureSkewMs / 1000)} s, INGEST_MAX_FUTURE_SKEW_S): check the device's clock (NTP)`);
    }
    switch (c.route) {
      case 'device': {
        const { message, topic } = c;
        const d = topic.channel === 'event' ? this.dedupe(inbound, message.type, message.hub, message.device, message.id) : null;
        if (d?.duplicate) return d.duplicate;
        const unknown = this.o.compartments.unknownIn(message);
        if (unknown.length > 0) {
          const bank = this.o.compartments.hasBank(message.hub, message.device)
            ? `locker bank ${message.device} of hub ${message.hub} has no compartment ${unknown.slice(0, 5).join(', ')}${unknown.length > 5 ? ` (and ${unknown.length - 5} more)` : ''}`
            : `locker bank ${message.device} of hub ${message.hub} is not in the region file, so it has no known compartments`;
          return this.rejectItem(inbound, 'unknown_compartment', `${bank}; compartments are declared in the region file`);
        }
        if (!this.o.live.admitsDevice(message.hub, region, message.device, this.o.maxDevicesPerHub)) {
          return this.rejectItem(inbound, 'too_many_devices', `hub ${message.hub} already has ${this.o.maxDevicesPerHub} devices (INGEST_MAX_DEVICES_PER_HUB)`);
        }
        if (topic.channel === 'event' && this.o.hooks?.onEventReceived) {
          try {
            this.o.hooks.onEventReceived(message, region, now);
          } catch (err) {
            this.log.error({ err, topic: inbound.topic }, 'handling a received event failed');
          }
        }
        return {
          inbound, type: message.type, points: pointsForMessage(region, message), deadLetter: null,
          apply: () => {
            this.o.live.applyDeviceMessage(region, topic.kind, message, now);
            return this.o.hooks?.onDeviceMessage?.(message, region, now);
          },
          seen: d?.seen ?? null, duplicate: false, original: null, urgent: topic.channel === 'event',
        };
      }
      case 'status':
        return {
          inbound, type: c.message.type, points: [pointForHubStatus(region, c.message, `status-${c.message.ts}`)], deadLetter: null,
          apply: () => this.o.live.applyStatus(region, c.message, now), seen: null, duplicate: false, original: null,
        };
      case 'cmd-ack': {
        const d = this.dedupe(inbound, c.message.type, c.message.hub, c.message.device, c.message.id);
        if (d?.duplicate) return d.duplicate;
        return {
          inbound, type: c.message.type, points: [], deadLetter: null, apply: () => this.o.hooks?.onCommandAck?.(c.message, region, now),
          seen: d?.seen ?? null, duplicate: false, original: null, urgent: true, commandAck: { ack: c.message, region, receivedAt: now },
        };
      }
      case 'mode-ack': {
        const d = this.dedupe(inbound, c.message.type, c.message.hub, HUB_LEVEL_DEVICE, c.message.id);
        if (d?.duplicate) return d.duplicate;
        // A hub acknowledges versions the cloud published; a local switch keeps the hub's current
        // version. A higher one was never issued: applied, it would count as newest forever.
        const issued = this.o.issuedModeVersion(region);
        if (c.message.version > issued) {
          const rejected = this.rejectItem(inbound, 'unknown_mode_version',
            `version ${c.message.version} was never issued for region ${region} (newest issued: ${issued})`);
          if (!rechecked) rejected.recheckModeVersionOf = region;
          return rejected;
        }
        return {
          inbound, type: c.message.type, points: [], deadLetter: null, apply: () => this.o.hooks?.onModeAck?.(c.message, region, now),
          seen: d?.seen ?? null, duplicate: false, original: null, urgent: true, modeAck: { ack: c.message, region, receivedAt: now },
        };
      }
    }
  }

  private deadLetter(inbound: InboundPublish, reason: RejectionReason, detail: string): DeadLetterInput {
    return {
      receivedAt: inbound.receivedAt, region: inbound.from?.region ?? null, hub: inbound.from?.hubId ?? null,
      clientId: inbound.clientId, topic: inbound.topic, reason, detail, payload: inbound.payload,
    };
  }

  private rejectItem(inbound: InboundPublish, reason: RejectionReason, detail: string): Item {
    this.log.debug({ topic: inbound.topic, hub: inbound.from?.hubId, reason, detail }, 'message rejected');
    return { inbound, type: 'rejected', points: [], deadLetter: this.deadLetter(inbound, reason, detail), apply: null, seen: null, duplicate: false, original: null };
  }

  private async write(items: Item[], lane: Lane): Promise<Map<Item, Error> | undefined> {
    const points: TelemetryPoint[] = [];
    const dead: DeadLetterInput[] = [];
    const remembered: Item[] = [];
    for (const it of items) {
      for (const p of it.points) points.push(p);
      if (it.deadLetter) dead.push(it.deadLetter);
      if ((it.seen || it.modeAck || it.commandAck) && !it.duplicate) remembered.push(it);
    }
    this.o.metrics.ingestPending.set(this.pending);
    if (points.length > 0) await this.o.store.write(points);
    // After the telemetry write: a crash in between leaves the message stored but not remembered, so
    // a re-send is written again (idempotent) and applied again — never remembered but lost.
    let refused: Map<Item, Error> | undefined;
    let copies: Item[] = [];
    if (dead.length > 0 || remembered.length > 0) {
      const left = new Set<SideEffect>(SIDE_EFFECTS);
      for (;;) {
        try {
          copies = await this.commitOperational(remembered.filter((it) => !refused?.has(it)), dead, left);
          this.operationalFailing.delete(lane);
          break;
        } catch (err) {
          if (!(err instanceof SideEffectRecordError)) {
            if (!isDataError(err)) this.operationalFailing.add(lane);
            throw err;
          }
          // A value the database refuses (U+0000 in a text): permanent, and only that message's. Thrown
          // on, the group commit bisects the batch and dead-letters it alone; every other
          // acknowledgement — other hubs' too — is recorded (issue 14).
          if (isDataError(err.cause)) throw err.cause;
          // Those acknowledgements could not be recorded: they are refused (not acknowledged, not
          // remembered, so their re-send is taken, not dropped as a copy); the rest commits without them.
          left.delete(err.kind);
          const acks = err.items;
          this.o.metrics.unacknowledged.inc({ reason: `${err.kind}_ack_store_failed` }, acks.length);
          this.log.error({ err: err.cause, acks: acks.length, hubs: [...new Set(acks.map((it) => it.inbound.from?.hubId))].slice(0, 10) },
            `storing ${err.kind} acknowledgements failed; left unacknowledged so the hubs re-send them`);
          const e = new Error(`storing the ${err.kind} acknowledgement failed; not acknowledged, re-send it`, { cause: err.cause });
          refused ??= new Map();
          for (const it of acks) refused.set(it, e);
        }
      }
    }
    for (const it of copies) {
      it.duplicate = true;
      this.log.debug({ hub: it.seen!.hub, device: it.seen!.device, msgId: it.seen!.msgId, type: it.type, topic: it.inbound.topic }, 're-sent message acknowledged without applying it again');
    }
    for (const it of remembered) if (it.seen && !it.duplicate && !refused?.has(it)) this.remember(dedupeKey(it.seen));
    this.o.metrics.ingestPending.set(Math.max(0, this.pending - items.length));
    return refused;
  }

  /**
   * The batch's operational writes in one transaction: dedupe ids (telling which messages are copies),
   * the mode and command acknowledgements among the new ones (of the kinds in `effects`), the dead
   * letters. Resolves with the copies; throws `SideEffectRecordError` when a hook failed (rolled back).
   */
  private async commitOperational(items: Item[], dead: DeadLetterInput[], effects: ReadonlySet<SideEffect>): Promise<Item[]> {
    const { copies, evicted } = await this.o.sql.transaction(async (tx) => {
      const record = async <A>(kind: SideEffect, hook: ((acks: A[], tx?: Sql) => Promise<void>) | undefined, of: (it: Item) => A | undefined, copy: ReadonlySet<Item>) => {
        const acks = effects.has(kind) && hook ? items.filter((it) => of(it) && !copy.has(it)) : [];
        if (acks.length === 0) return;
        try {
          await hook!(acks.map((it) => of(it)!), tx);
        } catch (err) {
          throw new SideEffectRecordError(kind, acks, err);
        }
      };
      const keyed = items.filter((it) => it.seen);
      // The mode acknowledgements are written together with the dedupe ids, not after them: pipelined
      // on PostgreSQL that is one round trip instead of two per group commit, and an emergency switch
      // is thousands of acknowledgements (issue 14, fan-out). Recording one that the dedupe ids then
      // tell is a copy (taken before by another cloud node, or before a restart) changes nothing: the
      // newest acknowledgement per hub wins, a local switch is written once per message id, and within
      // one group commit every message id appears once (`inFlight`). Command acknowledgements apply
      // results and wait for the dedupe ids. Both settle before the transaction ends (a statement of
      // one must never run after the other's failure ended it).
      const [seen, modes] = await Promise.allSettled([
        keyed.length > 0 && this.o.seen ? this.o.seen.recordNew(keyed.map((it) => it.seen!), tx) : keyed.map(() => true),
        record('mode', this.o.hooks?.recordModeAcks, (it) => it.modeAck, NO_ITEMS),
      ]);
      if (seen.status === 'rejected') throw seen.reason;
      if (modes.status === 'rejected') throw modes.reason;
      const fresh = seen.value;
      const copies = keyed.filter((_, i) => !fresh[i]);
      await record('command', this.o.hooks?.recordCommandAcks, (it) => it.commandAck, new Set(copies));
      const evicted = dead.length > 0 ? await this.o.deadLetters.addMany(dead, tx) : 0;
      return { copies, evicted };
    });
    if (evicted > 0) this.o.metrics.deadLettersEvicted.inc(evicted);
    return copies;
  }

  private remember(key: string): void {
    const max = this.o.recentlySeen ?? 50_000;
    if (max <= 0) return;
    this.recent.delete(key);
    this.recent.add(key);
    if (this.recent.size > max) this.recent.delete(this.recent.values().next().value!);
  }

  /**
   * Side effects of stored messages (live state, hooks), called by the group commit a batch at a
   * time in arrival order — not in the order the writes finished: with two writes under way a
   * drone's `landed` may be stored before the `takeoff` that arrived first, and applied first it
   * would be dropped by mission tracking (issue 12, defect 8).
   */
  private applyStored(items: Item[]): void {
    // Counted per batch and type: one counter update per message was a measurable share of ingest.
    const accepted = new Map<string, number>();
    for (const it of items) {
      if (it.duplicate) {
        this.o.metrics.duplicates.inc({ type: it.type });
        continue;
      }
      if (it.deadLetter) this.o.metrics.rejected.inc({ reason: it.deadLetter.reason });
      else accepted.set(it.type, (accepted.get(it.type) ?? 0) + 1);
      try {
        this.track(it.apply?.(), it);
      } catch (err) {
        this.log.error({ err, topic: it.inbound.topic }, 'applying a stored message to live state failed');
      }
    }
    for (const [type, n] of accepted) this.o.metrics.accepted.inc({ type }, n);
  }

  /** Hooks' work still under way (e.g. a command acknowledgement being recorded). */
  private readonly hookWork = new Set<Promise<unknown>>();

  private track(result: unknown, it: Item): void {
    if (!(result instanceof Promise)) return;
    const work: Promise<unknown> = result.catch((err: unknown) => this.log.error({ err, topic: it.inbound.topic }, 'a hook on a stored message failed'));
    this.hookWork.add(work);
    void work.finally(() => this.hookWork.delete(work));
  }

  async idle(): Promise<void> {
    await Promise.all([this.committer.idle(), this.urgent.idle()]);
  }

  /**
   * Stops taking messages, waits (up to `timeoutMs` each) for those taken to be stored and applied,
   * then for the hooks' work they started — shutdown closes the stores only after that (issue 12, defect 8).
   */
  async close(timeoutMs = 10_000): Promise<void> {
    await Promise.all([this.committer.close(timeoutMs), this.urgent.close(timeoutMs)]);
    const deadline = Date.now() + timeoutMs;
    while (this.hookWork.size > 0 && Date.now() < deadline) {
      const timer = new Promise<void>((r) => setTimeout(r, deadline - Date.now()).unref());
      await Promise.race([Promise.allSettled([...this.hookWork]), timer]);
    }
    if (this.hookWork.size > 0) this.log.error({ pending: this.hookWork.size }, 'shutdown went on before every hook on stored messages finished');
  }
}

const dedupeKey = (s: Pick<SeenMessage, 'hub' | 'device' | 'msgId'>) => dedupeKeyOf(s.hub, s.device, s.msgId);

type Lane = 'telemetry' | 'urgent';

const NO_ITEMS: ReadonlySet<Item> = new Set();
const SETTLED: Promise<void> = Promise.resolve();

/**
 * Urgent-lane batches (statuses, events, acknowledgements) start at most this often. Each commit has a
 * fixed cost in the main thread whatever its size: on SQLite an fsync of the WAL (~0.2 ms here); on
 * PostgreSQL its statements (BEGIN, dedupe ids, acknowledgements, COMMIT: sent, answered and parsed by
 * the driver, ~0.15 ms). In a reconnect storm (13,800 hubs: a birth status and a mode acknowledgement
 * each) unpaced batches held ~3 messages: on SQLite 8,248 commits, 1.7 s of the thread; on PostgreSQL
 * ~5,900 transactions, and pacing it too took the storm's cloud CPU from 8.8–9.4 s to 7.9–8.1 s (issue
 * 17, item 3). A message after a quiet spell is not held; one arriving within this long of the last
 * commit waits at most this long.
 */
const URGENT_PACING_MS = 5;

/** A telemetry write of this many points goes at once, without lingering (see `IngestOptions.lingerMs`). */
const LINGER_MIN_POINTS = 500;

/** Side effects recorded by hooks in the group commit's transaction. */
const SIDE_EFFECTS = ['mode', 'command'] as const;
type SideEffect = (typeof SIDE_EFFECTS)[number];

/** Thrown inside the group commit's transaction when a hook recording acknowledgements failed: the transaction is rolled back. */
class SideEffectRecordError extends Error {
  constructor(readonly kind: SideEffect, readonly items: Item[], cause: unknown) {
    super(`storing ${kind} acknowledgements failed`, { cause });
    this.name = 'SideEffectRecordError';
  }
}
const noop = () => undefined;
