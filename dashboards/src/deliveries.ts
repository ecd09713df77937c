import * as bargauge from '@grafana/grafana-foundation-sdk/bargauge';
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';
import { baseDashboard, byRegion, influxql, inRange, thresholds } from './influxql.ts';

/** Orders and deliveries of the region (written by the cloud's ops-stats writer from its order store). */
export function deliveries() {
  return baseDashboard('chiiki-deliveries', 'Deliveries', 'Orders per state, on-time share and relief delivered')
    .withPanel(
      new bargauge.PanelBuilder()
        .title('Orders per state')
        .description('Orders in each state now, all priorities (orders.count)')
        .span(12).height(9)
        .withTarget(
          influxql('A', `SELECT sum("count") FROM (SELECT last("count") AS "count" FROM "orders" WHERE ${inRange(byRegion)} GROUP BY "state", "priority") GROUP BY "state"`)
            .alias('$tag_state'),
        )
        .displayMode(common.BarGaugeDisplayMode.Basic)
        .orientation(common.VizOrientation.Horizontal)
        .min(0),
    )
    .withPanel(
      new stat.PanelBuilder()
        .title('On-time share')
        .description('Arrived orders that arrived by their deadline (or had none), per priority: deliveries.on_time / deliveries.delivered')
        .span(6).height(9)
        .withTarget(influxql('A', `SELECT last("on_time") / last("delivered") FROM "deliveries" WHERE ${inRange(`${byRegion} AND "delivered" > 0`)} GROUP BY "priority"`).alias('$tag_priority'))
        .unit('percentunit')
        .noValue('no deliveries yet')
        .thresholds(thresholds([{ value: null, color: 'red' }, { value: 0.8, color: 'orange' }, { value: 0.95, color: 'green' }])),
    )
    .withPanel(
      new stat.PanelBuilder()
        .title('Relief delivered')
        .description('Relief orders that arrived (deliveries.delivered, priority relief)')
        .span(6).height(9)
        .withTarget(influxql('A', `SELECT last("delivered") FROM "deliveries" WHERE ${inRange(`${byRegion} AND "priority" = 'relief'`)}`).alias('relief'))
        .graphMode(common.BigValueGraphMode.Area),
    )
    .withPanel(
      new timeseries.PanelBuilder()
        .title('Orders by state over time')
        .description('Orders in each state (orders.count, summed over priorities)')
        .span(24).height(9)
        .withTarget(
          influxql('A', `SELECT sum("count") FROM (SELECT last("count") AS "count" FROM "orders" WHERE ${inRange(byRegion)} GROUP BY time($__interval), "state", "priority") WHERE $timeFilter GROUP BY time($__interval), "state" fill(none)`)
            .alias('$tag_state'),
        )
        .min(0)
        .stacking(new common.StackingConfigBuilder().mode(common.StackingMode.Normal)),
    );
}
