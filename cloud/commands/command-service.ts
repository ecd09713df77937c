import { Command, type CommandAck, type DeviceKind } from '../../contract/index.ts';
import type { Sql } from '../db/sql.ts';
import type { Logger } from '../logger.ts';
import { effectiveState, type CommandArgs, type CommandResultEntry, type CommandName, type CommandRecord, type CommandState, type CommandStore } from './command-store.ts';

/**
 * Commands from the cloud to devices at hubs (issue 3): issue, deliver, re-deliver, record results.
 *
 * Delivery is at least once: a command is published (QoS 1) when issued and again whenever one of
 * the hub's connections (re)subscribes to its commands, for as long as it is pending and unexpired.
 * That is safe because a hub executes a given command id at most once and answers a repeat with a
 * `duplicate` acknowledgement. Every input that changes over time — the clock, the id generator,
 * the hubs and their devices, the way out to the broker — is passed in.
 */

/** Which kind of device a command is for: `locker.unlock` → locker, `drone.rtl` → drone. */
export function commandKind(command: CommandName): DeviceKind {
  return command.startsWith('locker.') ? 'locker' : 'drone';
}

/**
 * A `failed` that only says nobody answered in time (the hub agent's timeout, or its restart while
 * the device had not answered) is provisional: the device may still have done it (issue 12, 5).
 */
export function isProvisionalFailure(state: CommandState, detail: string | null): boolean {
  return state === 'failed' && detail !== null && /did not answer|no answer|not answered|timed? ?out|restarted before the device answered/i.test(detail);
}

/**
 * The state after an acknowledgement. The first real result wins — except that what the device did
 * wins over a provisional failure (a late `done` or `rejected` after the agent's timeout `failed`);
 * `duplicate` only says that the hub had already seen the id (the real result travels separately and
 * may arrive later), so it fills a pending command but never overwrites a result, and a real result
 * replaces it.
 */
export function nextCommandState(current: CommandState, result: CommandAck['result'], currentDetail: string | null = null): CommandState {
  if (current === 'pending') return result;
  if (current === 'duplicate' && result !== 'duplicate') return result;
  if (isProvisionalFailure(current, currentDetail) && (result === 'done' || result === 'rejected')) return result;
  return current;
}

export type CommandErrorCode = 'hub_not_found' | 'device_not_found' | 'wrong_device_kind' | 'command_not_found';

export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly code: CommandErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The way out to the hubs: publishes a contract `Command` on the device's command topic, QoS 1. */
export interface CommandBus {
  send(command: Command, to: { region: string; kind: DeviceKind }): Promise<void>;
}

/** What the service needs to know about a hub: its region and devices (live state fits). */
export interface HubDirectory {
  get(hubId: string): { region: string; devices: ReadonlyMap<string, { kind: DeviceKind }> } | undefined;
}

export interface IssueRequest {
  hub: string;
  device: string;
  command: CommandName;
  args: CommandArgs;
  ttlS: number;
  /**
   * The command's id, chosen by the caller so that issuing it again is harmless: if a command with
   * this id is stored, it is answered as it is and nothing is stored or sent. (Default: a new id.)
   */
  id?: string;
}

/** A command as shown: its state as of now (pending past its expiry shows `expired`). */
export type CommandView = CommandRecord;

export type AckOutcome = 'applied' | 'ignored' | 'unknown';

/** Hubs whose pending commands one store query looks up for re-delivery. */
const REDELIVERY_BATCH = 500;

/** Compare-and-set rounds for one acknowledgement (each lost round means the state moved on). */
const MAX_ACK_ATTEMPTS = 5;

export interface CommandServiceOptions {
  store: CommandStore;
  bus: CommandBus;
  hubs: HubDirectory;
  now: () => number;
  newId: () => string;
  logger: Logger;
  /** Commands re-delivered per hub at once (oldest first). */
  maxRedelivery?: number;
  /**
   * How long re-deliveries wait for company, ms: hubs subscribing within this window share one store
   * query. 0 (the default): only calls made in the same synchronous run share one (a microtask).
   */
  redeliveryWindowMs?: number;
  /**
   * A re-delivery whose store query failed (the database restarting), and a command whose publish
   * failed (in a cluster: this node's Redis link cut while the hub's node kept its own), is tried
   * again after `firstMs`, doubling up to `maxMs`, until it succeeds (a command: until it is no
   * longer pending): the hub that subscribed meanwhile may not subscribe again for days. Default
   * 1 s to 30 s.
   */
  retry?: { firstMs: number; maxMs: number };
}

