import fs from 'node:fs';
import path from 'node:path';
import { offsetS } from '../../contract/scenario.ts';
import { DEMO_CONTROL_FILE, DemoControlError, findRunningDemo, type DemoStatus } from '../../scripts/demo-control.ts';
import { renderReport, reportFigures } from '../report/render-report.ts';
import type { ScenarioResult } from '../scenario-result.ts';
import { loadScenarioFile } from '../scenario-file.ts';
import { connectCloud, type CloudApi, type Credential } from './cloud-api.ts';
import { DEVICE_STEPS, describeStep, planDrill, weatherKey, type DrillStep } from './drill-plan.ts';
import { DrillRecorder } from './recorder.ts';

/**
 * Drill mode (issue 16, item 4): plays a scenario's timeline against a RUNNING system — the `npm start`
 * demo, or a deployment's API — in real time or faster (`timeScale` scenario seconds per real second),
 * so coordinators practise on the real consoles. It never switches modes for them (unless the
 * scenario has a coordinator event AND `playCoordinator`): it prompts, and records what they did.
 *
 * - weather / power / link / fleet: through the demo's control channel (demo-control.ts); without a
 *   demo they are reported as not playable here and skipped.
 * - earthquake: the flow's proposal posted to the cloud (marked as a drill), for people to decide on.
 * - demand: orders through the cloud's order API, at the planning mode's arrival times.
 * - isolation: recorded for the figures. coordinator: a prompt (played only with `playCoordinator`).
 * At the end (or when `signal` aborts) the devices are put back as they were, and the report is written.
 */
export interface DrillOptions {
  scenarioFile: string;
  timeScale: number;
  /** The cloud's base URL; default: the running demo's. */
  cloud?: string;
  /**
   * Required unless the cloud is the running demo's (found on `dataDir`, on loopback): then the demo's admin
   * account (its password is public), so people's actions stand apart from the drill's.
   */
  credential?: Credential;
  /** Output prefix: writes `<out>.json` and `<out>.html`. */
  out: string;
  playCoordinator?: boolean;
  /** The demo's data directory (where demo-control.json is). Default: DATA_DIR or ./data. */
  dataDir?: string;
  /** Real seconds between reads of the system. Default 3. */
  pollS?: number;
  signal?: AbortSignal;
  log?: (line: string) => void;
  now?: () => number;
}

export interface DrillOutcome {
  result: ScenarioResult;
  json: string;
  html: string | null;
  /** Steps skipped because the system cannot play them (no demo control), one line each. */
  skipped: string[];
  /** Steps the system refused or failed, one line each. */
  failed: string[];
  endedEarly: boolean;
}

/** The demo's admin account (README "Two commands"): its password is public, for the demo only. */
export const DEMO_DRILL_ACCOUNT = { user: 'admin', password: 'demo-admin-pass' } as const;

type Demo = ReturnType<typeof findRunningDemo>;

