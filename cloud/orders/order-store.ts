import type { Database, FeatureMigrations } from '../db/database.ts';
import { isUniqueViolation, type Sql, type SqlValue } from '../db/sql.ts';
import type { Priority, Reason } from '../dispatch/dispatch-engine.ts';
import { assertTransition, IllegalTransition, type OrderState } from './order-lifecycle.ts';

/**
 * Orders, their append-only audit log (every state change, who made it and why) and the flight
 * log (飛行日誌: one entry per flight — aircraft, route, times, payload, flight-plan reference), in
 * the operational database — SQLite or PostgreSQL (issue 14), one SQL implementation for both.
 *
 * Several cloud processes may share one PostgreSQL database, so nothing here reads and then writes
 * without holding what it read: a state change locks the order's row (`FOR UPDATE`) and checks the
 * lifecycle against what it locked, in the same transaction as its audit entry; counters are updated
 * in place; and partial unique indexes refuse a compartment held by two orders or a drone on two
 * missions (`ResourceTaken`), whichever process planned them.
 */
const SQLITE_MIGRATIONS = [
  `CREATE TABLE orders (
     id              TEXT PRIMARY KEY,
     region          TEXT NOT NULL,
     origin_hub      TEXT NOT NULL,
     dest_type       TEXT NOT NULL CHECK (dest_type IN ('locker', 'site')),
     dest_hub        TEXT,
     dest_site       TEXT,
     weight_kg       REAL NOT NULL,
     temp_class      TEXT NOT NULL,
     priority        TEXT NOT NULL CHECK (priority IN ('normal', 'medical', 'relief')),
     deadline        INTEGER,
     reference       TEXT,
     flight_plan_ref TEXT,
     state           TEXT NOT NULL,
     reason          TEXT,
     wait_reasons    TEXT,               -- JSON: why it is not dispatched yet (machine-readable)
     created_at      INTEGER NOT NULL,
     created_by      TEXT NOT NULL,
     updated_at      INTEGER NOT NULL,
     carrier         TEXT,               -- 'drone' | 'ground'
     drone_hub       TEXT,
     drone_id        TEXT,
     round_id        TEXT,
     locker_id       TEXT,
     compartment_id  TEXT,
     mission_id      TEXT UNIQUE,
     mission_cmd_id  TEXT,
     attempts        INTEGER NOT NULL DEFAULT 0,
     pickup_hash     TEXT,               -- scrypt hash of the pickup code
     pickup_reveal   TEXT,               -- the code until it is shown once, then NULL
     wrong_codes     INTEGER NOT NULL DEFAULT 0,
     locked          INTEGER NOT NULL DEFAULT 0
   );
   CREATE INDEX orders_state ON orders (state, created_at);
   CREATE INDEX orders_origin ON orders (origin_hub, state);
   CREATE INDEX orders_dest ON orders (dest_hub, state);
   CREATE TABLE order_audit (
     id         INTEGER PRIMARY KEY AUTOINCREMENT,
     order_id   TEXT NOT NULL REFERENCES orders (id),
     at         INTEGER NOT NULL,
     actor      TEXT NOT NULL,
     from_state TEXT,
     to_state   TEXT NOT NULL,
     reason     TEXT NOT NULL
   );
   CREATE INDEX order_audit_order ON order_audit (order_id, id);
   CREATE TRIGGER order_audit_append_only_u BEFORE UPDATE ON order_audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
   CREATE TRIGGER order_audit_append_only_d BEFORE DELETE ON order_audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
   CREATE TABLE flight_log (
     mission_id      TEXT PRIMARY KEY,
     order_id        TEXT NOT NULL,
     aircraft_hub    TEXT NOT NULL,
     aircraft        TEXT NOT NULL,
     origin          TEXT NOT NULL,
     destination     TEXT NOT NULL,
     route           TEXT NOT NULL,     -- JSON legs
     distance_m      REAL NOT NULL,
     payload_kg      REAL NOT NULL,
     flight_plan_ref TEXT NOT NULL,
     planned_at      INTEGER NOT NULL,
     takeoff_at      INTEGER,
     arrived_at      INTEGER,
     result          TEXT
   );`,
  // Issue 12 (2): which departure of its ground round an order is on — the round's capacity is booked
  // until the round ends, and the round's end closes the order's lifecycle.
  `ALTER TABLE orders ADD COLUMN round_departs_at INTEGER;`,
  // Issue 14: list queries filter by region; and the database itself refuses a compartment held by two
  // orders or a drone on two missions — with several cloud processes on one PostgreSQL, two planning
  // rounds can pick the same free compartment at once, and only a constraint sees both.
  `CREATE INDEX orders_region ON orders (region, state, created_at);
   CREATE UNIQUE INDEX orders_compartment_held ON orders (dest_hub, locker_id, compartment_id)
     WHERE compartment_id IS NOT NULL AND state IN ('assigned', 'mission_unknown', 'in_flight', 'in_locker');
   CREATE UNIQUE INDEX orders_drone_busy ON orders (drone_hub, drone_id)
     WHERE drone_id IS NOT NULL AND state IN ('assigned', 'mission_unknown', 'in_flight');`,
];

