import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ScenarioReport } from '../../planning/scenario-result.ts';
import type { Row, Section } from '../lib/report.ts';
import { fmt, summarize } from '../lib/stats.ts';

/**
 * Planning mode (issue 16): each shipped scenario through `npm run scenario` as a user runs it — a
 * fresh process, the report written — timed from spawn to exit; the figures a municipality reads
 * (time to first relief, share on time) come from the JSON it writes. Target: < 60 s per scenario
 * (48 virtual hours for the Noto-like one). Also the capacity sweep over 1–4 drones per hub.
 */
const ROOT = path.resolve(import.meta.dirname, '../..');
const SCENARIOS = ['normal-day', 'typhoon-day', 'noto-earthquake'] as const;
const TARGET_S = 60;

interface Run {
  wallS: number;
  simS: number;
  report: ScenarioReport;
}

function runCli(args: string[], outPrefix: string): Promise<Run> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', path.join(ROOT, 'planning/scenario-cli.ts'), ...args, '--out', outPrefix], { cwd: ROOT, maxBuffer: 64 << 20, timeout: 15 * 60_000 }, (err, _stdout, stderr) => {
      if (err) return reject(new Error(`npm run scenario -- ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      const wallS = (performance.now() - started) / 1000;
      const report = JSON.parse(fs.readFileSync(`${outPrefix}.json`, 'utf8')) as ScenarioReport;
      resolve({ wallS, simS: report.result.run.wallMs / 1000, report });
    });
  });
}

const hours = (s: number | null) => (s === null ? 'none' : `${(s / 3600).toFixed(1)} h`);
const minutes = (s: number | null) => (s === null ? 'none' : `${Math.round(s / 60)} min`);

export const scenario: Section = async ({ quick, log }) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-scenario-'));
  const runs = quick ? 1 : 2;
  try {
    const rows: Row[] = [];
    const notes: string[] = [];
    const raw: Record<string, unknown> = {};
    for (const id of SCENARIOS) {
      const file = path.join(ROOT, 'scenarios', `${id}.json`);
      const results: Run[] = [];
      for (let i = 0; i < runs; i++) {
        const r = await runCli([file], path.join(dir, `${id}-${i}`));
        log(`${id} run ${i + 1}: ${fmt(r.wallS, 1)} s wall (${fmt(r.simS, 1)} s simulating), ${r.report.result.run.deviceMessages} device messages, ${r.report.result.run.decisionRounds} planning rounds`);
        results.push(r);
      }
      const res = results[0]!.report.result;
      const virtualH = res.scenario.durationS / 3600;
      const wall = summarize(results.map((r) => r.wallS));
      rows.push({
        metric: `planning mode, ${id} (${fmt(virtualH, 0)} virtual hours, ${Object.values(res.scenario.fleet).reduce((a, b) => a + b, 0)} drones): process start → report written`,
        ours: wall, unit: 's', decimals: 1, target: `< ${TARGET_S} s`, met: wall.max < TARGET_S,
      });
      const relief = res.relief.filter((s) => s.requests > 0);
      const reliefTimes = relief.map((s) => s.timeToFirstReliefS);
      const delivered = res.deliveries.reduce((a, d) => a + d.delivered, 0);
      const requested = res.deliveries.reduce((a, d) => a + d.requested, 0);
      const onTime = res.deliveries.reduce((a, d) => a + d.onTime, 0);
      notes.push(
        `${id}: ${requested} requests, ${delivered} delivered (${requested ? fmt((100 * onTime) / requested, 1) : '—'} % on time); ` +
          `time to first relief per site that asked: ${relief.map((s) => `${s.site} ${minutes(s.timeToFirstReliefS)}`).join(', ') || 'no relief requests'}; ` +
          `${res.modes.length} mode switches; ${res.refusals.map((r) => `${r.reason} ${r.count}`).join(', ') || 'no refusals'}. Same seed, same figures (planning/sim determinism test).`,
      );
      raw[id] = { wallS: results.map((r) => r.wallS), simS: results.map((r) => r.simS), reliefTimes, run: res.run };
    }
    // The capacity-planning sweep a municipality runs: 4 runs of the 48-hour scenario.
    const sweep = await runCli([path.join(ROOT, 'scenarios', 'noto-earthquake.json'), '--sweep', 'drones-per-hub=1..4'], path.join(dir, 'sweep'));
    log(`sweep drones-per-hub=1..4 on noto-earthquake: ${fmt(sweep.wallS, 1)} s`);
    rows.push({ metric: 'planning mode, noto-earthquake --sweep drones-per-hub=1..4 (4 runs of 48 virtual hours)', ours: `${fmt(sweep.wallS, 1)} s`, target: `< ${4 * TARGET_S} s`, met: sweep.wallS < 4 * TARGET_S });
    for (const r of sweep.report.sweep?.rows ?? []) {
      notes.push(
        `sweep, ${r.dronesPerHub} drones per hub: time to first relief median ${hours(r.timeToFirstReliefS.median)}, worst ${hours(r.timeToFirstReliefS.max)} (${r.timeToFirstReliefS.sitesWithout} sites without); relief on time ${fmt(100 * r.reliefOnTimeShare, 1)} %, all on time ${fmt(100 * r.onTimeShare, 1)} %`,
      );
    }
    raw.sweep = sweep.report.sweep;
    return {
      title: 'Planning mode: the shipped disaster scenarios',
      method:
        `Each scenario in scenarios/ run by \`npm run scenario -- <file>\` in a fresh Node process (${runs} run${runs > 1 ? 's' : ''} each), timed from spawn to exit: ` +
        'loading the region and scenario, the discrete-event simulation on a virtual clock over the production order, command, mode and alarm services, ' +
        'the dispatch engine and energy model with simulated devices, and writing the HTML report (charts rendered to SVG) and its JSON. The sweep runs the 48-hour scenario with 1–4 drones at each drone hub.',
      rows,
      notes,
      raw,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
};
