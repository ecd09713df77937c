import { randomUUID } from 'node:crypto';
import { migrateFeature, type OperationalDb } from '../db/operational-db.ts';
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
  /** Who proposes, e.g. `jma` (the hazard feed). */
  source: string;
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
  mode: 'emergency';
  reason: string;
  hubs?: string[];
  evidence?: Record<string, unknown>;
}

/** `cloud.db` migrations of this feature; append, never edit. */
export const MODE_PROPOSAL_MIGRATIONS = [
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
] as const;

interface Row {
  id: string; region: string; source: string; mode: 'emergency'; reason: string; hubs: string | null; evidence: string; event_id: string | null;
  state: ProposalState; created_at: number;
}

const fromRow = (r: Row): ModeProposal => ({
  id: r.id, region: r.region, source: r.source, mode: r.mode, reason: r.reason, hubs: r.hubs === null ? null : (JSON.parse(r.hubs) as string[]),
  evidence: JSON.parse(r.evidence) as Record<string, unknown>, eventId: r.event_id, state: r.state, createdAt: r.created_at,
});

export interface ModeProposalsOptions {
  db: OperationalDb;
  /** Hubs of each region, to check the region and the listed hubs. */
  regions: ReadonlyMap<string, readonly string[]>;
  now: () => number;
}

export class ModeProposals {
  private readonly insert;
  private readonly byEvent;
  private readonly list_;
  private readonly nextSeq;

  constructor(private readonly o: ModeProposalsOptions) {
    migrateFeature(o.db, 'mode_proposals', MODE_PROPOSAL_MIGRATIONS);
    this.insert = o.db.prepare(
      `INSERT INTO mode_proposals (id, region, source, mode, reason, hubs, evidence, event_id, state, created_at, seq)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?)`,
    );
    this.byEvent = o.db.prepare<[string, string, string], Row>('SELECT * FROM mode_proposals WHERE region = ? AND source = ? AND event_id = ?');
    this.list_ = o.db.prepare<[string, string | null, string | null, number], Row>(
      'SELECT * FROM mode_proposals WHERE region = ? AND (? IS NULL OR state = ?) ORDER BY seq DESC LIMIT ?',
    );
    this.nextSeq = o.db.prepare<[], { seq: number }>('SELECT coalesce(max(seq), 0) + 1 AS seq FROM mode_proposals');
  }

  /** Stores a proposal; one already stored for the same (source, eventId) is returned instead (`created: false`). */
  propose(region: string, p: NewProposal): { proposal: ModeProposal; created: boolean } {
    const hubIds = this.o.regions.get(region);
    if (!hubIds) throw new ModeError('region_not_found', `no region "${region}"`);
    const hubs = p.hubs === undefined ? null : [...new Set(p.hubs)];
    const unknown = (hubs ?? []).filter((h) => !hubIds.includes(h));
    if (unknown.length > 0) throw new ModeError('hub_not_in_region', `not hubs of region "${region}": ${unknown.join(', ')}`);
    const evidence = p.evidence ?? {};
    const rawEventId = evidence.eventId;
    const eventId = typeof rawEventId === 'string' || typeof rawEventId === 'number' ? String(rawEventId) : null;
    return this.o.db.transaction(() => {
      const existing = eventId === null ? undefined : this.byEvent.get(region, p.source, eventId);
      if (existing) return { proposal: fromRow(existing), created: false };
      const proposal: ModeProposal = {
        id: `prop-${randomUUID()}`, region, source: p.source, mode: p.mode, reason: p.reason, hubs, evidence, eventId, state: 'open', createdAt: this.o.now(),
      };
      this.insert.run(proposal.id, region, p.source, p.mode, p.reason, hubs && JSON.stringify(hubs), JSON.stringify(evidence), eventId, proposal.createdAt, this.nextSeq.get()!.seq);
      return { proposal, created: true };
    })();
  }

  /** Newest first. */
  list(region: string, q: { state?: ProposalState; limit: number }): ModeProposal[] {
    if (!this.o.regions.has(region)) throw new ModeError('region_not_found', `no region "${region}"`);
    const state = q.state ?? null;
    return this.list_.all(region, state, state, q.limit).map(fromRow);
  }
}