/** The newest SQLite schema in one step, with PostgreSQL's types (same tables and columns, so data copies over column by column). */
const POSTGRES_MIGRATIONS = [
  `CREATE TABLE orders (
     id               TEXT PRIMARY KEY,
     region           TEXT NOT NULL,
     origin_hub       TEXT NOT NULL,
     dest_type        TEXT NOT NULL CHECK (dest_type IN ('locker', 'site')),
     dest_hub         TEXT,
     dest_site        TEXT,
     weight_kg        DOUBLE PRECISION NOT NULL,
     temp_class       TEXT NOT NULL,
     priority         TEXT NOT NULL CHECK (priority IN ('normal', 'medical', 'relief')),
     deadline         BIGINT,
     reference        TEXT,
     flight_plan_ref  TEXT,
     state            TEXT NOT NULL,
     reason           TEXT,
     wait_reasons     TEXT,
     created_at       BIGINT NOT NULL,
     created_by       TEXT NOT NULL,
     updated_at       BIGINT NOT NULL,
     carrier          TEXT,
     drone_hub        TEXT,
     drone_id         TEXT,
     round_id         TEXT,
     locker_id        TEXT,
     compartment_id   TEXT,
     mission_id       TEXT UNIQUE,
     mission_cmd_id   TEXT,
     attempts         INTEGER NOT NULL DEFAULT 0,
     pickup_hash      TEXT,
     pickup_reveal    TEXT,
     wrong_codes      INTEGER NOT NULL DEFAULT 0,
     locked           INTEGER NOT NULL DEFAULT 0,
     round_departs_at BIGINT
   );
   CREATE INDEX orders_state ON orders (state, created_at);
   CREATE INDEX orders_origin ON orders (origin_hub, state);
   CREATE INDEX orders_dest ON orders (dest_hub, state);
   CREATE INDEX orders_region ON orders (region, state, created_at);
   CREATE UNIQUE INDEX orders_compartment_held ON orders (dest_hub, locker_id, compartment_id)
     WHERE compartment_id IS NOT NULL AND state IN ('assigned', 'mission_unknown', 'in_flight', 'in_locker');
   CREATE UNIQUE INDEX orders_drone_busy ON orders (drone_hub, drone_id)
     WHERE drone_id IS NOT NULL AND state IN ('assigned', 'mission_unknown', 'in_flight');
   CREATE TABLE order_audit (
     id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     order_id   TEXT NOT NULL REFERENCES orders (id),
     at         BIGINT NOT NULL,
     actor      TEXT NOT NULL,
     from_state TEXT,
     to_state   TEXT NOT NULL,
     reason     TEXT NOT NULL
   );
   CREATE INDEX order_audit_order ON order_audit (order_id, id);
   CREATE FUNCTION order_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
   CREATE TRIGGER order_audit_append_only BEFORE UPDATE OR DELETE ON order_audit
     FOR EACH ROW EXECUTE FUNCTION order_audit_append_only();
   CREATE TABLE flight_log (
     mission_id      TEXT PRIMARY KEY,
     order_id        TEXT NOT NULL,
     aircraft_hub    TEXT NOT NULL,
     aircraft        TEXT NOT NULL,
     origin          TEXT NOT NULL,
     destination     TEXT NOT NULL,
     route           TEXT NOT NULL,
     distance_m      DOUBLE PRECISION NOT NULL,
     payload_kg      DOUBLE PRECISION NOT NULL,
     flight_plan_ref TEXT NOT NULL,
     planned_at      BIGINT NOT NULL,
     takeoff_at      BIGINT,
     arrived_at      BIGINT,
     result          TEXT
   );`,
];

