import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { dataHealth } from './data-health.ts';
import { deliveries } from './deliveries.ts';
import { fleet } from './fleet.ts';
import { lockers } from './lockers.ts';
import { regionOverview } from './region-overview.ts';
import { weather } from './weather.ts';

/** Every dashboard, in the order of dashboards/README.md. */
export function allDashboards(): dashboard.Dashboard[] {
  return [regionOverview(), fleet(), lockers(), weather(), deliveries(), dataHealth()].map((b) => b.build());
}

/** The committed form: 2-space JSON with a trailing newline (functions such as the SDK's variant markers drop out). */
export function renderDashboard(d: dashboard.Dashboard): string {
  return `${JSON.stringify(d, null, 2)}\n`;
}

/** File name → content of dashboards/generated/. */
export function generatedFiles(): Map<string, string> {
  return new Map(allDashboards().map((d) => [`${d.uid}.json`, renderDashboard(d)]));
}
