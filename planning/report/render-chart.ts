import * as vega from 'vega';
import * as vl from 'vega-lite';

/**
 * A Vega-Lite spec → an inline SVG string, rendered in Node (no canvas, no browser, no script in the
 * page): the report's charts must show in a file opened without JavaScript and print as they look.
 */

/** The fonts Debian's Chromium has for Japanese (fonts-noto-cjk), then the usual Mac/Windows ones. */
export const CHART_FONT = '"Noto Sans CJK JP", "Noto Sans JP", "Hiragino Sans", "Yu Gothic", "Meiryo", sans-serif';

/**
 * Text widths without a canvas: Vega's fallback guesses 0.8 em per character, which is too narrow for
 * Japanese (a full-width character is 1 em) and too wide for digits, so Japanese axis labels overran
 * the chart's left edge. This guess: 1 em for full-width characters, 0.6 em otherwise.
 */
function estimateWidth(item: { text?: unknown; fontSize?: number; limit?: number }, text?: unknown): number {
  const value = text ?? item.text;
  const s = Array.isArray(value) ? value.join(' ') : value == null ? '' : String(value);
  const size = item.fontSize ?? 11;
  let em = 0;
  for (const ch of s) em += /[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]/.test(ch) ? 1 : 0.6;
  return Math.ceil(em * size);
}
(vega as unknown as { textMetrics: { width: unknown } }).textMetrics.width = estimateWidth;

const BASE_CONFIG = {
  font: CHART_FONT,
  background: 'white',
  view: { stroke: null },
  title: { fontSize: 14, fontWeight: 'bold', anchor: 'start', offset: 8 },
  axis: { labelFontSize: 11, titleFontSize: 11, titleFontWeight: 'normal', labelLimit: 240, grid: true, gridColor: '#e4e4e4' },
  legend: { labelFontSize: 11, titleFontSize: 11, orient: 'bottom', direction: 'horizontal', columns: 3, labelLimit: 220, symbolLimit: 30 },
} as const;

/** Total width of every chart (labels included): fits a 768 px portrait tablet with the page's margins. */
export const CHART_WIDTH = 700;

/** Vega-Lite's notes (e.g. a size it adjusted) are not the reader's business; errors still throw. */
const QUIET = vega.logger(vega.Error);

export async function renderChart(spec: vl.TopLevelSpec): Promise<string> {
  const full = {
    autosize: { type: 'fit-x', contains: 'padding' },
    width: CHART_WIDTH,
    ...spec,
    config: { ...BASE_CONFIG, ...(spec.config ?? {}) },
  } as vl.TopLevelSpec;
  const view = new vega.View(vega.parse(vl.compile(full, { logger: QUIET }).spec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    // Inline SVG in HTML needs no namespace declarations, and without them the file names no URL at all.
    return svg.replace(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" xmlns:xlink="http:\/\/www\.w3\.org\/1999\/xlink" version="1\.1"/, '<svg role="img"');
  } finally {
    view.finalize();
  }
}
