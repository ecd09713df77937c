import { DRONE_DEFAULTS, type SensorEvent, type SensorTelemetry, type Severity } from '../../contract/index.ts';
import type { MessageIds } from './message-ids.ts';
import type { Rng } from './seeded-rng.ts';
import { forEachSubstep } from './substeps.ts';

/**
 * A hub's sensor set: weather (wind, gust, direction, rain, air temperature), power (grid,
 * backup battery) and uplink quality. Pure: the caller passes `now` (epoch ms; the daily
 * temperature cycle is computed from it in JST) and the simulated seconds that passed.
 *
 * Wind is a mean-reverting random walk around ~3 m/s with occasional windy spells, so it crosses
 * the MLIT default flight limit of 5 m/s sometimes but not always. Events fire on threshold
 * crossings, with hysteresis so noise near a threshold does not repeat them.
 */
export interface SensorParams {
  /** Wind limit for flight; MLIT standard manual default 5 m/s (DOMAIN.md). */
  windLimitMps: number;
  /** Wind must fall this far below the limit before `wind_normal`. */
  windHysteresisMps: number;
  meanWindMps: number;
  /** Standard deviation of the wind around its mean, m/s. */
  windSdMps: number;
  windTauS: number;
  windySpellsPerHour: number;
  windySpellMinS: number;
  windySpellMaxS: number;
  windySpellMinMps: number;
  windySpellMaxMps: number;
  rainEpisodesPerHour: number;
  rainMinS: number;
  rainMaxS: number;
  rainPeakMaxMmPerH: number;
  /** Daily mean air temperature and half the day–night range, °C. */
  airTempMeanC: number;
  airTempAmplitudeC: number;
  gridOutagesPerDay: number;
  gridOutageMinS: number;
  gridOutageMaxS: number;
  /** Backup battery drain while the grid is down, and recharge when it is up, percent per second. */
  backupDrainPctPerS: number;
  backupChargePctPerS: number;
  backupLowPct: number;
  linkMeanPct: number;
  linkDipsPerHour: number;
  linkDipMinS: number;
  linkDipMaxS: number;
  linkDegradedPct: number;
}

export const DEFAULT_SENSOR_PARAMS: SensorParams = {
  windLimitMps: DRONE_DEFAULTS.windLimitMps,
  windHysteresisMps: 0.5,
  meanWindMps: 3,
  windSdMps: 1.1,
  windTauS: 300,
  windySpellsPerHour: 0.4,
  windySpellMinS: 600,
  windySpellMaxS: 2400,
  windySpellMinMps: 5.5,
  windySpellMaxMps: 8.5,
  rainEpisodesPerHour: 0.25,
  rainMinS: 900,
  rainMaxS: 5400,
  rainPeakMaxMmPerH: 15,
  airTempMeanC: 14,
  airTempAmplitudeC: 5,
  gridOutagesPerDay: 1,
  gridOutageMinS: 120,
  gridOutageMaxS: 1800,
  backupDrainPctPerS: 0.02,
  backupChargePctPerS: 0.01,
  backupLowPct: 20,
  linkMeanPct: 82,
  linkDipsPerHour: 0.2,
  linkDipMinS: 120,
  linkDipMaxS: 600,
  linkDegradedPct: 30,
};

/**
 * Weather imposed on the sensor (drill mode, issue 16): while set, the wind, gust and rain read these
 * values instead of the random weather; events still fire on the thresholds (wind_over_limit …).
 */
export interface WeatherOverride {
  windMps: number;
  /** Default 1.4 × wind. */
  gustMps?: number;
  rainMmPerH?: number;
}

/**
 * Grid power imposed on the sensor (drill mode): while set, the grid is down (grid_down once) and the
 * backup battery drains at this rate; no random outage ends it. Cleared: the grid is back (grid_restored).
 */
export interface PowerOverride {
  backupDrainPctPerH: number;
}

export interface SensorModelOptions {
  hubId: string;
  device: string;
  rng: Rng;
  ids: MessageIds;
  params?: Partial<SensorParams>;
}

type SensorEventName = SensorEvent['event'];

const EVENT_SEVERITY: Record<SensorEventName, Severity> = {
  wind_over_limit: 'warning',
  wind_normal: 'info',
  grid_down: 'warning',
  grid_restored: 'info',
  backup_low: 'critical',
  link_degraded: 'warning',
};

