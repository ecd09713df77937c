import type { Lang } from './labels.ts';

/** Text for HTML (element content and quoted attribute values): names come from scenario and region files. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A duration: "45 秒" / "45 s", "12 分" / "12 min", "5 時間 07 分" / "5 h 07 min", "48 時間" / "48 h" (hours up to 72), "4 日 3 時間" / "4 d 3 h". */
export function formatDuration(seconds: number | null, lang: Lang): string {
  if (seconds === null || !Number.isFinite(seconds)) return '—';
  const s = Math.round(seconds);
  if (s < 60) return lang === 'ja' ? `${s} 秒` : `${s} s`;
  const totalMin = Math.round(s / 60);
  if (totalMin < 60) return lang === 'ja' ? `${totalMin} 分` : `${totalMin} min`;
  const h = Math.floor(totalMin / 60);
  const m = totalMin % 60;
  if (h <= 72 && m === 0) return lang === 'ja' ? `${h} 時間` : `${h} h`;
  if (h <= 72) return lang === 'ja' ? `${h} 時間 ${String(m).padStart(2, '0')} 分` : `${h} h ${String(m).padStart(2, '0')} min`;
  const d = Math.floor(h / 24);
  const rh = h % 24;
  return lang === 'ja' ? `${d} 日 ${rh} 時間` : `${d} d ${rh} h`;
}

/** An offset from the scenario start as "+h:mm" (hours may pass 24: "+36:05"). */
export function formatOffset(atS: number): string {
  const totalMin = Math.floor(Math.max(0, atS) / 60);
  return `+${Math.floor(totalMin / 60)}:${String(totalMin % 60).padStart(2, '0')}`;
}

const JST = new Intl.DateTimeFormat('en-GB', {
  timeZone: 'Asia/Tokyo', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
});

/** Clock time in Japan of an offset: "12/05 09:20" (month/day hour:minute, JST whatever the reader's zone). */
export function formatClockJst(startIso: string, atS: number): string {
  const at = new Date(Date.parse(startIso) + atS * 1000);
  if (Number.isNaN(at.getTime())) return '';
  const p = Object.fromEntries(JST.formatToParts(at).map((x) => [x.type, x.value]));
  return `${p.month}/${p.day} ${p.hour}:${p.minute}`;
}

/** "+5:20（12/05 09:20）" — offset and clock time in Japan. */
export function formatAt(startIso: string, atS: number | null, lang: Lang): string {
  if (atS === null) return '—';
  const clock = formatClockJst(startIso, atS);
  return lang === 'ja' ? `${formatOffset(atS)}（${clock}）` : `${formatOffset(atS)} (${clock} JST)`;
}

/** For table cells: the offset, and the clock time in Japan on a second, smaller line. */
export function formatAtCell(startIso: string, atS: number | null): string {
  if (atS === null) return '—';
  return `${formatOffset(atS)}<br><span class="clock">${formatClockJst(startIso, atS)}</span>`;
}

/** The start as "2026-09-01 06:00 JST". */
export function formatStartJst(startIso: string): string {
  const at = new Date(startIso);
  if (Number.isNaN(at.getTime())) return startIso;
  const p = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', { timeZone: 'Asia/Tokyo', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
      .formatToParts(at).map((x) => [x.type, x.value]),
  );
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute} JST`;
}

export function formatPct(share: number | null, digits = 0): string {
  if (share === null || !Number.isFinite(share)) return '—';
  return `${(share * 100).toFixed(digits)} %`;
}

export function formatInt(n: number, lang: Lang): string {
  return n.toLocaleString(lang === 'ja' ? 'ja-JP' : 'en-GB');
}
