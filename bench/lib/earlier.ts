import fs from 'node:fs';
import path from 'node:path';
import { resultsDir } from './report.ts';

/**
 * Zero-loss rates found by the ingest section (bench/results/ingest.json), for sections that run at
 * half of them. Falls back to the given defaults when ingest has not been run in this mode. `ours` is
 * the cloud on SQLite, `postgres` the cloud on PostgreSQL (`ours` when an older result has none).
 */
export function zeroLossRates(quick: boolean, fallback: { ours: number; nodeRed: number }): { ours: number; postgres: number; nodeRed: number; embedded: number; from: string } {
  const file = path.join(resultsDir(quick), 'ingest.json');
  try {
    const r = JSON.parse(fs.readFileSync(file, 'utf8')) as { raw: { zeroLoss: { ours: number[]; postgres?: number[]; nodeRed: number[]; embedded?: number[] } }; startedAt: string };
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
    const ours = median(r.raw.zeroLoss.ours);
    return {
      ours, postgres: r.raw.zeroLoss.postgres?.length ? median(r.raw.zeroLoss.postgres) : ours, nodeRed: median(r.raw.zeroLoss.nodeRed),
      embedded: r.raw.zeroLoss.embedded?.length ? median(r.raw.zeroLoss.embedded) : ours, from: `the ingest section's run of ${r.startedAt}`,
    };
  } catch {
    return { ...fallback, postgres: fallback.ours, embedded: fallback.ours, from: 'defaults (the ingest section has not been run in this mode)' };
  }
}
