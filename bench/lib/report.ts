import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fmt, fmtSummary, type Summary } from './stats.ts';

/**
 * What one benchmark section reports. Each section (bench/sections/*.ts) returns one of these; the
 * runner prints the rows as a table and keeps the whole result as JSON in bench/results/ (or
 * bench/results-quick/ for `--quick`), from which BENCHMARKS.md is rebuilt.
 */
export interface Row {
  /** What is measured, e.g. "zero-loss ingest into influxd". */
  metric: string;
  /** Our system's figure: a summary over runs, or a plain text figure. */
  ours: Summary | string;
  unit?: string;
  decimals?: number;
  /** The alternative measured in the same invocation, e.g. Mosquitto → Node-RED → InfluxDB. */
  alternative?: { name: string; value: Summary | string };
  /** e.g. "7.7×" or "61 % of the ceiling". */
  comparison?: string;
  /** e.g. "≥ 20,000 msg/s". */
  target?: string;
  /** Whether the target is met; undefined when there is no target. */
  met?: boolean;
}

export interface SectionResult {
  id: string;
  title: string;
  /** One paragraph: how it is measured. */
  method: string;
  rows: Row[];
  /** Observations, limits, what changed because of it. */
  notes: string[];
  /** Raw figures per run, for the record (any JSON). */
  raw?: unknown;
  quick: boolean;
  startedAt: string;
  durationS: number;
  /** The machine and versions it ran on (machineDescription() at the time). */
  machine?: Record<string, string>;
}

export interface BenchOptions {
  quick: boolean;
  /** Writes progress lines (stderr). */
  log: (line: string) => void;
}

export type Section = (opts: BenchOptions) => Promise<Omit<SectionResult, 'quick' | 'startedAt' | 'durationS' | 'id' | 'machine'>>;

const cell = (v: Summary | string, unit?: string, decimals?: number) => (typeof v === 'string' ? v : fmtSummary(v, unit, decimals));

export function rowCells(r: Row): string[] {
  const alt = r.alternative ? `${cell(r.alternative.value, r.unit, r.decimals)} (${r.alternative.name})` : '—';
  const met = r.met === undefined ? '' : r.met ? 'met' : 'MISSED';
  return [r.metric, cell(r.ours, r.unit, r.decimals), alt, r.comparison ?? '—', r.target ? `${r.target}${met ? ` — ${met}` : ''}` : '—'];
}

export const HEADER = ['Measure', 'Ours', 'Alternative, same run', 'Comparison', 'Target'];

export function textTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => [...(r[i] ?? '')].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]! + c.length - [...c].length)).join('  ')).join('\n');
}

function tryRun(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5_000 }).trim();
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return `${e.stdout ?? ''}${e.stderr ?? ''}`.trim() || 'not available';
  }
}

export function machineDescription(): Record<string, string> {
  const cpus = os.cpus();
  const pkg = (name: string) => {
    try {
      return (JSON.parse(fs.readFileSync(path.join('node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      return 'not installed';
    }
  };
  return {
    cpu: `${cpus.length} × ${cpus[0]?.model ?? 'unknown'}`,
    memory: `${fmt(os.totalmem() / 2 ** 30, 1)} GiB`,
    os: `${os.type()} ${os.release()} (${os.arch()})`,
    node: process.version,
    influxd: tryRun('influxd', ['version']).split('\n')[0] ?? '',
    mosquitto: (/mosquitto version [\d.]+/.exec(tryRun('mosquitto', ['-h'])) ?? ['unknown'])[0],
    'node-red': pkg('node-red'),
    'node-red-contrib-influxdb': pkg('node-red-contrib-influxdb'),
    aedes: pkg('aedes'),
    commit: tryRun('git', ['rev-parse', '--short', 'HEAD']),
  };
}

export function resultsDir(quick: boolean): string {
  return path.resolve(import.meta.dirname, '..', quick ? 'results-quick' : 'results');
}

export function saveResult(r: SectionResult): void {
  const dir = resultsDir(r.quick);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, `${r.id}.json`), `${JSON.stringify(r, null, 2)}\n`);
}

export function loadResults(quick: boolean, order: readonly string[]): SectionResult[] {
  const dir = resultsDir(quick);
  return order
    .map((id) => path.join(dir, `${id}.json`))
    .filter((f) => fs.existsSync(f))
    .map((f) => JSON.parse(fs.readFileSync(f, 'utf8')) as SectionResult);
}

const mdEscape = (s: string) => s.replaceAll('|', '\\|').replaceAll('\n', ' ');

export function markdown(results: SectionResult[], machine: Record<string, string>, quick: boolean): string {
  const out: string[] = [];
  out.push('# Benchmarks', '');
  out.push(
    `Written by \`npm run bench${quick ? ' -- --quick' : ''}\` — do not edit by hand; re-running a section updates it. ` +
      'Every figure is the median over the runs after a warm-up, with the spread (lowest–highest run) in brackets. ' +
      'Load generators run in their own processes; all traffic is on loopback. Comparisons ran in the same invocation on the same machine.',
    '',
  );
  // The machine the sections ran on (as each result recorded it); differing values are listed per section.
  const recorded = results.map((r) => r.machine ?? machine);
  out.push('## Machine', '', '| | |', '|---|---|');
  for (const [k, v] of Object.entries(recorded[0] ?? machine)) {
    const all = [...new Set(recorded.map((m) => m[k] ?? v))];
    out.push(`| ${k} | ${mdEscape(all.length === 1 ? v : results.map((r, i) => `${r.id}: ${recorded[i]![k] ?? v}`).join('; '))} |`);
  }
  out.push('');
  out.push('## Summary', '', `| ${['#', ...HEADER].join(' | ')} |`, `|${['#', ...HEADER].map(() => '---').join('|')}|`);
  results.forEach((r, i) => {
    for (const row of r.rows) out.push(`| ${i + 1} | ${rowCells(row).map(mdEscape).join(' | ')} |`);
  });
  out.push('');
  results.forEach((r, i) => {
    out.push(`## ${i + 1}. ${r.title}`, '');
    out.push(`_Run ${r.startedAt}${r.quick ? ' (quick mode)' : ''}, ${fmt(r.durationS, 0)} s._`, '');
    out.push(r.method, '');
    out.push(`| ${HEADER.join(' | ')} |`, `|${HEADER.map(() => '---').join('|')}|`);
    for (const row of r.rows) out.push(`| ${rowCells(row).map(mdEscape).join(' | ')} |`);
    out.push('');
    if (r.notes.length) {
      for (const n of r.notes) out.push(`- ${n}`);
      out.push('');
    }
  });
  return `${out.join('\n')}\n`;
}
