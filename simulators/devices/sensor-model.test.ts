import { describe, expect, it } from 'vitest';
import { SensorEvent, SensorTelemetry } from '../../contract/index.ts';
import { MessageIds } from './message-ids.ts';
import { createRng } from './seeded-rng.ts';
import { SensorModel, type SensorParams } from './sensor-model.ts';
import { T0 } from './test-region.ts';

function makeSensor(seed = 1, params?: Partial<SensorParams>): SensorModel {
  return new SensorModel({ hubId: 'nomi-terai', device: 'wx', rng: createRng(seed), ids: new MessageIds('boot1'), params });
}

/** Runs a sensor set for `hours`, 1 s steps, telemetry every 5 s. */
function run(sensor: SensorModel, hours: number, start = T0): { telemetry: SensorTelemetry[]; events: SensorEvent[] } {
  const telemetry: SensorTelemetry[] = [];
  const events: SensorEvent[] = [];
  for (let s = 1; s <= hours * 3600; s++) {
    const now = start + s * 1000;
    events.push(...sensor.step(now, 1));
    if (s % 5 === 0) telemetry.push(sensor.telemetry(now));
  }
  return { telemetry, events };
}

describe('SensorModel', () => {
  const { telemetry, events } = run(makeSensor(), 2);

  it('emits only messages that pass the contract schemas', () => {
    for (const m of telemetry) expect(SensorTelemetry.safeParse(m).error).toBeUndefined();
    for (const m of events) expect(SensorEvent.safeParse(m).error).toBeUndefined();
  });

  it('has wind around 3 m/s that exceeds 5 m/s sometimes but not always, with gusts above the mean', () => {
    const wind = telemetry.map((t) => t.windSpeedMps);
    const over = wind.filter((w) => w >= 5).length / wind.length;
    expect(over).toBeGreaterThan(0);
    expect(over).toBeLessThan(0.5);
    const mean = wind.reduce((s, w) => s + w, 0) / wind.length;
    expect(mean).toBeGreaterThan(2);
    expect(mean).toBeLessThan(4.5);
    expect(telemetry.every((t) => t.windGustMps >= t.windSpeedMps)).toBe(true);
    expect(telemetry.some((t) => t.windGustMps >= 5)).toBe(true);
  });

  it('alternates wind_over_limit and wind_normal on the 5 m/s limit', () => {
    const wind = events.filter((e) => e.event === 'wind_over_limit' || e.event === 'wind_normal');
    expect(wind[0]?.event).toBe('wind_over_limit');
    wind.forEach((e, i) => expect(e.event).toBe(i % 2 === 0 ? 'wind_over_limit' : 'wind_normal'));
    for (const e of wind) {
      if (e.event === 'wind_over_limit') expect(e.value).toBeGreaterThanOrEqual(5);
      else expect(e.value).toBeLessThan(5);
    }
  });

  it('spends a minority of the time over the limit across many seeds and a whole day', () => {
    let over = 0;
    let n = 0;
    for (let seed = 1; seed <= 5; seed++) {
      for (const t of run(makeSensor(seed), 24).telemetry) {
        n++;
        if (t.windSpeedMps >= 5) over++;
      }
    }
    expect(over / n).toBeGreaterThan(0.01);
    expect(over / n).toBeLessThan(0.3);
  });

  it('follows a daily temperature cycle: warmer in the afternoon than before dawn (JST)', () => {
    const day = run(makeSensor(2, { rainEpisodesPerHour: 0 }), 24).telemetry;
    const at = (hourJst: number) =>
      day.filter((t) => new Date(t.ts + 9 * 3_600_000).getUTCHours() === hourJst).reduce((s, t, _, a) => s + t.airTempC / a.length, 0);
    expect(at(14) - at(4)).toBeGreaterThan(5);
  });

  it('has rain episodes and keeps grid power mostly up, draining the backup battery only during outages', () => {
    const week = run(makeSensor(3), 72);
    expect(week.telemetry.some((t) => t.rainMmPerH > 0)).toBe(true);
    expect(week.telemetry.filter((t) => t.rainMmPerH === 0).length).toBeGreaterThan(week.telemetry.length / 2);
    expect(week.telemetry.filter((t) => t.gridPowerUp).length / week.telemetry.length).toBeGreaterThan(0.9);
    for (let i = 1; i < week.telemetry.length; i++) {
      const [a, b] = [week.telemetry[i - 1]!, week.telemetry[i]!];
      if (a.gridPowerUp && b.gridPowerUp) expect(b.backupBatteryPct).toBeGreaterThanOrEqual(a.backupBatteryPct);
      if (!a.gridPowerUp && !b.gridPowerUp) expect(b.backupBatteryPct).toBeLessThanOrEqual(a.backupBatteryPct);
    }
    const power = week.events.filter((e) => e.event === 'grid_down' || e.event === 'grid_restored').map((e) => e.event);
    expect(power[0]).toBe('grid_down');
    power.forEach((e, i) => expect(e).toBe(i % 2 === 0 ? 'grid_down' : 'grid_restored'));
    for (const t of week.telemetry) {
      expect(t.linkQualityPct).toBeGreaterThanOrEqual(0);
      expect(t.linkQualityPct).toBeLessThanOrEqual(100);
    }
  });

  it('forces wind_over_limit and shows it in the next telemetry', () => {
    const sensor = makeSensor();
    const e = sensor.force(T0, 'wind_over_limit');
    expect(SensorEvent.parse(e)).toMatchObject({ event: 'wind_over_limit', severity: 'warning' });
    expect(sensor.telemetry(T0).windSpeedMps).toBeGreaterThanOrEqual(5);
    // The model knows it is over the limit: no second alarm for the same spell.
    const next = run(sensor, 0.1).events.filter((x) => x.event === 'wind_over_limit');
    expect(next).toHaveLength(0);
  });

  it('gives the same output for the same seed', () => {
    expect(run(makeSensor(11), 0.5)).toEqual(run(makeSensor(11), 0.5));
    expect(run(makeSensor(12), 0.5).telemetry).not.toEqual(run(makeSensor(11), 0.5).telemetry);
  });
});

