import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { RegionFile } from '../../contract/index.ts';

/** The demo region file, parsed, for the model tests. */
export function loadDemoRegion(): RegionFile {
  const path = fileURLToPath(new URL('../../config/regions/ishikawa-nomi.json', import.meta.url));
  return RegionFile.parse(JSON.parse(readFileSync(path, 'utf8')));
}

/** A fixed wall-clock start for simulated runs: 2025-11-25 00:00 JST. */
export const T0 = Date.UTC(2025, 10, 24, 15, 0, 0);
