/**
 * The figures of one scenario run (issue 16) — what planning mode computes and drill mode observes,
 * and all the report needs: written as `<out>.json` beside the HTML report. Times are seconds from the
 * scenario's start unless named `…Iso`. Names are given in Japanese and English for the report.
 */
export type Priority = 'normal' | 'relief' | 'medical';

export interface Bilingual {
  ja: string;
  en: string;
}

export interface ScenarioResult {
  /** Version of this shape; bump on incompatible changes. */
  v: 1;
  kind: 'planning' | 'drill';
  scenario: {
    id: string;
    name: Bilingual;
    region: { id: string; name: Bilingual };
    startIso: string;
    durationS: number;
    seed: number;
    /** Drones stationed per hub in this run (after --drones-per-hub). */
    fleet: Record<string, number>;
    /** The region's hubs and their names, for labels (the report falls back to the id). */
    hubs?: { id: string; name: Bilingual }[];
  };
  /** How the run went: wall time, virtual seconds, messages simulated (planning) or time scale (drill). */
  run: { wallMs: number; timeScale: number | null; deviceMessages: number; decisionRounds: number };
  /** Per shelter and isolated settlement: when it first asked, when it first received relief. */
  relief: ReliefSite[];
  /** Orders by priority and how they ended (counted at the end of the run). */
  deliveries: DeliveryRow[];
  /** Orders waiting, by why, sampled over time (a stacked area in the report). */
  waiting: WaitingSample[];
  drones: DroneFigures[];
  /** Flights the dispatch engine refused, by rule (wind, range, no-fly zone, compartment, …). */
  refusals: { reason: string; count: number }[];
  alarms: AlarmFigures;
  /** Each hub's link to the cloud and its backlog of unsent messages, sampled over time. */
  links: LinkSample[];
  /** Mode switches and how long the hubs took to acknowledge them. */
  modes: ModeSwitchFigures[];
  /** Drill mode: what the coordinators did on the consoles (empty in planning mode). */
  coordinatorActions: { atS: number; action: string; by: string; detail: string }[];
}

export interface ReliefSite {
  site: string;
  kind: 'shelter' | 'isolated-settlement';
  name: Bilingual;
  /** First time the site was cut off (isolated settlements), or null. */
  isolatedAtS: number | null;
  firstRequestAtS: number | null;
  firstReliefAtS: number | null;
  /** firstReliefAtS − firstRequestAtS, or null if nothing arrived. */
  timeToFirstReliefS: number | null;
  requests: number;
  delivered: number;
}

export interface DeliveryRow {
  priority: Priority;
  requested: number;
  delivered: number;
  /** Delivered within its deadline (orders without a deadline count as on time when delivered). */
  onTime: number;
  failed: number;
  cancelled: number;
  /** Still open at the end of the run. */
  open: number;
  /** Delivered by a ground round (bus / truck) rather than a drone. */
  byGround: number;
  /** Request → delivered, seconds, over delivered orders. */
  leadTimeS: { p50: number | null; p90: number | null; max: number | null };
}

export interface WaitingSample {
  atS: number;
  /** Reason code (the dispatch engine's, e.g. wind_limit, no_drone, held_emergency) → orders waiting for it. */
  byReason: Record<string, number>;
}

export interface DroneFigures {
  hub: string;
  drone: string;
  flights: number;
  flightS: number;
  /** Share of the run the drone was flying, 0–1. */
  utilisation: number;
  /** Battery % at each landing, in order. */
  landingBatteryPct: number[];
  minLandingBatteryPct: number | null;
}

export interface AlarmFigures {
  byKind: { kind: string; raised: number; cleared: number }[];
  /** Active alarms over time. */
  active: { atS: number; count: number }[];
}

export interface LinkSample {
  atS: number;
  hub: string;
  up: boolean;
  /** Messages waiting at the hub for the link. */
  backlog: number;
}

export interface ModeSwitchFigures {
  atS: number;
  mode: 'normal' | 'emergency';
  by: string;
  /** What led to it: a JMA proposal, the scenario's coordinator event, the policy, a person (drill). */
  cause: string;
  hubs: number;
  acknowledged: number;
  /** Switch → each hub's acknowledgement, seconds. */
  ackS: { p50: number | null; max: number | null };
}

/** One row of the capacity-planning table (`--sweep drones-per-hub=1..4`). */
export interface SweepRow {
  dronesPerHub: number;
  /** Over relief sites that asked: median and worst time to first relief, seconds (null: some never received any). */
  timeToFirstReliefS: { median: number | null; max: number | null; sitesWithout: number };
  /** Share of relief and medical requests delivered on time, 0–1. */
  reliefOnTimeShare: number;
  /** Share of all requests delivered on time, 0–1. */
  onTimeShare: number;
  delivered: number;
  requested: number;
}

/** What the report renders: one run, and optionally a sweep. */
export interface ScenarioReport {
  result: ScenarioResult;
  sweep?: { parameter: 'drones-per-hub'; rows: SweepRow[] };
}
