import { offsetS, type ScenarioEvent } from '../../contract/scenario.ts';
import type { LoadedScenario } from '../scenario-file.ts';
import { proposalFromBulletin, type ModeProposal } from '../jma-proposal.ts';
import { arrivalsOf, type Arrival } from '../sim/demand.ts';
import { BACKUP_CHARGE_PCT_PER_H } from '../sim/sim-hub.ts';

/**
 * Drill mode (issue 16, item 4): a scenario's timeline as the steps the drill plays against a running
 * system, in scenario seconds. Pure — no clock, no network — so it can be checked by itself.
 *
 * - weather: the profile's values at each of its points, and interpolated in between every
 *   `weatherStepS` (the sensors hold a value until the next step);
 * - power, link, fleet: one step each (device changes through the demo's control channel); a hub whose
 *   backup battery runs out (100 % at the start, draining while the grid is down, recharging at
 *   BACKUP_CHARGE_PCT_PER_H while it is up) goes dark — its link is cut then, and restored when the grid
 *   returns (unless the scenario keeps the link cut);
 * - earthquake: the proposal the Node-RED flow would post for the bulletin (planning/jma-proposal.ts:
 *   the flow's own mapping), or a note when the flow would propose nothing;
 * - demand: the same Poisson arrivals as planning mode (planning/sim/demand.ts, same seed);
 * - isolation: recorded for the figures; coordinator: a prompt to the people (played only when asked).
 */
export type HubsSpec = 'all' | string[];

export type DrillStep =
  | { atS: number; kind: 'weather'; hub: string; windMps: number; gustMps?: number; rainMmPerH: number }
  | { atS: number; kind: 'power'; hub: string; state: 'lost'; backupDrainPctPerH: number }
  | { atS: number; kind: 'power'; hub: string; state: 'restored' }
  | { atS: number; kind: 'link'; hub: string; state: 'cut' | 'restored'; /** The backup battery ran out (cut) / the grid came back to a dark hub (restored). */ dark?: boolean }
  | { atS: number; kind: 'fleet'; hub: string; drones?: string[]; state: 'out_of_service' | 'in_service' }
  | { atS: number; kind: 'isolation'; sites: string[]; state: 'isolated' | 'reachable' }
  | { atS: number; kind: 'proposal'; bulletin: string; proposal: ModeProposal | null }
  | { atS: number; kind: 'order'; arrival: Arrival }
  | { atS: number; kind: 'coordinator'; action: 'emergency' | 'normal'; hubs: HubsSpec; reason: string };

/** Steps that change the simulated devices or links (need the demo's control channel). */
export const DEVICE_STEPS: ReadonlySet<DrillStep['kind']> = new Set(['weather', 'power', 'link', 'fleet']);

export interface DrillPlanOptions {
  /** Scenario seconds between weather updates inside a profile segment. Default 300 (5 min). */
  weatherStepS?: number;
}

export function planDrill(loaded: Pick<LoadedScenario, 'scenario' | 'region' | 'bulletins'>, opts: DrillPlanOptions = {}): DrillStep[] {
  const { scenario, region } = loaded;
  const stepS = opts.weatherStepS ?? 300;
  const durationS = offsetS(scenario.duration);
  const hubsOf = (h: HubsSpec): string[] => (h === 'all' ? region.hubs.map((x) => x.id) : h);
  const steps: DrillStep[] = [];
  for (const e of scenario.events) steps.push(...stepsOf(e));
  steps.push(...darkness(steps, durationS));
  for (const a of arrivalsOf(scenario.events, region, scenario.seed, (o) => offsetS(o) * 1000)) {
    steps.push({ atS: a.at / 1000, kind: 'order', arrival: a });
  }
  // Stable by time; at one instant, device changes before orders and prompts (as they happened first).
  const rank = (s: DrillStep) => (DEVICE_STEPS.has(s.kind) ? 0 : s.kind === 'order' ? 2 : 1);
  const sorted = steps.filter((s) => s.atS <= durationS).map((s, i) => ({ s, i })).sort((a, b) => a.s.atS - b.s.atS || rank(a.s) - rank(b.s) || a.i - b.i).map((x) => x.s);
  // Weather a hub already has is not sent again.
  const lastWeather = new Map<string, string>();
  return sorted.filter((s) => {
    if (s.kind !== 'weather') return true;
    const key = weatherKey(s);
    if (lastWeather.get(s.hub) === key) return false;
    lastWeather.set(s.hub, key);
    return true;
  });

  function stepsOf(e: ScenarioEvent): DrillStep[] {
    switch (e.type) {
      case 'weather': {
        const points = [...e.profile].map((p) => ({ ...p, atS: offsetS(p.at) })).sort((a, b) => a.atS - b.atS);
        const out: DrillStep[] = [];
        const lerp = (a: number, b: number, f: number) => Math.round((a + (b - a) * f) * 10) / 10;
        for (const [i, p] of points.entries()) {
          const next = points[i + 1];
          const times = [p.atS];
          if (next) for (let t = p.atS + stepS; t < next.atS; t += stepS) times.push(t);
          for (const t of times) {
            const f = next ? (t - p.atS) / (next.atS - p.atS) : 0;
            const gust = p.gustMps === undefined || (next && next.gustMps === undefined) ? undefined : lerp(p.gustMps, next ? next.gustMps! : p.gustMps, f);
            for (const hub of hubsOf(e.hubs)) {
              out.push({
                atS: t, kind: 'weather', hub,
                windMps: lerp(p.windMps, next ? next.windMps : p.windMps, f),
                ...(gust === undefined ? {} : { gustMps: gust }),
                rainMmPerH: lerp(p.rainMmPerH, next ? next.rainMmPerH : p.rainMmPerH, f),
              });
            }
          }
        }
        return out;
      }
      case 'power':
        return hubsOf(e.hubs).map((hub): DrillStep => (e.state === 'lost'
          ? { atS: offsetS(e.at), kind: 'power', hub, state: 'lost', backupDrainPctPerH: e.backupDrainPctPerH }
          : { atS: offsetS(e.at), kind: 'power', hub, state: 'restored' }));
      case 'link':
        return hubsOf(e.hubs).map((hub) => ({ atS: offsetS(e.at), kind: 'link', hub, state: e.state }));
      case 'fleet':
        return [{ atS: offsetS(e.at), kind: 'fleet', hub: e.hub, ...(e.drones ? { drones: e.drones } : {}), state: e.state }];
      case 'isolation':
        return [{ atS: offsetS(e.at), kind: 'isolation', sites: e.sites, state: e.state }];
      case 'earthquake': {
        const xml = loaded.bulletins.get(e.bulletin);
        const proposal = xml === undefined ? null : proposalFromBulletin(xml, { areaCodes: e.areaCodes, minIntensity: e.minIntensity, regionId: region.id });
        return [{ atS: offsetS(e.at), kind: 'proposal', bulletin: e.bulletin, proposal }];
      }
      case 'coordinator':
        return [{ atS: offsetS(e.at), kind: 'coordinator', action: e.action, hubs: e.hubs, reason: e.reason }];
      case 'demand':
        return []; // arrivals below
    }
  }
}

