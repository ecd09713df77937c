import { describe, expect, it } from 'vitest';
import { everyRaisedAlarm } from '../cloud/alarms/alarm-fixtures.ts';
import { ALARM_KINDS } from '../cloud/alarms/alarm-rules.ts';
// @ts-expect-error — the console's plain ES modules have no type declarations
import { ALARM_TEXTS, alarmHeadline, alarmTextKey } from '../cloud/console/public/alarms/alarm-text.js';
// @ts-expect-error — as above
import { state } from '../cloud/console/public/lib/state.js';
// @ts-expect-error — as above
import { fmtTime } from '../cloud/console/public/lib/i18n.js';
import { catalogue, LANGS } from './support/console-browser.ts';
import { REGION_FILE } from './support/cloud-harness.ts';
import { loadRegionFile } from '../cloud/hubs/region-loader.ts';

/**
 * Issue 13, item 4: an alarm's headline is written from its kind and params through the catalogues,
 * in Japanese and English, for every way the cloud raises an alarm (the samples come from the real
 * rules: `everyRaisedAlarm`). Nothing is left unfilled, no key is missing, and neither the cloud's
 * English `detail` nor the device's own text is ever the headline.
 */
const texts = ALARM_TEXTS as Record<string, [string, string[]][]>;
const region = loadRegionFile(REGION_FILE);
const JAPANESE = /[\u3040-\u30ff\u4e00-\u9fff]/;

function useLang(lang: 'ja' | 'en') {
  state.lang = lang;
  state.catalogue = catalogue(lang);
  // The region as GET /api/v1/region gives it: hubs with their devices' display names.
  state.region = { hubs: region.hubs.map((h) => ({ id: h.id, name: h.name, drones: h.drones, lockers: h.lockers, sensors: h.sensors.map((id) => ({ id, name: h.sensorNames?.[id] })) })) };
}

const asAlarm = (s: ReturnType<typeof everyRaisedAlarm>[number]) => ({
  id: 'alm-x', hub: 'nomi-terai', device: s.device, compartment: s.compartment, kind: s.kind, params: s.params, deviceDetail: s.deviceDetail,
  detail: 'an English sentence from the cloud, never shown as the headline',
});