describe('SensorModel overrides (drill mode)', () => {
  it('reads the imposed weather, fires wind_over_limit once, and calms down when released', () => {
    const sensor = makeSensor(3);
    sensor.overrideWeather({ windMps: 12, gustMps: 17, rainMmPerH: 20 });
    const during = run(sensor, 0.5);
    expect(during.telemetry.every((t) => t.windSpeedMps === 12 && t.windGustMps === 17 && t.rainMmPerH === 20)).toBe(true);
    expect(during.events.filter((e) => e.event === 'wind_over_limit')).toHaveLength(1);
    expect(sensor.overrides.weather).toEqual({ windMps: 12, gustMps: 17, rainMmPerH: 20 });
    sensor.overrideWeather(null);
    const after = run(sensor, 1, T0 + 3_600_000);
    expect(after.events.some((e) => e.event === 'wind_normal')).toBe(true);
    expect(after.telemetry.at(-1)!.windSpeedMps).toBeLessThan(5);
  });

  it('keeps the grid down with the backup draining at the imposed rate until released', () => {
    const sensor = makeSensor(4, { gridOutagesPerDay: 0 });
    sensor.overridePower({ backupDrainPctPerH: 30 });
    const during = run(sensor, 2);
    expect(during.events.filter((e) => e.event === 'grid_down')).toHaveLength(1);
    expect(during.telemetry.every((t) => !t.gridPowerUp)).toBe(true);
    expect(during.telemetry.at(-1)!.backupBatteryPct).toBeCloseTo(40, 0);
    expect(during.events.some((e) => e.event === 'backup_low')).toBe(false);
    sensor.overridePower(null);
    const after = run(sensor, 0.1, T0 + 3 * 3_600_000);
    expect(after.events.filter((e) => e.event === 'grid_restored')).toHaveLength(1);
    expect(after.telemetry.every((t) => t.gridPowerUp)).toBe(true);
  });
});