/**
 * Link cuts of hubs whose backup battery runs out, and their return with the grid; a scenario link
 * restoration that falls while the hub is dark is dropped (the hub has no power to reconnect).
 */
function darkness(steps: DrillStep[], durationS: number): DrillStep[] {
  const out: DrillStep[] = [];
  const byHub = new Map<string, DrillStep[]>();
  for (const s of steps) if (s.kind === 'power' || s.kind === 'link') byHub.set(s.hub, [...(byHub.get(s.hub) ?? []), s]);
  for (const [hub, list] of byHub) {
    const ordered = [...list].sort((a, b) => a.atS - b.atS);
    let pct = 100;
    let t = 0;
    let drain: number | null = null; // %/h while the grid is down
    let dark = false;
    let scenarioCut = false;
    const advance = (to: number) => {
      if (drain === null) {
        pct = Math.min(100, pct + (BACKUP_CHARGE_PCT_PER_H * (to - t)) / 3600);
      } else if (!dark && drain > 0) {
        const emptyAt = t + (pct / drain) * 3600;
        if (emptyAt <= to && emptyAt <= durationS) {
          dark = true;
          out.push({ atS: Math.round(emptyAt), kind: 'link', hub, state: 'cut', dark: true });
        }
        pct = Math.max(0, pct - (drain * (to - t)) / 3600);
      }
      t = to;
    };
    for (const s of ordered) {
      advance(s.atS);
      if (s.kind === 'power') {
        if (s.state === 'lost') {
          drain ??= s.backupDrainPctPerH;
        } else {
          drain = null;
          if (dark && !scenarioCut) out.push({ atS: s.atS, kind: 'link', hub, state: 'restored', dark: true });
          dark = false;
        }
      } else if (s.kind === 'link') {
        scenarioCut = s.state === 'cut';
        if (dark && s.state === 'restored') steps.splice(steps.indexOf(s), 1);
      }
    }
    advance(durationS);
  }
  return out;
}

/** The weather a step sets, without the hub and time (steps with equal keys set the same weather). */
export function weatherKey(s: Extract<DrillStep, { kind: 'weather' }>): string {
  return `${s.windMps}/${s.gustMps ?? '-'}/${s.rainMmPerH}`;
}

/** What a step does, in one line (printed as the drill plays it). */
export function describeStep(s: DrillStep, hubs?: string): string {
  switch (s.kind) {
    case 'weather':
      return `weather at ${hubs ?? s.hub}: wind ${s.windMps} m/s${s.gustMps === undefined ? '' : `, gust ${s.gustMps} m/s`}, rain ${s.rainMmPerH} mm/h`;
    case 'power':
      return s.state === 'lost' ? `grid power lost at ${s.hub} (backup drains ${s.backupDrainPctPerH} %/h)` : `grid power back at ${s.hub}`;
    case 'link':
      if (s.dark) return s.state === 'cut' ? `${s.hub}'s backup battery is empty: the hub goes dark (link cut)` : `grid back at ${s.hub}: the dark hub comes back (link restored)`;
      return `cloud link ${s.state === 'cut' ? 'cut' : 'restored'} at ${s.hub}`;
    case 'fleet':
      return `${s.drones ? s.drones.join(', ') : 'every drone'} at ${s.hub} ${s.state === 'out_of_service' ? 'out of service' : 'back in service'}`;
    case 'isolation':
      return `${s.sites.join(', ')} ${s.state === 'isolated' ? 'cut off (isolated)' : 'reachable again'}`;
    case 'proposal':
      return s.proposal ? `earthquake bulletin ${s.bulletin}: emergency mode proposed — ${s.proposal.reason}` : `earthquake bulletin ${s.bulletin}: below the threshold or not in the region's areas; the flow proposes nothing`;
    case 'order': {
      const a = s.arrival;
      const to = a.destination.type === 'locker' ? `locker at ${a.destination.hub}` : `site ${a.destination.siteId}`;
      return `${a.priority} order from ${a.originHub} to ${to}, ${a.weightKg} kg ${a.tempClass}`;
    }
    case 'coordinator':
      return `scenario expects: switch ${s.hubs === 'all' ? 'the region' : s.hubs.join(', ')} to ${s.action} now (${s.reason})`;
  }
}
