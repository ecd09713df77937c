/**
 * Schedules the password checks that MQTT logins cost, fairly between client addresses (issue 11).
 * A hub password check is a scrypt run (~16 MiB, 30–60 ms on libuv's small thread pool, see
 * hubs/hub-credentials.ts). Run as they arrive, an anonymous client that opens many connections with
 * a known hub id as username and a wrong password queues thousands of them, and every genuine login
 * not in the credential cache waits behind them all — measured: 200 such connections from one address
 * made a hub's login take 2.9 s instead of 84 ms; 1,500 made every hub's CONNACK time out.
 *
 * - At most `maxActive` checks run at once; the others wait in one queue per address, served in
 *   turn (round robin), so a login from another address waits for at most a round, not for the flood.
 * - An address may have at most `maxQueuedPerAddress` checks waiting; beyond that, and
 * - after `maxFailuresPerAddress` failed logins within `failureWindowMs`, a login from the address is
 *   refused before any check (the broker answers CONNACK 3, server unavailable, and the client backs
 *   off). A correct login does not clear the count, so failures cannot be laundered through a hub
 *   that shares the attacker's address (accepted risk: such a hub is refused along with it).
 * - A queued check whose connection has gone by its turn, or whose address has reached the failure
 *   limit meanwhile, is skipped.
 *
 * No timers, no I/O; the clock is passed in. Many addresses at once (a botnet) are not limited here.
 */
export interface LoginThrottleLimits {
  maxActive: number;
  maxQueuedPerAddress: number;
  maxFailuresPerAddress: number;
  failureWindowMs: number;
}

export const DEFAULT_LOGIN_THROTTLE: LoginThrottleLimits = {
  maxActive: 8,
  maxQueuedPerAddress: 256,
  maxFailuresPerAddress: 20,
  failureWindowMs: 60_000,
};

export type LoginRefusal = 'address_busy' | 'address_failures';
export type Scheduled<T> = { ran: true; value: T } | { ran: false; reason: LoginRefusal | 'gone' };

interface Job {
  start(): void;
  skip(reason: LoginRefusal | 'gone'): void;
  stillWanted(): boolean;
}

export class LoginThrottle {
  private active = 0;
  /** Waiting checks per address; the map's order is the round-robin order. */
  private readonly queues = new Map<string, Job[]>();
  /** Failure times per address, oldest first (at most maxFailuresPerAddress kept). */
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly limits: LoginThrottleLimits = DEFAULT_LOGIN_THROTTLE,
    private readonly now: () => number = Date.now,
  ) {}

  get running(): number {
    return this.active;
  }

  get waiting(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.length;
    return n;
  }

  /**
   * Runs `check` for a login from `address` in its turn. `failed(result)` says whether the
   * credentials were wrong. Resolves without running it when the address is refused or the
   * connection is no longer wanted by its turn.
   */
  schedule<T>(address: string, check: () => Promise<T>, failed: (result: T) => boolean, stillWanted: () => boolean = () => true): Promise<Scheduled<T>> {
    if (this.recentFailures(address) >= this.limits.maxFailuresPerAddress) return Promise.resolve({ ran: false, reason: 'address_failures' });
    const queue = this.queues.get(address) ?? [];
    if (queue.length >= this.limits.maxQueuedPerAddress) return Promise.resolve({ ran: false, reason: 'address_busy' });
    return new Promise<Scheduled<T>>((resolve, reject) => {
      const job: Job = {
        stillWanted,
        skip: (reason) => resolve({ ran: false, reason }),
        start: () => {
          this.active++;
          check().then(
            (value) => {
              if (failed(value)) this.recordFailure(address);
              this.finish();
              resolve({ ran: true, value });
            },
            (err: unknown) => {
              this.finish();
              reject(err);
            },
          );
        },
      };
      queue.push(job);
      this.queues.set(address, queue);
      this.pump();
    });
  }

  private finish(): void {
    this.active--;
    this.pump();
  }

  private pump(): void {
    while (this.active < this.limits.maxActive) {
      const next = this.queues.entries().next();
      if (next.done) return;
      const [address, queue] = next.value;
      const job = queue.shift()!;
      // Round robin: the address goes to the back of the line (or leaves it when it has nothing left).
      this.queues.delete(address);
      if (queue.length > 0) this.queues.set(address, queue);
      // Failures of the checks that ran meanwhile count too: a burst queued at once stops there.
      if (!job.stillWanted()) job.skip('gone');
      else if (this.recentFailures(address) >= this.limits.maxFailuresPerAddress) job.skip('address_failures');
      else job.start();
    }
  }

  private recordFailure(address: string): void {
    const times = this.failures.get(address) ?? [];
    times.push(this.now());
    if (times.length > this.limits.maxFailuresPerAddress) times.shift();
    this.failures.set(address, times);
    // Forget a few addresses whose failures have all left the window (oldest entries first), so the
    // map stays bounded by the failure rate times the window.
    let checked = 0;
    for (const [a, t] of this.failures) {
      if (checked++ >= 4) break;
      if (this.now() - t[t.length - 1]! >= this.limits.failureWindowMs) this.failures.delete(a);
    }
  }

  private recentFailures(address: string): number {
    const times = this.failures.get(address);
    if (!times) return 0;
    while (times.length > 0 && this.now() - times[0]! >= this.limits.failureWindowMs) times.shift();
    if (times.length === 0) this.failures.delete(address);
    return times.length;
  }
}