export class CommandService {
  private readonly log: Logger;

  constructor(private readonly o: CommandServiceOptions) {
    this.log = o.logger.child({ component: 'commands' });
  }

  /** Validates, stores and publishes a command; resolves with it (pending) even when the hub is offline. A given `id` already stored: resolves with that command. */
  async issue(req: IssueRequest): Promise<CommandView> {
    const hub = this.o.hubs.get(req.hub);
    if (!hub) throw new CommandError('hub_not_found', `no hub "${req.hub}"`);
    const device = hub.devices.get(req.device);
    if (!device) throw new CommandError('device_not_found', `hub "${req.hub}" has no device "${req.device}"`);
    const kind = commandKind(req.command);
    if (device.kind !== kind) {
      throw new CommandError('wrong_device_kind', `${req.command} is a ${kind} command, but "${req.device}" is a ${device.kind}`);
    }
    if (req.id !== undefined) {
      const issued = await this.o.store.get(req.id);
      if (issued) return this.view(issued);
    }
    const now = this.o.now();
    const record: CommandRecord = {
      id: req.id ?? this.o.newId(), hub: req.hub, region: hub.region, device: req.device, kind, command: req.command, args: req.args,
      issuedAt: now, expiresAt: now + req.ttlS * 1000, state: 'pending', detail: null, ackedAt: null,
    };
    // Checked before it is stored: what is stored can always be sent.
    const message = toMessage(record);
    try {
      await this.o.store.insert(record);
    } catch (err) {
      // The same id issued at once by another caller (another cloud node): theirs was stored first.
      const issued = req.id !== undefined ? await this.o.store.get(req.id).catch(() => undefined) : undefined;
      if (issued) return this.view(issued);
      throw err;
    }
    this.log.info({ hub: record.hub, device: record.device, command: record.command, commandId: record.id }, 'command issued');
    await this.deliver(record, message);
    return this.view(record);
  }

  async get(id: string): Promise<CommandView> {
    const c = await this.o.store.get(id);
    if (!c) throw new CommandError('command_not_found', `no command "${id}"`);
    return this.view(c);
  }

  /** Every result the command has had, oldest first (a superseded provisional failure stays here). */
  history(id: string): Promise<CommandResultEntry[]> {
    return this.o.store.history(id);
  }

  async list(hub: string, q: { state?: CommandState; limit: number }): Promise<CommandView[]> {
    if (!this.o.hubs.get(hub)) throw new CommandError('hub_not_found', `no hub "${hub}"`);
    const now = this.o.now();
    return (await this.o.store.list({ hub, state: q.state, limit: q.limit, now })).map((c) => ({ ...c, state: effectiveState(c, now) }));
  }

  /**
   * Records a hub's acknowledgement (see `nextCommandState`). Answers to one command may be applied
   * at once — a late answer, the agent's provisional failure, a re-sent copy's `duplicate`, by two
   * cloud processes on PostgreSQL: each result is set only from the state it was decided on
   * (compare-and-set); one that lost the race decides again from the state that won, so every order
   * ends in the same final state.
   */
  async applyAck(ack: CommandAck, tx?: Sql): Promise<AckOutcome> {
    for (let attempt = 0; attempt < MAX_ACK_ATTEMPTS; attempt++) {
      const c = await this.o.store.get(ack.commandId, tx);
      // The command's own hub and device only: a device of the hub naming another device's command
      // (its id can be predicted) must not settle it (found in review).
      if (!c || c.hub !== ack.hub || c.device !== ack.device) {
        this.log.warn({ hub: ack.hub, device: ack.device, commandId: ack.commandId, result: ack.result }, 'acknowledgement of an unknown command, or of another device\'s, ignored');
        return 'unknown';
      }
      const next = nextCommandState(c.state, ack.result, c.detail);
      if (next === c.state) return 'ignored';
      if (!(await this.o.store.setResult(c.id, c.state, { state: next, detail: ack.detail ?? null, ackedAt: ack.ts }, tx))) continue;
      if (c.state === 'failed') this.log.warn({ hub: c.hub, device: c.device, commandId: c.id, result: next, was: c.detail }, 'late device answer supersedes a provisional failure');
      else this.log.info({ hub: c.hub, device: c.device, commandId: c.id, result: next, detail: ack.detail }, 'command acknowledged');
      return 'applied';
    }
    // Each lost race means another result was set; the states only move forward, so this is not reached in practice.
    this.log.warn({ hub: ack.hub, commandId: ack.commandId, result: ack.result }, 'acknowledgement not applied: the command kept changing under it');
    return 'ignored';
  }

