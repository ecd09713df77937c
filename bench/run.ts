import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { stopBenchPostgres } from './lib/bench-database.ts';
import { HEADER, loadResults, machineDescription, markdown, rowCells, saveResult, textTable, type Section, type SectionResult } from './lib/report.ts';

/**
 * `npm run bench` — runs the benchmarks (never part of `npm test`), prints a table and rewrites
 * BENCHMARKS.md from bench/results/*.json (one file per section, so `--only` updates just those).
 *   --quick        shorter runs (the whole set in well under a few minutes; each section < 1 min);
 *                  results go to bench/results-quick/ and BENCHMARKS.quick.md, not BENCHMARKS.md
 *   --only a,b     run only these sections (ids below)
 *   --render       run nothing; rebuild BENCHMARKS.md from the stored results
 */
const SECTIONS: { id: string; load: () => Promise<Section> }[] = [
  { id: 'ingest', load: async () => (await import('./sections/ingest.ts')).ingest },
  { id: 'freshness', load: async () => (await import('./sections/freshness.ts')).freshness },
  { id: 'alarm', load: async () => (await import('./sections/alarm.ts')).alarm },
  { id: 'fanout', load: async () => (await import('./sections/fanout.ts')).fanout },
  { id: 'memory', load: async () => (await import('./sections/memory.ts')).memory },
  { id: 'reconnect', load: async () => (await import('./sections/reconnect.ts')).reconnect },
  { id: 'cluster', load: async () => (await import('./sections/cluster.ts')).cluster },
  { id: 'catchup', load: async () => (await import('./sections/catchup.ts')).catchup },
  { id: 'dispatch', load: async () => (await import('./sections/dispatch.ts')).dispatch },
  { id: 'scenario', load: async () => (await import('./sections/scenario.ts')).scenario },
];
const ORDER = SECTIONS.map((s) => s.id);

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, only: { type: 'string' }, render: { type: 'boolean', default: false } } });
  const quick = values.quick ?? false;
  const only = values.render ? [] : values.only ? values.only.split(',').map((s) => s.trim()) : ORDER;
  const unknown = only.filter((id) => !ORDER.includes(id));
  if (unknown.length) throw new Error(`unknown section(s): ${unknown.join(', ')}; known: ${ORDER.join(', ')}`);
  const log = (line: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  const machine = machineDescription();
  log(`${machine.cpu}, ${machine.memory}, Node ${machine.node}${quick ? ' — quick mode' : ''}`);

  const done: SectionResult[] = [];
  let failed = 0;
  for (const s of SECTIONS.filter((x) => only.includes(x.id))) {
    const startedAt = new Date().toISOString();
    const t0 = performance.now();
    log(`${s.id}: starting`);
    try {
      const section = await (await s.load())({ quick, log: (l) => log(`${s.id}: ${l}`) });
      const result: SectionResult = { ...section, id: s.id, quick, startedAt, durationS: (performance.now() - t0) / 1000, machine };
      saveResult(result);
      done.push(result);
      log(`${s.id}: done in ${result.durationS.toFixed(0)} s`);
      process.stdout.write(`\n${result.title}\n${textTable([HEADER, ...result.rows.map(rowCells)])}\n`);
    } catch (err) {
      failed++;
      log(`${s.id}: FAILED — ${(err as Error).stack ?? err}`);
    }
  }

  // The PostgreSQL cluster the sections shared (started by the first that needed it).
  await stopBenchPostgres().catch((err: Error) => log(`stopping PostgreSQL failed: ${err.message}`));

  const all = loadResults(quick, ORDER);
  const file = path.resolve(import.meta.dirname, '..', quick ? 'BENCHMARKS.quick.md' : 'BENCHMARKS.md');
  fs.writeFileSync(file, markdown(all, machine, quick));
  process.stdout.write(`\nAll sections (${all.length}):\n${textTable([HEADER, ...all.flatMap((r) => r.rows.map(rowCells))])}\n\nwrote ${path.relative(process.cwd(), file)}\n`);
  if (failed) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