export async function runDrill(o: DrillOptions): Promise<DrillOutcome> {
  const log = o.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const now = o.now ?? Date.now;
  if (!(Number.isFinite(o.timeScale) && o.timeScale > 0)) throw new Error(`--time-scale must be a positive number, got ${o.timeScale}`);
  // The report must not replace the scenario (or its region) file: `--out x` next to x.json did.
  const overwrites = (input: string) => [`${o.out}.json`, `${o.out}.html`].some((f) => path.resolve(f) === path.resolve(input));
  if (overwrites(o.scenarioFile)) throw new DrillSetupError(`--out ${o.out} would overwrite the scenario file ${o.scenarioFile}: choose another prefix`);
  const loaded = loadScenarioFile(o.scenarioFile);
  if (overwrites(loaded.regionFile)) throw new DrillSetupError(`--out ${o.out} would overwrite the region file ${loaded.regionFile}: choose another prefix`);
  const { scenario, region } = loaded;
  const steps = planDrill(loaded);
  const durationS = offsetS(scenario.duration);

  // The demo, if one runs on this data directory: its control channel and its edge agents. Only a control
  // file as the demo writes it is followed (ours, 0600, every address on loopback): whoever else can write
  // the data directory must not be able to point the drill, and its credentials, at another address.
  const dataDir = o.dataDir ?? process.env.DATA_DIR ?? './data';
  let demo: Demo | null = null;
  let status: DemoStatus | null = null;
  const untrusted = untrustedControlFile(path.join(dataDir, DEMO_CONTROL_FILE));
  if (untrusted) log(`not following ${path.join(dataDir, DEMO_CONTROL_FILE)}: ${untrusted}`);
  else {
    try {
      demo = findRunningDemo(dataDir);
      status = await demo.request<DemoStatus>('GET', '/status');
    } catch (err) {
      if (!(err instanceof DemoControlError)) throw err;
      demo = null;
    }
    if (status && !isLoopbackUrl(status.cloudHttp)) {
      log(`not following the demo on ${dataDir}: it names a cloud that is not on this machine (${status.cloudHttp})`);
      demo = null;
      status = null;
    }
  }
  const cloudUrl = (o.cloud ?? status?.cloudHttp)?.replace(/\/+$/, '');
  if (!cloudUrl) throw new DrillSetupError(`no running demo on ${dataDir} (${path.join(dataDir, DEMO_CONTROL_FILE)}) and no --cloud given: start the demo with \`npm start\`, or name the system with --cloud http://…`);
  if (demo && status && status.cloudHttp.replace(/\/+$/, '') !== cloudUrl) {
    log(`the demo on ${dataDir} runs a different cloud (${status.cloudHttp}); its devices are not ${cloudUrl}'s`);
    demo = null;
    status = null;
  }
  // The demo's public account only for the demo itself: never sent to any other address.
  const demoCloud = demo !== null && status !== null && isLoopbackUrl(cloudUrl);
  if (!o.credential && !demoCloud) {
    throw new DrillSetupError(`no credentials for ${cloudUrl}: give --user with DRILL_PASSWORD (or --password-file), or DRILL_API_TOKEN (an API token of a coordinator or admin account); the demo's own account is used only for the demo running on ${dataDir}`);
  }
  if (!demo) log(`no demo control channel for ${cloudUrl}: weather, power, link and fleet events are not playable here and will be skipped`);
  const scaleMismatch = status?.simTimeScale !== undefined && status.simTimeScale !== o.timeScale
    ? `WARNING: the demo's devices run at time scale ×${status.simTimeScale} (SIM_TIME_SCALE), the drill at ×${o.timeScale}: drones fly and batteries drain at the devices' pace, so flight times, utilisation and lead times in the report mix the two clocks (start the demo with SIM_TIME_SCALE=${o.timeScale}, or run the drill with --time-scale ${status.simTimeScale})`
    : null;
  if (scaleMismatch) log(scaleMismatch);
  const credential: Credential = o.credential ?? DEMO_DRILL_ACCOUNT;
  const api = await connectCloud(cloudUrl, credential);
  const served = await api.get<{ regions: { id: string }[] }>('/api/v1/regions');
  if (!served.regions.some((r) => r.id === region.id)) {
    await api.close();
    throw new Error(`${cloudUrl} does not serve region ${region.id} to ${api.username} (it serves ${served.regions.map((r) => r.id).join(', ') || 'none'}): the scenario's region file must be the system's`);
  }
  log(`drill "${scenario.name.en}" (${scenario.id}): ${formatScenario(durationS).slice(1)} of scenario at ×${o.timeScale} = ${formatReal(durationS / o.timeScale)}, ${steps.length} steps, against ${cloudUrl} as ${api.username}`);
  if (steps.some((s) => s.kind === 'coordinator')) {
    log(o.playCoordinator ? 'coordinator events are played by the drill (--play-coordinator)' : 'coordinator events are prompts only: the people on the console decide and the drill records what they do');
  }
  if (scenario.fleet.dronesPerHub !== undefined || scenario.fleet.droneHubs !== undefined) log('the scenario\'s fleet size is not playable here: the running system has the drones it has');

  const t0 = now();
  const recorder = new DrillRecorder({
    api, scenario, region, timeScale: o.timeScale, t0,
    edgeStatus: status ? Object.fromEntries(Object.entries(status.hubs).map(([hub, h]) => [hub, h.status])) : null,
    now, log,
  });
  await recorder.start();

  const skipped: string[] = [];
  const failed: string[] = [];
  const changed = { weather: new Set<string>(), power: new Set<string>(), link: new Set<string>(), fleet: new Set<string>() };
  const runId = new Date(t0).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const stamp = (atS: number) => `[${formatScenario(atS)}]`;

  /** Plays one step; `hubs` names every hub of a group of equal weather steps (printed once). */
  const play = async (s: DrillStep, hubs?: string, quiet = false): Promise<void> => {
    const line = `${stamp(s.atS)} ${describeStep(s, hubs)}`;
    if (DEVICE_STEPS.has(s.kind) && !demo) {
      if (quiet) return;
      skipped.push(line);
      log(`${line} — not playable here (no demo control), skipped`);
      return;
    }
    try {
      switch (s.kind) {
        case 'weather':
          await demo!.request('POST', `/hubs/${encodeURIComponent(s.hub)}/weather`, { windMps: s.windMps, ...(s.gustMps === undefined ? {} : { gustMps: s.gustMps }), rainMmPerH: s.rainMmPerH });
          changed.weather.add(s.hub);
          break;
        case 'power':
          await demo!.request('POST', `/hubs/${encodeURIComponent(s.hub)}/power`, s.state === 'lost' ? { state: 'lost', backupDrainPctPerH: s.backupDrainPctPerH } : { state: 'restored' });
          if (s.state === 'lost') changed.power.add(s.hub);
          else changed.power.delete(s.hub);
          break;
        case 'link':
          await demo!.request('POST', `/hubs/${encodeURIComponent(s.hub)}/link`, { state: s.state });
          if (s.state === 'cut') changed.link.add(s.hub);
          else changed.link.delete(s.hub);
          break;
        case 'fleet':
          await demo!.request('POST', `/hubs/${encodeURIComponent(s.hub)}/fleet`, { state: s.state, ...(s.drones ? { drones: s.drones } : {}) });
          if (s.state === 'out_of_service') changed.fleet.add(s.hub);
          break;
        case 'isolation':
          recorder.noteIsolation(s.sites, s.state, s.atS);
          break;
        case 'proposal': {
          if (!s.proposal) break;
          const evidence = s.proposal.evidence;
          // Marked as a drill for the people who read it, and once per drill run (the cloud stores one proposal per source and event).
          await api.post(`/api/v1/regions/${region.id}/mode-proposals`, {
            source: s.proposal.source,
            mode: s.proposal.mode,
            reason: `【訓練 DRILL】${s.proposal.reason}`.slice(0, 500),
            evidence: { ...evidence, eventId: `${String(evidence.eventId)}#drill-${runId}`, drill: { scenario: scenario.id, run: runId, bulletinEventId: evidence.eventId } },
          });
          recorder.noteProposal(s.atS, s.proposal.source);
          break;
        }
        case 'order': {
          const a = s.arrival;
          const deadlineS = a.deadlineMs === null ? null : a.deadlineMs / 1000;
          const order = await api.post<{ id: string }>('/api/v1/orders', {
            originHub: a.originHub, destination: a.destination, weightKg: a.weightKg, tempClass: a.tempClass, priority: a.priority,
            ...(deadlineS === null ? {} : { deadline: new Date(now() + (deadlineS / o.timeScale) * 1000).toISOString() }),
            reference: `drill ${scenario.id} ${runId}`.slice(0, 100),
          });
          recorder.noteOrder(order.id, s.atS, deadlineS);
          break;
        }
        case 'coordinator': {
          if (!o.playCoordinator) {
            log(`\n  >>> ${describeStep(s)}\n`);
            recorder.noteAction(s.atS, `expected: switch to ${s.action}`, 'scenario', `${s.hubs === 'all' ? 'whole region' : s.hubs.join(', ')}: ${s.reason} (prompt; played by people)`);
            return;
          }
          await api.post(`/api/v1/regions/${region.id}/mode`, { mode: s.action, ...(s.hubs === 'all' ? {} : { hubs: s.hubs }), reason: `【訓練 DRILL】${s.reason}` });
          break;
        }
      }
      if (!quiet) log(line);
    } catch (err) {
      failed.push(`${line}: ${(err as Error).message}`);
      log(`${line} — FAILED: ${(err as Error).message}`);
    }
  };

  // The timeline, in real time divided by the time scale; reads every pollS meanwhile.
  const aborted = () => o.signal?.aborted === true;
  const wait = (ms: number) => new Promise<void>((resolve) => {
    if (ms <= 0 || aborted()) return resolve();
    const timer = setTimeout(done, ms);
    o.signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', done);
      resolve();
    }
  });
  const pollMs = (o.pollS ?? 3) * 1000;
  let polling = true;
  const poller = (async () => {
    while (polling && !aborted()) {
      await wait(pollMs);
      if (polling && !aborted()) await recorder.poll();
    }
  })();
  const realOf = (atS: number) => t0 + (atS / o.timeScale) * 1000;
  for (let i = 0; i < steps.length; i++) {
    const s = steps[i]!;
    await wait(realOf(s.atS) - now());
    if (aborted()) break;
    if (s.kind !== 'weather') {
      await play(s);
      continue;
    }
    // The same weather at several hubs at once: set together, printed once.
    const group = [s];
    while (steps[i + 1]?.kind === 'weather' && steps[i + 1]!.atS === s.atS && weatherKey(steps[i + 1] as typeof s) === weatherKey(s)) group.push(steps[++i] as typeof s);
    const hubs = group.map((g) => g.hub).join(', ');
    await Promise.all(group.map((g, k) => play(g, hubs, k > 0)));
  }
  await wait(realOf(durationS) - now());
  const endedEarly = aborted();
  polling = false;
  await poller;
  log(endedEarly ? `drill ended early at ${formatScenario(recorder.atS(now()))}; writing the report of what happened so far` : 'drill timeline done; writing the report');

  // Put the demo back as it was (the people's mode decisions stay theirs).
  if (demo) {
    const restore: [string, string, unknown][] = [
      ...[...changed.weather].map((h): [string, string, unknown] => [h, 'weather', { clear: true }]),
      ...[...changed.power].map((h): [string, string, unknown] => [h, 'power', { state: 'restored' }]),
      ...[...changed.link].map((h): [string, string, unknown] => [h, 'link', { state: 'restored' }]),
      ...[...changed.fleet].map((h): [string, string, unknown] => [h, 'fleet', { state: 'in_service' }]),
    ];
    for (const [hub, kind, body] of restore) {
      await demo.request('POST', `/hubs/${encodeURIComponent(hub)}/${kind}`, body).catch((err: Error) => log(`could not put back ${kind} at ${hub}: ${err.message}`));
    }
    if (restore.length > 0) {
      const kinds = [...new Set(restore.map(([, k]) => k))];
      log(`put back: ${kinds.map((k) => `${k} at ${restore.filter(([, x]) => x === k).map(([h]) => h).join(', ')}`).join('; ')}`);
    }
  }

  await recorder.finish();
  const result = recorder.result({ wallMs: now() - t0 });
  await api.close();
  const report = { result };
  const json = `${o.out}.json`;
  fs.mkdirSync(path.dirname(path.resolve(json)), { recursive: true });
  fs.writeFileSync(json, reportFigures(report));
  const html = `${o.out}.html`;
  fs.writeFileSync(html, await renderReport(report));
  log(`report: ${html} (figures: ${json})`);
  if (scaleMismatch) log(scaleMismatch);
  return { result, json, html, skipped, failed, endedEarly };
}

