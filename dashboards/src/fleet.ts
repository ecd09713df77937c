import * as common from '@grafana/grafana-foundation-sdk/common';
import * as geomap from '@grafana/grafana-foundation-sdk/geomap';
import * as table from '@grafana/grafana-foundation-sdk/table';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';
import { baseDashboard, byHub, influxql, inRange, thresholds } from './influxql.ts';

const batteryThresholds = () => thresholds([{ value: null, color: 'red' }, { value: 20, color: 'orange' }, { value: 40, color: 'green' }]);

/** Every drone: its state, battery and where it is. */
export function fleet() {
  return baseDashboard('chiiki-fleet', 'Fleet', 'Drone states, batteries and positions')
    .withPanel(
      new table.PanelBuilder()
        .title('Drone states')
        .description('Newest flight state, battery and mission of each drone (drone)')
        .span(12).height(10)
        .withTarget(
          influxql('A', `SELECT last("flight_state") AS "state", last("battery_pct") AS "battery_pct", last("alt_m") AS "alt_m" FROM "drone" WHERE ${inRange(byHub)} GROUP BY "hub", "device"`)
            .format('table'),
        )
        .thresholds(batteryThresholds()),
    )
    .withPanel(
      new geomap.PanelBuilder()
        .title('Drone positions')
        .description('Newest reported position of each drone (drone.lat/lon)')
        .span(12).height(10)
        .withTarget(
          influxql('A', `SELECT last("lat") AS "latitude", last("lon") AS "longitude", last("battery_pct") AS "battery_pct" FROM "drone" WHERE ${inRange(byHub)} GROUP BY "hub", "device"`)
            .format('table'),
        )
        .view(new geomap.MapViewConfigBuilder().id('coords').lat(36.44).lon(136.5).zoom(10))
        .basemap(new common.MapLayerOptionsBuilder().type('default').name('Basemap'))
        .layers([
          new common.MapLayerOptionsBuilder()
            .type('markers')
            .name('Drones')
            .location(new common.FrameGeometrySourceBuilder().mode(common.FrameGeometrySourceMode.Coords).latitude('latitude').longitude('longitude'))
            .config({ showLegend: true, style: { size: { fixed: 6 }, color: { field: 'battery_pct' }, text: { field: 'device', mode: 'field' } } })
            .tooltip(true),
        ])
        .thresholds(batteryThresholds()),
    )
    .withPanel(
      new timeseries.PanelBuilder()
        .title('Battery')
        .description('Battery of each drone (drone.battery_pct); dispatch keeps a reserve, alarms below 20 % in flight')
        .span(24).height(9)
        .withTarget(influxql('A', `SELECT mean("battery_pct") FROM "drone" WHERE ${inRange(byHub)} GROUP BY time($__interval), "hub", "device" fill(none)`).alias('$tag_hub/$tag_device'))
        .unit('percent').min(0).max(100)
        .thresholds(batteryThresholds())
        .thresholdsStyle(new common.GraphThresholdsStyleConfigBuilder().mode(common.GraphThresholdsStyleMode.Area)),
    );
}
