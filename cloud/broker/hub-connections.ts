/**
 * Which authenticated MQTT connections each hub holds, following the broker's real client lifecycle
 * (issue 11: counts set at authentication and cleared only by `clientDisconnect` leaked when a client
 * ended on a path that never emits it, so a hub reached its connection limit for good and stayed
 * "online").
 *
 * A connection takes a slot of its hub when its login is accepted (so concurrent logins cannot
 * overshoot the per-hub limit) and gives it back exactly once, on whichever end comes first: the
 * broker's `clientDisconnect` or the transport's `close` (which every path ends in — refusal, abrupt
 * close while authenticating, takeover by the same client id, keep-alive timeout). It counts as live
 * (`onOpen` → the hub is online) only from `clientReady` (CONNACK sent) until that end; a client that
 * ends before it is ready never opens. Each transition happens at most once per connection, whatever
 * the order the events arrive in.
 *
 * Keyed by an opaque connection object (the aedes client; never a Set); no I/O, no clock.
 */
export interface HubConnectionEvents<C> {
  onOpen(conn: C, hub: string): void;
  onClose(conn: C, hub: string): void;
}

type State = 'pending' | 'open' | 'ended';

export class HubConnections<C extends object> {
  private readonly state = new WeakMap<C, { hub: string; state: State }>();
  /**
   * Each hub's connections holding a slot: the connection itself while it is the only one (nearly every
   * hub), a Set from the second on — a Set costs ~150 bytes even with one entry (issue 17).
   */
  private readonly perHub = new Map<string, C | Set<C>>();
  private held = 0;

  constructor(private readonly events: HubConnectionEvents<C>) {}

  /** Connections holding a slot (accepted, not yet ended), all hubs. */
  get total(): number {
    return this.held;
  }

  /** Connections of the hub holding a slot, optionally not counting one (a connection about to be replaced). */
  count(hub: string, except?: C): number {
    const held = this.perHub.get(hub);
    if (held === undefined) return 0;
    if (!(held instanceof Set)) return held === except ? 0 : 1;
    return except !== undefined && held.has(except) ? held.size - 1 : held.size;
  }

  /** Whether the connection holds a slot of this hub. */
  holds(conn: C, hub: string): boolean {
    const held = this.perHub.get(hub);
    return held instanceof Set ? held.has(conn) : held === conn;
  }

  /** Whether the connection is live (ready and not ended). */
  isOpen(conn: C): boolean {
    return this.state.get(conn)?.state === 'open';
  }

  /** A login was accepted: the connection takes a slot. False if it was seen before (never twice). */
  admit(conn: C, hub: string): boolean {
    if (this.state.has(conn)) return false;
    this.state.set(conn, { hub, state: 'pending' });
    const held = this.perHub.get(hub);
    if (held === undefined) this.perHub.set(hub, conn);
    else if (held instanceof Set) held.add(conn);
    else this.perHub.set(hub, new Set([held, conn]));
    this.held++;
    return true;
  }

  /** CONNACK was sent: the connection is live. Ignored unless it holds a slot and is not live yet. */
  ready(conn: C): boolean {
    const s = this.state.get(conn);
    if (s?.state !== 'pending') return false;
    s.state = 'open';
    this.events.onOpen(conn, s.hub);
    return true;
  }

  /** The connection ended (any path). Gives its slot back once; closes it if it was live. */
  end(conn: C): boolean {
    const s = this.state.get(conn);
    if (!s || s.state === 'ended') return false;
    const wasOpen = s.state === 'open';
    s.state = 'ended';
    const held = this.perHub.get(s.hub)!;
    if (!(held instanceof Set)) {
      this.perHub.delete(s.hub);
    } else {
      held.delete(conn);
      // Back to the single form when one is left.
      if (held.size === 1) this.perHub.set(s.hub, held.values().next().value!);
    }
    this.held--;
    if (wasOpen) this.events.onClose(conn, s.hub);
    return true;
  }
}
