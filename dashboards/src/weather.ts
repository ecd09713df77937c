import * as common from '@grafana/grafana-foundation-sdk/common';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';
import { DRONE_DEFAULTS } from '../../contract/index.ts';
import { baseDashboard, byHub, influxql, inRange, thresholdLine, thresholds } from './influxql.ts';

/** The region's default flight limit for wind and gusts (README "Alarms": wind_over_limit_mission_planned). */
export const WIND_LIMIT_MPS = DRONE_DEFAULTS.windLimitMps;

const windThresholds = () => thresholds([{ value: null, color: 'green' }, { value: WIND_LIMIT_MPS, color: 'red' }]);

/** Weather at each hub against the drones' flight limits. */
export function weather() {
  return baseDashboard('chiiki-weather', 'Weather vs flight limits', 'Wind, gusts and rain per hub against the 5 m/s flight limit')
    .withPanel(
      new stat.PanelBuilder()
        .title('Gust now')
        .description('Newest gust per hub; red at or above the flight limit')
        .span(24).height(5)
        .withTarget(influxql('A', `SELECT last("wind_gust_mps") FROM "sensor" WHERE ${inRange(byHub)} GROUP BY "hub"`).alias('$tag_hub'))
        .unit('velocityms')
        .thresholds(windThresholds())
        .colorMode(common.BigValueColorMode.Background),
    )
    .withPanel(
      new timeseries.PanelBuilder()
        .title(`Wind and gusts (limit ${WIND_LIMIT_MPS} m/s)`)
        .description('Mean wind and peak gust per hub (sensor.wind_speed_mps, sensor.wind_gust_mps); the dashed line is the flight limit')
        .span(24).height(10)
        .withTarget(influxql('A', `SELECT mean("wind_speed_mps") FROM "sensor" WHERE ${inRange(byHub)} GROUP BY time($__interval), "hub" fill(none)`).alias('$tag_hub wind'))
        .withTarget(influxql('B', `SELECT max("wind_gust_mps") FROM "sensor" WHERE ${inRange(byHub)} GROUP BY time($__interval), "hub" fill(none)`).alias('$tag_hub gust'))
        .unit('velocityms').min(0)
        .thresholds(windThresholds())
        .thresholdsStyle(thresholdLine()),
    )
    .withPanel(
      new timeseries.PanelBuilder()
        .title('Rain')
        .description('Rain rate per hub (sensor.rain_mm_per_h)')
        .span(24).height(8)
        .withTarget(influxql('A', `SELECT mean("rain_mm_per_h") FROM "sensor" WHERE ${inRange(byHub)} GROUP BY time($__interval), "hub" fill(none)`).alias('$tag_hub'))
        .unit('mm/h').min(0),
    );
}
