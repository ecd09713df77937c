import { backoffDelayMs } from '../../shared/backoff.ts';

/**
 * Group commit: callers submit items and wait; items that arrive while a write is running are
 * collected and written together by the next one. Under load batches grow (fewer, larger writes);
 * when idle an item is written on the next tick. Nothing is acknowledged before its write succeeded.
 *
 * Failure policy:
 *  - a retryable failure (store unreachable, 5xx) retries the same batch with jittered exponential
 *    back-off, forever, while callers keep waiting — MQTT clients hold their unacknowledged messages,
 *    so back-pressure reaches the devices instead of memory growing here;
 *  - a permanent failure (the store rejects the data) bisects the batch to find the item(s) it
 *    rejects and hands each to `onPoison`, so one bad item never blocks the rest. If `onPoison`
 *    itself fails (it writes the item to the dead letters, and that store can fail too), the item is
 *    rejected — never acknowledged, so its publisher re-sends it — and the batches after it go on;
 *  - `write` may refuse single items (e.g. a side store that could not record them): those callers
 *    are rejected, the rest of the batch is stored and acknowledged.
 *
 * Ordering: batches are taken in arrival order and, with `concurrency` > 1, may finish writing out of
 * order. What follows a write — `onCommitted` (side effects: live state, hooks) and resolving the
 * callers — runs strictly in the order the batches were taken, so a `landed` written first is still
 * applied after the `takeoff` that arrived before it (issue 12, defect 8). No failure of one batch
 * (a throwing callback included) stops the ones after it (defect 9).
 */
export interface GroupCommitOptions<T> {
  /** Upper bound on the summed weight of one batch. */
  maxBatchWeight: number;
  weight: (item: T) => number;
  /** Writes a batch; may return the items it refused on their own (not stored, their callers rejected). */
  write: (items: T[]) => Promise<void | ReadonlyMap<T, Error>>;
  isRetryable: (err: unknown) => boolean;
  /**
   * Called with an item the store permanently rejects on its own (to dead-letter it); the item is
   * then acknowledged. If it throws, the item is rejected instead and `onPoisonFailed` is told.
   */
  onPoison: (item: T, err: unknown) => Promise<void>;
  onPoisonFailed?: (item: T, err: unknown) => void;
  /**
   * Side effects of stored items, called once per batch with the items stored (poisoned and refused
   * ones left out, order kept), in the order the batches were taken, before their callers are
   * resolved. A throw is caught and reported to `onCallbackError`.
   */
  onCommitted?: (items: T[]) => void;
  onCallbackError?: (err: unknown) => void;
  onWriteError?: (err: unknown, attempt: number, retryInMs: number) => void;
  onWritten?: (items: T[], durationMs: number) => void;
  backoff?: { initialMs: number; maxMs: number };
  /**
   * Writes that may be under way at once (default 1). Two let the next batch be prepared and sent
   * while the store commits the previous one; results are still acknowledged in order.
   */
  concurrency?: number;
  /**
   * Lets a light batch wait for company: while the queued weight is below `minWeight`, the write
   * starts only once the oldest queued item is `maxDelayMs` old. Each write has a fixed cost (an
   * HTTP request to InfluxDB is ~100 µs of the cloud's CPU on loopback, whatever its size), and under
   * a steady moderate load the writes were ~7 messages each (issue 17, item 1). Items wait at most
   * `maxDelayMs` more; shutting down writes at once. Absent: a batch is written as soon as it can be.
   */
  linger?: { maxDelayMs: number; minWeight: number };
  /**
   * Paces the batches: one starts no sooner than this after the previous one started; items that
   * come meanwhile join it. An item after a quiet spell goes at once (no added wait at low load); under
   * a flood, batches come at most 1000/minIntervalMs a second, so a fixed cost per commit (an fsync of
   * SQLite's WAL in the main thread, ~0.2 ms) stays a small share of the thread. Absent: no pacing.
   */
  minIntervalMs?: number;
}

/**
 * Resolves a written batch's callers a slice at a time, yielding to the event loop in between: each
 * resolution lets the broker send a PUBACK and parse that client's next packets, and thousands of them
 * in one go kept the main thread busy for 200–300 ms — long enough to hold up an alarm arriving on
 * another connection. Order is kept (slices in order; the next batch waits for this one).
 */