describe('alarm headlines from kind and params', () => {
  it('every kind has texts, the last of which needs no params', () => {
    expect(Object.keys(texts).sort()).toEqual([...ALARM_KINDS].sort());
    for (const kind of ALARM_KINDS) expect(texts[kind]!.at(-1)![1], kind).toEqual([]);
  });

  it.each(LANGS)('every text key exists in the %s catalogue, and every alarm.text key is used', (lang) => {
    const cat = catalogue(lang);
    const used = new Set(Object.values(texts).flatMap((list) => list.map(([key]) => key)));
    for (const key of used) expect(cat[key], key).toBeTypeOf('string');
    const defined = Object.keys(cat).filter((k) => k.startsWith('alarm.text.') && k !== 'alarm.text.unknown');
    expect(defined.filter((k) => !used.has(k))).toEqual([]);
  });

  for (const lang of LANGS) {
    it.each(everyRaisedAlarm().map((s) => [s.how, s] as const))(`${lang}: %s`, (_how, sample) => {
      useLang(lang);
      const alarm = asAlarm(sample);
      const text = alarmHeadline(alarm) as string;
      expect(text).not.toMatch(/[{}⟦⟧]/);
      expect(text).not.toContain('undefined');
      expect(text).not.toContain('–'); // a reading the text names but the params lack
      expect(text).not.toContain(alarm.detail);
      if (sample.deviceDetail) expect(text).not.toContain(sample.deviceDetail);
      if (lang === 'ja') expect(text).toMatch(JAPANESE);
      else expect(text).not.toMatch(JAPANESE);
      // The most specific text its params allow: every reading it carries is said.
      for (const v of [sample.params.tempC, sample.params.batteryPct, sample.params.windMps, sample.params.gustMps, sample.params.wrongCodes]) {
        if (typeof v === 'number') expect(text).toContain(String(v));
      }
    });
  }

  it.each(LANGS)('%s: an alarm stored before params existed still reads, for every kind', (lang) => {
    useLang(lang);
    for (const kind of ALARM_KINDS) {
      const text = alarmHeadline({ hub: 'nomi-terai', device: 'locker-a', compartment: 'A03', kind, params: {} }) as string;
      expect(text, kind).not.toMatch(/[{}⟦⟧–]/);
      expect(alarmTextKey({ kind, params: {} })).toBe(texts[kind]!.at(-1)![0]);
    }
  });

  it('names the readings with the limits, units and class, in each language', () => {
    const warm = { hub: 'nomi-terai', device: 'locker-a', compartment: 'A06', kind: 'compartment_too_warm', params: { tempC: 12.4, limitC: 10, tempClass: 'chilled' } };
    useLang('ja');
    expect(alarmHeadline(warm)).toBe('冷蔵区画が\u00a012.4\u00a0°C — 上限\u00a010\u00a0°C を超えています');
    const jst = (state.catalogue['time.jst'] as string).replace('{time}', '12/04 14:05:09'); // Japan time, whatever the machine's zone
    expect(alarmHeadline({ hub: 'nomi-terai', device: null, compartment: null, kind: 'hub_offline', params: { offlineSince: '2026-12-04T05:05:09.000Z', offlineS: 75 } }))
      .toBe(`${jst} から拠点と通信できません`);
    useLang('en');
    expect(alarmHeadline(warm)).toBe('Chilled compartment at 12.4\u00a0°C — above its limit of 10\u00a0°C');
    expect(alarmHeadline({ hub: 'nomi-terai', device: 'wx', compartment: null, kind: 'wind_over_limit_mission_planned', params: { windMps: 6.2, gustMps: 9.8, windLimitMps: 5, gustLimitMps: 6 } }))
      .toBe('Strong wind — 6.2\u00a0m/s, gusts 9.8\u00a0m/s (limits 5\u00a0/\u00a06\u00a0m/s) with a flight planned');
  });
});

describe('alarm headlines from params the console cannot use', () => {
  // The API checks params against its schema, but the live feed and older or newer clouds may still send
  // a reading as a string, a time that does not parse or a class this console does not know. The headline
  // then falls back to a text that does not need it — never a dash, an empty gap or a catalogue key in the
  // middle of a sentence, and never an exception (one throw stopped every later render of the screen).
  it.each(LANGS)('%s: a wrong type or an unparseable time reads as the text that needs no such param', (lang) => {
    useLang(lang);
    const cases = [
      { kind: 'hub_offline', params: { offlineSince: 'not a date' }, key: 'alarm.text.hub_offline' },
      { kind: 'compartment_too_warm', params: { tempC: '25', limitC: {}, tempClass: 'lukewarm' }, key: 'alarm.text.compartment_too_warm' },
      { kind: 'compartment_too_warm', params: { tempC: 12.4, limitC: 10, tempClass: 'lukewarm' }, key: 'alarm.text.compartment_too_warm.reading' },
      { kind: 'repeated_wrong_pickup_codes', params: { wrongCodes: '3', windowMin: 10 }, key: 'alarm.text.repeated_wrong_pickup_codes' },
      { kind: 'drone_battery_low_in_flight', params: { batteryPct: 12, limitPct: 20, flightTimeLeftS: [300] }, key: 'alarm.text.drone_battery_low_in_flight.charge' },
    ];
    for (const c of cases) {
      const alarm = { hub: 'nomi-terai', device: 'locker-a', compartment: 'A03', ...c };
      expect(alarmTextKey(alarm), JSON.stringify(c.params)).toBe(c.key);
      const text = alarmHeadline(alarm) as string;
      expect(text, JSON.stringify(c.params)).not.toMatch(/[{}⟦⟧–]|\s{2}/);
    }
  });

  it.each(LANGS)('%s: a time that does not parse is shown as a dash, not thrown (every screen formats times while rendering)', (lang) => {
    useLang(lang);
    for (const bad of ['not a date', '2026-13-45T99:00:00Z', {}]) expect(fmtTime(bad)).toBe('–');
    expect(fmtTime(null)).toBe(state.catalogue['common.never']);
  });
});