export const ORDER_MIGRATIONS: FeatureMigrations = { sqlite: SQLITE_MIGRATIONS, postgres: POSTGRES_MIGRATIONS };

export interface Order {
  id: string;
  region: string;
  originHub: string;
  destination: { type: 'locker'; hub: string } | { type: 'site'; siteId: string };
  weightKg: number;
  tempClass: 'ambient' | 'chilled' | 'frozen';
  priority: Priority;
  deadline: number | null;
  reference: string | null;
  flightPlanRef: string | null;
  state: OrderState;
  reason: string | null;
  waitReasons: Reason[] | null;
  createdAt: number;
  createdBy: string;
  updatedAt: number;
  carrier: 'drone' | 'ground' | null;
  droneHub: string | null;
  droneId: string | null;
  roundId: string | null;
  /** The departure of the ground round the order is on, epoch ms. */
  roundDepartsAt: number | null;
  lockerId: string | null;
  compartmentId: string | null;
  missionId: string | null;
  missionCommandId: string | null;
  attempts: number;
  pickupHash: string | null;
  pickupReveal: string | null;
  wrongCodes: number;
  locked: boolean;
}

export type NewOrderRecord = Omit<Order, 'state' | 'reason' | 'waitReasons' | 'updatedAt' | 'carrier' | 'droneHub' | 'droneId' | 'roundId' | 'roundDepartsAt' | 'lockerId' | 'compartmentId' | 'missionId' | 'missionCommandId' | 'attempts' | 'pickupHash' | 'pickupReveal' | 'wrongCodes' | 'locked'>;

export interface AuditEntry {
  id: number;
  orderId: string;
  at: number;
  actor: string;
  from: OrderState | null;
  to: OrderState;
  reason: string;
}

export interface FlightLogEntry {
  missionId: string;
  orderId: string;
  aircraftHub: string;
  aircraft: string;
  origin: string;
  destination: string;
  route: unknown;
  distanceM: number;
  payloadKg: number;
  flightPlanRef: string;
  plannedAt: number;
  takeoffAt: number | null;
  arrivedAt: number | null;
  result: string | null;
}

export class OrderNotFound extends Error {
  override readonly name = 'OrderNotFound';
  constructor(readonly orderId: string) {
    super(`no order ${orderId}`);
  }
}

/** A state change that would hold a compartment another order holds, or a drone on another mission (issue 14, item 2). */
export class ResourceTaken extends Error {
  override readonly name = 'ResourceTaken';
  constructor(readonly orderId: string, cause: unknown) {
    super(`order ${orderId}: its compartment or drone is already held by another order`, { cause });
  }
}

export interface TransitionOptions {
  /** Refused (IllegalTransition) unless the order is in one of these states when it is locked. */
  from?: readonly OrderState[];
  /** Refused (IllegalTransition) unless the order still has this mission. */
  missionId?: string | null;
  /** Sees the order as locked, before the change (may throw to refuse it: the transaction rolls back). */
  onLocked?: (current: Order) => void | Promise<void>;
  /** The audit reason, made after `onLocked` (when it depends on the locked row); replaces `reason`. */
  reason?: () => string;
  /** A flight log entry written in the same transaction (a drone assignment and its flight go together). */
  flight?: Omit<FlightLogEntry, 'takeoffAt' | 'arrivedAt' | 'result'>;
}

export interface OrderQuery {
  hub?: string;
  state?: OrderState;
  /** Only orders of these regions (a coordinator's); absent: every region. */
  regions?: readonly string[] | null;
  limit: number;
}