  /**
   * Records acknowledgements of one ingest batch in its transaction `tx` (issue 14: with their dedupe
   * ids), in command-id order so two cloud processes lock the commands in the same order.
   */
  async applyAcks(acks: readonly CommandAck[], tx?: Sql): Promise<AckOutcome[]> {
    const order = acks.map((ack, i) => ({ ack, i })).sort((a, b) => (a.ack.commandId < b.ack.commandId ? -1 : a.ack.commandId > b.ack.commandId ? 1 : a.i - b.i));
    const outcomes: AckOutcome[] = new Array(acks.length);
    for (const { ack, i } of order) outcomes[i] = await this.applyAck(ack, tx);
    return outcomes;
  }

  /**
   * Publishes the hub's pending, unexpired commands again; resolves with how many. Hubs asking within
   * `redeliveryWindowMs` share one store query (up to REDELIVERY_BATCH hubs each): after a cloud
   * restart thousands of hubs subscribe within seconds, and one query per hub held the main thread
   * ~100 µs each (issue 17, item 3: 9.5 % of the cloud's main thread while 13,800 hubs connected).
   */
  redeliver(hub: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const waiting = this.redeliveries.get(hub);
      if (waiting) waiting.push({ resolve, reject });
      else this.redeliveries.set(hub, [{ resolve, reject }]);
      if (this.redeliveries.size > 1 || waiting) return;
      const windowMs = this.o.redeliveryWindowMs ?? 0;
      if (windowMs > 0) setTimeout(() => void this.redeliverBatches(), windowMs);
      else queueMicrotask(() => void this.redeliverBatches());
    });
  }

  private readonly redeliveries = new Map<string, { resolve: (n: number) => void; reject: (err: unknown) => void }[]>();
  /**
   * What failed and is tried again in the next retry round: hubs whose re-delivery query failed, and
   * commands whose publish failed (as stored then). One timer for all of them — a database down
   * during a reconnect storm is one query a round per 500 hubs and one warning, not a schedule and a
   * warning per hub (review: 34 failed queries and warnings a second for 2,000 hubs).
   */
  private readonly retryHubs = new Set<string>();
  private readonly unsent = new Map<string, CommandRecord>();
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  /** Rounds in a row that left something to try again: the next round waits 2^this × firstMs (≤ maxMs). */
  private failedRounds = 0;
  private closed = false;

  /** Stops the retries (before the store closes). */
  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryHubs.clear();
    this.unsent.clear();
  }

  /** Schedules the next retry round unless one is scheduled. */
  private retrySoon(): void {
    if (this.retryTimer || this.closed) return;
    const { firstMs, maxMs } = this.o.retry ?? { firstMs: 1_000, maxMs: 30_000 };
    const delayMs = Math.min(maxMs, firstMs * 2 ** this.failedRounds);
    this.failedRounds++;
    this.log.warn({ hubs: this.retryHubs.size, commands: this.unsent.size, retryInMs: delayMs },
      're-deliveries whose store query failed and commands whose publish failed: tried again later');
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.retryRound();
    }, delayMs);
    this.retryTimer.unref?.();
  }

  private async retryRound(): Promise<void> {
    const hubs = [...this.retryHubs];
    const commands = [...this.unsent.values()];
    this.retryHubs.clear();
    this.unsent.clear();
    // A failure puts its hub or command back and schedules the next round (retryLater, deliver).
    await Promise.allSettled(hubs.map((hub) => this.redeliver(hub)));
    for (const c of commands) {
      let now: CommandRecord | null;
      try {
        now = await this.o.store.get(c.id);
      } catch {
        this.unsent.set(c.id, c);
        this.retrySoon();
        continue;
      }
      if (now && effectiveState(now, this.o.now()) === 'pending') await this.deliver(now, undefined, true);
    }
    if (this.retryHubs.size === 0 && this.unsent.size === 0) this.failedRounds = 0;
  }

  /** Hubs whose re-delivery query failed: asked again in the next round. */
  private retryLater(hubs: readonly string[], err: unknown): void {
    if (this.closed) return;
    this.log.debug({ err, hubs: hubs.length }, 're-delivering pending commands failed: the store did not answer');
    for (const hub of hubs) this.retryHubs.add(hub);
    this.retrySoon();
  }

  private async redeliverBatches(): Promise<void> {
    const all = [...this.redeliveries];
    this.redeliveries.clear();
    for (let i = 0; i < all.length; i += REDELIVERY_BATCH) {
      const batch = all.slice(i, i + REDELIVERY_BATCH);
      let pending: CommandRecord[];
      try {
        pending = await this.o.store.pendingFor(batch.map(([hub]) => hub), this.o.now(), this.o.maxRedelivery ?? 1000);
      } catch (err) {
        for (const [, waiters] of batch) for (const w of waiters) w.reject(err);
        this.retryLater(batch.map(([hub]) => hub), err);
        continue;
      }
      const byHub = new Map<string, CommandRecord[]>();
      for (const c of pending) {
        const list = byHub.get(c.hub);
        if (list) list.push(c);
        else byHub.set(c.hub, [c]);
      }
      for (const [hub, waiters] of batch) {
        this.retryHubs.delete(hub);
        const mine = byHub.get(hub) ?? [];
        for (const c of mine) await this.deliver(c);
        if (mine.length > 0) this.log.info({ hub, commands: mine.length }, 'pending commands re-delivered');
        for (const w of waiters) w.resolve(mine.length);
      }
    }
  }

  /** Publishes a stored command; a failed publish is tried again later (it also goes out when the hub next subscribes). */
  private async deliver(c: CommandRecord, message?: Command, retried = false): Promise<void> {
    let m = message;
    try {
      m ??= toMessage(c);
    } catch (err) {
      // A stored row the contract no longer accepts (a schema change) can never be sent: it ends
      // `failed` with the reason now, instead of staying pending until its expiry and being tried (and
      // logged) again at every subscribe of its hub. The others still go out.
      this.log.error({ err, hub: c.hub, commandId: c.id }, 'a stored command is not a valid message; not published, marked failed');
      this.unsent.delete(c.id);
      const detail = `not sent: the stored command is not a valid message under the current contract (${firstIssue(err)})`;
      await this.o.store.setResult(c.id, 'pending', { state: 'failed', detail, ackedAt: this.o.now() })
        .catch((e: unknown) => this.log.error({ err: e, hub: c.hub, commandId: c.id }, 'marking an unsendable command failed did not work; it stays pending until its expiry'));
      return;
    }
    try {
      await this.o.bus.send(m, { region: c.region, kind: c.kind });
      this.unsent.delete(c.id);
    } catch (err) {
      if (this.closed) return;
      // Counted in the round's warning when it was a retry.
      if (!retried) this.log.warn({ err, hub: c.hub, commandId: c.id }, 'publishing a command failed; it stays pending and is published again');
      this.unsent.set(c.id, c);
      this.retrySoon();
    }
  }

  private view(c: CommandRecord): CommandView {
    return { ...c, state: effectiveState(c, this.o.now()) };
  }
}

/** The first thing zod found wrong (or the error's message), short enough for a command's detail. */
function firstIssue(err: unknown): string {
  const issue = (err as { issues?: { path: PropertyKey[]; message: string }[] }).issues?.[0];
  const text = issue ? `${issue.path.map(String).join('.') || 'message'}: ${issue.message}` : String((err as Error)?.message ?? err);
  return text.slice(0, 200);
}

function toMessage(c: CommandRecord): Command {
  return Command.parse({
    v: 1, type: 'hub.command', id: c.id, ts: c.issuedAt, hub: c.hub, device: c.device, command: c.command, expiresAt: c.expiresAt, args: c.args,
  });
}
