// An alarm's headline in the console's language, from its kind and params (issue 13, item 4) — never
// from `detail`, the cloud's English summary, and never from the device's own text (that is shown
// apart, literally). The cloud's rules give each kind its params (README "Alarms"); which are present
// depends on what raised the alarm, so each kind lists its texts from the most specific to a last one
// that needs none (an event without a reading, an alarm stored before params existed).
import { fmtTime, t } from '../lib/i18n.js';
import { deviceName, hubName, state } from '../lib/state.js';

/** kind → [catalogue key, params it needs][], most specific first; the last needs none. */
export const ALARM_TEXTS = {
  door_open_too_long: [['alarm.text.door_open_too_long', []]],
  compartment_too_warm: [
    ['alarm.text.compartment_too_warm.limit', ['tempC', 'limitC', 'tempClass']],
    ['alarm.text.compartment_too_warm.reading', ['tempC']],
    ['alarm.text.compartment_too_warm', []],
  ],
  drone_battery_low_in_flight: [
    ['alarm.text.drone_battery_low_in_flight.reading', ['batteryPct', 'limitPct', 'flightTimeLeftS']],
    ['alarm.text.drone_battery_low_in_flight.charge', ['batteryPct', 'limitPct']],
    ['alarm.text.drone_battery_low_in_flight', []],
  ],
  wind_over_limit_mission_planned: [
    ['alarm.text.wind_over_limit_mission_planned.gust', ['windMps', 'gustMps', 'windLimitMps', 'gustLimitMps']],
    ['alarm.text.wind_over_limit_mission_planned.reading', ['windMps', 'windLimitMps']],
    ['alarm.text.wind_over_limit_mission_planned.limit', ['windLimitMps']],
    ['alarm.text.wind_over_limit_mission_planned', []],
  ],
  hub_offline: [
    ['alarm.text.hub_offline.since', ['offlineSince']],
    ['alarm.text.hub_offline', []],
  ],
  repeated_wrong_pickup_codes: [
    ['alarm.text.repeated_wrong_pickup_codes.locked', ['wrongCodes', 'locked']],
    ['alarm.text.repeated_wrong_pickup_codes.window', ['wrongCodes', 'windowMin']],
    ['alarm.text.repeated_wrong_pickup_codes', []],
  ],
  tamper: [['alarm.text.tamper', []]],
  drone_failsafe: [
    ['alarm.text.drone_failsafe.state', ['flightState']],
    ['alarm.text.drone_failsafe', []],
  ],
};

/** A number as people read it in the console's language: at most one decimal (12.4, −15, 6.2). */
export function fmtReading(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '–';
  return new Intl.NumberFormat(state.lang === 'en' ? 'en-GB' : 'ja-JP', { maximumFractionDigits: 1 }).format(n);
}

/**
 * Whether a param can be said in a headline: readings are finite numbers, a time parses, a class is one
 * the catalogue names. One that cannot (a string reading, a newer cloud's class) makes the headline fall
 * back to a text that does not need it, rather than a dash or a gap in the middle of the sentence.
 */
function sayable(name, v) {
  switch (name) {
    case 'offlineSince': return typeof v === 'string' && !Number.isNaN(Date.parse(v));
    case 'tempClass': return v === 'chilled' || v === 'frozen';
    case 'flightState': return typeof v === 'string' && v !== '';
    case 'locked': return v === true;
    default: return typeof v === 'number' && Number.isFinite(v);
  }
}

/** The catalogue key for an alarm's headline (exported for tests). */
export function alarmTextKey(alarm) {
  const params = alarm.params ?? {};
  const texts = ALARM_TEXTS[alarm.kind];
  if (!texts) return 'alarm.text.unknown';
  const [key] = texts.find(([, needs]) => needs.every((p) => sayable(p, params[p]))) ?? texts[texts.length - 1];
  return key;
}

/** The values a headline may name: places by display name, readings formatted, states and classes by the catalogue. */
export function alarmTextParams(alarm) {
  const p = alarm.params ?? {};
  return {
    hub: hubName(alarm.hub),
    device: alarm.device ? deviceName(alarm.hub, alarm.device) : '',
    compartment: alarm.compartment ?? '',
    tempC: fmtReading(p.tempC),
    limitC: fmtReading(p.limitC),
    tempClass: p.tempClass ? t(`tempClass.${p.tempClass}`) : '',
    batteryPct: fmtReading(p.batteryPct),
    limitPct: fmtReading(p.limitPct),
    flightTimeLeftMin: typeof p.flightTimeLeftS === 'number' ? String(Math.max(0, Math.floor(p.flightTimeLeftS / 60))) : '',
    flightState: p.flightState ? t(`flightState.${p.flightState}`) : '',
    windMps: fmtReading(p.windMps),
    gustMps: fmtReading(p.gustMps),
    windLimitMps: fmtReading(p.windLimitMps),
    gustLimitMps: fmtReading(p.gustLimitMps),
    since: p.offlineSince ? fmtTime(p.offlineSince) : '',
    wrongCodes: typeof p.wrongCodes === 'number' ? String(p.wrongCodes) : '',
    windowMin: typeof p.windowMin === 'number' ? String(p.windowMin) : '',
  };
}

/** The alarm's headline, in the console's language. */
export function alarmHeadline(alarm) {
  const key = alarmTextKey(alarm);
  return key === 'alarm.text.unknown' ? t(key, { kind: alarm.kind }) : t(key, alarmTextParams(alarm));
}
