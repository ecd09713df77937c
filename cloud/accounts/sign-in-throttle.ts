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
    return f ? Math.max(0, f.lastAt + this.delay(f.count) - now) : 0;
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