const SLICE = 64;
async function resolveInSlices(batch: readonly { resolve: () => void }[]): Promise<void> {
  for (let i = 0; i < batch.length; i += SLICE) {
    if (i > 0) await new Promise<void>((r) => setImmediate(r));
    for (let j = i; j < Math.min(batch.length, i + SLICE); j++) batch[j]!.resolve();
  }
}

interface Pending<T> {
  item: T;
  resolve: () => void;
  reject: (err: Error) => void;
  /** performance.now() when submitted (for `linger`). */
  at: number;
  weight: number;
}

export class GroupCommitter<T> {
  private queue: Pending<T>[] = [];
  private running = false;
  private scheduled = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  /** Back-off sleeps under way (one per concurrent write), so close() can cut them short. */
  private readonly sleepers = new Map<NodeJS.Timeout, () => void>();

  constructor(private readonly opts: GroupCommitOptions<T>) {
    this.concurrency = opts.concurrency ?? 1;
  }

  /** Items waiting or being written. */
  get pending(): number {
    return this.queue.length + this.inFlight;
  }
  private inFlight = 0;
  private wake: (() => void) | null = null;
  private readonly concurrency: number;

  /** Summed weight of `queue`. */
  private queuedWeight = 0;

  submit(item: T): Promise<void> {
    if (this.closed) return Promise.reject(new Error('ingest is shutting down'));
    return new Promise<void>((resolve, reject) => {
      const weight = this.opts.weight(item);
      this.queue.push({ item, resolve, reject, at: performance.now(), weight });
      this.queuedWeight += weight;
      this.schedule();
    });
  }

  /** How long the queue should still wait for company (`linger`), in ms; 0: write now. */
  private lingerMs(): number {
    const l = this.opts.linger;
    if (!l || this.closed || this.queuedWeight >= l.minWeight) return 0;
    return Math.max(0, this.queue[0]!.at + l.maxDelayMs - performance.now());
  }

  /** When the last batch was taken (performance.now()), for `minIntervalMs`. */
  private lastTakenAt = -Infinity;

  /** How long until the next batch may start (`minIntervalMs`), in ms; 0: now. */
  private paceMs(): number {
    const every = this.opts.minIntervalMs;
    if (!every || this.closed) return 0;
    return Math.max(0, this.lastTakenAt + every - performance.now());
  }

