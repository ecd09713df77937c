import fs from 'node:fs';
import { RegionFile } from '../../contract/index.ts';

/** Reads and validates a region file; the error names the file and the offending paths. */
export function loadRegionFile(file: string): RegionFile {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read region file ${file} (REGION_FILE): ${(err as Error).message}`);
  }
  const parsed = RegionFile.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 10).map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new Error(`invalid region file ${file} (REGION_FILE):\n${issues.join('\n')}`);
  }
  return parsed.data;
}
