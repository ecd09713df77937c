import fs from 'node:fs';
import path from 'node:path';
import type { z } from 'zod';
import { loadRegionFile } from '../cloud/hubs/region-loader.ts';
import type { RegionFile } from '../contract/index.ts';
import { fileURLToPath } from 'node:url';
import { offsetS, ScenarioFile, scenarioJsonSchema } from '../contract/scenario.ts';
import { proposalFromBulletin } from './jma-proposal.ts';

/**
 * Reading a scenario file (issue 16): the JSON, its schema (contract/scenario.ts), its region file and
 * its bulletins, and every reference from the timeline into the region. A person writes these files by
 * hand, so every problem is collected (not just the first) and each names the file, the JSON path
 * (`events[3].hubs[0]`), what is wrong and what is expected.
 */

export interface LoadedScenario {
  scenario: ScenarioFile;
  /** The scenario file as given. */
  file: string;
  region: RegionFile;
  /** The region file, resolved against the scenario file's folder. */
  regionFile: string;
  /** Earthquake bulletins: the path as written in the event → the XML text. */
  bulletins: Map<string, string>;
}

/** Everything wrong with a scenario file; `message` lists every problem, one a line. */
export class ScenarioFileError extends Error {
  readonly problems: string[];
  constructor(file: string, problems: string[]) {
    super(`scenario file ${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ScenarioFileError';
    this.problems = problems;
  }
}

/** Scenario, region and bulletin files are small; anything larger is not one of them. */
const MAX_FILE_BYTES = 32 << 20;

/**
 * Why `file` cannot be one of ours, or null: a FIFO or a device would block or never end a read
 * (red-team finding: a FIFO as region or bulletin hung the loader).
 */
function notARegularFile(file: string): string | null {
  const st = fs.statSync(file, { throwIfNoEntry: false });
  if (!st) return null; // reported by the read that follows, with its error code
  if (!st.isFile()) return `${file} is not a regular file`;
  if (st.size > MAX_FILE_BYTES) return `${file} is ${st.size} bytes, more than any scenario, region or bulletin file (${MAX_FILE_BYTES} bytes)`;
  return null;
}

/** Reads, validates and resolves a scenario file; throws `ScenarioFileError` naming every problem. */
export function loadScenarioFile(file: string): LoadedScenario {
  let text: string;
  const irregular = notARegularFile(file);
  if (irregular) throw new ScenarioFileError(file, [`${file}: cannot read the file (${irregular})`]);
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ScenarioFileError(file, [`${file}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ScenarioFileError(file, [`${file}: not valid JSON: ${jsonErrorWhere(text, err as Error)}`]);
  }
  const scenario = parseScenario(json, file);
  const problems: string[] = [];
  const dir = path.dirname(file);

  const regionFile = path.resolve(dir, scenario.region);
  let region: RegionFile | null = null;
  if (!fs.existsSync(regionFile)) {
    problems.push(`${file}: region: the region file ${regionFile} does not exist (the path is relative to the scenario file)`);
  } else if (notARegularFile(regionFile)) {
    problems.push(`${file}: region: ${notARegularFile(regionFile)}`);
  } else {
    try {
      region = loadRegionFile(regionFile, `region of scenario ${file}`);
    } catch (err) {
      problems.push(`${file}: region: ${(err as Error).message}`);
    }
  }

  const bulletins = new Map<string, string>();
  for (const [i, e] of scenario.events.entries()) {
    if (e.type !== 'earthquake' || bulletins.has(e.bulletin)) continue;
    const bulletinFile = path.resolve(dir, e.bulletin);
    const irregularBulletin = notARegularFile(bulletinFile);
    if (irregularBulletin) {
      problems.push(`${file}: events[${i}].bulletin: ${irregularBulletin}`);
      continue;
    }
    try {
      const xml = fs.readFileSync(bulletinFile, 'utf8');
      const wrong = bulletinProblem(xml, e.areaCodes, e.minIntensity);
      if (wrong) problems.push(`${file}: events[${i}].bulletin: ${bulletinFile} ${wrong}`);
      else bulletins.set(e.bulletin, xml);
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : `cannot be read (${(err as Error).message})`;
      problems.push(`${file}: events[${i}].bulletin: the bulletin ${bulletinFile} ${why} (expected a JMA XML bulletin, path relative to the scenario file)`);
    }
  }

  if (region) problems.push(...checkScenarioAgainstRegion(scenario, region).map((p) => `${file}: ${p}`));
  if (problems.length > 0) throw new ScenarioFileError(file, problems);
  return { scenario, file, region: region!, regionFile, bulletins };
}

/** Why a bulletin cannot be played (not XML, not a JMA report), or null; below its threshold is fine. */
function bulletinProblem(xml: string, areaCodes: string[], minIntensity: string): string | null {
  try {
    proposalFromBulletin(xml, { areaCodes, minIntensity, regionId: 'check' });
  } catch (err) {
    return `cannot be read as the flow reads it: ${(err as Error).message} (expected a JMA XML bulletin)`;
  }
  if (!/<Report[\s>]/.test(xml)) return 'is not a JMA report (no <Report> element; expected a JMA XML bulletin such as VXSE43, VXSE51, VXSE53)';
  return null;
}

/** Validates parsed JSON against the scenario schema; throws `ScenarioFileError` with every issue. */
export function parseScenario(json: unknown, file: string): ScenarioFile {
  const parsed = ScenarioFile.safeParse(json);
  if (parsed.success) return parsed.data;
  throw new ScenarioFileError(file, parsed.error.issues.flatMap((i) => describeIssue(i, json)).map((p) => `${file}: ${p}`));
}

/**
 * References from the timeline into the region, and the timeline's own order: unknown hubs, landing
 * sites and drones, drone hubs without drones, events after the end, `until` before `from`, weather
 * points out of order, links restored that were never cut. Each problem starts with its JSON path.
 */
export function checkScenarioAgainstRegion(s: ScenarioFile, region: RegionFile): string[] {
  const problems: string[] = [];
  const hubs = new Map(region.hubs.map((h) => [h.id, h]));
  const sites = new Map(region.landingSites.map((x) => [x.id, x]));
  const durationS = offsetS(s.duration);
  const list = (ids: Iterable<string>) => [...ids].join(', ') || '(none)';
  const hubList = list(hubs.keys());

  if (durationS <= 0) problems.push(`duration: must be longer than 0 (got ${JSON.stringify(s.duration)})`);

  const checkHub = (where: string, id: string) => {
    if (!hubs.has(id)) problems.push(`${where}: unknown hub "${id}" — region ${region.id} has: ${hubList}`);
  };
  const checkHubs = (where: string, ids: 'all' | string[] | undefined) => {
    if (Array.isArray(ids)) ids.forEach((id, j) => checkHub(`${where}[${j}]`, id));
  };
  const checkAt = (where: string, at: string | number) => {
    const t = offsetS(at);
    if (t > durationS) problems.push(`${where}: ${JSON.stringify(at)} is after the end of the scenario (duration ${JSON.stringify(s.duration)})`);
    return t;
  };
  const hubsOf = (ids: 'all' | string[]) => (ids === 'all' ? [...hubs.keys()] : ids);

  const droneHubs = s.fleet.droneHubs;
  if (droneHubs) {
    droneHubs.forEach((id, j) => {
      const hub = hubs.get(id);
      if (!hub) return checkHub(`fleet.droneHubs[${j}]`, id);
      if (hub.drones.length === 0 && s.fleet.dronesPerHub === undefined) {
        const withDrones = region.hubs.filter((h) => h.drones.length > 0).map((h) => h.id);
        problems.push(`fleet.droneHubs[${j}]: hub "${id}" has no drones in the region file — set fleet.dronesPerHub to station drones there, or pick a hub with drones: ${list(withDrones)}`);
      }
    });
  }

  // Link cuts and power losses are states per hub: replayed in time order to find a restoration
  // of something that was never cut, or a cut of what is already cut.
  const weatherSpans = new Map<string, { from: number; until: number; where: string }[]>();
  const transitions: { kind: 'link' | 'power'; hub: string; t: number; on: boolean; where: string }[] = [];

  for (const [i, e] of s.events.entries()) {
    const at = `events[${i}]`;
    switch (e.type) {
      case 'weather': {
        checkHubs(`${at}.hubs`, e.hubs);
        // One profile per hub at a time (checked after the loop): two that overlap would leave the wind at a hub ambiguous.
        const span = { from: offsetS(e.profile[0]!.at), until: offsetS(e.profile[e.profile.length - 1]!.at), where: at };
        for (const hub of hubsOf(e.hubs)) {
          const spans = weatherSpans.get(hub);
          if (spans) spans.push(span);
          else weatherSpans.set(hub, [span]);
        }
        let previous = -1;
        e.profile.forEach((p, j) => {
          const t = checkAt(`${at}.profile[${j}].at`, p.at);
          if (t <= previous) problems.push(`${at}.profile[${j}].at: ${JSON.stringify(p.at)} is not after the previous point (weather points must be in time order, each later than the last)`);
          previous = Math.max(previous, t);
          if (p.gustMps !== undefined && p.gustMps < p.windMps) problems.push(`${at}.profile[${j}].gustMps: ${p.gustMps} m/s is below the mean wind ${p.windMps} m/s (a gust is at least the mean)`);
        });
        break;
      }
      case 'earthquake':
        checkAt(`${at}.at`, e.at);
        break;
      case 'link':
      case 'power': {
        checkHubs(`${at}.hubs`, e.hubs);
        const t = checkAt(`${at}.at`, e.at);
        const on = e.state === 'restored';
        for (const hub of hubsOf(e.hubs)) if (hubs.has(hub)) transitions.push({ kind: e.type, hub, t, on, where: `${at}` });
        break;
      }
      case 'isolation': {
        checkAt(`${at}.at`, e.at);
        e.sites.forEach((id, j) => {
          const site = sites.get(id);
          if (!site) problems.push(`${at}.sites[${j}]: unknown landing site "${id}" — region ${region.id} has: ${list(sites.keys())}`);
          else if (site.kind !== 'isolated-settlement') {
            const settlements = region.landingSites.filter((x) => x.kind === 'isolated-settlement').map((x) => x.id);
            problems.push(`${at}.sites[${j}]: "${id}" is a ${site.kind}, not an isolated-settlement — settlements that may be cut off: ${list(settlements)}`);
          }
        });
        break;
      }
      case 'demand': {
        const from = checkAt(`${at}.from`, e.from);
        const until = checkAt(`${at}.until`, e.until);
        if (until <= from) problems.push(`${at}.until: ${JSON.stringify(e.until)} is not after from (${JSON.stringify(e.from)}); demand runs from "from" until a later "until"`);
        if (e.weightKg[1] < e.weightKg[0]) problems.push(`${at}.weightKg: [${e.weightKg.join(', ')}] — expected [lightest, heaviest]`);
        checkHubs(`${at}.hubs`, e.hubs);
        if (e.destinations) checkHubs(`${at}.destinations`, e.destinations);
        e.destinations?.forEach((id, j) => {
          if (hubs.get(id)?.lockers.length === 0) problems.push(`${at}.destinations[${j}]: hub ${id} has no lockers to deliver to`);
        });
        e.sites?.forEach((id, j) => {
          if (!sites.has(id)) problems.push(`${at}.sites[${j}]: unknown landing site "${id}" — ${e.kind} demand comes from the region's shelters and settlements: ${list(sites.keys())}`);
        });
        break;
      }
      case 'coordinator':
        checkAt(`${at}.at`, e.at);
        checkHubs(`${at}.hubs`, e.hubs);
        break;
      case 'fleet': {
        checkAt(`${at}.at`, e.at);
        const hub = hubs.get(e.hub);
        if (!hub) {
          checkHub(`${at}.hub`, e.hub);
          break;
        }
        if (droneHubs && !droneHubs.includes(e.hub)) problems.push(`${at}.hub: "${e.hub}" is not one of fleet.droneHubs (${list(droneHubs)}), so it has no drones in this scenario`);
        // With dronesPerHub the run stations drones the region file does not list; their ids are not known here.
        if (s.fleet.dronesPerHub === undefined) {
          const known = new Set(hub.drones.map((d) => d.id));
          if (known.size === 0) problems.push(`${at}.hub: hub "${e.hub}" has no drones in the region file`);
          else e.drones?.forEach((d, j) => {
            if (!known.has(d)) problems.push(`${at}.drones[${j}]: unknown drone "${d}" at hub ${e.hub} — it has: ${list(known)}`);
          });
        }
        break;
      }
    }
  }

  // Overlapping weather per hub: in order of start, a profile that begins before the latest end so far overlaps
  // the profile that ends there (n log n: a scenario may hold 10,000 events).
  for (const [hub, spans] of weatherSpans) {
    let latest: { from: number; until: number; where: string } | null = null;
    for (const span of spans.sort((a, b) => a.from - b.from)) {
      if (latest && span.from <= latest.until) {
        problems.push(`${span.where}.hubs: hub ${hub} already has weather from ${latest.where} over the same time (${latest.from} s–${latest.until} s); give each hub one profile at a time`);
      }
      if (!latest || span.until > latest.until) latest = span;
    }
  }

  const state = new Map<string, { on: boolean; where: string }>();
  for (const tr of transitions.sort((a, b) => a.t - b.t)) {
    const key = `${tr.kind} ${tr.hub}`;
    const before = state.get(key) ?? { on: true, where: '' };
    if (before.on === tr.on) {
      const what = tr.kind === 'link' ? (tr.on ? 'restores a link that is not cut' : 'cuts a link that is already cut') : tr.on ? 'restores power that is not lost' : 'loses power that is already lost';
      problems.push(`${tr.where}: ${what} at hub ${tr.hub}${before.where ? ` (since ${before.where})` : ''}`);
    }
    state.set(key, { on: tr.on, where: tr.where });
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------------
// Messages a person can act on

type Issue = z.core.$ZodIssue;
type Path = readonly PropertyKey[];

/** `events[3].profile[0].at`; the root is "(top level)". */
export function jsonPath(p: Path): string {
  let out = '';
  for (const k of p) out += typeof k === 'number' ? `[${k}]` : out === '' ? String(k) : `.${String(k)}`;
  return out || '(top level)';
}

function valueAt(json: unknown, p: Path): unknown {
  let v = json;
  for (const k of p) v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[k] : undefined;
  return v;
}

const shown = (v: unknown) => {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}…` : s;
};

const typeOf = (v: unknown) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/** One line per problem, each starting with its JSON path. */
function describeIssue(issue: Issue, json: unknown, prefix: Path = []): string[] {
  const p = [...prefix, ...issue.path];
  const where = jsonPath(p);
  const value = valueAt(json, p);
  const hint = describedAt(p, json);
  const expected = hint ? ` — ${hint}` : '';
  switch (issue.code) {
    case 'unrecognized_keys': {
      const allowed = keysAt(p, json);
      return issue.keys.map((k) => `${jsonPath([...p, k])}: unknown key "${k}"${allowed ? ` — allowed here: ${allowed.join(', ')}` : ''}`);
    }
    case 'invalid_union': {
      if (issue.errors.length === 0) {
        // A discriminated union (the event's "type") with no matching option.
        const options = (issue as { options?: unknown[] }).options;
        const got = value === undefined ? 'is missing' : `is ${shown(value)}`;
        return [`${where}: ${got} — expected one of ${options ? options.map((o) => JSON.stringify(o)).join(', ') : 'the listed values'}`];
      }
      if (value === undefined) return [`${where}: missing${expected}`];
      // Report the branch meant for this kind of value (a string offset, not the number branch).
      const meant = issue.errors.filter((branch) => !branch.some((b) => b.path.length === 0 && (b.code === 'invalid_type' || b.code === 'invalid_value') && !sameKind(b, value)));
      if (meant.length === 1) return meant[0]!.flatMap((b) => describeIssue(b, json, p));
      return [`${where}: ${shown(value)} is not valid${expected || ''}`];
    }
    case 'invalid_value': {
      const values = issue.values.map((v) => JSON.stringify(v));
      const one = values.length > 1 ? `one of ${values.join(', ')}` : values[0];
      return [`${where}: ${value === undefined ? 'missing' : `got ${shown(value)}`}, expected ${one}${expected}`];
    }
    case 'invalid_type':
      if (value === undefined) return [`${where}: missing${expected || ` (a ${issue.expected})`}`];
      return [`${where}: expected ${issue.expected === 'int' ? 'a whole number' : issue.expected}, got ${typeOf(value)} ${shown(value)}${expected}`];
    default:
      if (issue.code === 'custom') return [`${where}: ${issue.message}${value === undefined ? '' : ` (got ${shown(value)})`}`];
      return [`${where}: ${issue.message} (got ${shown(value)})${expected}`];
  }
}

/** Whether a type/value issue of a union branch is about the kind of value given (number vs string …). */
function sameKind(b: Issue, value: unknown): boolean {
  if (b.code === 'invalid_value') return b.values.some((v) => typeof v === typeof value);
  if (b.code !== 'invalid_type') return false;
  const kind = typeOf(value);
  const expected = String(b.expected);
  if (kind === 'number') return ['number', 'int', 'float'].includes(expected);
  return expected === kind;
}

// Walking the schema along a path (to say what is expected there, and which keys are allowed).

interface Def {
  type: string;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  innerType?: z.ZodType;
  in?: z.ZodType;
  options?: z.ZodType[];
  values?: unknown[];
}
const defOf = (s: z.ZodType) => (s as unknown as { _zod: { def: Def } })._zod.def;

/** The schemas at a path, outermost first (wrappers such as default and optional included). */
function schemasAt(p: Path, json: unknown): z.ZodType[] {
  let current: z.ZodType | undefined = ScenarioFile;
  let chain: z.ZodType[] = [];
  const unwrap = (s: z.ZodType, value: unknown): z.ZodType[] => {
    const out: z.ZodType[] = [s];
    let d = defOf(s);
    while (true) {
      const next: z.ZodType | undefined = d.innerType ?? d.in ?? (d.type === 'union' ? pickOption(d.options ?? [], value) : undefined);
      if (!next) return out;
      out.push(next);
      d = defOf(next);
    }
  };
  chain = unwrap(current, json);
  for (let i = 0; i < p.length; i++) {
    const d = defOf(chain[chain.length - 1]!);
    const k = p[i]!;
    current = d.type === 'object' && typeof k === 'string' ? d.shape?.[k] : d.type === 'array' && typeof k === 'number' ? d.element : d.type === 'tuple' ? undefined : undefined;
    if (!current) return [];
    chain = unwrap(current, valueAt(json, p.slice(0, i + 1)));
  }
  return chain;
}

/** The union option meant for a value: the object whose literal keys (its "type") match, else one of the value's kind. */
function pickOption(options: z.ZodType[], value: unknown): z.ZodType | undefined {
  if (value !== null && typeof value === 'object') {
    for (const o of options) {
      const d = defOf(o);
      if (d.type !== 'object' || !d.shape) continue;
      const literals = Object.entries(d.shape).filter(([, v]) => defOf(v).type === 'literal');
      if (literals.length > 0 && literals.every(([k, v]) => defOf(v).values?.includes((value as Record<string, unknown>)[k]))) return o;
    }
  }
  const kind = typeOf(value);
  return options.find((o) => {
    const t = defOf(o).type;
    return t === kind || (kind === 'number' && t === 'number') || (kind === 'string' && (t === 'string' || t === 'literal'));
  });
}

function describedAt(p: Path, json: unknown): string | undefined {
  for (const s of schemasAt(p, json)) if (s.description) return s.description;
  return undefined;
}

function keysAt(p: Path, json: unknown): string[] | undefined {
  const chain = schemasAt(p, json);
  const last = chain[chain.length - 1];
  const d = last ? defOf(last) : undefined;
  return d?.type === 'object' && d.shape ? Object.keys(d.shape) : undefined;
}

/** Where JSON.parse stopped, as line and column (Node 20 says only "at position N"). */
function jsonErrorWhere(text: string, err: Error): string {
  const m = /at position (\d+)/.exec(err.message);
  if (!m || /line \d+/.test(err.message)) return err.message;
  const pos = Number(m[1]);
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const column = pos - before.lastIndexOf('\n');
  const lineText = text.split('\n')[line - 1] ?? '';
  return `${err.message.replace(/ in JSON at position \d+.*/, '')} at line ${line}, column ${column}: ${lineText.trim().slice(0, 80)}`;
}

// ---------------------------------------------------------------------------------------------------
// The JSON Schema shipped for editors

/** scenarios/scenario.schema.json: where the shipped scenarios' `$schema` points. */
export const SCENARIO_SCHEMA_FILE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../scenarios/scenario.schema.json');

/** The schema file's content, generated from contract/scenario.ts. */
export const scenarioJsonSchemaText = (): string => `${JSON.stringify(scenarioJsonSchema(), null, 2)}\n`;

// `npx tsx planning/scenario-file.ts --write-schema` regenerates the file after a schema change.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url) && process.argv.includes('--write-schema')) {
  fs.writeFileSync(SCENARIO_SCHEMA_FILE, scenarioJsonSchemaText());
  console.log(`wrote ${SCENARIO_SCHEMA_FILE}`);
}