  private schedule(): void {
    if (this.running) {
      this.wake?.();
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.drain();
    });
  }

  private takeBatch(): Pending<T>[] {
    let weight = 0;
    let n = 0;
    while (n < this.queue.length) {
      const w = this.queue[n]!.weight;
      if (n > 0 && weight + w > this.opts.maxBatchWeight) break;
      weight += w;
      n++;
    }
    this.queuedWeight -= weight;
    return this.queue.splice(0, n);
  }

  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const active = new Set<Promise<void>>();
    // Batches are acknowledged in the order they were taken, even when a later one is written first:
    // a receiver sends PUBACKs in the order the PUBLISHes arrived [MQTT-4.6.0-2].
    let previous: Promise<void> = Promise.resolve();
    try {
      while (this.queue.length > 0 || active.size > 0) {
        let lingering: NodeJS.Timeout | null = null;
        while (this.queue.length > 0 && active.size < this.concurrency) {
          const wait = Math.max(this.lingerMs(), this.paceMs());
          if (wait > 0) {
            lingering = setTimeout(() => this.wake?.(), wait);
            break;
          }
          const batch = this.takeBatch();
          this.lastTakenAt = performance.now();
          this.inFlight += batch.length;
          const before = previous;
          const settled = this.settle(batch, before);
          previous = settled;
          active.add(settled);
          void settled.finally(() => active.delete(settled));
        }
        const more = new Promise<void>((resolve) => (this.wake = resolve));
        await Promise.race([...active, more]);
        this.wake = null;
        if (lingering) clearTimeout(lingering);
      }
    } finally {
      this.running = false;
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /**
   * Writes a batch, then — once every earlier batch is settled — applies its side effects and
   * settles its callers. Never rejects: `previous` must stay a chain that always moves on.
   */
  private async settle(batch: Pending<T>[], before: Promise<void>): Promise<void> {
    const failed = new Map<Pending<T>, Error | null>();
    let failure: Error | null;
    try {
      failure = await this.commit(batch, failed);
    } catch (err) {
      failure = err instanceof Error ? err : new Error(String(err)); // a bug in write/isolate: reject, never hang
    }
    await before;
    this.inFlight -= batch.length;
    if (failure) {
      for (const p of batch) p.reject(failure);
      return;
    }
    const stored = failed.size === 0 ? batch : batch.filter((p) => !failed.has(p));
    if (this.opts.onCommitted && stored.length > 0) {
      try {
        this.opts.onCommitted(stored.map((p) => p.item));
      } catch (err) {
        this.opts.onCallbackError?.(err);
      }
    }
    if (failed.size === 0) return resolveInSlices(batch);
    for (const [p, err] of failed) if (err) p.reject(err);
    await resolveInSlices(batch.filter((p) => !failed.get(p))); // stored or dead-lettered
  }

  /**
   * Writes a batch (retrying, isolating poison); items not stored are added to `failed`: with their
   * error (rejected), or null (dead-lettered: acknowledged, not applied).
   * Resolves with an error only when shutting down.
   */
  private async commit(batch: Pending<T>[], failed: Map<Pending<T>, Error | null>): Promise<Error | null> {
    const { initialMs, maxMs } = this.opts.backoff ?? { initialMs: 100, maxMs: 10_000 };
    for (let attempt = 1; ; attempt++) {
      const started = performance.now();
      try {
        const refused = await this.opts.write(batch.map((p) => p.item));
        if (refused && refused.size > 0) {
          for (const p of batch) {
            const err = refused.get(p.item);
            if (err) failed.set(p, err);
          }
        }
        this.opts.onWritten?.(batch.map((p) => p.item), performance.now() - started);
        return null;
      } catch (err) {
        if (!this.opts.isRetryable(err)) return this.isolate(batch, err, failed);
        if (this.closed) return new Error('ingest shut down before the write succeeded', { cause: err });
        const delay = backoffDelayMs({ initialMs, maxMs, jitter: 'equal' }, attempt - 1);
        this.opts.onWriteError?.(err, attempt, delay);
        await this.sleep(delay);
      }
    }
  }

  /** Bisects a batch the store rejected permanently until the rejected items stand alone. */
  private async isolate(batch: Pending<T>[], err: unknown, failed: Map<Pending<T>, Error | null>): Promise<Error | null> {
    if (batch.length === 1) {
      const p = batch[0]!;
      // A poisoned item was not stored, so it is never applied; dead-lettered, it is acknowledged (null).
      try {
        await this.opts.onPoison(p.item, err);
        failed.set(p, null);
      } catch (deadLetterErr) {
        // Not dead-lettered: not acknowledged either, so the publisher re-sends it (and it is tried again).
        this.opts.onPoisonFailed?.(p.item, deadLetterErr);
        failed.set(p, new Error('the store refused the message and recording it as a dead letter failed', { cause: deadLetterErr }));
      }
      return null;
    }
    const mid = Math.ceil(batch.length / 2);
    return (await this.commit(batch.slice(0, mid), failed)) ?? (await this.commit(batch.slice(mid), failed));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.sleepers.delete(timer);
        resolve();
      }, ms);
      this.sleepers.set(timer, resolve);
    });
  }

  /** Resolves when nothing is queued or being written. */
  idle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops accepting items and waits (up to `timeoutMs`) for queued ones to be written. Items still
   * unwritten are rejected — never acknowledged — so their publishers re-send them.
   */
  async close(timeoutMs = 10_000): Promise<void> {
    this.closed = true;
    this.wake?.(); // a lingering batch is written now
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs).unref());
    const result = await Promise.race([this.idle().then(() => 'idle' as const), timer]);
    if (result === 'timeout') {
      for (const [timer, wakeUp] of this.sleepers) {
        clearTimeout(timer);
        wakeUp();
      }
      this.sleepers.clear();
      this.wake?.();
      const e = new Error('ingest shut down before the write succeeded');
      this.queuedWeight = 0;
      for (const p of this.queue.splice(0)) p.reject(e);
    }
  }
}
