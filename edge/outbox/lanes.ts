import type { ValidMessage } from '../../contract/index.ts';

/**
 * Priority lanes of the outbox. Lower goes first.
 *  0 urgent     alarms (device events with severity warning or critical), command and mode acks
 *  1 event      other device events
 *  2 telemetry  periodic readings — the only lane that may be thinned or dropped under a long backlog
 */
export const LANE = { urgent: 0, event: 1, telemetry: 2 } as const;
export type Lane = (typeof LANE)[keyof typeof LANE];
export const LANE_NAMES = ['urgent', 'event', 'telemetry'] as const;

export function laneOf(m: ValidMessage): Lane {
  switch (m.route) {
    case 'cmd-ack':
    case 'mode-ack':
      return LANE.urgent;
    case 'status':
      return LANE.event;
    case 'device':
      if (m.topic.channel === 'telemetry') return LANE.telemetry;
      return 'severity' in m.message && m.message.severity !== 'info' ? LANE.urgent : LANE.event;
  }
}
