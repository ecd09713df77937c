import * as common from '@grafana/grafana-foundation-sdk/common';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';
import { baseDashboard, byRegion, influxql, inRange, thresholds } from './influxql.ts';

/** Is data arriving and being stored? Ingest rate, rejections by reason, store write latency. */
export function dataHealth() {
  return baseDashboard('chiiki-data-health', 'Data health', 'Ingest rate, rejected messages by reason, telemetry store write latency and pending messages')
    .withPanel(
      new timeseries.PanelBuilder()
        .title('Ingest rate')
        .description('Messages accepted and rejected per second (from cloud_stats counters)')
        .span(12).height(9)
        .withTarget(influxql('A', `SELECT non_negative_derivative(max("ingest_accepted_total"), 1s) FROM "cloud_stats" WHERE ${inRange(byRegion)} GROUP BY time($__interval) fill(none)`).alias('accepted/s'))
        .withTarget(influxql('B', `SELECT non_negative_derivative(max("ingest_rejected_total"), 1s) FROM "cloud_stats" WHERE ${inRange(byRegion)} GROUP BY time($__interval) fill(none)`).alias('rejected/s'))
        .unit('reqps').min(0),
    )
    .withPanel(
      new timeseries.PanelBuilder()
        .title('Rejections by reason')
        .description('Rejected (dead-lettered) messages per minute, by reason (ingest_rejections.count)')
        .span(12).height(9)
        .withTarget(influxql('A', `SELECT non_negative_derivative(max("count"), 1m) FROM "ingest_rejections" WHERE ${inRange(byRegion)} GROUP BY time($__interval), "reason" fill(none)`).alias('$tag_reason'))
        .min(0)
        .drawStyle(common.GraphDrawStyle.Bars),
    )
    .withPanel(
      new timeseries.PanelBuilder()
        .title('Store write latency')
        .description('Telemetry store group-commit latency between two ops-stats ticks: p50, p95 and mean (cloud_stats)')
        .span(12).height(9)
        .withTarget(influxql('A', `SELECT max("store_write_p50_ms") FROM "cloud_stats" WHERE ${inRange(byRegion)} GROUP BY time($__interval) fill(none)`).alias('p50'))
        .withTarget(influxql('B', `SELECT max("store_write_p95_ms") FROM "cloud_stats" WHERE ${inRange(byRegion)} GROUP BY time($__interval) fill(none)`).alias('p95'))
        .withTarget(influxql('C', `SELECT mean("store_write_mean_ms") FROM "cloud_stats" WHERE ${inRange(byRegion)} GROUP BY time($__interval) fill(none)`).alias('mean'))
        .unit('ms').min(0),
    )
    .withPanel(
      new stat.PanelBuilder()
        .title('Messages pending')
        .description('Received but not yet durably written; grows while the store is down (cloud_stats.ingest_pending)')
        .span(6).height(9)
        .withTarget(influxql('A', `SELECT last("ingest_pending") FROM "cloud_stats" WHERE ${inRange(byRegion)}`).alias('pending'))
        .thresholds(thresholds([{ value: null, color: 'green' }, { value: 1000, color: 'orange' }, { value: 10000, color: 'red' }]))
        .graphMode(common.BigValueGraphMode.Area),
    )
    .withPanel(
      new stat.PanelBuilder()
        .title('Rejected in range')
        .description('Messages rejected within the time range (cloud_stats.ingest_rejected_total)')
        .span(6).height(9)
        .withTarget(influxql('A', `SELECT spread("ingest_rejected_total") FROM "cloud_stats" WHERE ${inRange(byRegion)}`).alias('rejected'))
        .thresholds(thresholds([{ value: null, color: 'green' }, { value: 1, color: 'orange' }])),
    );
}