const HOUR_MS = 3_600_000;
const round1 = (x: number): number => Math.round(x * 10) / 10;
const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, x));

export class SensorModel {
  readonly device: string;
  private readonly params: SensorParams;

  private windMps: number;
  private gustMps: number;
  private windDirDeg: number;
  private windySpellS = 0;
  private windySpellMeanMps = 0;
  private overLimit = false;
  private rainS = 0;
  private rainTotalS = 0;
  private rainPeak = 0;
  private rainMmPerH = 0;
  private tempNoiseC = 0;
  private gridUp = true;
  private outageS = 0;
  private backupPct = 100;
  private backupLowReported = false;
  private linkPct: number;
  private linkDipS = 0;
  private linkDipTarget = 0;
  private linkDegraded = false;
  private weatherOverride: WeatherOverride | null = null;
  private powerOverride: PowerOverride | null = null;
  /** The grid went down because of `powerOverride` (restored when it is cleared). */
  private powerForced = false;

  constructor(private readonly opts: SensorModelOptions) {
    this.device = opts.device;
    this.params = { ...DEFAULT_SENSOR_PARAMS, ...opts.params };
    const { rng } = opts;
    this.windMps = clamp(rng.normal(this.params.meanWindMps, this.params.windSdMps / 2), 0, this.params.windLimitMps - 1);
    this.gustMps = this.windMps * 1.4;
    this.windDirDeg = rng.uniform(0, 360);
    this.linkPct = clamp(rng.normal(this.params.linkMeanPct, 4), 50, 100);
  }

  step(now: number, dtS: number): SensorEvent[] {
    const events: SensorEvent[] = [];
    forEachSubstep(dtS, (h) => {
      this.advance(h, now, events);
    });
    return events;
  }

  telemetry(now: number): SensorTelemetry {
    return {
      v: 1,
      type: 'sensor.telemetry',
      id: this.opts.ids.next(this.device),
      ts: Math.round(now),
      hub: this.opts.hubId,
      device: this.device,
      windSpeedMps: round1(this.windMps),
      windGustMps: round1(Math.max(this.gustMps, this.windMps)),
      windDirDeg: Math.round(this.windDirDeg) % 360,
      rainMmPerH: round1(this.rainMmPerH),
      airTempC: round1(clamp(this.airTempC(now), -50, 60)),
      gridPowerUp: this.gridUp,
      backupBatteryPct: round1(this.backupPct),
      linkQualityPct: Math.round(this.linkPct),
    };
  }

  /** Current mean wind, m/s (for tests and for a dispatcher simulation). */
  get wind(): number {
    return this.windMps;
  }

  /**
   * Makes an event happen now (tests, demos) and moves the readings to match: wind over the limit
   * starts a windy spell, `wind_normal` calms it, `grid_down` starts an outage, `grid_restored`
   * ends it, `link_degraded` starts a link dip. `backup_low` is only reported.
   */
  force(now: number, event: SensorEventName, value?: number, detail?: string): SensorEvent {
    const p = this.params;
    switch (event) {
      case 'wind_over_limit':
        this.windMps = Math.max(this.windMps, value ?? p.windLimitMps + 1.5);
        this.gustMps = this.windMps * 1.4;
        this.windySpellS = Math.max(this.windySpellS, p.windySpellMinS);
        this.windySpellMeanMps = Math.max(this.windySpellMeanMps, this.windMps);
        this.overLimit = true;
        return this.event(now, event, value ?? round1(this.windMps), detail);
      case 'wind_normal':
        this.windMps = Math.min(this.windMps, value ?? p.meanWindMps);
        this.gustMps = this.windMps * 1.4;
        this.windySpellS = 0;
        this.overLimit = false;
        return this.event(now, event, value ?? round1(this.windMps), detail);
      case 'grid_down':
        this.gridUp = false;
        this.outageS = Math.max(this.outageS, p.gridOutageMinS);
        return this.event(now, event, value, detail);
      case 'grid_restored':
        this.gridUp = true;
        this.outageS = 0;
        return this.event(now, event, value, detail);
      case 'link_degraded':
        this.linkDipS = Math.max(this.linkDipS, p.linkDipMinS);
        this.linkDipTarget = value ?? p.linkDegradedPct - 10;
        this.linkPct = Math.min(this.linkPct, this.linkDipTarget);
        this.linkDegraded = true;
        return this.event(now, event, value ?? Math.round(this.linkPct), detail);
      case 'backup_low':
        return this.event(now, event, value ?? round1(this.backupPct), detail);
    }
  }

