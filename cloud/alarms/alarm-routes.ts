import { z } from 'zod';
import { errorResponses } from '../api/api-docs.ts';
import { ApiError } from '../api/api-errors.ts';
import { actorOf, hubScope, requireInScope } from '../accounts/access-hooks.ts';
import { regionsOf } from '../accounts/authorize.ts';
import type { ZodApp } from '../api/app.ts';
import { ALARM_KINDS, ALARM_SEVERITIES, AlarmParams } from './alarm-rules.ts';
import { AlarmError, type AlarmService } from './alarm-service.ts';
import { ALARM_STATES, type AlarmRecord } from './alarm-store.ts';

/**
 * HTTP routes of the alarm feature (registered through `AppDeps.features`). They only call the
 * service; its errors become API errors here. The person acting is the signed-in account; staff see
 * and act on their own hubs' alarms only.
 *
 * People are named as people read them: who acknowledged or cleared an alarm is answered with the
 * account's display name as it is now (`acknowledgedByName`), next to the username that was recorded.
 */
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export const AlarmBody = z.object({
  id: z.string(),
  region: z.string(),
  hub: z.string(),
  device: z.string().nullable().describe('null when the alarm is about the hub itself (hub_offline)'),
  compartment: z.string().nullable(),
  kind: z.enum(ALARM_KINDS),
  severity: z.enum(ALARM_SEVERITIES).describe('warning: someone should look soon; critical: act now'),
  state: z.enum(ALARM_STATES).describe('open → acknowledged → cleared; an acknowledged alarm stays until cleared'),
  raisedAt: z.string().describe('ISO 8601 (cloud clock)'),
  lastSeenAt: z.string().describe('ISO 8601 (cloud clock); when the condition was last reported again'),
  count: z.number().int().describe('Observations of the condition while the alarm was active (1 when raised)'),
  observedAt: z.string().describe('ISO 8601; when the condition was first observed (device clock; cloud clock for hub_offline)'),
  lastObservedAt: z.string(),
  acknowledgedAt: z.string().nullable(),
  acknowledgedBy: z.string().nullable().describe('Username of who acknowledged it'),
  acknowledgedByName: z.string().nullable().describe('Display name of that account now; the username when no such account exists'),
  ackNote: z.string().nullable(),
  clearedAt: z.string().nullable(),
  clearedBy: z.string().nullable().describe('Username; null when it cleared itself because the condition ended'),
  clearedByName: z.string().nullable().describe('Display name of that account now; the username when no such account exists'),
  clearNote: z.string().nullable().describe('The note of whoever cleared it, or why the condition ended'),
  detail: z.string().describe('English summary (kept for older clients); text from devices is quoted as plain text. Render `kind` + `params` for people instead'),
  params: AlarmParams,
  deviceDetail: z.string().nullable().describe('The device\'s own free text about it, as sent (show it as plain text); null when it sent none'),
  sourceMsgId: z.string().nullable().describe('Id of the hub message that raised it'),
});

/** An account's display name; null when there is no such account. */
export type DisplayNameOf = (username: string) => string | null;

export function alarmBody(a: AlarmRecord, displayNameOf: DisplayNameOf = () => null): z.infer<typeof AlarmBody> {
  const nameOf = (username: string | null) => (username === null ? null : (displayNameOf(username) ?? username));
  return {
    ...a, raisedAt: iso(a.raisedAt)!, lastSeenAt: iso(a.lastSeenAt)!, observedAt: iso(a.observedAt)!, lastObservedAt: iso(a.lastObservedAt)!,
    acknowledgedAt: iso(a.acknowledgedAt), clearedAt: iso(a.clearedAt),
    acknowledgedByName: nameOf(a.acknowledgedBy), clearedByName: nameOf(a.clearedBy),
  };
}

/** One look-up per username per answer (a list of 500 alarms is mostly acknowledged by a few people). */
function memoised(displayNameOf: DisplayNameOf): DisplayNameOf {
  const seen = new Map<string, string | null>();
  return (u) => {
    if (!seen.has(u)) seen.set(u, displayNameOf(u));
    return seen.get(u)!;
  };
}

const ActionBody = z.object({
  by: z.string().trim().min(1).max(100).optional().describe('Ignored when signed in: the account is recorded (kept so older clients still validate)'),
  note: z.string().max(1000).optional(),
});

const AlarmPath = z.object({ alarmId: z.string().min(1).max(64) });

