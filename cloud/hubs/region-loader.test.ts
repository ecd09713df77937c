import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadRegions, regionFilesIn, watchRegionsDir } from './region-loader.ts';
import { createRegions } from './regions.ts';

const CONFIG = path.resolve(import.meta.dirname, '../../config/regions');
const NOMI = path.join(CONFIG, 'ishikawa-nomi.json');
const KANAZAWA = path.join(CONFIG, 'ishikawa-kanazawa.json');

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'regions-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const copy = (from: string, name = path.basename(from)) => fs.copyFileSync(from, path.join(dir, name));
const json = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as { id: string; hubs: { id: string }[] };
const write = (name: string, value: unknown) => fs.writeFileSync(path.join(dir, name), JSON.stringify(value));

/** A pino logger whose records the test can read. */
function recordingLogger() {
  const lines: { msg: string; file?: string; reason?: string; level: number }[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { logger, lines };
}

describe('loadRegions', () => {
  it('loads REGION_FILE alone when no folder is set (the default of npm start)', () => {
    const loaded = loadRegions({ regionsDir: null, regionFile: NOMI });
    expect(loaded.map((l) => [l.region.id, l.file])).toEqual([['ishikawa-nomi', NOMI]]);
  });

  it('loads every region file of REGIONS_DIR; base maps are not region files', () => {
    copy(NOMI);
    copy(KANAZAWA);
    copy(path.join(CONFIG, 'ishikawa-nomi.geography.json'));
    fs.writeFileSync(path.join(dir, 'README.txt'), 'not a region');
    expect(regionFilesIn(dir).map((f) => path.basename(f))).toEqual(['ishikawa-kanazawa.json', 'ishikawa-nomi.json']);
    expect(loadRegions({ regionsDir: dir, regionFile: '/nowhere.json' }).map((l) => l.region.id)).toEqual(['ishikawa-kanazawa', 'ishikawa-nomi']);
  });

  it('names the file and the paths of a bad region file', () => {
    copy(NOMI);
    write('broken.json', { ...json(KANAZAWA), id: 'Bad Id', hubs: [] });
    expect(() => loadRegions({ regionsDir: dir, regionFile: NOMI })).toThrow(/invalid region file .*broken\.json \(REGIONS_DIR\):\n {2}id: .*\n {2}hubs: /s);
    fs.writeFileSync(path.join(dir, 'broken.json'), '{ not json');
    expect(() => loadRegions({ regionsDir: dir, regionFile: NOMI })).toThrow(/cannot read region file .*broken\.json \(REGIONS_DIR\)/);
  });

  it('refuses a region id used twice, naming both files', () => {
    copy(NOMI);
    copy(NOMI, 'nomi-copy.json');
    expect(() => loadRegions({ regionsDir: dir, regionFile: NOMI })).toThrow(/duplicate region id ishikawa-nomi: in .*ishikawa-nomi\.json and .*nomi-copy\.json/);
  });

  it('refuses a hub id used in two regions', () => {
    copy(NOMI);
    const k = json(KANAZAWA);
    k.hubs[0]!.id = 'nomi-terai';
    write('ishikawa-kanazawa.json', { ...k, reliefRoutes: [], groundRounds: [] });
    expect(() => loadRegions({ regionsDir: dir, regionFile: NOMI })).toThrow(/hub nomi-terai is in region ishikawa-kanazawa \(.*ishikawa-kanazawa\.json\) and in region ishikawa-nomi \(.*ishikawa-nomi\.json\); hub ids must be unique across regions/);
  });

  it('refuses an empty or missing folder', () => {
    expect(() => loadRegions({ regionsDir: dir, regionFile: NOMI })).toThrow(/holds no region file/);
    expect(() => loadRegions({ regionsDir: path.join(dir, 'nope'), regionFile: NOMI })).toThrow(/cannot read the regions folder .*nope \(REGIONS_DIR\)/);
  });
});

describe('watchRegionsDir', () => {
  it('adds a region file that appears; logs changed, removed and bad files once and ignores them', () => {
    copy(NOMI);
    const loaded = loadRegions({ regionsDir: dir, regionFile: NOMI });
    const regions = createRegions(loaded.map((l) => l.region));
    const added: string[] = [];
    regions.onAdded((r) => added.push(r.id));
    const { logger, lines } = recordingLogger();
    const watcher = watchRegionsDir({ dir, regions, loaded, logger, intervalMs: 0, onSighup: false });
    try {
      watcher.check();
      expect(added).toEqual([]);

      copy(KANAZAWA);
      watcher.check();
      watcher.check();
      expect(added).toEqual(['ishikawa-kanazawa']);
      expect(regions.regionOfHub('kanazawa-yuwaku')?.id).toBe('ishikawa-kanazawa');
      expect(lines.filter((l) => l.msg === 'region added')).toHaveLength(1);

      // A changed existing file needs a restart: logged once, the region stays as loaded.
      const n = json(NOMI);
      write('ishikawa-nomi.json', { ...n, hubs: n.hubs.slice(0, 2) });
      watcher.check();
      watcher.check();
      expect(lines.filter((l) => l.msg.startsWith('region file changed'))).toHaveLength(1);
      expect(regions.hubIds('ishikawa-nomi')).toHaveLength(n.hubs.length);

      // A new file reusing a hub id, and a broken one, are refused (once each) and nothing is added.
      write('clash.json', { ...json(KANAZAWA), id: 'ishikawa-clash' });
      fs.writeFileSync(path.join(dir, 'broken.json'), '{');
      watcher.check();
      watcher.check();
      const refused = lines.filter((l) => l.msg === 'new region file refused');
      expect(refused.map((l) => path.basename(l.file!)).sort()).toEqual(['broken.json', 'clash.json']);
      expect(refused.find((l) => l.file!.endsWith('clash.json'))!.reason).toMatch(/hub kanazawa-\S+ is in region ishikawa-kanazawa/);
      expect(added).toEqual(['ishikawa-kanazawa']);

      // Fixed, the file is added on the next look.
      fs.rmSync(path.join(dir, 'broken.json'));
      const fixed = json(KANAZAWA);
      write('clash.json', { ...fixed, id: 'ishikawa-third', hubs: fixed.hubs.slice(0, 1).map((h) => ({ ...h, id: 'third-1' })), reliefRoutes: [], groundRounds: [] });
      watcher.check();
      expect(added).toEqual(['ishikawa-kanazawa', 'ishikawa-third']);

      // Removed: still served, the log says a restart is needed.
      fs.rmSync(path.join(dir, 'ishikawa-kanazawa.json'));
      watcher.check();
      expect(lines.filter((l) => l.msg.startsWith('region file removed'))).toHaveLength(1);
      expect(regions.has('ishikawa-kanazawa')).toBe(true);
    } finally {
      watcher.close();
    }
  });

  it('looks at the folder on SIGHUP', async () => {
    copy(NOMI);
    const loaded = loadRegions({ regionsDir: dir, regionFile: NOMI });
    const regions = createRegions(loaded.map((l) => l.region));
    const watcher = watchRegionsDir({ dir, regions, loaded, logger: pino({ level: 'silent' }), intervalMs: 0 });
    try {
      copy(KANAZAWA);
      process.emit('SIGHUP', 'SIGHUP');
      expect(regions.has('ishikawa-kanazawa')).toBe(true);
    } finally {
      watcher.close();
    }
    expect(process.listenerCount('SIGHUP')).toBe(0);
  });
});
