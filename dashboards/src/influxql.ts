import type * as cog from '@grafana/grafana-foundation-sdk/cog';
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';

/**
 * Shared pieces of every dashboard: the provisioned InfluxDB data source (by its fixed uid), raw
 * InfluxQL targets, the `$region`/`$hub` template variables and the usual WHERE clause.
 *
 * Queries are raw InfluxQL (no Flux, no SQL) so one dashboard works on InfluxDB 1.8, on 2.x through
 * a DBRP mapping and on 3 Core through its v1 query API. They stick to what all three answer:
 * `SHOW TAG VALUES`, selectors and aggregates, `GROUP BY time(), tag`, `fill()`, subqueries,
 * `non_negative_derivative` — no `SLIMIT`/`SOFFSET` (missing in 3), no cardinality metaqueries.
 */

/** The data source of dashboards/provisioning/datasources/influxdb.yaml. */
export const DATASOURCE: dashboard.DataSourceRef = { type: 'influxdb', uid: 'chiiki-influx' };

export type ResultFormat = 'time_series' | 'table';

/** The InfluxDB data source's query model (the foundation SDK has no InfluxDB package, so it is built here). */
export interface InfluxQlTarget extends cog.Dataquery {
  refId: string;
  datasource: dashboard.DataSourceRef;
  query: string;
  rawQuery: true;
  resultFormat: ResultFormat;
  alias?: string;
}

/** A raw InfluxQL target for any panel builder's `withTarget`. */
export class InfluxQlQueryBuilder implements cog.Builder<InfluxQlTarget> {
  private readonly target: Omit<InfluxQlTarget, '_implementsDataqueryVariant'>;

  constructor(refId: string, query: string) {
    this.target = { refId, datasource: DATASOURCE, query, rawQuery: true, resultFormat: 'time_series' };
  }

  /** e.g. `$tag_hub` — Grafana's InfluxDB alias patterns. */
  alias(alias: string): this {
    this.target.alias = alias;
    return this;
  }

  format(format: ResultFormat): this {
    this.target.resultFormat = format;
    return this;
  }

  build(): InfluxQlTarget {
    return { ...this.target, _implementsDataqueryVariant() {} };
  }
}

export const influxql = (refId: string, query: string): InfluxQlQueryBuilder => new InfluxQlQueryBuilder(refId, query);

/** `"region" =~ /^$region$/ AND "hub" =~ /^$hub$/ AND $timeFilter` — a multi-value `$hub` becomes `(a|b)`. */
export const byRegion = `"region" =~ /^$region$/`;
export const byHub = `${byRegion} AND "hub" =~ /^$hub$/`;
export const inRange = (filter: string): string => `${filter} AND $timeFilter`;

/** Template variables every dashboard has: a region, then one or more of its hubs. */
export function regionVariables(): cog.Builder<dashboard.VariableModel>[] {
  return [
    new dashboard.QueryVariableBuilder('region')
      .label('Region')
      .datasource(DATASOURCE)
      .query('SHOW TAG VALUES FROM "hub_status" WITH KEY = "region"')
      .refresh(dashboard.VariableRefresh.OnDashboardLoad)
      .sort(dashboard.VariableSort.AlphabeticalAsc),
    new dashboard.QueryVariableBuilder('hub')
      .label('Hub')
      .datasource(DATASOURCE)
      .query('SHOW TAG VALUES FROM "hub_status" WITH KEY = "hub" WHERE "region" =~ /^$region$/')
      .refresh(dashboard.VariableRefresh.OnDashboardLoad)
      .sort(dashboard.VariableSort.AlphabeticalAsc)
      .multi(true)
      .includeAll(true),
  ];
}

/** A dashboard with the common settings: fixed uid, tags, last hour, 30 s refresh, the variables. */
export function baseDashboard(uid: string, title: string, description: string): dashboard.DashboardBuilder {
  const d = new dashboard.DashboardBuilder(title)
    .uid(uid)
    .description(description)
    .tags(['chiiki', 'generated'])
    .timezone('browser')
    .time({ from: 'now-1h', to: 'now' })
    .refresh('30s')
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .readonly();
  for (const v of regionVariables()) d.withVariable(v);
  return d;
}

export const thresholds = (steps: { value: number | null; color: string }[]): dashboard.ThresholdsConfigBuilder =>
  new dashboard.ThresholdsConfigBuilder().mode(dashboard.ThresholdsMode.Absolute).steps(steps);

/** Draws the thresholds as a dashed line on a time series panel (flight limits, class limits). */
export const thresholdLine = (): common.GraphThresholdsStyleConfigBuilder =>
  new common.GraphThresholdsStyleConfigBuilder().mode(common.GraphThresholdsStyleMode.Dashed);

/** Value → text (and colour) mappings, e.g. 0/1 flags. */
export function valueText(options: Record<string, { text: string; color?: string }>): dashboard.ValueMapping[] {
  const mapped: Record<string, dashboard.ValueMappingResult> = {};
  for (const [value, r] of Object.entries(options)) mapped[value] = { text: r.text, ...(r.color ? { color: r.color } : {}), index: Object.keys(mapped).length };
  return [{ type: dashboard.MappingType.ValueToText, options: mapped }];
}
