import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { ScenarioReport } from '../scenario-result.ts';
import { parseCli } from '../scenario-cli.ts';
import { parseSweep } from '../sweep.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SHORT = path.join(ROOT, 'planning/report/fixtures/short-relief.json');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scenario-cli-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

// tsx's loader by path: the CLI runs in a temp folder (its default output is under the current folder).
const TSX = pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;

/** `npm run scenario -- …` as a user runs it (node with tsx), in a temp folder. */
function scenario(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', TSX, path.join(ROOT, 'planning/scenario-cli.ts'), ...args], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('parseSweep', () => {
  it('reads a range or a list of drones per hub', () => {
    expect(parseSweep('drones-per-hub=1..4').values).toEqual([1, 2, 3, 4]);
    expect(parseSweep('drones-per-hub=4,1,2,2').values).toEqual([1, 2, 4]);
    expect(parseSweep('drones-per-hub=3..3').values).toEqual([3]);
  });
  it('says what is wrong with a bad sweep', () => {
    expect(() => parseSweep('drones=1..4')).toThrow(/expected drones-per-hub=FROM\.\.TO/);
    expect(() => parseSweep('drones-per-hub=4..1')).toThrow(/ends \(1\) before it starts \(4\)/);
    expect(() => parseSweep('drones-per-hub=0..2')).toThrow(/must be 1–20 \(got 0\)/);
    expect(() => parseSweep('drones-per-hub=1..30')).toThrow(/got 21, 22/);
    expect(() => parseSweep('drones-per-hub=1.5')).toThrow(/whole numbers/);
  });
});

describe('parseCli', () => {
  it('reads the options', () => {
    expect(parseCli(['s.json', '--drones-per-hub', '3', '--seed', '9', '--sweep', 'drones-per-hub=1..2', '--jobs', '1', '--out', 'x/y', '--lang', 'en'])).toEqual({
      file: 's.json', dronesPerHub: 3, seed: 9, sweep: { parameter: 'drones-per-hub', values: [1, 2] }, jobs: 1, out: 'x/y', lang: 'en',
    });
    expect(parseCli(['s.json'])).toMatchObject({ dronesPerHub: undefined, seed: undefined, sweep: undefined, out: undefined, lang: 'ja' });
    expect(parseCli(['--help'])).toBeNull();
  });
  it('refuses bad arguments with a message naming the option', () => {
    expect(() => parseCli([])).toThrow('no scenario file given');
    expect(() => parseCli(['a.json', 'b.json'])).toThrow('one scenario file at a time');
    expect(() => parseCli(['a.json', '--drones-per-hub', 'many'])).toThrow('--drones-per-hub "many": a whole number from 0 to 20');
    expect(() => parseCli(['a.json', '--seed', '-1'])).toThrow(/--seed/);
    expect(() => parseCli(['a.json', '--lang', 'fr'])).toThrow('--lang "fr": ja or en');
    expect(() => parseCli(['a.json', '--out', 'reports/'])).toThrow(/--out "reports\/": a path prefix/);
    expect(() => parseCli(['a.json', '--bogus'])).toThrow(/bogus/);
  });
});

describe('npm run scenario', () => {
  it('exits 2 with the usage on bad arguments', () => {
    const r = scenario(SHORT, '--sweep', 'drones-per-hub=4..1');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('scenario: --sweep drones-per-hub=4..1: the range ends (1) before it starts (4)');
    expect(r.stderr).toContain('Usage: npm run scenario -- <scenario.json> [options]');
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('refuses an --out that would write the report over the scenario file (red-team finding)', () => {
    const copy = JSON.parse(fs.readFileSync(SHORT, 'utf8')) as { region: string };
    copy.region = path.join(ROOT, 'config/regions/ishikawa-nomi.json');
    const file = path.join(dir, 'mine.json');
    const text = JSON.stringify(copy);
    fs.writeFileSync(file, text);
    const r = scenario(file, '--out', path.join(dir, 'mine'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`the report would overwrite ${file}`);
    expect(fs.readFileSync(file, 'utf8')).toBe(text);
    expect(fs.existsSync(path.join(dir, 'mine.html'))).toBe(false);
    fs.rmSync(file);
  });

  it('exits 2 naming every problem of a bad scenario file, one a line', () => {
    const bad = JSON.parse(fs.readFileSync(SHORT, 'utf8')) as { region: string; events: unknown[] };
    bad.region = path.join(ROOT, 'config/regions/ishikawa-nomi.json');
    bad.events.push({ type: 'link', at: '1h', hubs: ['no-such-hub'], state: 'cut' }, { type: 'isolation', at: 'soon', sites: ['osugi-settlement'], state: 'isolated' });
    const file = path.join(dir, 'bad.json');
    fs.writeFileSync(file, JSON.stringify(bad));
    const r = scenario(file);
    fs.rmSync(file);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toMatch(/^scenario file .*bad\.json: \d+ problems?$/);
    expect(lines.slice(1).some((l) => l.includes('soon') || l.includes('offset'))).toBe(true);
    expect(lines.length).toBeGreaterThanOrEqual(2);
  });

  it('runs a scenario with a sweep in two processes and writes the report and its figures', () => {
    const r = scenario(SHORT, '--sweep', 'drones-per-hub=1..2', '--jobs', '2', '--out', 'out/short', '--lang', 'en');
    expect(r.stderr).toContain('Short relief scenario (report test): 2 runs, 2 at a time');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('relief: 2/2 sites received relief');
    expect(r.stdout).toContain('capacity (time to first relief by drones per hub):');
    expect(r.stdout).toMatch(/report: out\/short\.html \(figures: out\/short\.json\); total wall time \d+\.\d s/);
    const figures = JSON.parse(fs.readFileSync(path.join(dir, 'out/short.json'), 'utf8')) as ScenarioReport;
    expect(figures.result.scenario.id).toBe('short-relief');
    expect(Object.values(figures.result.scenario.fleet).filter((n) => n > 0).every((n) => n === 1)).toBe(true);
    expect(figures.sweep!.rows.map((x) => x.dronesPerHub)).toEqual([1, 2]);
    const html = fs.readFileSync(path.join(dir, 'out/short.html'), 'utf8');
    expect(html).toContain('<html lang="en" data-default-lang="en">');
    expect(html).toContain('data-chart="sweep-time"');
  }, 120_000);
});