  /** Imposes the weather (null: back to the random weather, starting from the imposed values). */
  overrideWeather(w: WeatherOverride | null): void {
    this.weatherOverride = w && { ...w };
  }

  /** Imposes a grid outage with this backup drain (null: the grid is back). Events follow at the next step. */
  overridePower(p: PowerOverride | null): void {
    this.powerOverride = p && { ...p };
  }

  /** What is imposed now (drill mode), for status answers. */
  get overrides(): { weather: WeatherOverride | null; power: PowerOverride | null } {
    return { weather: this.weatherOverride && { ...this.weatherOverride }, power: this.powerOverride && { ...this.powerOverride } };
  }

  private advance(h: number, now: number, events: SensorEvent[]): void {
    this.advanceWind(h, now, events);
    this.advanceRain(h);
    this.advancePower(h, now, events);
    this.advanceLink(h, now, events);
    // Slow random weather noise on top of the daily cycle (Ornstein–Uhlenbeck, τ = 30 min).
    this.tempNoiseC += -this.tempNoiseC * (h / 1800) + this.opts.rng.normal(0, 0.6 * Math.sqrt((2 * h) / 1800));
  }

  private advanceWind(h: number, now: number, events: SensorEvent[]): void {
    const p = this.params;
    const { rng } = this.opts;
    const imposed = this.weatherOverride;
    if (imposed) {
      this.windMps = clamp(imposed.windMps, 0, 80);
      this.gustMps = Math.max(this.windMps, imposed.gustMps ?? this.windMps * 1.4);
      this.windySpellS = 0;
      this.windDirDeg = (this.windDirDeg + rng.normal(0, 2 * Math.sqrt(h)) + 360) % 360;
      this.windEvents(now, events);
      return;
    }
    if (this.windySpellS <= 0 && rng.happens(p.windySpellsPerHour / 3600, h)) {
      this.windySpellS = rng.uniform(p.windySpellMinS, p.windySpellMaxS);
      this.windySpellMeanMps = rng.uniform(p.windySpellMinMps, p.windySpellMaxMps);
    }
    let mean = p.meanWindMps;
    if (this.windySpellS > 0) {
      this.windySpellS = Math.max(0, this.windySpellS - h);
      mean = this.windySpellMeanMps;
    }
    // Ornstein–Uhlenbeck: reverts to `mean` with time constant τ; stationary s.d. = windSdMps.
    const tau = p.windTauS;
    this.windMps += (mean - this.windMps) * (h / tau) + rng.normal(0, p.windSdMps * Math.sqrt((2 * h) / tau));
    this.windMps = clamp(this.windMps, 0, 60);
    // Gust: the 3-second maximum, typically 1.3–1.7 × the mean wind.
    this.gustMps = this.windMps * rng.uniform(1.3, 1.7) + Math.abs(rng.normal(0, 0.3));
    this.windDirDeg = (this.windDirDeg + rng.normal(0, 2 * Math.sqrt(h)) + 360) % 360;
    this.windEvents(now, events);
  }

  private windEvents(now: number, events: SensorEvent[]): void {
    const p = this.params;
    if (!this.overLimit && this.windMps >= p.windLimitMps) {
      this.overLimit = true;
      events.push(this.event(now, 'wind_over_limit', round1(this.windMps), `gust ${round1(this.gustMps)} m/s`));
    } else if (this.overLimit && this.windMps < p.windLimitMps - p.windHysteresisMps) {
      this.overLimit = false;
      events.push(this.event(now, 'wind_normal', round1(this.windMps)));
    }
  }

  private advanceRain(h: number): void {
    const p = this.params;
    const { rng } = this.opts;
    if (this.weatherOverride) {
      this.rainS = 0;
      this.rainMmPerH = clamp(this.weatherOverride.rainMmPerH ?? 0, 0, 500);
      return;
    }
    if (this.rainS <= 0 && rng.happens(p.rainEpisodesPerHour / 3600, h)) {
      this.rainTotalS = rng.uniform(p.rainMinS, p.rainMaxS);
      this.rainS = this.rainTotalS;
      this.rainPeak = rng.uniform(0.5, p.rainPeakMaxMmPerH);
    }
    if (this.rainS > 0) {
      this.rainS = Math.max(0, this.rainS - h);
      const phase = 1 - this.rainS / this.rainTotalS; // 0 → 1 over the episode: builds up, then eases
      this.rainMmPerH = clamp(this.rainPeak * Math.sin(Math.PI * phase) * rng.uniform(0.7, 1.3), 0, 500);
    } else {
      this.rainMmPerH = 0;
    }
  }

