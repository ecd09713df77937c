import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { offsetS } from '../contract/scenario.ts';
import { formatDuration, formatOffset, formatPct } from './report/format.ts';
import type { Lang } from './report/labels.ts';
import { renderReport, reportFigures } from './report/render-report.ts';
import { sweepRowOf, uniformDronesPerHub } from './report/sweep-row.ts';
import type { ScenarioReport, ScenarioResult, SweepRow } from './scenario-result.ts';
import { loadScenarioFile, ScenarioFileError } from './scenario-file.ts';
import { childProcessRunner, inProcessRunner, MAX_DRONES_PER_HUB, parseSweep, runMainAndSweep, type SweepSpec } from './sweep.ts';

/**
 * `npm run scenario -- <file> [options]` (issue 16): planning mode — the scenario on a virtual clock
 * over the production decision code — then the report: `<out>.html` (one self-contained file, Japanese
 * and English) and `<out>.json` (its figures). Exit codes: 0 done, 2 bad arguments or scenario file
 * (every problem printed, one a line), 1 the run failed.
 */
const USAGE = `Usage: npm run scenario -- <scenario.json> [options]

Runs a scenario in planning mode and writes its report.

Options:
  --drones-per-hub N          drones at each drone hub (0–${MAX_DRONES_PER_HUB}; default: the scenario's fleet)
  --seed S                    random seed (default: the scenario's)
  --sweep drones-per-hub=1..4 also run each fleet size (or a list: drones-per-hub=1,2,4)
                              and add the capacity-planning table to the report
  --jobs N                    runs at a time during a sweep, each in its own process (1–8; default: 2 on 2+ cores)
  --out PREFIX                write PREFIX.html and PREFIX.json (default: reports/<scenario id>)
  --lang ja|en                language shown first in the report and used in this summary (default: ja)
  -h, --help                  this text

Example: npm run scenario -- scenarios/noto-earthquake.json --sweep drones-per-hub=1..4
`;

class UsageError extends Error {}

export interface CliOptions {
  file: string;
  dronesPerHub: number | undefined;
  seed: number | undefined;
  sweep: SweepSpec | undefined;
  jobs: number;
  out: string | undefined;
  lang: Lang;
}