/** The order store port (issue 14): every method is asynchronous; `tx` lets a caller join its own transaction. */
export interface OrderStore {
  /** Whether a drone of `hub` has an assigned mission (checked by the wind alarm rule on sensor telemetry). */
  hasAssignedMissionAt(hub: string): Promise<boolean>;
  /** Inserts the order (state `pending`) and its first audit entry, together. */
  create(o: NewOrderRecord): Promise<Order>;
  get(id: string, tx?: Sql): Promise<Order | undefined>;
  /** Newest first. */
  list(q: OrderQuery): Promise<Order[]>;
  /** Oldest first. */
  inStates(states: readonly OrderState[], q?: { regions?: readonly string[] | null }): Promise<Order[]>;
  /** Number of orders per (state, priority) that has any, of one region or all — for the operators' dashboards (cloud/ops-stats). */
  countsByStateAndPriority(region?: string): Promise<{ state: OrderState; priority: Priority; count: number }[]>;
  /**
   * Orders that arrived (in a locker or at a landing site), per priority, and how many of them by their
   * deadline (an order without a deadline counts as on time). Arrival is the audit entry of that step.
   */
  arrivalsByPriority(region?: string): Promise<{ priority: Priority; delivered: number; onTime: number }[]>;
  /**
   * Changes state (checked against the lifecycle, on the row as locked) and other fields, and appends
   * the audit entry, in one transaction. Throws OrderNotFound, IllegalTransition or ResourceTaken.
   */
  transition(id: string, to: OrderState, at: number, actor: string, reason: string, fields?: Partial<Order>, options?: TransitionOptions, tx?: Sql): Promise<Order>;
  /**
   * Updates fields without a state change and records why in the audit log (from = to = the current
   * state), in one transaction: an action on the order that a person took, e.g. unlocking its
   * compartment (issue 12, 3). `options.from` as for `transition`.
   */
  note(id: string, at: number, actor: string, reason: string, fields?: Partial<Order>, options?: TransitionOptions, tx?: Sql): Promise<Order>;
  /** Updates fields without a state change (no audit entry); only while the order is in one of `onlyIn` when given. True when it changed. */
  update(id: string, at: number, fields: Partial<Order>, onlyIn?: readonly OrderState[], tx?: Sql): Promise<boolean>;
  /** The pickup code to show once, cleared as it is taken (two callers never both get it); null when there is none. */
  takePickupReveal(id: string, at: number): Promise<{ order: Order; code: string } | null>;
  /** One more wrong pickup code for an order in a locker, counted in place; locked at `lockAt`. Null when it is no longer in a locker. */
  countWrongCode(id: string, at: number, lockAt: number): Promise<{ wrongCodes: number; locked: boolean } | null>;
  auditOf(orderId: string): Promise<AuditEntry[]>;
  addFlight(f: Omit<FlightLogEntry, 'takeoffAt' | 'arrivedAt' | 'result'>, tx?: Sql): Promise<void>;
  updateFlight(missionId: string, fields: { takeoffAt?: number; arrivedAt?: number; result?: string }, tx?: Sql): Promise<void>;
  /** Newest first; `regions`: only flights of those regions' orders. */
  flights(q: { orderId?: string; regions?: readonly string[] | null; limit: number }): Promise<FlightLogEntry[]>;
}

type Row = Record<string, unknown>;

function toOrder(r: Row): Order {
  return {
    id: r.id as string, region: r.region as string, originHub: r.origin_hub as string,
    destination: r.dest_type === 'locker' ? { type: 'locker', hub: r.dest_hub as string } : { type: 'site', siteId: r.dest_site as string },
    weightKg: r.weight_kg as number, tempClass: r.temp_class as Order['tempClass'], priority: r.priority as Priority,
    deadline: (r.deadline as number | null) ?? null, reference: (r.reference as string | null) ?? null, flightPlanRef: (r.flight_plan_ref as string | null) ?? null,
    state: r.state as OrderState, reason: (r.reason as string | null) ?? null,
    waitReasons: r.wait_reasons ? (JSON.parse(r.wait_reasons as string) as Reason[]) : null,
    createdAt: r.created_at as number, createdBy: r.created_by as string, updatedAt: r.updated_at as number,
    carrier: (r.carrier as Order['carrier']) ?? null, droneHub: (r.drone_hub as string | null) ?? null, droneId: (r.drone_id as string | null) ?? null,
    roundId: (r.round_id as string | null) ?? null, roundDepartsAt: (r.round_departs_at as number | null) ?? null, lockerId: (r.locker_id as string | null) ?? null, compartmentId: (r.compartment_id as string | null) ?? null,
    missionId: (r.mission_id as string | null) ?? null, missionCommandId: (r.mission_cmd_id as string | null) ?? null, attempts: r.attempts as number,
    pickupHash: (r.pickup_hash as string | null) ?? null, pickupReveal: (r.pickup_reveal as string | null) ?? null,
    wrongCodes: r.wrong_codes as number, locked: r.locked === 1,
  };
}