/** The drill cannot start as asked (no system, no credentials): nothing was sent. */
export class DrillSetupError extends Error {}

/** Whether `url` names this machine (127.0.0.0/8, ::1, localhost). */
export function isLoopbackUrl(url: string): boolean {
  let host: string;
  try {
    host = new URL(url).hostname.toLowerCase();
  } catch {
    return false;
  }
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Why the demo control file may not be followed, or null when it may (or does not exist: then there is
 * no demo). As the demo writes it: a regular file of the current user, readable by nobody else, whose
 * control channel is on loopback — as ssh treats its keys.
 */
export function untrustedControlFile(file: string): string | null {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(file);
  } catch {
    return null;
  }
  if (!st.isFile()) return 'it is not a regular file';
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) return `it belongs to another user (uid ${st.uid}), not to you (uid ${uid})`;
  if ((st.mode & 0o077) !== 0) return `others may read or write it (mode ${(st.mode & 0o777).toString(8)}; the demo writes it 600)`;
  try {
    const url = (JSON.parse(fs.readFileSync(file, 'utf8')) as { url?: unknown }).url;
    if (typeof url === 'string' && !isLoopbackUrl(url)) return `its control channel is not on this machine (${url})`;
  } catch {
    return null; // unreadable or not JSON: findRunningDemo says there is no demo
  }
  return null;
}

/** Scenario seconds as "+1d 02:03:04". */
export function formatScenario(s: number): string {
  const d = Math.floor(s / 86_400);
  const hms = new Date((s % 86_400) * 1000).toISOString().slice(11, 19);
  return `+${d > 0 ? `${d}d ` : ''}${hms}`;
}

function formatReal(s: number): string {
  return s >= 3600 ? `${(s / 3600).toFixed(1)} h real time` : s >= 60 ? `${(s / 60).toFixed(1)} min real time` : `${Math.round(s)} s real time`;
}

export type { CloudApi };
