import path from 'node:path';
import type { z } from 'zod';
import { loadRegionFile } from '../../cloud/hubs/region-loader.ts';
import { ScenarioFile } from '../../contract/scenario.ts';
import type { LoadedScenario } from '../scenario-file.ts';
import type { ScenarioResult } from '../scenario-result.ts';

/** For planning-mode tests: a scenario written in the test, over a region file. */
export const FIXTURES = path.resolve(import.meta.dirname, 'fixtures');
export const TWO_SETTLEMENTS = path.join(FIXTURES, 'two-settlements.json');
export const NOMI = path.resolve(import.meta.dirname, '../../config/regions/ishikawa-nomi.json');

export function scenarioOf(regionFile: string, s: Omit<z.input<typeof ScenarioFile>, 'region' | 'name'> & { name?: { ja: string; en: string } }): LoadedScenario {
  const file = path.join(FIXTURES, `${s.id}.scenario.json`);
  const scenario = ScenarioFile.parse({ name: { ja: s.id, en: s.id }, ...s, region: path.relative(FIXTURES, regionFile) });
  return { scenario, file, region: loadRegionFile(regionFile), regionFile, bulletins: new Map() };
}

/** The result without what may differ between equal runs (the wall time). */
export function comparable(r: ScenarioResult): Omit<ScenarioResult, 'run'> & { run: Omit<ScenarioResult['run'], 'wallMs'> } {
  const { wallMs: _wallMs, ...run } = r.run;
  return { ...r, run };
}