const COLUMN: Partial<Record<keyof Order, string>> = {
  reason: 'reason', carrier: 'carrier', droneHub: 'drone_hub', droneId: 'drone_id', roundId: 'round_id', roundDepartsAt: 'round_departs_at', lockerId: 'locker_id',
  compartmentId: 'compartment_id', missionId: 'mission_id', missionCommandId: 'mission_cmd_id', attempts: 'attempts',
  pickupHash: 'pickup_hash', pickupReveal: 'pickup_reveal', wrongCodes: 'wrong_codes', locked: 'locked', flightPlanRef: 'flight_plan_ref',
};

/** `SET …` for the fields (unknown keys ignored). */
function assignments(at: number, fields: Partial<Order>, state?: OrderState): { sets: string[]; args: SqlValue[] } {
  const sets: string[] = ['updated_at = ?'];
  const args: SqlValue[] = [at];
  if (state) {
    sets.push('state = ?');
    args.push(state);
  }
  for (const [k, v] of Object.entries(fields)) {
    if (k === 'waitReasons') {
      sets.push('wait_reasons = ?');
      args.push(v === null || v === undefined ? null : JSON.stringify(v));
      continue;
    }
    const col = COLUMN[k as keyof Order];
    if (!col) continue;
    sets.push(`${col} = ?`);
    args.push(typeof v === 'boolean' ? (v ? 1 : 0) : ((v as SqlValue | undefined) ?? null));
  }
  return { sets, args };
}

const inList = (n: number) => Array.from({ length: n }, () => '?').join(', ');

/** Opens the order store on the operational database (migrating its tables first). */
export async function openOrderStore(db: Database): Promise<OrderStore> {
  await db.migrate('orders', ORDER_MIGRATIONS);
  return new SqlOrderStore(db.sql);
}

class SqlOrderStore implements OrderStore {
  constructor(private readonly sql: Sql) {}

  async hasAssignedMissionAt(hub: string): Promise<boolean> {
    return (await this.sql.one("SELECT 1 AS one FROM orders WHERE state = 'assigned' AND drone_hub = ? LIMIT 1", [hub])) !== undefined;
  }

  async create(o: NewOrderRecord): Promise<Order> {
    return this.sql.transaction(async (tx) => {
      await tx.run(
        `INSERT INTO orders (id, region, origin_hub, dest_type, dest_hub, dest_site, weight_kg, temp_class, priority, deadline, reference, flight_plan_ref,
           state, created_at, created_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)`,
        [o.id, o.region, o.originHub, o.destination.type, o.destination.type === 'locker' ? o.destination.hub : null, o.destination.type === 'site' ? o.destination.siteId : null,
          o.weightKg, o.tempClass, o.priority, o.deadline, o.reference, o.flightPlanRef, o.createdAt, o.createdBy, o.createdAt],
      );
      await this.audit(tx, o.id, o.createdAt, o.createdBy, null, 'pending', 'created');
      return (await this.get(o.id, tx))!;
    });
  }

  async get(id: string, tx: Sql = this.sql): Promise<Order | undefined> {
    const r = await tx.one<Row>('SELECT * FROM orders WHERE id = ?', [id]);
    return r ? toOrder(r) : undefined;
  }

  private async lock(tx: Sql, id: string): Promise<Order> {
    const r = await tx.one<Row>(`SELECT * FROM orders WHERE id = ?${tx.forUpdate}`, [id]);
    if (!r) throw new OrderNotFound(id);
    return toOrder(r);
  }

  async list(q: OrderQuery): Promise<Order[]> {
    const where: string[] = [];
    const args: SqlValue[] = [];
    if (q.hub) {
      where.push('(origin_hub = ? OR dest_hub = ?)');
      args.push(q.hub, q.hub);
    }
    if (q.state) {
      where.push('state = ?');
      args.push(q.state);
    }
    if (q.regions) {
      if (q.regions.length === 0) return [];
      where.push(`region IN (${inList(q.regions.length)})`);
      args.push(...q.regions);
    }
    const rows = await this.sql.query<Row>(`SELECT * FROM orders ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id LIMIT ?`, [...args, q.limit]);
    return rows.map(toOrder);
  }

  async inStates(states: readonly OrderState[], q: { regions?: readonly string[] | null } = {}): Promise<Order[]> {
    if (states.length === 0 || q.regions?.length === 0) return [];
    const byRegion = q.regions ? ` AND region IN (${inList(q.regions.length)})` : '';
    const rows = await this.sql.query<Row>(`SELECT * FROM orders WHERE state IN (${inList(states.length)})${byRegion} ORDER BY created_at, id`, [...states, ...(q.regions ?? [])]);
    return rows.map(toOrder);
  }

