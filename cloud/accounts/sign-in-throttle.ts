/**
 * Failed sign-ins, counted per username and per client address, with a growing delay (issue 11).
 * Pure: the caller passes `now`, so tests and simulations drive the clock.
 *
 * Policy: each key gets `free…` failed attempts; after that the next attempt must wait
 * base·2^(failures − free), capped at `maxDelayMs` (1 s, 2 s, 4 s, … 15 min by default). An
 * attempt that comes too early is refused (429 with Retry-After) without checking the password, and
 * is not counted, so refusals cost nothing and cannot be used to lengthen someone else's wait.
 *   - per username: guessing one account's password, from however many addresses, is slowed;
 *     a successful sign-in clears it. Unknown usernames are counted like known ones.
 *   - per address (IPv6 by /64): one client spraying many usernames is slowed. Its limit is higher
 *     (a community hall's tablets share one address) and success does not clear it (else an attacker
 *     with one valid account could reset their own address between guesses).
 * Attempts still being checked for a username (a password check takes ~100 ms) count as its failures until they end:
 * without that, N attempts sent at once all pass `check` before the first failure is recorded, and an
 * attacker gets N guesses (and N scrypt runs) per delay instead of one. Measured before this rule:
 * 12 wrong passwords for one username sent at once, 3 free: all 12 were checked (now 3, 9 refused);
 * in a CI run, 20 clients flooding one username kept enough checks running that a real sign-in took
 * 761 ms instead of 103. Now at most `free…` checks for a username run at once, then one per delay.
 * Not for addresses: a community hall's tablets signing in together would be refused for it, and one
 * address's concurrency is already capped by the per-minute request limit (@fastify/rate-limit).
 * A key's failures are forgotten `forgetAfterMs` after its last one. Each table holds at most
 * `maxEntries` keys, the least recently failed dropped first, so memory stays bounded.
 */
export interface SignInThrottleOptions {
  freeFailuresPerUsername: number;
  freeFailuresPerAddress: number;
  baseDelayMs: number;
  maxDelayMs: number;
  forgetAfterMs: number;
  maxEntries: number;
}

export const DEFAULT_SIGN_IN_THROTTLE: SignInThrottleOptions = {
  freeFailuresPerUsername: 5, freeFailuresPerAddress: 20, baseDelayMs: 1000, maxDelayMs: 900_000, forgetAfterMs: 3_600_000, maxEntries: 10_000,
};

interface Failures { count: number; lastAt: number }

export interface Refusal {
  /** Which limit refused: the username's or the address's. */
  by: 'username' | 'address';
  retryAfterMs: number;
}

class FailureTable {
  private readonly map = new Map<string, Failures>();
  /** Attempts being checked per key (bounded by the requests in flight). */
  private readonly checking = new Map<string, number>();
  constructor(private readonly free: number, private readonly o: SignInThrottleOptions) {}

  private live(key: string, now: number): Failures | undefined {
    const f = this.map.get(key);
    if (f && now - f.lastAt >= Math.max(this.o.forgetAfterMs, this.delay(f.count))) {
      this.map.delete(key);
      return undefined;
    }
    return f;
  }

  delay(count: number): number {
    if (count < this.free) return 0;
    return Math.min(this.o.maxDelayMs, this.o.baseDelayMs * 2 ** Math.min(40, count - this.free));
  }

  waitMs(key: string, now: number): number {
    const f = this.live(key, now);
    const count = f?.count ?? 0;
    const wait = f ? Math.max(0, f.lastAt + this.delay(count) - now) : 0;
    const checking = this.checking.get(key) ?? 0;
    if (wait > 0 || checking === 0 || count + checking < this.free) return wait;
    // Were the attempts being checked all to fail, this one would have to wait this long.
    return this.delay(count + checking);
  }

  begin(key: string): void {
    this.checking.set(key, (this.checking.get(key) ?? 0) + 1);
  }

  end(key: string): void {
    const n = (this.checking.get(key) ?? 1) - 1;
    if (n > 0) this.checking.set(key, n);
    else this.checking.delete(key);
  }

  fail(key: string, now: number): void {
    const count = (this.live(key, now)?.count ?? 0) + 1;
    this.map.delete(key); // re-inserted last: Map order is least recently failed first
    this.map.set(key, { count, lastAt: now });
    while (this.map.size > this.o.maxEntries) this.map.delete(this.map.keys().next().value!);
  }

  clear(key: string): void {
    this.map.delete(key);
  }

  get size(): number {
    return this.map.size;
  }
}

export class SignInThrottle {
  private readonly byUsername: FailureTable;
  private readonly byAddress: FailureTable;

  constructor(options: Partial<SignInThrottleOptions> = {}) {
    const o = { ...DEFAULT_SIGN_IN_THROTTLE, ...options };
    this.byUsername = new FailureTable(o.freeFailuresPerUsername, o);
    this.byAddress = new FailureTable(o.freeFailuresPerAddress, o);
  }

  /** A refusal when this attempt comes too early for the username or the address; null to go ahead. */
  check(username: string, address: string, now: number): Refusal | null {
    const u = this.byUsername.waitMs(usernameKey(username), now);
    const a = this.byAddress.waitMs(address, now);
    if (u === 0 && a === 0) return null;
    return u >= a ? { by: 'username', retryAfterMs: u } : { by: 'address', retryAfterMs: a };
  }

  /**
   * Marks an attempt for `username` let through by `check` as being checked until the returned function is called
   * (once; later calls do nothing). Call `failed`/`succeeded` before or right after it, with no await
   * between, so the attempt never stops counting in between.
   */
  begin(username: string): () => void {
    const u = usernameKey(username);
    this.byUsername.begin(u);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.byUsername.end(u);
    };
  }

  failed(username: string, address: string, now: number): void {
    this.byUsername.fail(usernameKey(username), now);
    this.byAddress.fail(address, now);
  }

  succeeded(username: string): void {
    this.byUsername.clear(usernameKey(username));
  }

  /** Keys held (for tests and metrics). */
  get sizes(): { usernames: number; addresses: number } {
    return { usernames: this.byUsername.size, addresses: this.byAddress.size };
  }
}

const usernameKey = (username: string) => username.trim().toLowerCase();