  private advancePower(h: number, now: number, events: SensorEvent[]): void {
    const p = this.params;
    const { rng } = this.opts;
    const imposed = this.powerOverride;
    if (imposed) {
      if (this.gridUp) {
        this.gridUp = false;
        events.push(this.event(now, 'grid_down', undefined, 'mains power lost; running on backup battery'));
      }
      this.powerForced = true;
      this.outageS = Number.POSITIVE_INFINITY;
    } else if (this.powerForced) {
      this.powerForced = false;
      this.outageS = 0;
      if (!this.gridUp) {
        this.gridUp = true;
        events.push(this.event(now, 'grid_restored', round1(this.backupPct)));
      }
    } else if (this.gridUp && rng.happens(p.gridOutagesPerDay / 86_400, h)) {
      this.gridUp = false;
      this.outageS = rng.uniform(p.gridOutageMinS, p.gridOutageMaxS);
      events.push(this.event(now, 'grid_down', undefined, 'mains power lost; running on backup battery'));
    } else if (!this.gridUp) {
      this.outageS -= h;
      if (this.outageS <= 0) {
        this.gridUp = true;
        events.push(this.event(now, 'grid_restored', round1(this.backupPct)));
      }
    }
    this.backupPct = this.gridUp
      ? Math.min(100, this.backupPct + p.backupChargePctPerS * h)
      : Math.max(0, this.backupPct - (imposed ? imposed.backupDrainPctPerH / 3600 : p.backupDrainPctPerS) * h);
    if (!this.backupLowReported && this.backupPct < p.backupLowPct) {
      this.backupLowReported = true;
      events.push(this.event(now, 'backup_low', round1(this.backupPct)));
    } else if (this.backupLowReported && this.backupPct > p.backupLowPct + 5) {
      this.backupLowReported = false;
    }
  }

  private advanceLink(h: number, now: number, events: SensorEvent[]): void {
    const p = this.params;
    const { rng } = this.opts;
    if (this.linkDipS <= 0 && rng.happens(p.linkDipsPerHour / 3600, h)) {
      this.linkDipS = rng.uniform(p.linkDipMinS, p.linkDipMaxS);
      this.linkDipTarget = rng.uniform(5, 40);
    }
    let target = p.linkMeanPct;
    if (this.linkDipS > 0) {
      this.linkDipS = Math.max(0, this.linkDipS - h);
      target = this.linkDipTarget;
    }
    this.linkPct = clamp(this.linkPct + (target - this.linkPct) * Math.min(1, h / 30) + rng.normal(0, 1.5 * Math.sqrt(h)), 0, 100);
    if (!this.linkDegraded && this.linkPct < p.linkDegradedPct) {
      this.linkDegraded = true;
      events.push(this.event(now, 'link_degraded', Math.round(this.linkPct)));
    } else if (this.linkDegraded && this.linkPct > p.linkDegradedPct + 10) {
      this.linkDegraded = false; // no "link restored" event in contract v1; re-arm only
    }
  }

  /** Air temperature: daily cosine cycle (minimum near dawn, maximum ~14:00 JST), cooler in rain. */
  private airTempC(now: number): number {
    const p = this.params;
    const hourJst = ((now / HOUR_MS + 9) % 24 + 24) % 24;
    const cycle = Math.cos((2 * Math.PI * (hourJst - 14)) / 24);
    const rainCooling = this.rainMmPerH > 0 ? Math.min(3, 0.5 + this.rainMmPerH / 5) : 0;
    return p.airTempMeanC + p.airTempAmplitudeC * cycle + this.tempNoiseC - rainCooling;
  }

  private event(now: number, event: SensorEventName, value?: number, detail?: string): SensorEvent {
    return {
      v: 1,
      type: 'sensor.event',
      id: this.opts.ids.next(this.device),
      ts: Math.round(now),
      hub: this.opts.hubId,
      device: this.device,
      event,
      severity: EVENT_SEVERITY[event],
      ...(value === undefined ? {} : { value }),
      ...(detail === undefined ? {} : { detail: detail.slice(0, 500) }),
    };
  }
}