  async countsByStateAndPriority(region?: string): Promise<{ state: OrderState; priority: Priority; count: number }[]> {
    return region === undefined
      ? this.sql.query('SELECT state, priority, count(*) AS count FROM orders GROUP BY state, priority ORDER BY state, priority')
      : this.sql.query('SELECT state, priority, count(*) AS count FROM orders WHERE region = ? GROUP BY state, priority ORDER BY state, priority', [region]);
  }

  async arrivalsByPriority(region?: string): Promise<{ priority: Priority; delivered: number; onTime: number }[]> {
    const rows = await this.sql.query<{ priority: Priority; delivered: number; on_time: number }>(
      `SELECT o.priority AS priority, count(*) AS delivered,
              sum(CASE WHEN o.deadline IS NULL OR a.at <= o.deadline THEN 1 ELSE 0 END) AS on_time
         FROM orders o JOIN order_audit a ON a.order_id = o.id AND a.to_state IN ('in_locker', 'delivered') AND a.from_state IS DISTINCT FROM a.to_state
        ${region === undefined ? '' : 'WHERE o.region = ?'}
        GROUP BY o.priority ORDER BY o.priority`,
      region === undefined ? [] : [region],
    );
    return rows.map((r) => ({ priority: r.priority, delivered: r.delivered, onTime: Number(r.on_time) }));
  }

  async transition(id: string, to: OrderState, at: number, actor: string, reason: string, fields: Partial<Order> = {}, options: TransitionOptions = {}, outer?: Sql): Promise<Order> {
    return (outer ?? this.sql).transaction(async (tx) => {
      const current = await this.lock(tx, id);
      check(current, to, options);
      assertTransition(current.state, to);
      await options.onLocked?.(current);
      const why = options.reason?.() ?? reason;
      await this.write(tx, id, at, { ...fields, reason: why }, to);
      await this.audit(tx, id, at, actor, current.state, to, why);
      if (options.flight) await this.addFlight(options.flight, tx);
      return (await this.get(id, tx))!;
    });
  }

  async note(id: string, at: number, actor: string, reason: string, fields: Partial<Order> = {}, options: TransitionOptions = {}, outer?: Sql): Promise<Order> {
    return (outer ?? this.sql).transaction(async (tx) => {
      const current = await this.lock(tx, id);
      check(current, current.state, options);
      await options.onLocked?.(current);
      await this.write(tx, id, at, fields);
      await this.audit(tx, id, at, actor, current.state, current.state, options.reason?.() ?? reason);
      return (await this.get(id, tx))!;
    });
  }

  async update(id: string, at: number, fields: Partial<Order>, onlyIn?: readonly OrderState[], tx: Sql = this.sql): Promise<boolean> {
    if (onlyIn?.length === 0) return false;
    const { sets, args } = assignments(at, fields);
    const guard = onlyIn ? ` AND state IN (${inList(onlyIn.length)})` : '';
    try {
      return (await tx.run(`UPDATE orders SET ${sets.join(', ')} WHERE id = ?${guard}`, [...args, id, ...(onlyIn ?? [])])) > 0;
    } catch (err) {
      if (isUniqueViolation(err)) throw new ResourceTaken(id, err);
      throw err;
    }
  }

  private async write(tx: Sql, id: string, at: number, fields: Partial<Order>, state?: OrderState): Promise<void> {
    const { sets, args } = assignments(at, fields, state);
    try {
      await tx.run(`UPDATE orders SET ${sets.join(', ')} WHERE id = ?`, [...args, id]);
    } catch (err) {
      if (isUniqueViolation(err)) throw new ResourceTaken(id, err);
      throw err;
    }
  }

  async takePickupReveal(id: string, at: number): Promise<{ order: Order; code: string } | null> {
    return this.sql.transaction(async (tx) => {
      const current = await this.lock(tx, id);
      if (current.state !== 'in_locker' || current.pickupReveal === null) return null;
      await tx.run('UPDATE orders SET pickup_reveal = NULL, updated_at = ? WHERE id = ?', [at, id]);
      return { order: { ...current, pickupReveal: null, updatedAt: at }, code: current.pickupReveal };
    });
  }

