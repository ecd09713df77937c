import { describe, expect, it } from 'vitest';
import { markdown, rowCells, type SectionResult } from './report.ts';
import { percentile, summarize } from './stats.ts';

describe('benchmark statistics and report', () => {
  it('summarises runs as median with spread, and takes nearest-rank percentiles', () => {
    expect(summarize([30, 10, 20, 40])).toMatchObject({ median: 25, min: 10, max: 40, runs: 4 });
    expect(summarize([3, 1, 2]).median).toBe(2);
    const samples = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(samples, 50)).toBe(50);
    expect(percentile(samples, 99)).toBe(99);
    expect(percentile(samples, 100)).toBe(100);
  });

  it('shows a missed target as MISSED in the table and in BENCHMARKS.md', () => {
    const result: SectionResult = {
      id: 'x', title: 'Zero-loss ingest', method: 'how', notes: ['a note'], quick: false, startedAt: '2026-11-22T00:00:00Z', durationS: 12,
      rows: [{ metric: 'zero-loss ingest', ours: summarize([100, 120, 110]), unit: 'msg/s', alternative: { name: 'Node-RED', value: summarize([50, 60, 55]) }, target: '≥ 200 msg/s', met: false }],
    };
    expect(rowCells(result.rows[0]!)).toEqual(['zero-loss ingest', '110 msg/s (100–120, 3 runs)', '55 msg/s (50–60, 3 runs) (Node-RED)', '—', '≥ 200 msg/s — MISSED']);
    const md = markdown([result], { cpu: '2 × test' }, false);
    expect(md).toContain('| 1 | zero-loss ingest | 110 msg/s (100–120, 3 runs) |');
    expect(md).toContain('## 1. Zero-loss ingest');
    expect(md).toContain('- a note');
  });
});
