/**
 * Exponential back-off with jitter — the one formula for every retry loop (edge uplink reconnects,
 * group-commit store retries, InfluxDB requests) [issue 12: there were three].
 *
 * The delay before retry `attempt` (0 for the first retry) is `min(maxMs, initialMs · 2^attempt)`,
 * jittered so that many clients coming back after the same outage spread out (AWS Architecture Blog,
 * "Exponential Backoff And Jitter"):
 *   - `full`: uniform in [0, d) — best spread; for reconnect storms of many hubs;
 *   - `equal`: uniform in [d/2, d) — never retries at once; for a server's own retries of one resource.
 */
export interface Backoff {
  initialMs: number;
  maxMs: number;
  jitter: 'full' | 'equal';
}

/** Exponents beyond this cannot raise the delay further for any sane ceiling (2^30 ms ≈ 12 days). */
const MAX_EXPONENT = 30;

export function backoffDelayMs(b: Backoff, attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(b.maxMs, b.initialMs * 2 ** Math.min(Math.max(0, attempt), MAX_EXPONENT));
  return b.jitter === 'full' ? random() * ceiling : ceiling / 2 + random() * (ceiling / 2);
}
