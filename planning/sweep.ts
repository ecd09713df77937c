import { fork } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { sweepRowOf } from './report/sweep-row.ts';
import type { ScenarioResult, SweepRow } from './scenario-result.ts';
import { loadScenarioFile } from './scenario-file.ts';
import { runScenario } from './sim/run-scenario.ts';

/**
 * The capacity-planning sweep of `npm run scenario -- <file> --sweep drones-per-hub=1..4` (issue 16,
 * item 3): the same scenario and seed run once per fleet size, each run's figures reduced to one row
 * of the table. Runs go one at a time in this process, or `jobs` at a time in child processes (a run
 * is single-threaded CPU work; the machine has 2 cores).
 */
export interface SweepSpec {
  parameter: 'drones-per-hub';
  values: number[];
}

/** At most this many drones per hub (the scenario schema's fleet.dronesPerHub bound). */
export const MAX_DRONES_PER_HUB = 20;
const MAX_SWEEP_VALUES = 12;

/** "drones-per-hub=1..4" or "drones-per-hub=1,2,4" → the values, ascending; throws an Error whose message says what is wrong. */
export function parseSweep(text: string): SweepSpec {
  const m = /^drones-per-hub=(.+)$/.exec(text);
  if (!m) throw new Error(`--sweep ${JSON.stringify(text)}: expected drones-per-hub=FROM..TO or drones-per-hub=A,B,C (e.g. drones-per-hub=1..4)`);
  const body = m[1]!;
  let values: number[];
  const range = /^(\d+)\.\.(\d+)$/.exec(body);
  if (range) {
    const from = Number(range[1]);
    const to = Number(range[2]);
    if (to < from) throw new Error(`--sweep ${text}: the range ends (${to}) before it starts (${from})`);
    values = Array.from({ length: to - from + 1 }, (_, i) => from + i);
  } else if (/^\d+(,\d+)*$/.test(body)) {
    values = [...new Set(body.split(',').map(Number))].sort((a, b) => a - b);
  } else {
    throw new Error(`--sweep ${text}: expected drones-per-hub=FROM..TO or drones-per-hub=A,B,C with whole numbers`);
  }
  const bad = values.filter((v) => v < 1 || v > MAX_DRONES_PER_HUB);
  if (bad.length > 0) throw new Error(`--sweep ${text}: drones per hub must be 1–${MAX_DRONES_PER_HUB} (got ${bad.join(', ')})`);
  if (values.length > MAX_SWEEP_VALUES) throw new Error(`--sweep ${text}: at most ${MAX_SWEEP_VALUES} values (got ${values.length})`);
  return { parameter: 'drones-per-hub', values };
}

/** One run of the scenario: undefined drones per hub = the scenario's own fleet. */
export type RunOne = (dronesPerHub: number | undefined) => Promise<ScenarioResult>;

/** Runs in this process, one after the other. */
export function inProcessRunner(file: string, seed: number | undefined, onProgress?: (dronesPerHub: number | undefined, virtualS: number) => void): RunOne {
  const loaded = loadScenarioFile(file);
  return (dronesPerHub) => runScenario(loaded, { seed, dronesPerHub, onProgress: onProgress && ((s) => onProgress(dronesPerHub, s)) });
}

interface WorkerRequest { file: string; seed: number | undefined; dronesPerHub: number | undefined }
type WorkerReply = { ok: true; result: ScenarioResult } | { ok: false; error: string };

const SELF = fileURLToPath(import.meta.url);

/**
 * Each run in its own child process (this file, started with the parent's loader flags so TypeScript
 * runs as under `npm run scenario`): two runs use two cores.
 */
export function childProcessRunner(file: string, seed: number | undefined): RunOne {
  return (dronesPerHub) => new Promise<ScenarioResult>((resolve, reject) => {
    const child = fork(SELF, ['--sweep-worker'], { execArgv: process.execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let settled = false;
    child.once('message', (reply: WorkerReply) => {
      settled = true;
      if (reply.ok) resolve(reply.result);
      else reject(new Error(`run with ${dronesPerHub ?? 'the scenario\'s'} drones per hub: ${reply.error}`));
      child.disconnect();
    });
    child.once('error', (err) => {
      if (!settled) reject(err);
      settled = true;
    });
    child.once('exit', (code, signal) => {
      if (!settled) reject(new Error(`run with ${dronesPerHub ?? 'the scenario\'s'} drones per hub: the child process ended (${signal ?? `exit ${code}`}) without a result`));
      settled = true;
    });
    child.send({ file, seed, dronesPerHub } satisfies WorkerRequest);
  });
}

/** `fn` over `items`, at most `jobs` at a time; results in the order of `items`; the first failure rejects. */
export async function runPool<T, R>(items: readonly T[], jobs: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, items.length)) }, lane));
  return out;
}

export interface SweepOutcome {
  /** The run the report details: at `mainDronesPerHub`, or the scenario's own fleet. */
  main: ScenarioResult;
  rows: SweepRow[];
  /** Wall time of each run, ms, by drones per hub ('own' for the scenario's own fleet when it is not a sweep value). */
  wallMs: Record<string, number>;
}

/**
 * The main run and the sweep's runs as one pool: a sweep value equal to the main run's drones per hub
 * is run once (same scenario, seed and fleet ⇒ the same figures).
 */
export async function runMainAndSweep(run: RunOne, opts: { mainDronesPerHub: number | undefined; sweep?: SweepSpec; jobs: number; onRunDone?: (dronesPerHub: number | undefined, wallMs: number) => void }): Promise<SweepOutcome> {
  const values: (number | undefined)[] = [...(opts.sweep?.values ?? [])];
  if (!values.includes(opts.mainDronesPerHub)) values.unshift(opts.mainDronesPerHub);
  const wallMs: Record<string, number> = {};
  const results = await runPool(values, opts.jobs, async (v) => {
    const started = performance.now();
    const result = await run(v);
    const ms = Math.round(performance.now() - started);
    wallMs[v ?? 'own'] = ms;
    opts.onRunDone?.(v, ms);
    return result;
  });
  const byValue = new Map(values.map((v, i) => [v, results[i]!]));
  return {
    main: byValue.get(opts.mainDronesPerHub)!,
    rows: (opts.sweep?.values ?? []).map((v) => sweepRowOf(byValue.get(v)!, v)),
    wallMs,
  };
}

// A child process of childProcessRunner: one request in, one reply out.
if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url && process.argv.includes('--sweep-worker') && process.send) {
  process.once('message', (req: WorkerRequest) => {
    void (async () => {
      let reply: WorkerReply;
      try {
        reply = { ok: true, result: await runScenario(loadScenarioFile(req.file), { seed: req.seed, dronesPerHub: req.dronesPerHub }) };
      } catch (err) {
        reply = { ok: false, error: (err as Error).stack ?? String(err) };
      }
      process.send!(reply, () => process.exit(0)); // nothing else to do; do not wait for stray timers of the run
    })();
  });
}
