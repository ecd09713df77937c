/** Small statistics for benchmark runs: medians and spread over repeated runs, percentiles over samples. */

export interface Summary {
  /** Median of the runs. */
  median: number;
  min: number;
  max: number;
  /** Number of runs (after warm-up). */
  runs: number;
  /** Every run's value, in run order. */
  values: number[];
}

export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, runs: 0, values: [] };
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s.at(-1)!, runs: s.length, values: [...values] };
}

/** Nearest-rank percentile (p in 0..100) of unsorted samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const s = Float64Array.from(samples).sort();
  const rank = Math.ceil((p / 100) * s.length) - 1;
  return s[Math.min(s.length - 1, Math.max(0, rank))]!;
}

/** Formats a number with thousands separators and a sensible number of decimals. */
export function fmt(x: number, decimals?: number): string {
  if (!Number.isFinite(x)) return String(x);
  const d = decimals ?? (Number.isInteger(x) || Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2);
  return x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}

/** "12,345 (11,900–12,800)" — median with the spread of the runs. */
export function fmtSummary(s: Summary, unit = '', decimals?: number): string {
  const u = unit ? ` ${unit}` : '';
  if (s.runs <= 1) return `${fmt(s.median, decimals)}${u}`;
  return `${fmt(s.median, decimals)}${u} (${fmt(s.min, decimals)}–${fmt(s.max, decimals)}, ${s.runs} runs)`;
}
