/**
 * Persistent MQTT sessions (clean session = 0) of clients that never come back expire (issue 11).
 * MQTT 3.1.1 keeps such a session — its subscriptions and the QoS 1 messages queued for it — for ever
 * [MQTT-3.1.2-4]; aedes' persistence has no expiry of its own. A hub that is decommissioned, or a
 * login that made up many `<hub>.<suffix>` ids, would otherwise hold queued commands in the broker
 * without bound. (MQTT 5 names this "session expiry interval"; we apply one interval to all.)
 *
 * The broker reports when a persistent session's connection ended and when a connection with the id
 * is live again; `sweep(now)` returns the ids whose session has been without a connection for
 * `ttlMs`, for the broker to purge. No timers or I/O here.
 */
export class SessionExpiry {
  private readonly idleSince = new Map<string, number>();

  constructor(private readonly ttlMs: number) {}

  get size(): number {
    return this.idleSince.size;
  }

  /** A connection with this client id is live: its session is in use. */
  connected(clientId: string): void {
    this.idleSince.delete(clientId);
  }

  /** The connection of a persistent session ended at `now` (a later end restarts the wait). */
  disconnected(clientId: string, now: number): void {
    this.idleSince.delete(clientId); // re-insert: the map stays in order of idleness
    this.idleSince.set(clientId, now);
  }

  /**
   * Ids idle for at least the TTL at `now`, removed from the watch list. `isLive(id)` guards against a
   * connection that took the id over without a `connected` call reaching us first.
   */
  sweep(now: number, isLive: (clientId: string) => boolean): string[] {
    const expired: string[] = [];
    for (const [id, since] of this.idleSince) {
      if (now - since < this.ttlMs) break; // in order of idleness: the rest are younger
      this.idleSince.delete(id);
      if (!isLive(id)) expired.push(id);
    }
    return expired;
  }
}
