import { Counter, Gauge, type Registry } from 'prom-client';
import { ALARM_KINDS, ALARM_SEVERITIES, type AlarmKind, type AlarmSeverity } from './alarm-rules.ts';
import type { AlarmMetricsSink } from './alarm-service.ts';

/**
 * The alarm metrics, on the cloud's registry: `alarms_open{severity}` (alarms not yet cleared, read
 * from the store at every scrape — every cloud process's alarms, as the database holds them) and
 * `alarms_raised_total{kind}`. Labels come from fixed sets. A count that fails keeps the last values
 * (the scrape still answers) and is reported to `onError`.
 */
export function registerAlarmMetrics(
  registry: Registry,
  activeCounts: () => Promise<Record<AlarmSeverity, number>> | Record<AlarmSeverity, number>,
  onError: (err: unknown) => void = () => {},
): AlarmMetricsSink {
  new Gauge({
    name: 'alarms_open', help: 'Alarms not yet cleared (open or acknowledged), by severity',
    labelNames: ['severity'] as const, registers: [registry],
    async collect() {
      try {
        const counts = await activeCounts();
        for (const severity of ALARM_SEVERITIES) this.set({ severity }, counts[severity]);
      } catch (err) {
        onError(err);
      }
    },
  });
  const raised = new Counter({
    name: 'alarms_raised_total', help: 'Alarms raised (repeats of an active alarm are not counted), by kind',
    labelNames: ['kind'] as const, registers: [registry],
  });
  for (const kind of ALARM_KINDS) raised.inc({ kind }, 0);
  return { raised: (kind: AlarmKind) => raised.inc({ kind }) };
}
