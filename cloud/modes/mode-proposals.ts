import { randomUUID } from 'node:crypto';
import type { Database, FeatureMigrations } from '../db/database.ts';
import type { Sql } from '../db/sql.ts';
import type { Regions } from '../hubs/regions.ts';
import { ModeError } from './mode-service.ts';

/**
 * Mode proposals: an integration (the Node-RED hazard feed, another town system) suggests emergency
 * mode for a region or some hubs, with its evidence. A proposal is only stored and listed for the
 * coordinators: it NEVER switches the mode — a coordinator decides, with POST /regions/:id/mode.
 * A proposal with `evidence.eventId` is stored once per (region, source, eventId): JMA sends several
 * bulletins per earthquake (震度速報, then 震源・震度に関する情報), and a restarted feed may send again.
 */
export const PROPOSAL_STATES = ['open'] as const;
export type ProposalState = (typeof PROPOSAL_STATES)[number];

export interface ModeProposal {
  id: string;
  region: string;
  /** Who proposes, e.g. `jma` (the hazard feed), as the sender names it. */
  source: string;
  /** The account that sent it (from its credential); null for proposals stored before it was recorded. */
  by: string | null;
  mode: 'emergency';
  reason: string;
  /** Hubs proposed; null = the whole region. */
  hubs: string[] | null;
  /** What the source saw (intensity, area, report time, event id, …), as it sent it. */
  evidence: Record<string, unknown>;
  /** `evidence.eventId` as text, the dedupe key; null when the source gave none. */
  eventId: string | null;
  state: ProposalState;
  /** Cloud clock, epoch ms. */
  createdAt: number;
}

export interface NewProposal {
  source: string;
  /** The account sending it, from its credential (never from the body). */
  by: string;
  mode: 'emergency';
  reason: string;
  hubs?: string[];
  evidence?: Record<string, unknown>;
}

/**
 * The account that sent a proposal, and the dedupe per account: `source` is the sender's word, so with
 * (region, source, eventId) alone any coordinator could store a proposal under `jma` with the next
 * earthquake's event id, and the hazard feed's real bulletin then got the forgery back (found in review).
 */
const BY_ACCOUNT_STEP = `ALTER TABLE mode_proposals ADD COLUMN by_account TEXT;
   DROP INDEX mode_proposals_event;
   CREATE UNIQUE INDEX mode_proposals_event_by ON mode_proposals (region, by_account, source, event_id) WHERE event_id IS NOT NULL;`;

/** Migrations of this feature; append, never edit. SQLite: the steps `cloud.db` files already carry. */
const SQLITE_STEPS = [
  `CREATE TABLE mode_proposals (
     id         TEXT PRIMARY KEY,
     region     TEXT NOT NULL,
     source     TEXT NOT NULL,
     mode       TEXT NOT NULL CHECK (mode IN ('emergency')),
     reason     TEXT NOT NULL,
     hubs       TEXT,                    -- JSON array, NULL = the whole region
     evidence   TEXT NOT NULL,           -- JSON object
     event_id   TEXT,
     state      TEXT NOT NULL,
     created_at INTEGER NOT NULL,        -- cloud clock, epoch ms
     seq        INTEGER NOT NULL UNIQUE  -- order of arrival
   );
   CREATE UNIQUE INDEX mode_proposals_event ON mode_proposals (region, source, event_id) WHERE event_id IS NOT NULL;
   CREATE INDEX mode_proposals_region ON mode_proposals (region, state, seq);`,
  BY_ACCOUNT_STEP,
];

/**
 * The PostgreSQL schema: the SQLite one, same columns. `seq` comes from an identity there — SQLite
 * numbers proposals with max(seq) + 1 under its single writer, which two writers on PostgreSQL would
 * both take.
 */
const POSTGRES_SCHEMA = `CREATE TABLE mode_proposals (
     id         TEXT PRIMARY KEY,
     region     TEXT NOT NULL,
     source     TEXT NOT NULL,
     mode       TEXT NOT NULL CHECK (mode IN ('emergency')),
     reason     TEXT NOT NULL,
     hubs       TEXT,
     evidence   TEXT NOT NULL,
     event_id   TEXT,
     state      TEXT NOT NULL,
     created_at BIGINT NOT NULL,
     seq        BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE
   );
   CREATE UNIQUE INDEX mode_proposals_event ON mode_proposals (region, source, event_id) WHERE event_id IS NOT NULL;
   CREATE INDEX mode_proposals_region ON mode_proposals (region, state, seq);`;

export const MODE_PROPOSAL_MIGRATIONS: FeatureMigrations = { sqlite: SQLITE_STEPS, postgres: [POSTGRES_SCHEMA, BY_ACCOUNT_STEP] };

const COLUMNS = 'id, region, source, mode, reason, hubs, evidence, event_id, state, created_at, by_account';