  async countWrongCode(id: string, at: number, lockAt: number): Promise<{ wrongCodes: number; locked: boolean } | null> {
    const r = await this.sql.one<{ wrong_codes: number; locked: number }>(
      `UPDATE orders SET wrong_codes = wrong_codes + 1, locked = CASE WHEN wrong_codes + 1 >= ? THEN 1 ELSE locked END, updated_at = ?
        WHERE id = ? AND state = 'in_locker' RETURNING wrong_codes, locked`,
      [lockAt, at, id],
    );
    return r ? { wrongCodes: r.wrong_codes, locked: r.locked === 1 } : null;
  }

  private async audit(tx: Sql, orderId: string, at: number, actor: string, from: OrderState | null, to: OrderState, reason: string): Promise<void> {
    await tx.run('INSERT INTO order_audit (order_id, at, actor, from_state, to_state, reason) VALUES (?, ?, ?, ?, ?, ?)', [orderId, at, actor, from, to, reason]);
  }

  async auditOf(orderId: string): Promise<AuditEntry[]> {
    const rows = await this.sql.query<Row>('SELECT * FROM order_audit WHERE order_id = ? ORDER BY id', [orderId]);
    return rows.map((r) => ({
      id: r.id as number, orderId: r.order_id as string, at: r.at as number, actor: r.actor as string,
      from: (r.from_state as OrderState | null) ?? null, to: r.to_state as OrderState, reason: r.reason as string,
    }));
  }

  async addFlight(f: Omit<FlightLogEntry, 'takeoffAt' | 'arrivedAt' | 'result'>, tx: Sql = this.sql): Promise<void> {
    await tx.run(
      `INSERT INTO flight_log (mission_id, order_id, aircraft_hub, aircraft, origin, destination, route, distance_m, payload_kg, flight_plan_ref, planned_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [f.missionId, f.orderId, f.aircraftHub, f.aircraft, f.origin, f.destination, JSON.stringify(f.route), f.distanceM, f.payloadKg, f.flightPlanRef, f.plannedAt],
    );
  }

  async updateFlight(missionId: string, fields: { takeoffAt?: number; arrivedAt?: number; result?: string }, tx: Sql = this.sql): Promise<void> {
    // First take-off and first arrival are kept: a later report of either does not move them.
    if (fields.takeoffAt !== undefined) await tx.run('UPDATE flight_log SET takeoff_at = coalesce(takeoff_at, ?) WHERE mission_id = ?', [fields.takeoffAt, missionId]);
    if (fields.arrivedAt !== undefined) await tx.run('UPDATE flight_log SET arrived_at = coalesce(arrived_at, ?) WHERE mission_id = ?', [fields.arrivedAt, missionId]);
    if (fields.result !== undefined) await tx.run('UPDATE flight_log SET result = ? WHERE mission_id = ?', [fields.result, missionId]);
  }

  async flights(q: { orderId?: string; regions?: readonly string[] | null; limit: number }): Promise<FlightLogEntry[]> {
    if (q.regions?.length === 0) return [];
    const where: string[] = [];
    const args: SqlValue[] = [];
    if (q.orderId) {
      where.push('f.order_id = ?');
      args.push(q.orderId);
    }
    if (q.regions) {
      where.push(`f.order_id IN (SELECT id FROM orders WHERE region IN (${inList(q.regions.length)}))`);
      args.push(...q.regions);
    }
    const rows = await this.sql.query<Row>(
      `SELECT f.* FROM flight_log f ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY f.planned_at DESC, f.mission_id LIMIT ?`,
      [...args, q.limit],
    );
    return rows.map((r) => ({
      missionId: r.mission_id as string, orderId: r.order_id as string, aircraftHub: r.aircraft_hub as string, aircraft: r.aircraft as string,
      origin: r.origin as string, destination: r.destination as string, route: JSON.parse(r.route as string), distanceM: r.distance_m as number,
      payloadKg: r.payload_kg as number, flightPlanRef: r.flight_plan_ref as string, plannedAt: r.planned_at as number,
      takeoffAt: (r.takeoff_at as number | null) ?? null, arrivedAt: (r.arrived_at as number | null) ?? null, result: (r.result as string | null) ?? null,
    }));
  }
}

function check(current: Order, to: OrderState, o: TransitionOptions): void {
  if (o.from && !o.from.includes(current.state)) throw new IllegalTransition(current.state, to);
  if (o.missionId !== undefined && current.missionId !== o.missionId) throw new IllegalTransition(current.state, to);
}
