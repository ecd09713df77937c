import * as bargauge from '@grafana/grafana-foundation-sdk/bargauge';
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';
import { baseDashboard, byHub, byRegion, influxql, inRange, thresholds, valueText } from './influxql.ts';

/** The region at a glance: hubs online, each hub's mode, open alarms, and what hubs have not sent yet. */
export function regionOverview() {
  return baseDashboard('chiiki-region-overview', 'Region overview', 'Hubs online, disaster mode per hub, open alarms and unsent backlog of the region')
    .withPanel(
      new stat.PanelBuilder()
        .title('Hubs online')
        .description('Hubs with a live link, as the cloud counts them (cloud_stats.hubs_online)')
        .span(6).height(6)
        .withTarget(influxql('A', `SELECT last("hubs_online") FROM "cloud_stats" WHERE ${inRange(byRegion)}`).alias('online'))
        .graphMode(common.BigValueGraphMode.Area)
        .thresholds(thresholds([{ value: null, color: 'red' }, { value: 1, color: 'green' }])),
    )
    .withPanel(
      new stat.PanelBuilder()
        .title('Mode per hub')
        .description('Desired mode of each hub and whether its edge agent acknowledged the current version (hub_mode)')
        .span(18).height(6)
        .withTarget(influxql('A', `SELECT last("emergency") FROM "hub_mode" WHERE ${inRange(byHub)} GROUP BY "hub"`).alias('$tag_hub'))
        .mappings(valueText({ '0': { text: 'normal', color: 'green' }, '1': { text: 'EMERGENCY', color: 'red' } }))
        .colorMode(common.BigValueColorMode.Background)
        .graphMode(common.BigValueGraphMode.None),
    )
    .withPanel(
      new bargauge.PanelBuilder()
        .title('Open alarms per hub')
        .description('Alarms not yet cleared (open or acknowledged), by severity (alarms_open)')
        .span(12).height(8)
        .withTarget(influxql('A', `SELECT last("count") FROM "alarms_open" WHERE ${inRange(byHub)} GROUP BY "hub", "severity"`).alias('$tag_hub $tag_severity'))
        .thresholds(thresholds([{ value: null, color: 'green' }, { value: 1, color: 'orange' }]))
        .displayMode(common.BarGaugeDisplayMode.Basic)
        .orientation(common.VizOrientation.Horizontal)
        .min(0),
    )
    .withPanel(
      new timeseries.PanelBuilder()
        .title('Hub link (1 = online)')
        .description('Each hub\'s last reported link state (hub_status.online)')
        .span(12).height(8)
        .withTarget(influxql('A', `SELECT last("online") FROM "hub_status" WHERE ${inRange(byHub)} GROUP BY time($__interval), "hub" fill(previous)`).alias('$tag_hub'))
        .min(0).max(1)
        .lineInterpolation(common.LineInterpolation.StepAfter),
    )
    .withPanel(
      new timeseries.PanelBuilder()
        .title('Unsent backlog (messages)')
        .description('Messages waiting in each hub\'s outbox, as the hub reports it (hub_status.outbox_depth)')
        .span(12).height(8)
        .withTarget(influxql('A', `SELECT max("outbox_depth") FROM "hub_status" WHERE ${inRange(byHub)} GROUP BY time($__interval), "hub" fill(none)`).alias('$tag_hub'))
        .min(0),
    )
    .withPanel(
      new timeseries.PanelBuilder()
        .title('Oldest unsent message (age)')
        .description('Age of the oldest message in each hub\'s outbox (hub_status.oldest_unsent_age_s; reported by edge agents)')
        .span(12).height(8)
        .withTarget(influxql('A', `SELECT max("oldest_unsent_age_s") FROM "hub_status" WHERE ${inRange(byHub)} GROUP BY time($__interval), "hub" fill(none)`).alias('$tag_hub'))
        .unit('s').min(0),
    );
}
