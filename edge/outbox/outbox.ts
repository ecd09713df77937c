import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { LANE, type Lane } from './lanes.ts';

/**
 * The hub's durable outbox (SQLite, WAL, synchronous=FULL). A device message is appended — and the
 * append committed to disk — before the device gets its PUBACK; it leaves the outbox only when the
 * cloud broker acknowledged it. Appends are group-committed: everything that arrives in one tick is
 * one transaction, one fsync.
 *
 * Bound and drop policy (documented in edge/README.md, tested in outbox.test.ts):
 *  1. Above `thinThreshold` waiting messages, telemetry is thinned to one reading per device (topic)
 *     per `thinIntervalMs` of device time — the first reading of each interval is kept. Counted
 *     `thinned`.
 *  2. At `maxMessages` waiting messages, or when a new one would take the waiting payloads past
 *     `maxBytes` [issue 12], the oldest waiting telemetry is dropped to make room. Counted
 *     `overflow_telemetry`. If no telemetry is waiting, a new telemetry reading is dropped instead,
 *     counted `refused_telemetry`.
 *  3. Alarms, events and acks are never dropped. They may exceed either bound by 10 %; past that a
 *     new one is refused (not acknowledged, so the device keeps it and re-sends), counted
 *     `refused_full`.
 */
export interface NewEntry {
  lane: Lane;
  topic: string;
  payload: Buffer;
  msgId: string;
  device: string;
  deviceTs: number;
  /** Accepted while the uplink was down: sent later as historical. */
  offline: boolean;
}

export interface OutboxEntry extends NewEntry {
  seq: number;
  acceptedAt: number;
  attempts: number;
}

export type AppendOutcome = 'stored' | 'duplicate' | 'refused_telemetry' | 'refused_full';

