import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { RegionFile } from '../../contract/index.ts';
import type { Regions } from './regions.ts';

/**
 * Where the cloud's regions come from (issue 14, item 3): every region file in `REGIONS_DIR`, or
 * `REGION_FILE` alone when no folder is set (the zero-configuration default of `npm start` is one
 * region). A region's base map `<stem>.geography.json` sits next to its region file `<stem>.json`
 * and is not itself a region file.
 */

/** A region and the file it was read from (its base map is found next to it). */
export interface LoadedRegion {
  region: RegionFile;
  file: string;
}

/** Reads and validates a region file; the error names the file and the offending paths. */
export function loadRegionFile(file: string, setting = 'REGION_FILE'): RegionFile {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read region file ${file} (${setting}): ${(err as Error).message}`);
  }
  const parsed = RegionFile.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 10).map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new Error(`invalid region file ${file} (${setting}):\n${issues.join('\n')}`);
  }
  return parsed.data;
}

export const isGeographyFile = (name: string): boolean => name.endsWith('.geography.json');

/** The region files of a folder, by name: every `*.json` except base maps (`*.geography.json`). */
export function regionFilesIn(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    throw new Error(`cannot read the regions folder ${dir} (REGIONS_DIR): ${(err as Error).message}`);
  }
  return names.filter((n) => n.endsWith('.json') && !isGeographyFile(n)).sort().map((n) => path.join(dir, n));
}

/**
 * Every region the cloud starts with. Refuses (naming both files) a region id or a hub id that two
 * files use: credentials, dedupe and audit key on the hub id, topics on the region id.
 */
export function loadRegions(config: { regionsDir: string | null; regionFile: string }): LoadedRegion[] {
  if (config.regionsDir === null) return [{ region: loadRegionFile(config.regionFile), file: config.regionFile }];
  const files = regionFilesIn(config.regionsDir);
  if (files.length === 0) throw new Error(`the regions folder ${config.regionsDir} (REGIONS_DIR) holds no region file (*.json)`);
  const loaded: LoadedRegion[] = [];
  for (const file of files) {
    const region = loadRegionFile(file, 'REGIONS_DIR');
    const clash = clashWith(region, loaded, file);
    if (clash) throw new Error(`${clash} (REGIONS_DIR)`);
    loaded.push({ region, file });
  }
  return loaded;
}

/** Why `region` (from `file`) cannot join `others`, or null. */
function clashWith(region: RegionFile, others: readonly LoadedRegion[], file?: string): string | null {
  for (const o of others) {
    if (o.region.id === region.id) return `duplicate region id ${region.id}: in ${o.file} and ${file ?? 'another file'}`;
    const hubs = new Set(o.region.hubs.map((h) => h.id));
    const shared = region.hubs.find((h) => hubs.has(h.id));
    if (shared) return `hub ${shared.id} is in region ${o.region.id} (${o.file}) and in region ${region.id} (${file ?? 'another file'}); hub ids must be unique across regions`;
  }
  return null;
}

export interface RegionWatcher {
  /** Looks at the folder now (the poll does this every `intervalMs`; SIGHUP too). */
  check(): void;
  close(): void;
}

/**
 * Adds region files that appear in `REGIONS_DIR` while the cloud runs (`regions.add`), without a
 * restart: hubs of the other regions keep their connections. A region file that changed or went away
 * is only logged — taking a region or hub away from a running cloud (live connections, open orders,
 * retained modes) needs a restart, which the log says. A bad new file is logged once per content.
 */
export function watchRegionsDir(o: {
  dir: string;
  regions: Regions;
  /** The files already served (from `loadRegions`). */
  loaded: readonly LoadedRegion[];
  logger: Logger;
  /** Poll period; default 5 s. 0: no timer (tests call `check`). */
  intervalMs?: number;
  /** Also check on SIGHUP; default true. */
  onSighup?: boolean;
  /** Called with each added region before `regions.add` (e.g. to remember its file). */
  onLoaded?: (loaded: LoadedRegion) => void;
}): RegionWatcher {
  const log = o.logger.child({ component: 'regions' });
  const served = new Map<string, { loaded: LoadedRegion; content: string }>();
  for (const l of o.loaded) served.set(l.file, { loaded: l, content: readOrNull(l.file) ?? '' });
  /** Files already reported (content for bad or changed files, so one problem is logged once). */
  const reported = new Map<string, string>();
  const reportOnce = (file: string, content: string, log: () => void) => {
    if (reported.get(file) === content) return;
    reported.set(file, content);
    log();
  };

  const check = () => {
    let files: string[];
    try {
      files = regionFilesIn(o.dir);
    } catch (err) {
      reportOnce(o.dir, 'unreadable', () => log.error({ err, dir: o.dir }, 'cannot read the regions folder'));
      return;
    }
    reported.delete(o.dir);
    const present = new Set(files);
    for (const [file, s] of served) {
      if (!present.has(file)) reportOnce(file, '<removed>', () => log.warn({ file, region: s.loaded.region.id }, 'region file removed: the region is still served; removing a region needs a restart'));
    }
    for (const file of files) {
      const content = readOrNull(file);
      if (content === null) continue; // gone between the listing and the read
      const s = served.get(file);
      if (s) {
        if (content !== s.content) reportOnce(file, content, () => log.warn({ file, region: s.loaded.region.id }, 'region file changed: the change needs a restart; the region is served as loaded'));
        else reported.delete(file);
        continue;
      }
      let region: RegionFile;
      try {
        region = loadRegionFile(file, 'REGIONS_DIR');
      } catch (err) {
        reportOnce(file, content, () => log.error({ file, reason: (err as Error).message }, 'new region file refused'));
        continue;
      }
      const clash = clashWith(region, [...served.values()].map((v) => v.loaded), file);
      if (clash) {
        reportOnce(file, content, () => log.error({ file, reason: clash }, 'new region file refused'));
        continue;
      }
      const loaded = { region, file };
      try {
        o.onLoaded?.(loaded);
        o.regions.add(region);
      } catch (err) {
        reportOnce(file, content, () => log.error({ err, file }, 'adding the region failed'));
        continue;
      }
      served.set(file, { loaded, content });
      reported.delete(file);
      log.info({ file, region: region.id, hubs: region.hubs.length }, 'region added');
    }
  };

  const timer = (o.intervalMs ?? 5000) > 0 ? setInterval(check, o.intervalMs ?? 5000) : null;
  timer?.unref();
  const sighup = () => check();
  if (o.onSighup ?? true) process.on('SIGHUP', sighup);
  return {
    check,
    close: () => {
      if (timer) clearInterval(timer);
      process.off('SIGHUP', sighup);
    },
  };
}

function readOrNull(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}
