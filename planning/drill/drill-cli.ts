import path from 'node:path';
import { parseArgs } from 'node:util';
import { ScenarioFileError } from '../scenario-file.ts';
import { CloudApiError, type Credential } from './cloud-api.ts';
import { DrillSetupError, runDrill } from './drill.ts';
import { readPasswordFile } from './password-file.ts';

/**
 * `npm run drill -- <scenario file> [--time-scale N] [--cloud http://…] [--user U [--password-file F]]
 *   [--out prefix] [--play-coordinator] [--poll S]`
 *
 * Plays the scenario against the running system (by default the `npm start` demo on DATA_DIR) and
 * writes <out>.json and <out>.html. Credentials: --user with the password in DRILL_PASSWORD or in
 * --password-file (never on the command line: every local user reads that in ps), or DRILL_API_TOKEN
 * (an API token of a coordinator or admin account, as the Node-RED flow's CLOUD_API_TOKEN). Without
 * them, only the demo found on DATA_DIR is driven, as its admin account. Ctrl-C ends the drill early and
 * still writes the report.
 */
const USAGE = `usage: npm run drill -- <scenario file> [--time-scale N] [--cloud http://host:port] [--user U [--password-file F]] [--out prefix] [--play-coordinator] [--poll seconds]
  --time-scale N       scenario seconds per real second (default 1: real time)
  --cloud URL          the system's API (default: the demo running on DATA_DIR)
  --user U             the account the drill acts as; its password from DRILL_PASSWORD or --password-file
  --password-file F    a file holding the password (first line; keep it chmod 600)
                       or, instead of --user: DRILL_API_TOKEN (an API token of a coordinator or admin account)
                       none of these: only the demo running on DATA_DIR, as its admin account
  --out prefix         writes <prefix>.json and <prefix>.html (default: drill-<scenario id>)
  --play-coordinator   also play the scenario's coordinator events (default: prompts; people decide)`;

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      allowPositionals: true,
      options: {
        'time-scale': { type: 'string' }, cloud: { type: 'string' }, user: { type: 'string' }, 'password-file': { type: 'string' },
        out: { type: 'string' }, 'play-coordinator': { type: 'boolean' }, poll: { type: 'string' }, help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    const onArgv = process.argv.some((a) => a === '--password' || a.startsWith('--password='));
    process.stderr.write(onArgv
      ? `--password is not taken on the command line (every user of this machine can read it in ps): set DRILL_PASSWORD, or use --password-file\n${USAGE}\n`
      : `${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { values: v, positionals } = args;
  if (v.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (positionals.length !== 1) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const timeScale = v['time-scale'] === undefined ? 1 : Number(v['time-scale']);
  const pollS = v.poll === undefined ? 3 : Number(v.poll);
  if (!(timeScale > 0 && timeScale <= 3600) || !(pollS >= 0.2 && pollS <= 60)) {
    process.stderr.write(`--time-scale must be in (0, 3600] and --poll in [0.2, 60] seconds\n${USAGE}\n`);
    return 2;
  }
  let password: string | undefined;
  if (v['password-file'] !== undefined) {
    const read = readPasswordFile(v['password-file']);
    if ('error' in read) {
      process.stderr.write(`${read.error}\n`);
      return 2;
    }
    if (read.warning) process.stderr.write(`${read.warning}\n`);
    password = read.password;
  } else if (process.env.DRILL_PASSWORD) {
    password = process.env.DRILL_PASSWORD;
  }
  if (v.user === undefined && v['password-file'] !== undefined) {
    process.stderr.write(`--password-file goes with --user\n${USAGE}\n`);
    return 2;
  }
  if (v.user !== undefined && password === undefined) {
    process.stderr.write(`--user ${v.user} needs its password: set DRILL_PASSWORD, or use --password-file\n${USAGE}\n`);
    return 2;
  }
  const token = process.env.DRILL_API_TOKEN?.trim();
  const credential: Credential | undefined = v.user !== undefined ? { user: v.user, password: password! } : token ? { token } : undefined;
  const file = positionals[0]!;
  const out = v.out ?? `drill-${path.basename(file, '.json')}`;

  const controller = new AbortController();
  // One Ctrl-C in a terminal reaches npm, tsx and this process, and tsx relays it once more: signals
  // within 2 s of the first count as that one. A later one quits at once, without a report.
  let firstInterrupt: number | null = null;
  process.on('SIGINT', () => {
    const t = Date.now();
    if (firstInterrupt !== null) {
      if (t - firstInterrupt > 2000) process.exit(130);
      return;
    }
    firstInterrupt = t;
    process.stderr.write('\nending the drill (Ctrl-C again to quit without a report)…\n');
    controller.abort();
  });
  // npm ends when the terminal's Ctrl-C reaches it; the drill finishes its report on its own.
  process.on('SIGHUP', () => controller.abort());
  try {
    const r = await runDrill({
      scenarioFile: file, timeScale, out, pollS, signal: controller.signal, playCoordinator: v['play-coordinator'] === true,
      ...(v.cloud === undefined ? {} : { cloud: v.cloud }), ...(credential ? { credential } : {}),
    });
    const switches = r.result.modes;
    process.stdout.write([
      '',
      `  mode switches: ${switches.length === 0 ? 'none' : switches.map((m) => `${m.mode} by ${m.by} (${m.acknowledged}/${m.hubs} acknowledged)`).join('; ')}`,
      `  people's actions recorded: ${r.result.coordinatorActions.filter((a) => a.by !== 'scenario').length}`,
      `  orders: ${r.result.deliveries.map((d) => `${d.priority} ${d.delivered}/${d.requested} delivered`).join(', ')}`,
      r.skipped.length > 0 ? `  NOT PLAYED here (no demo control): ${r.skipped.length} device/link steps` : '',
      r.failed.length > 0 ? `  FAILED: ${r.failed.length} steps (see above)` : '',
      '',
    ].filter((l, i, all) => l !== '' || i === 0 || i === all.length - 1).join('\n'));
    return r.failed.length > 0 ? 1 : 0;
  } catch (err) {
    if (err instanceof ScenarioFileError || err instanceof CloudApiError || err instanceof DrillSetupError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    process.stderr.write(`drill: ${(err as Error).message}\n`);
    return 1;
  }
}

void main().then((code) => process.exit(code));