function asApiError(err: unknown): unknown {
  return err instanceof AlarmError ? new ApiError(err.code, err.message) : err;
}

export interface AlarmRouteOptions {
  /** Accounts' display names (the accounts feature); without it, usernames stand in. */
  displayNameOf?: DisplayNameOf;
}

export function alarmRoutes(alarms: AlarmService, o: AlarmRouteOptions = {}): (app: ZodApp) => void {
  const displayNameOf = o.displayNameOf ?? (() => null);
  return (app) => {
    app.get('/api/v1/alarms', {
      schema: {
        operationId: 'listAlarms', tags: ['alarms'],
        summary: 'Alarms, newest raised first (staff: their hubs\' only; a coordinator: its regions\' only)',
        querystring: z.object({
          state: z.enum([...ALARM_STATES, 'active']).optional().describe('`active`: open or acknowledged'),
          hub: z.string().max(64).optional(),
          region: z.string().max(64).optional().describe('Only alarms of this region (one of the account\'s regions)'),
          severity: z.enum(ALARM_SEVERITIES).optional(),
          kind: z.enum(ALARM_KINDS).optional(),
          limit: z.coerce.number().int().min(1).max(500).default(100),
        }),
        response: { 200: z.object({ alarms: z.array(AlarmBody) }), ...errorResponses('region_not_allowed') },
      },
    }, async (req) => {
      const names = memoised(displayNameOf);
      const body = (a: AlarmRecord) => alarmBody(a, names);
      const { region, ...q } = req.query;
      if (q.hub !== undefined) requireInScope(req, q.hub);
      // Staff: their hubs. A coordinator scoped to regions: those regions (issue 14), by the alarm's region.
      const hubs = req.account?.role === 'staff' ? hubScope(req) : null;
      const regions = regionsOf(req.account ?? null);
      if (region !== undefined && regions !== null && !regions.includes(region)) {
        throw new ApiError('region_not_allowed', `region "${region}" is not one of this account's regions`);
      }
      const list = await alarms.list({
        ...q, hubs: hubs === null ? undefined : [...hubs], regions: region !== undefined ? [region] : (regions ?? undefined),
      });
      return { alarms: list.map(body) };
    });

    app.get('/api/v1/alarms/:alarmId', {
      schema: { operationId: 'getAlarm', tags: ['alarms'], summary: 'One alarm', params: AlarmPath, response: { 200: AlarmBody, ...errorResponses('alarm_not_found') } },
    }, async (req) => {
      try {
        const a = await alarms.get(req.params.alarmId);
        requireInScope(req, a.hub);
        return alarmBody(a, displayNameOf);
      } catch (err) {
        throw asApiError(err);
      }
    });

    app.post('/api/v1/alarms/:alarmId/ack', {
      schema: {
        operationId: 'acknowledgeAlarm', tags: ['alarms'],
        summary: 'Acknowledge an alarm',
        description: 'open → acknowledged, recording who and when. Acknowledging again keeps the first acknowledgement; a cleared alarm answers 409.',
        params: AlarmPath, body: ActionBody, response: { 200: AlarmBody, ...errorResponses('alarm_not_found', 'alarm_cleared') },
      },
    }, async (req) => {
      try {
        requireInScope(req, (await alarms.get(req.params.alarmId)).hub);
        return alarmBody(await alarms.acknowledge(req.params.alarmId, actorOf(req, req.body.by), req.body.note ?? null), displayNameOf);
      } catch (err) {
        throw asApiError(err);
      }
    });

    app.post('/api/v1/alarms/:alarmId/clear', {
      schema: {
        operationId: 'clearAlarm', tags: ['alarms'],
        summary: 'Clear an alarm by hand',
        description: 'open or acknowledged → cleared, recording who and why (e.g. after staff checked a tamper report). Most alarms also clear themselves when their condition ends. A cleared alarm answers 409.',
        params: AlarmPath, body: ActionBody, response: { 200: AlarmBody, ...errorResponses('alarm_not_found', 'alarm_cleared') },
      },
    }, async (req) => {
      try {
        requireInScope(req, (await alarms.get(req.params.alarmId)).hub);
        return alarmBody(await alarms.clear(req.params.alarmId, actorOf(req, req.body.by), req.body.note ?? null), displayNameOf);
      } catch (err) {
        throw asApiError(err);
      }
    });
  };
}
