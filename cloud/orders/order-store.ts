import type Database from 'better-sqlite3';
import { migrateFeature, type OperationalDb } from '../db/operational-db.ts';
import type { Priority, Reason } from '../dispatch/dispatch-engine.ts';
import { assertTransition, type OrderState } from './order-lifecycle.ts';

/**
 * Orders, their append-only audit log (every state change, who made it and why) and the flight
 * log (飛行日誌: one entry per flight — aircraft, route, times, payload, flight-plan reference), in
 * the operational database.
 */
const MIGRATIONS = [
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
];

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

export class OrderStore {
  /** Prepared statements by SQL text: preparing costs more than most of these queries (some run on every ingested message). */
  private readonly statements = new Map<string, Database.Statement>();

  constructor(private readonly db: OperationalDb) {
    migrateFeature(db, 'orders', MIGRATIONS);
  }

  private stmt(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  /** Whether a drone of `hub` has an assigned mission (checked by the wind alarm rule on sensor telemetry). */
  hasAssignedMissionAt(hub: string): boolean {
    return this.stmt("SELECT 1 FROM orders WHERE state = 'assigned' AND drone_hub = ? LIMIT 1").get(hub) !== undefined;
  }

  create(o: Omit<Order, 'state' | 'reason' | 'waitReasons' | 'updatedAt' | 'carrier' | 'droneHub' | 'droneId' | 'roundId' | 'roundDepartsAt' | 'lockerId' | 'compartmentId' | 'missionId' | 'missionCommandId' | 'attempts' | 'pickupHash' | 'pickupReveal' | 'wrongCodes' | 'locked'>): Order {
    this.db.transaction(() => {
      this.stmt(
          `INSERT INTO orders (id, region, origin_hub, dest_type, dest_hub, dest_site, weight_kg, temp_class, priority, deadline, reference, flight_plan_ref,
             state, created_at, created_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)`,
        )
        .run(o.id, o.region, o.originHub, o.destination.type, o.destination.type === 'locker' ? o.destination.hub : null, o.destination.type === 'site' ? o.destination.siteId : null,
          o.weightKg, o.tempClass, o.priority, o.deadline, o.reference, o.flightPlanRef, o.createdAt, o.createdBy, o.createdAt);
      this.audit(o.id, o.createdAt, o.createdBy, null, 'pending', 'created');
    })();
    return this.get(o.id)!;
  }

  get(id: string): Order | undefined {
    const r = this.stmt('SELECT * FROM orders WHERE id = ?').get(id) as Row | undefined;
    return r ? toOrder(r) : undefined;
  }

  list(q: { hub?: string; state?: OrderState; limit: number }): Order[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.hub) {
      where.push('(origin_hub = ? OR dest_hub = ?)');
      args.push(q.hub, q.hub);
    }
    if (q.state) {
      where.push('state = ?');
      args.push(q.state);
    }
    const sql = `SELECT * FROM orders ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC LIMIT ?`;
    return (this.stmt(sql).all(...args, q.limit) as Row[]).map(toOrder);
  }

  inStates(states: readonly OrderState[]): Order[] {
    return (this.stmt(`SELECT * FROM orders WHERE state IN (${states.map(() => '?').join(',')}) ORDER BY created_at`).all(...states) as Row[]).map(toOrder);
  }

  /** Number of orders per (state, priority) that has any — for the operators' dashboards (cloud/ops-stats). */
  countsByStateAndPriority(): { state: OrderState; priority: Priority; count: number }[] {
    return this.stmt('SELECT state, priority, count(*) AS count FROM orders GROUP BY state, priority').all() as { state: OrderState; priority: Priority; count: number }[];
  }

  /**
   * Orders that arrived (in a locker or at a landing site), per priority, and how many of them by their
   * deadline (an order without a deadline counts as on time). Arrival is the audit entry of that step.
   */
  arrivalsByPriority(): { priority: Priority; delivered: number; onTime: number }[] {
    return this.stmt(
        `SELECT o.priority AS priority, count(*) AS delivered,
                sum(CASE WHEN o.deadline IS NULL OR a.at <= o.deadline THEN 1 ELSE 0 END) AS onTime
           FROM orders o JOIN order_audit a ON a.order_id = o.id AND a.to_state IN ('in_locker', 'delivered') AND a.from_state IS NOT a.to_state
          GROUP BY o.priority`,
      )
      .all() as { priority: Priority; delivered: number; onTime: number }[];
  }

  /** Changes state (checked against the lifecycle) and other fields, and appends the audit entry, atomically. */
  transition(id: string, to: OrderState, at: number, actor: string, reason: string, fields: Partial<Order> = {}): Order {
    return this.db.transaction(() => {
      const current = this.get(id);
      if (!current) throw new Error(`no order ${id}`);
      assertTransition(current.state, to);
      this.update(id, at, { ...fields, reason }, to);
      this.audit(id, at, actor, current.state, to, reason);
      return this.get(id)!;
    })();
  }

