// Message catalogues and formats. Every visible string comes from a catalogue through `t()`; the
// catalogue of a language is the merge of its parts (one part per screen area, each key in one part).
import { state } from './state.js';

export const LANGS = ['ja', 'en'];
/** Catalogue parts besides the common `<lang>.json`: `<lang>.<part>.json`. */
export const CATALOGUE_PARTS = ['staff', 'coord', 'map', 'alarms'];
const LANG_KEY = 'chiiki.console.lang';

export function t(key, params = {}) {
  if (state.lang === 'keys') return `⟦${key}⟧`;
  const s = state.catalogue[key];
  if (typeof s !== 'string') return `⟦${key}⟧`;
  return s.replace(/\{(\w+)\}/g, (_, name) => (params[name] === undefined ? `{${name}}` : String(params[name])));
}

async function fetchJson(url) {
  const r = await fetch(url, { credentials: 'same-origin' });
  return r.json();
}

export async function loadCatalogue(lang) {
  if (lang === 'keys') return {};
  const parts = await Promise.all([`/console/i18n/${lang}.json`, ...CATALOGUE_PARTS.map((p) => `/console/i18n/${lang}.${p}.json`)].map(fetchJson));
  return Object.assign({}, ...parts);
}

export function initialLang() {
  const q = new URLSearchParams(location.search).get('lang');
  if (q === 'keys' || LANGS.includes(q)) return q;
  const saved = localStorage.getItem(LANG_KEY);
  return LANGS.includes(saved) ? saved : 'ja';
}

export function rememberLang(lang) {
  if (LANGS.includes(lang)) localStorage.setItem(LANG_KEY, lang);
}

// Times are shown in Japan time (Asia/Tokyo), whatever the tablet's own time zone. English uses the
// month's name ("4 Dec, 14:05:09"): "04/12" reads as 12 April to half of the world.
const FORMATS = {
  ja: { month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' },
  en: { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' },
};

export function fmtTime(iso) {
  if (!iso) return t('common.never');
  const when = new Date(iso);
  // A time that does not parse is a dash: Intl throws on it, and a throw in a screen stops every later render.
  if (typeof iso === 'object' || Number.isNaN(when.getTime())) return '–';
  const lang = state.lang === 'en' ? 'en' : 'ja';
  const f = new Intl.DateTimeFormat(lang === 'en' ? 'en-GB' : 'ja-JP', { timeZone: 'Asia/Tokyo', ...FORMATS[lang] });
  return t('time.jst', { time: f.format(when) });
}

export const fmtNum = (n, digits = 1) => (typeof n === 'number' ? n.toFixed(digits) : '–');
