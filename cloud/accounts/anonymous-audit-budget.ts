/**
 * How many calls without a valid session the audit log records one by one (issue 11). Every mutating
 * call is audited whatever its path, but an anonymous client can make thousands a second (measured:
 * 20,000 refused POSTs in 10 s from one client wrote 20,000 rows, +16 MB, into an append-only table
 * that nothing may shrink), burying the real entries and filling the disk. Calls made with a session
 * are always recorded (they name who made them); calls without one are recorded up to `perWindow` per
 * window, and the rest are counted and summarised in one row when the window is over.
 * Pure: the caller passes `now`.
 */
export interface UnrecordedCalls {
  count: number;
  from: number;
  to: number;
}

export type AnonymousAuditDecision =
  /** Write the call's row. */
  | 'record'
  /** The budget just ran out: write a row saying so (the call itself is counted). */
  | 'limit_reached'
  /** Counted only. */
  | 'count';

export class AnonymousAuditBudget {
  private windowStart = Number.NEGATIVE_INFINITY;
  private used = 0;
  private unrecorded: UnrecordedCalls | null = null;

  constructor(readonly perWindow: number, readonly windowMs = 60_000) {}

  /** Decides for one call without a session; `summary` is the previous window's unrecorded calls, once. */
  admit(now: number): { decision: AnonymousAuditDecision; summary: UnrecordedCalls | null } {
    const summary = this.flush(now);
    if (now - this.windowStart >= this.windowMs) {
      this.windowStart = now;
      this.used = 0;
    }
    this.used++;
    if (this.used <= this.perWindow) return { decision: 'record', summary };
    this.unrecorded = this.unrecorded ? { ...this.unrecorded, count: this.unrecorded.count + 1, to: now } : { count: 1, from: now, to: now };
    return { decision: this.used === this.perWindow + 1 ? 'limit_reached' : 'count', summary };
  }

  /** The unrecorded calls of a window that is over (once), else null — for a timer, so a flood that stopped is still summarised. */
  flush(now: number): UnrecordedCalls | null {
    if (this.unrecorded === null || now - this.windowStart < this.windowMs) return null;
    const u = this.unrecorded;
    this.unrecorded = null;
    return u;
  }
}