export const DROP_REASONS = ['thinned', 'overflow_telemetry', 'refused_telemetry', 'refused_full', 'quarantined'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export interface OutboxStats {
  depth: number;
  byLane: { urgent: number; event: number; telemetry: number };
  oldestAcceptedAt: number | null;
  /** Payload bytes of the waiting messages (what OUTBOX_MAX_BYTES bounds). */
  bytes: number;
  dropped: Record<DropReason, number>;
  fileBytes: number;
}

export interface OutboxOptions {
  maxMessages: number;
  /** Bound on the waiting messages' payload bytes (default: none). */
  maxBytes?: number;
  /** Tests only: SQLite `max_page_count` of the outbox file, to simulate a full disk. */
  sqliteMaxPageCount?: number;
  thinThreshold: number;
  thinIntervalMs: number;
  now?: () => number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS outbox (
  seq         INTEGER PRIMARY KEY AUTOINCREMENT,
  lane        INTEGER NOT NULL,
  topic       TEXT    NOT NULL,
  payload     BLOB    NOT NULL,
  msg_id      TEXT    NOT NULL UNIQUE,   -- "<device>/<id>": a device re-sending after a lost PUBACK is stored once
  device      TEXT    NOT NULL,
  device_ts   INTEGER NOT NULL,
  accepted_at INTEGER NOT NULL,
  offline     INTEGER NOT NULL,
  attempts    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_lane_seq ON outbox (lane, seq);
CREATE TABLE IF NOT EXISTS quarantine (
  seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL, msg_id TEXT NOT NULL,
  reason TEXT NOT NULL, quarantined_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
`;

interface Row {
  seq: number; lane: number; topic: string; payload: Buffer; msg_id: string; device: string; device_ts: number;
  accepted_at: number; offline: number; attempts: number;
}

/**
 * The dedupe key: the message id within its device [issue 11]. Message ids are unique per device,
 * not per hub, as far as the hub can enforce: one device (or someone holding its login) must not be
 * able to pre-send another device's next ids and have its genuine messages dropped as duplicates.
 * Message ids cannot contain "/" (contract MessageId), so the key splits back unambiguously.
 */
function dedupeKey(device: string, msgId: string): string {
  return device ? `${device}/${msgId}` : msgId;
}

function fromDedupeKey(key: string): { device: string; msgId: string } {
  const i = key.indexOf('/');
  return i < 0 ? { device: '', msgId: key } : { device: key.slice(0, i), msgId: key.slice(i + 1) };
}

export class Outbox {
  private readonly db: Database.Database;
  private readonly now: () => number;
  private depthByLane: [number, number, number] = [0, 0, 0];
  private bytes = 0;
  private readonly dropped = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
  private pending: { entry: NewEntry; resolve: (o: AppendOutcome) => void; reject: (e: Error) => void }[] = [];
  private flushScheduled = false;
  private lastThinAt = 0;
  private readonly stmt;

  constructor(
    private readonly file: string,
    private readonly opts: OutboxOptions,
  ) {
    this.now = opts.now ?? Date.now;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL'); // a power cut of the hub must not lose an acknowledged message
    this.db.exec(SCHEMA);
    if (opts.sqliteMaxPageCount !== undefined) this.setSqliteMaxPageCount(opts.sqliteMaxPageCount);
    const db = this.db;
    this.stmt = {
      insert: db.prepare(
        'INSERT OR IGNORE INTO outbox (lane, topic, payload, msg_id, device, device_ts, accepted_at, offline) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      oldestTelemetry: db.prepare<[number], { seq: number }>(`SELECT seq FROM outbox WHERE lane = ${LANE.telemetry} ORDER BY seq LIMIT ?`),
      thinCandidates: db.prepare<[number], { seq: number }>(
        `SELECT seq FROM outbox WHERE lane = ${LANE.telemetry} AND seq NOT IN
           (SELECT min(seq) FROM outbox WHERE lane = ${LANE.telemetry} GROUP BY topic, device_ts / CAST(? AS INTEGER))`,
      ),
      oldestInLane: db.prepare<[number], { seq: number; accepted_at: number }>('SELECT seq, accepted_at FROM outbox WHERE lane = ? ORDER BY seq LIMIT 1'),
      // Candidates are picked by seq alone (from the (lane, seq) index); only the chosen rows are read.
      headOfLane: db.prepare<[number, number], number>('SELECT seq FROM outbox WHERE lane = ? ORDER BY seq LIMIT ?').pluck(),
      tailOfLane: db.prepare<[number, number], number>('SELECT seq FROM outbox WHERE lane = ? ORDER BY seq DESC LIMIT ?').pluck(),
      row: db.prepare<[number], Row>('SELECT * FROM outbox WHERE seq = ?'),
      remove: db.prepare<[number], { size: number }>('DELETE FROM outbox WHERE seq = ? RETURNING length(payload) AS size'),
      removeAcked: db.prepare<[number], { lane: number; size: number }>('DELETE FROM outbox WHERE seq = ? RETURNING lane, length(payload) AS size'),
      syncNormal: db.prepare('PRAGMA synchronous = NORMAL'),
      syncFull: db.prepare('PRAGMA synchronous = FULL'),
      laneOfSeq: db.prepare<[number], { lane: number }>('SELECT lane FROM outbox WHERE seq = ?'),
      suspect: db.prepare('UPDATE outbox SET attempts = max(attempts, 1) WHERE seq = ?'),
      failedAttempt: db.prepare<[number], { attempts: number }>('UPDATE outbox SET attempts = attempts + 1 WHERE seq = ? RETURNING attempts'),
      toQuarantine: db.prepare(
        'INSERT OR REPLACE INTO quarantine (seq, topic, payload, msg_id, reason, quarantined_at) SELECT seq, topic, payload, msg_id, ?, ? FROM outbox WHERE seq = ?',
      ),
      listQuarantine: db.prepare<[number], { seq: number; topic: string; payload: Buffer; msg_id: string; reason: string; quarantined_at: number }>(
        'SELECT * FROM quarantine ORDER BY seq DESC LIMIT ?',
      ),
      quarantined: db.prepare<[number], { seq: number; topic: string; payload: Buffer; msg_id: string }>('SELECT seq, topic, payload, msg_id FROM quarantine WHERE seq = ?'),
      // Back at its old place in the queue (its seq); a copy the device re-sent meanwhile wins (msg_id is unique).
      requeue: db.prepare(
        'INSERT INTO outbox (seq, lane, topic, payload, msg_id, device, device_ts, accepted_at, offline) SELECT seq, ?, topic, payload, msg_id, ?, ?, ?, 1 FROM quarantine WHERE seq = ? ON CONFLICT DO NOTHING',
      ),
      unquarantine: db.prepare('DELETE FROM quarantine WHERE seq = ?'),
      count: db.prepare('INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value'),
      counters: db.prepare<[], { name: string; value: number }>('SELECT name, value FROM counters'),
      laneCounts: db.prepare<[], { lane: number; n: number; bytes: number }>('SELECT lane, count(*) AS n, sum(length(payload)) AS bytes FROM outbox GROUP BY lane'),
    };
    for (const r of this.stmt.laneCounts.all()) {
      this.depthByLane[r.lane as Lane] = r.n;
      this.bytes += r.bytes;
    }
    for (const c of this.stmt.counters.all()) if (c.name in this.dropped) this.dropped[c.name as DropReason] = c.value;
  }

  /**
   * Entries being sent right now are never thinned or dropped: they may already have reached the
   * cloud, and a drop must mean the cloud will never see the message.
   */
  setInFlightSource(source: () => ReadonlySet<number>): void {
    this.inFlight = source;
  }
  private inFlight: () => ReadonlySet<number> = () => new Set();

  get depth(): number {
    return this.depthByLane[0] + this.depthByLane[1] + this.depthByLane[2];
  }

  /** Resolves once the entry is on disk (or with why it was not stored). */
  append(entry: NewEntry): Promise<AppendOutcome> {
    return new Promise((resolve, reject) => {
      this.pending.push({ entry, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.pending.splice(0);
    if (batch.length === 0) return;
    let outcomes: AppendOutcome[];
    try {
      outcomes = this.atomically(() => batch.map((p) => this.insertOne(p.entry)));
    } catch (err) {
      for (const p of batch) p.reject(err as Error);
      return;
    }
    batch.forEach((p, i) => p.resolve(outcomes[i]!));
  }

  /** Runs inside the append transaction. */
  private insertOne(e: NewEntry): AppendOutcome {
    const now = this.now();
    if (this.depth >= this.opts.thinThreshold && now - this.lastThinAt > 5_000) this.thin();
    const size = e.payload.length;
    const maxBytes = this.opts.maxBytes ?? Number.POSITIVE_INFINITY;
    // Either bound (count, bytes) makes room the same way: the oldest waiting telemetry goes first.
    const over = () => this.depth >= this.opts.maxMessages || this.bytes + size > maxBytes;
    if (over()) {
      const busy = this.inFlight();
      let dropped = 0;
      while (over() && this.depthByLane[LANE.telemetry] > 0) {
        const victims = this.stmt.oldestTelemetry.all(64 + busy.size).filter((r) => !busy.has(r.seq));
        if (victims.length === 0) break;
        for (const v of victims) {
          if (!over()) break;
          const gone = this.stmt.remove.get(v.seq);
          if (!gone) continue;
          this.depthByLane[LANE.telemetry]--;
          this.bytes -= gone.size;
          dropped++;
        }
      }
      if (dropped > 0) this.count('overflow_telemetry', dropped);
      if (over()) {
        if (e.lane === LANE.telemetry) {
          this.count('refused_telemetry', 1);
          return 'refused_telemetry';
        }
        if (this.depth >= Math.floor((this.opts.maxMessages * 11) / 10) || this.bytes + size > (maxBytes * 11) / 10) {
          this.count('refused_full', 1);
          return 'refused_full';
        }
      }
    }
    const r = this.stmt.insert.run(e.lane, e.topic, e.payload, dedupeKey(e.device, e.msgId), e.device, e.deviceTs, now, e.offline ? 1 : 0);
    if (r.changes === 0) return 'duplicate';
    this.depthByLane[e.lane]++;
    this.bytes += size;
    return 'stored';
  }

  /**
   * One transaction whose in-memory counters (depth, bytes, drops) follow the database: if SQLite
   * throws (a full disk) the rows roll back, and so do the counters [issue 12].
   */
  private atomically<T>(fn: () => T): T {
    const before = { depth: [...this.depthByLane] as [number, number, number], bytes: this.bytes, dropped: { ...this.dropped } };
    try {
      return this.db.transaction(fn)();
    } catch (err) {
      this.depthByLane = before.depth;
      this.bytes = before.bytes;
      Object.assign(this.dropped, before.dropped);
      throw err;
    }
  }

  /** Tests only: caps the outbox file at `pages` SQLite pages (a full disk); raise it to give the space back. */
  setSqliteMaxPageCount(pages: number): void {
    this.db.pragma(`max_page_count = ${Math.max(1, Math.floor(pages))}`);
  }

  /** Policy step 1 (see the class comment). Returns how many readings were dropped. */
  thin(): number {
    this.lastThinAt = this.now();
    const busy = this.inFlight();
    let n = 0;
    for (const { seq } of this.stmt.thinCandidates.all(this.opts.thinIntervalMs)) {
      if (busy.has(seq)) continue; // already on its way: it will be acknowledged, not dropped
      const gone = this.stmt.remove.get(seq);
      if (!gone) continue;
      this.bytes -= gone.size;
      n++;
    }
    if (n > 0) {
      this.depthByLane[LANE.telemetry] -= n;
      this.count('thinned', n);
    }
    return n;
  }

  /** Runs a thinning pass if the outbox is over the threshold (call periodically). */
  maintain(): void {
    if (this.depth >= this.opts.thinThreshold && this.now() - this.lastThinAt > 5_000) this.atomically(() => this.thin());
  }

  private count(reason: DropReason, n: number): void {
    this.dropped[reason] += n;
    this.stmt.count.run(reason, n);
  }

  /**
   * The next entries to send, by lane. In the telemetry lane a quarter of the slots go to the newest
   * readings, so live data keeps flowing while an old backlog replays oldest-first behind it.
   */
  next(limit: number, exclude: ReadonlySet<number>): OutboxEntry[] {
    const out: OutboxEntry[] = [];
    const taken = new Set<number>();
    const take = (seqs: number[], max: number) => {
      for (const seq of seqs) {
        if (out.length >= limit || max <= 0) return;
        if (exclude.has(seq) || taken.has(seq)) continue;
        const r = this.stmt.row.get(seq);
        if (!r) continue;
        taken.add(seq);
        out.push(toEntry(r));
        max--;
      }
    };
    for (const lane of [LANE.urgent, LANE.event] as const) {
      if (out.length < limit && this.depthByLane[lane] > 0) take(this.stmt.headOfLane.all(lane, limit + exclude.size), limit);
    }
    if (out.length < limit && this.depthByLane[LANE.telemetry] > 0) {
      const room = limit - out.length;
      const live = Math.max(1, Math.floor(room / 4));
      take(this.stmt.tailOfLane.all(LANE.telemetry, live + exclude.size), live);
      take(this.stmt.headOfLane.all(LANE.telemetry, room + exclude.size), room);
    }
    return out;
  }

  /**
   * Removes entries the cloud acknowledged (one transaction), without waiting for the disk: the
   * removal is committed with synchronous=NORMAL (no fsync of the WAL), and becomes durable with the
   * next append's fsync or checkpoint. A power cut before that can only bring acknowledged entries
   * back, which are then sent again — the cloud takes a copy once (storage keys, dedupe of events and
   * acks), exactly as after a PUBACK lost on the way. Appends stay synchronous=FULL: what a device
   * was acknowledged is on disk. During a replay this is the difference between one fsync per batch
   * of PUBACKs and none.
   */
  remove(seqs: readonly number[]): void {
    if (seqs.length === 0) return;
    this.stmt.syncNormal.run();
    try {
      this.atomically(() => {
        for (const seq of seqs) {
          const gone = this.stmt.removeAcked.get(seq);
          if (!gone) continue;
          this.depthByLane[gone.lane as Lane]--;
          this.bytes -= gone.size;
        }
      });
    } finally {
      this.stmt.syncFull.run();
    }
  }

  /** Entries that were in flight when the link dropped: from now on sent one at a time. */
  markSuspect(seqs: readonly number[]): void {
    this.atomically(() => seqs.forEach((s) => this.stmt.suspect.run(s)));
  }

  /** The link dropped while this entry was the only one in flight. Returns its attempt count. */
  recordFailedAttempt(seq: number): number {
    return this.stmt.failedAttempt.get(seq)?.attempts ?? 0;
  }

  /** Moves a poison entry aside with its reason; the rest flows on. */
  quarantine(seq: number, reason: string): void {
    this.atomically(() => {
      this.stmt.toQuarantine.run(reason, this.now(), seq);
      const lane = this.stmt.laneOfSeq.get(seq)?.lane;
      if (lane !== undefined) {
        this.bytes -= this.stmt.remove.get(seq)?.size ?? 0;
        this.depthByLane[lane as Lane]--;
        this.count('quarantined', 1);
      }
    });
  }

  /** A quarantined entry (topic and payload), e.g. to re-send it. */
  quarantined(seq: number): { seq: number; topic: string; payload: Buffer; device: string; msgId: string } | undefined {
    const q = this.stmt.quarantined.get(seq);
    return q && { seq: q.seq, topic: q.topic, payload: q.payload, ...fromDedupeKey(q.msg_id) };
  }

  /**
   * Puts a quarantined entry back into the outbox (hub staff re-sending it), at its old place, sent
   * marked historical. False if there is no such entry. Not counted against the bound: it was
   * acknowledged to its device long ago.
   */
  requeue(seq: number, lane: Lane, deviceTs: number): boolean {
    return this.atomically(() => {
      const q = this.stmt.quarantined.get(seq);
      if (!q) return false;
      const stored = this.stmt.requeue.run(lane, fromDedupeKey(q.msg_id).device, deviceTs, this.now(), seq).changes === 1;
      this.stmt.unquarantine.run(seq);
      if (stored) {
        this.depthByLane[lane]++;
        this.bytes += q.payload.length;
      }
      return true;
    });
  }

  listQuarantine(limit = 100) {
    return this.stmt.listQuarantine.all(limit).map((q) => ({
      seq: q.seq, topic: q.topic, ...fromDedupeKey(q.msg_id), reason: q.reason, quarantinedAt: new Date(q.quarantined_at).toISOString(),
      payloadText: q.payload.toString('utf8').slice(0, 4096),
    }));
  }

  stats(): OutboxStats {
    let oldest: number | null = null;
    for (const lane of [LANE.urgent, LANE.event, LANE.telemetry]) {
      const r = this.stmt.oldestInLane.get(lane);
      if (r && (oldest === null || r.accepted_at < oldest)) oldest = r.accepted_at;
    }
    let fileBytes = 0;
    for (const f of [this.file, `${this.file}-wal`]) {
      try {
        fileBytes += fs.statSync(f).size;
      } catch {
        /* no WAL yet */
      }
    }
    return {
      depth: this.depth,
      byLane: { urgent: this.depthByLane[0], event: this.depthByLane[1], telemetry: this.depthByLane[2] },
      oldestAcceptedAt: oldest,
      bytes: this.bytes,
      dropped: { ...this.dropped },
      fileBytes,
    };
  }

  close(): void {
    this.flush();
    if (this.db.open) this.db.close();
  }
}

function toEntry(r: Row): OutboxEntry {
  return {
    seq: r.seq, lane: r.lane as Lane, topic: r.topic, payload: r.payload, msgId: fromDedupeKey(r.msg_id).msgId, device: r.device, deviceTs: r.device_ts,
    acceptedAt: r.accepted_at, offline: r.offline === 1, attempts: r.attempts,
  };
}
