import * as bargauge from '@grafana/grafana-foundation-sdk/bargauge';
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';
import { baseDashboard, byHub, influxql, inRange, thresholdLine, thresholds } from './influxql.ts';

/**
 * Class limits of the compartment_too_warm alarm (README "Alarms"): a chilled compartment above 10 °C,
 * a frozen one above −15 °C.
 */
export const CHILLED_LIMIT_C = 10;
export const FROZEN_LIMIT_C = -15;

function temperatures(tempClass: 'chilled' | 'frozen', limit: number) {
  return new timeseries.PanelBuilder()
    .title(`${tempClass === 'chilled' ? 'Chilled' : 'Frozen'} compartments (limit ${limit} °C)`)
    .description(`Temperature of each ${tempClass} compartment (locker.temp_c); the dashed line is the class limit that raises compartment_too_warm`)
    .span(12).height(9)
    .withTarget(
      influxql('A', `SELECT mean("temp_c") FROM "locker" WHERE ${inRange(`${byHub} AND "temp_class" = '${tempClass}'`)} GROUP BY time($__interval), "hub", "device", "compartment" fill(none)`)
        .alias('$tag_hub/$tag_device/$tag_compartment'),
    )
    .unit('celsius')
    .thresholds(thresholds([{ value: null, color: 'green' }, { value: limit, color: 'red' }]))
    .thresholdsStyle(thresholdLine());
}

/** Locker banks: how full they are and whether cold compartments stay within their class. */
export function lockers() {
  return baseDashboard('chiiki-lockers', 'Lockers', 'Locker occupancy per hub and compartment temperatures against their class limits')
    .withPanel(
      new bargauge.PanelBuilder()
        .title('Occupancy per hub')
        .description('Occupied compartments / all compartments at each hub: sum(occupied) / count(occupied) over the newest reports (locker.occupied)')
        .span(8).height(9)
        .withTarget(
          influxql('A', `SELECT sum("occupied") / count("occupied") FROM (SELECT last("occupied") AS "occupied" FROM "locker" WHERE ${inRange(byHub)} GROUP BY "hub", "device", "compartment") GROUP BY "hub"`)
            .alias('$tag_hub'),
        )
        .unit('percentunit').min(0).max(1)
        .thresholds(thresholds([{ value: null, color: 'green' }, { value: 0.8, color: 'orange' }, { value: 0.95, color: 'red' }]))
        .displayMode(common.BarGaugeDisplayMode.Gradient)
        .orientation(common.VizOrientation.Horizontal),
    )
    .withPanel(
      new timeseries.PanelBuilder()
        .title('Occupancy over time')
        .description('Share of occupied compartment reports per hub (locker.occupied)')
        .span(16).height(9)
        .withTarget(influxql('A', `SELECT sum("occupied") / count("occupied") FROM "locker" WHERE ${inRange(byHub)} GROUP BY time($__interval), "hub" fill(none)`).alias('$tag_hub'))
        .unit('percentunit').min(0).max(1),
    )
    .withPanel(temperatures('chilled', CHILLED_LIMIT_C))
    .withPanel(temperatures('frozen', FROZEN_LIMIT_C))
    .withPanel(
      new timeseries.PanelBuilder()
        .title('Doors open and faults')
        .description('Compartments with the door open or a fault, per hub (locker.door_open, locker.faulted)')
        .span(24).height(8)
        .withTarget(influxql('A', `SELECT sum("door_open") FROM "locker" WHERE ${inRange(byHub)} GROUP BY time($__interval), "hub" fill(none)`).alias('$tag_hub doors open'))
        .withTarget(influxql('B', `SELECT sum("faulted") FROM "locker" WHERE ${inRange(byHub)} GROUP BY time($__interval), "hub" fill(none)`).alias('$tag_hub faulted'))
        .min(0),
    );
}