interface Row {
  id: string; region: string; source: string; mode: 'emergency'; reason: string; hubs: string | null; evidence: string; event_id: string | null;
  state: ProposalState; created_at: number; by_account: string | null;
}

const fromRow = (r: Row): ModeProposal => ({
  id: r.id, region: r.region, source: r.source, by: r.by_account, mode: r.mode, reason: r.reason, hubs: r.hubs === null ? null : (JSON.parse(r.hubs) as string[]),
  evidence: JSON.parse(r.evidence) as Record<string, unknown>, eventId: r.event_id, state: r.state, createdAt: r.created_at,
});

export interface ModeProposalsOptions {
  /** The operational database (SQLite or PostgreSQL). */
  db: Database;
  /** The regions served, to check the region and the listed hubs (looked up on every call: a region added while running takes proposals at once). */
  regions: Regions;
  now: () => number;
}

export class ModeProposals {
  private readonly sql: Sql;

  private constructor(private readonly o: ModeProposalsOptions) {
    this.sql = o.db.sql;
  }

  /** Proposals on the operational database: migrates the feature's table. */
  static async open(o: ModeProposalsOptions): Promise<ModeProposals> {
    await o.db.migrate('mode_proposals', MODE_PROPOSAL_MIGRATIONS);
    return new ModeProposals(o);
  }

  /**
   * Stores a proposal; one the same account already stored for the same (source, eventId) is returned instead
   * (`created: false`) — also when two cloud processes take the same bulletin at the same moment:
   * the insert does nothing on the unique (region, source, event_id) index, and the stored one is read.
   */
  async propose(region: string, p: NewProposal): Promise<{ proposal: ModeProposal; created: boolean }> {
    if (!this.o.regions.has(region)) throw new ModeError('region_not_found', `no region "${region}"`);
    const hubIds = this.o.regions.hubIds(region);
    const hubs = p.hubs === undefined ? null : [...new Set(p.hubs)];
    const unknown = (hubs ?? []).filter((h) => !hubIds.includes(h));
    if (unknown.length > 0) throw new ModeError('hub_not_in_region', `not hubs of region "${region}": ${unknown.join(', ')}`);
    const evidence = p.evidence ?? {};
    const rawEventId = evidence.eventId;
    const eventId = typeof rawEventId === 'string' || typeof rawEventId === 'number' ? String(rawEventId) : null;
    const proposal: ModeProposal = {
      id: `prop-${randomUUID()}`, region, source: p.source, by: p.by, mode: p.mode, reason: p.reason, hubs, evidence, eventId, state: 'open', createdAt: this.o.now(),
    };
    // A proposal stored before the sending account was recorded (by_account NULL) still takes the later
    // bulletins of its event: the hazard feed repeats them, and the upgrade must not open a second proposal.
    if (eventId !== null) {
      const legacy = await this.sql.one<Row>(`SELECT ${COLUMNS} FROM mode_proposals WHERE region = ? AND by_account IS NULL AND source = ? AND event_id = ?`, [region, p.source, eventId]);
      if (legacy) return { proposal: fromRow(legacy), created: false };
    }
    const values = [proposal.id, region, p.source, p.mode, p.reason, hubs && JSON.stringify(hubs), JSON.stringify(evidence), eventId, proposal.createdAt, p.by];
    // SQLite numbers the proposal in the statement (one writer at a time); PostgreSQL's identity does.
    const inserted = await this.sql.run(
      this.sql.dialect === 'sqlite'
        ? `INSERT INTO mode_proposals (${COLUMNS}, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?, (SELECT coalesce(max(seq), 0) + 1 FROM mode_proposals)) ON CONFLICT DO NOTHING`
        : `INSERT INTO mode_proposals (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?) ON CONFLICT DO NOTHING`,
      values,
    );
    if (inserted === 1) return { proposal, created: true };
    const existing = await this.sql.one<Row>(`SELECT ${COLUMNS} FROM mode_proposals WHERE region = ? AND by_account = ? AND source = ? AND event_id = ?`, [region, p.by, p.source, eventId]);
    if (!existing) throw new Error(`proposal ${proposal.id} was neither stored nor found stored before`);
    return { proposal: fromRow(existing), created: false };
  }

  /** Newest first. */
  async list(region: string, q: { state?: ProposalState; limit: number }): Promise<ModeProposal[]> {
    if (!this.o.regions.has(region)) throw new ModeError('region_not_found', `no region "${region}"`);
    const rows = await this.sql.query<Row>(
      `SELECT ${COLUMNS} FROM mode_proposals WHERE region = ?${q.state ? ' AND state = ?' : ''} ORDER BY seq DESC LIMIT ?`,
      q.state ? [region, q.state, q.limit] : [region, q.limit],
    );
    return rows.map(fromRow);
  }
}