  /**
   * Updates fields without a state change and records why in the audit log (from = to = the current
   * state): an action on the order that a person took, e.g. unlocking its compartment (issue 12, 3).
   */
  note(id: string, at: number, actor: string, reason: string, fields: Partial<Order> = {}): Order {
    return this.db.transaction(() => {
      const current = this.get(id);
      if (!current) throw new Error(`no order ${id}`);
      this.update(id, at, fields);
      this.audit(id, at, actor, current.state, current.state, reason);
      return this.get(id)!;
    })();
  }

  /** Updates fields without a state change (no audit entry: not a change of state). */
  update(id: string, at: number, fields: Partial<Order>, state?: OrderState): void {
    const sets: string[] = ['updated_at = ?'];
    const args: unknown[] = [at];
    if (state) {
      sets.push('state = ?');
      args.push(state);
    }
    for (const [k, v] of Object.entries(fields)) {
      if (k === 'waitReasons') {
        sets.push('wait_reasons = ?');
        args.push(v === null ? null : JSON.stringify(v));
        continue;
      }
      const col = COLUMN[k as keyof Order];
      if (!col) continue;
      sets.push(`${col} = ?`);
      args.push(typeof v === 'boolean' ? (v ? 1 : 0) : (v ?? null));
    }
    this.stmt(`UPDATE orders SET ${sets.join(', ')} WHERE id = ?`).run(...args, id);
  }

  private audit(orderId: string, at: number, actor: string, from: OrderState | null, to: OrderState, reason: string): void {
    this.stmt('INSERT INTO order_audit (order_id, at, actor, from_state, to_state, reason) VALUES (?, ?, ?, ?, ?, ?)').run(orderId, at, actor, from, to, reason);
  }

  auditOf(orderId: string): AuditEntry[] {
    return (this.stmt('SELECT * FROM order_audit WHERE order_id = ? ORDER BY id').all(orderId) as Row[]).map((r) => ({
      id: r.id as number, orderId: r.order_id as string, at: r.at as number, actor: r.actor as string,
      from: (r.from_state as OrderState | null) ?? null, to: r.to_state as OrderState, reason: r.reason as string,
    }));
  }

  addFlight(f: Omit<FlightLogEntry, 'takeoffAt' | 'arrivedAt' | 'result'>): void {
    this.stmt(
        `INSERT INTO flight_log (mission_id, order_id, aircraft_hub, aircraft, origin, destination, route, distance_m, payload_kg, flight_plan_ref, planned_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(f.missionId, f.orderId, f.aircraftHub, f.aircraft, f.origin, f.destination, JSON.stringify(f.route), f.distanceM, f.payloadKg, f.flightPlanRef, f.plannedAt);
  }

  updateFlight(missionId: string, fields: { takeoffAt?: number; arrivedAt?: number; result?: string }): void {
    if (fields.takeoffAt !== undefined) this.stmt('UPDATE flight_log SET takeoff_at = coalesce(takeoff_at, ?) WHERE mission_id = ?').run(fields.takeoffAt, missionId);
    if (fields.arrivedAt !== undefined) this.stmt('UPDATE flight_log SET arrived_at = coalesce(arrived_at, ?) WHERE mission_id = ?').run(fields.arrivedAt, missionId);
    if (fields.result !== undefined) this.stmt('UPDATE flight_log SET result = ? WHERE mission_id = ?').run(fields.result, missionId);
  }

  flights(q: { orderId?: string; limit: number }): FlightLogEntry[] {
    const rows = (q.orderId
      ? this.stmt('SELECT * FROM flight_log WHERE order_id = ? ORDER BY planned_at DESC LIMIT ?').all(q.orderId, q.limit)
      : this.stmt('SELECT * FROM flight_log ORDER BY planned_at DESC LIMIT ?').all(q.limit)) as Row[];
    return rows.map((r) => ({
      missionId: r.mission_id as string, orderId: r.order_id as string, aircraftHub: r.aircraft_hub as string, aircraft: r.aircraft as string,
      origin: r.origin as string, destination: r.destination as string, route: JSON.parse(r.route as string), distanceM: r.distance_m as number,
      payloadKg: r.payload_kg as number, flightPlanRef: r.flight_plan_ref as string, plannedAt: r.planned_at as number,
      takeoffAt: (r.takeoff_at as number | null) ?? null, arrivedAt: (r.arrived_at as number | null) ?? null, result: (r.result as string | null) ?? null,
    }));
  }
}