/** The command line → options, or a UsageError saying what is wrong. `null` for --help. */
export function parseCli(argv: string[]): CliOptions | null {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        'drones-per-hub': { type: 'string' },
        seed: { type: 'string' },
        sweep: { type: 'string' },
        jobs: { type: 'string' },
        out: { type: 'string' },
        lang: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  if (v.help) return null;
  if (parsed.positionals.length !== 1) {
    throw new UsageError(parsed.positionals.length === 0 ? 'no scenario file given' : `one scenario file at a time (got ${parsed.positionals.join(', ')})`);
  }
  const int = (name: string, text: string | undefined, min: number, max: number): number | undefined => {
    if (text === undefined) return undefined;
    if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) throw new UsageError(`--${name} ${JSON.stringify(text)}: a whole number from ${min} to ${max}`);
    return Number(text);
  };
  let sweep: SweepSpec | undefined;
  if (v.sweep !== undefined) {
    try {
      sweep = parseSweep(v.sweep);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  if (v.lang !== undefined && v.lang !== 'ja' && v.lang !== 'en') throw new UsageError(`--lang ${JSON.stringify(v.lang)}: ja or en`);
  if (v.out !== undefined && (v.out === '' || v.out.endsWith('/') || v.out.endsWith(path.sep))) throw new UsageError(`--out ${JSON.stringify(v.out)}: a path prefix such as reports/noto (".html" and ".json" are added)`);
  return {
    file: parsed.positionals[0]!,
    dronesPerHub: int('drones-per-hub', v['drones-per-hub'], 0, MAX_DRONES_PER_HUB),
    seed: int('seed', v.seed, 0, 2 ** 31 - 1),
    sweep,
    jobs: int('jobs', v.jobs, 1, 8) ?? (os.availableParallelism() >= 2 ? 2 : 1),
    out: v.out,
    lang: (v.lang as Lang | undefined) ?? 'ja',
  };
}

/** The short summary printed after a run. */
export function summaryText(report: ScenarioReport, lang: Lang): string {
  const r = report.result;
  const en = lang === 'en';
  const row = sweepRowOf(r, uniformDronesPerHub(r) ?? 0);
  const asked = r.relief.filter((s) => s.firstRequestAtS !== null);
  const received = asked.filter((s) => s.firstReliefAtS !== null).length;
  const drones = Object.values(r.scenario.fleet).reduce((a, b) => a + b, 0);
  const ttfr = (v: number | null) => (asked.length === 0 ? (en ? 'no request' : '要請なし') : v === null ? (en ? `— (${row.timeToFirstReliefS.sitesWithout} without)` : `—（未着 ${row.timeToFirstReliefS.sitesWithout} 地点）`) : formatDuration(v, lang));
  const lines = [
    `${r.scenario.name[lang]} — ${r.scenario.region.name[lang]}`,
    en ? `  fleet: ${drones} drones; seed ${r.scenario.seed}; ${formatDuration(r.scenario.durationS, lang)} simulated in ${(r.run.wallMs / 1000).toFixed(1)} s`
      : `  配備: ${drones} 機・シード ${r.scenario.seed}・${formatDuration(r.scenario.durationS, lang)} を ${(r.run.wallMs / 1000).toFixed(1)} 秒で計算`,
    en ? `  relief: ${received}/${asked.length} sites received relief; time to first relief median ${ttfr(row.timeToFirstReliefS.median)}, worst ${ttfr(row.timeToFirstReliefS.max)}`
      : `  救援: ${asked.length} 地点中 ${received} 地点に到着・最初の救援まで 中央値 ${ttfr(row.timeToFirstReliefS.median)}、最長 ${ttfr(row.timeToFirstReliefS.max)}`,
    en ? `  orders: ${row.delivered}/${row.requested} delivered; on time ${formatPct(row.onTimeShare)} (relief and medical ${formatPct(row.reliefOnTimeShare)})`
      : `  注文: ${row.requested} 件中 ${row.delivered} 件配送・期限内 ${formatPct(row.onTimeShare)}（救援・医療 ${formatPct(row.reliefOnTimeShare)}）`,
    en ? `  refused flights ${sum(r.refusals.map((x) => x.count))}, alarms raised ${sum(r.alarms.byKind.map((x) => x.raised))}, mode switches ${r.modes.length}`
      : `  見送った飛行 ${sum(r.refusals.map((x) => x.count))} 回・アラーム ${sum(r.alarms.byKind.map((x) => x.raised))} 件・モード切替 ${r.modes.length} 回`,
  ];
  if (report.sweep) lines.push(sweepTableText(report.sweep.rows, lang));
  return lines.join('\n');
}

function sweepTableText(rows: SweepRow[], lang: Lang): string {
  const en = lang === 'en';
  const head = en ? ['drones/hub', 'median', 'worst', 'without', 'relief on time', 'on time'] : ['機数/拠点', '中央値', '最長', '未着', '救援期限内', '全体期限内'];
  const body = rows.map((x) => [String(x.dronesPerHub), formatDuration(x.timeToFirstReliefS.median, lang), formatDuration(x.timeToFirstReliefS.max, lang), String(x.timeToFirstReliefS.sitesWithout), formatPct(x.reliefOnTimeShare), formatPct(x.onTimeShare)]);
  const width = (s: string) => [...s].reduce((a, ch) => a + (/[\u3000-\uffef\u4e00-\u9fff]/.test(ch) ? 2 : 1), 0);
  const cols = head.map((_, i) => Math.max(...[head, ...body].map((r) => width(r[i]!))));
  const line = (r: string[]) => `    ${r.map((c, i) => ' '.repeat(cols[i]! - width(c)) + c).join('  ')}`;
  return [en ? '  capacity (time to first relief by drones per hub):' : '  機数の検討（拠点あたり機数と最初の救援までの時間）:', line(head), ...body.map(line)].join('\n');
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

export async function main(argv: string[]): Promise<number> {
  let opts: CliOptions | null;
  try {
    opts = parseCli(argv);
  } catch (err) {
    process.stderr.write(`scenario: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (opts === null) {
    process.stdout.write(USAGE);
    return 0;
  }
  const wallStart = performance.now();
  let loaded;
  try {
    loaded = loadScenarioFile(opts.file);
  } catch (err) {
    if (!(err instanceof ScenarioFileError)) throw err;
    process.stderr.write(`scenario file ${opts.file}: ${err.problems.length} problem${err.problems.length === 1 ? '' : 's'}\n${err.problems.join('\n')}\n`);
    return 2;
  }
  const sc = loaded.scenario;
  const out = path.resolve(opts.out ?? path.join('reports', sc.id));
  // Never write the report over an input (red-team: `--out scenarios/x` replaced scenarios/x.json).
  const inputs = new Set([path.resolve(opts.file), loaded.regionFile]);
  const clash = [`${out}.html`, `${out}.json`].find((f) => inputs.has(f));
  if (clash) {
    process.stderr.write(`--out ${opts.out}: the report would overwrite ${clash}; choose another prefix\n`);
    return 2;
  }
  const mainDronesPerHub = opts.dronesPerHub ?? sc.fleet.dronesPerHub;
  const runs = new Set([mainDronesPerHub, ...(opts.sweep?.values ?? [])]).size;
  const jobs = Math.min(opts.jobs, runs);
  const en = opts.lang === 'en';
  process.stderr.write(en
    ? `${sc.name.en}: ${runs} run${runs === 1 ? '' : 's'}${jobs > 1 ? `, ${jobs} at a time` : ''}…\n`
    : `${sc.name.ja}: ${runs} 回の実行${jobs > 1 ? `（${jobs} 並列）` : ''}…\n`);

  let outcome;
  try {
    // On a terminal, a single-process run shows how far the virtual clock has got (the engine reports every virtual hour).
    const durationS = offsetS(sc.duration);
    const progress = process.stderr.isTTY
      ? (v: number | undefined, virtualS: number) => process.stderr.write(`\r\x1b[K  ${v === undefined ? '' : `${v} ${en ? 'per hub' : '機/拠点'}: `}${formatOffset(virtualS)} / ${formatOffset(durationS)}`)
      : undefined;
    const run = jobs > 1 ? childProcessRunner(opts.file, opts.seed) : inProcessRunner(opts.file, opts.seed, progress);
    outcome = await runMainAndSweep(run, {
      mainDronesPerHub, sweep: opts.sweep, jobs,
      onRunDone: runs > 1 ? (v, ms) => process.stderr.write(`${progress ? '\r\x1b[K' : ''}  ${v === undefined ? (en ? "scenario's fleet" : 'シナリオの配備') : `${v} ${en ? 'per hub' : '機/拠点'}`}: ${(ms / 1000).toFixed(1)} s\n`) : undefined,
    });
  } catch (err) {
    process.stderr.write(`scenario: the run failed: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  }
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  const report: ScenarioReport = { result: outcome.main as ScenarioResult };
  if (opts.sweep) report.sweep = { parameter: 'drones-per-hub', rows: outcome.rows };

  const html = await renderReport(report, { lang: opts.lang });
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(`${out}.html`, html);
  fs.writeFileSync(`${out}.json`, reportFigures(report));

  const rel = (p: string) => path.relative(process.cwd(), p) || p;
  process.stdout.write(`${summaryText(report, opts.lang)}\n`);
  process.stdout.write(en
    ? `  report: ${rel(`${out}.html`)} (figures: ${rel(`${out}.json`)}); total wall time ${((performance.now() - wallStart) / 1000).toFixed(1)} s\n`
    : `  レポート: ${rel(`${out}.html`)}（数値: ${rel(`${out}.json`)}）・全体の実時間 ${((performance.now() - wallStart) / 1000).toFixed(1)} 秒\n`);
  return 0;
}

if (process.argv[1] && pathToFileURL(path.resolve(process.argv[1])).href === import.meta.url) {
  process.exitCode = await main(process.argv.slice(2));
}
