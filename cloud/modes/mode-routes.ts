import { z } from 'zod';
import { FreeText, HubId, Mode, ModeAck } from '../../contract/index.ts';
import { errorResponses } from '../api/api-docs.ts';
import { ApiError } from '../api/api-errors.ts';
import { actorOf, hubScope } from '../accounts/access-hooks.ts';
import type { ZodApp } from '../api/app.ts';
import { ModeError, type ModeService } from './mode-service.ts';
import { ACK_STATUSES, type DesiredMode, type HubAck, type HubSwitch, type ModeConflict } from './mode-state.ts';
import type { AuditEntry } from './mode-store.ts';

/**
 * HTTP routes of disaster mode, registered as a feature of the cloud API (`AppDeps.features`):
 *
 *   POST /api/v1/regions/:regionId/mode           switch the region or some hubs (202 with the new version)
 *   GET  /api/v1/regions/:regionId/mode           desired state + per-hub acknowledgement
 *   GET  /api/v1/regions/:regionId/mode/history   audit log, newest first
 */
const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const Params = z.object({ regionId: z.string().max(64) });

const Desired = z.object({
  region: z.string(),
  version: z.number().int().describe('0 until the first switch (every hub normal, nothing published)'),
  mode: Mode.describe('Mode of every hub without an override'),
  hubs: z.record(z.string(), Mode).describe('Per-hub overrides (only hubs that differ from `mode`)'),
  reason: z.string(),
  by: z.string().nullable().describe('Username of who switched; null before the first switch'),
  byName: z.string().nullable().describe('Display name of that account now; the username when no such account exists'),
  at: z.string().nullable().describe('ISO 8601; when the switch that produced this version was made'),
});

const Acknowledged = z
  .object({
    version: z.number().int(),
    mode: Mode,
    source: ModeAck.shape.source,
    reason: z.string().nullable(),
    at: z.string().describe('ISO 8601 (hub clock); when the hub applied or switched'),
    receivedAt: z.string().describe('ISO 8601; when the cloud received it'),
    historical: z.boolean().describe('Reported late, after the hub\'s link returned'),
  })
  .nullable();

const ConflictBody = z.object({
  winner: z.enum(['hub', 'coordinator']).describe('Whose mode the hub is in now: the later of the two switches in wall-clock time'),
  local: z.object({
    mode: Mode, at: z.string().describe('ISO 8601 (hub clock)'), reason: z.string(), version: z.number().int().describe('The version the hub was on'),
  }).describe('The hub staff\'s local switch, made while cut off'),
  coordinator: z.object({
    version: z.number().int(), mode: Mode.describe('The mode it gave the hub'), at: z.string().describe('ISO 8601'), by: z.string(), reason: z.string(),
  }).describe('The coordinator\'s switch the hub had not seen'),
  detectedAt: z.string().describe('ISO 8601; when the local switch reached the cloud'),
}).describe('Open until a coordinator switches this hub or the region');
const conflictBody = (c: ModeConflict | null) => c && {
  winner: c.winner,
  local: { mode: c.local.mode, at: iso(c.local.at)!, reason: c.local.reason, version: c.local.version },
  coordinator: { ...c.coordinator, at: iso(c.coordinator.at)! },
  detectedAt: iso(c.detectedAt)!,
};

const SwitchedBody = z
  .object({
    mode: Mode,
    since: z.string().describe('ISO 8601; when a coordinator\'s switch put the hub in `mode` (later switches to the same mode keep it)'),
    previous: Mode.describe('The mode before `since`'),
    reason: z.string().describe('The coordinator\'s reason in the newest switch that named this hub (or the whole region); shown to hub staff'),
    by: z.string().describe('Username of who made that switch'),
    byName: z.string().describe('Display name of that account now; the username when no such account exists'),
    version: z.number().int().describe('The version of that newest switch'),
  })
  .nullable()
  .describe('Since when and why the hub is in its desired mode; null when no switch ever named it (normal from the start). '
    + '`desired.reason` and `desired.at` are the newest switch\'s, which may have been for other hubs.');
const switchedBody = (s: HubSwitch | undefined, nameOf: (username: string) => string) =>
  (s ? { mode: s.mode, since: iso(s.since)!, previous: s.previous, reason: s.reason, by: s.by, byName: nameOf(s.by), version: s.version } : null);

const SwitchBody = z.object({
  region: z.string(),
  version: z.number().int(),
  mode: Mode,
  hubs: z.array(z.string()).nullable().describe('Hubs switched; null = the whole region'),
  reason: z.string(),
  by: z.string(),
  at: z.string(),
  desired: Desired,
  changes: z.array(z.object({ hub: z.string(), from: Mode, to: Mode })).describe('Hubs whose mode changed'),
  published: z.boolean().describe('The broker took the retained message (if not, it is published at the next start)'),
});

const AuditBody = z.object({
  id: z.number().int(),
  kind: z.enum(['switch', 'local_switch']),
  at: z.string().describe('ISO 8601; when it happened (hub clock for a local switch)'),
  recordedAt: z.string(),
  by: z.string(),
  mode: Mode,
  hubs: z.array(z.string()).nullable().describe('null = the whole region'),
  reason: z.string(),
  version: z.number().int().describe('A switch: the version it produced; a local switch: the version the hub was on'),
  desiredVersion: z.number().int().nullable(),
  desiredMode: Mode.nullable().describe('A local switch: the mode the desired state gave the hub when it was recorded'),
  historical: z.boolean(),
  summary: z.string(),
});

const desiredBody = (d: DesiredMode, nameOf: (username: string) => string) =>
  ({ region: d.region, version: d.version, mode: d.mode, hubs: d.hubs, reason: d.reason, by: d.by, byName: d.by === null ? null : nameOf(d.by), at: iso(d.at) });
const ackBody = (a: HubAck | null) =>
  a && { version: a.version, mode: a.mode, source: a.source, reason: a.reason, at: iso(a.ts)!, receivedAt: iso(a.receivedAt)!, historical: a.historical };
const auditBody = ({ msgId: _msgId, ...e }: AuditEntry) => ({ ...e, at: iso(e.at)!, recordedAt: iso(e.recordedAt)! });

/** Maps the service's domain errors to API errors. */
function toApiError(err: unknown): unknown {
  return err instanceof ModeError ? new ApiError(err.code, err.message) : err;
}
async function api<T>(f: () => T | Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    throw toApiError(err);
  }
}

export interface ModeRouteOptions {
  /** Accounts' display names (the accounts feature): people read who switched by name (issue 13, item 5); without it, usernames stand in. */
  displayNameOf?: (username: string) => string | null;
}

export function modeRoutes(modes: ModeService, opts: ModeRouteOptions = {}): (app: ZodApp) => void {
  const nameOf = (username: string) => opts.displayNameOf?.(username) ?? username;
  return (app) => {
    app.post('/api/v1/regions/:regionId/mode', {
      schema: {
        operationId: 'switchRegionMode', tags: ['modes'],
        summary: 'Switch a region, or some of its hubs, to emergency or normal mode',
        description: 'Stores a new version of the region\'s desired mode (previous + 1) with an audit entry and publishes it retained (QoS 1) on '
          + '`v1/<region>/mode`. Without `hubs` the whole region switches and per-hub overrides are cleared; with `hubs` only those hubs get '
          + 'an override. Hubs acknowledge asynchronously: see GET on the same path. 409 `mode_version_conflict`: someone else switched the '
          + 'region at the same moment (another cloud process on the same database); nothing was stored — read the mode again and decide.',
        params: Params,
        body: z.object({
          mode: Mode,
          hubs: z.array(HubId).min(1).max(1000).optional().describe('Hubs to switch; omit to switch the whole region'),
          // The contract's free-text rule: the reason goes to every hub in the region mode message, which a
          // hub refuses with a control character in it — a switch answered 202 and reached no hub (found in review).
          reason: FreeText(500).trim().min(1).describe('Why; shown to hub staff (no control characters other than tab and line breaks)'),
          by: z.string().trim().min(1).max(100).optional().describe('Ignored when signed in: the account that switches is recorded (kept so older clients still validate)'),
        }).strict(),
        response: { 202: SwitchBody, ...errorResponses('hub_not_in_region', 'region_not_found', 'mode_version_conflict') },
      },
    }, async (req, reply) => {
      const s = await api(() => modes.switchMode(req.params.regionId, { ...req.body, by: actorOf(req, req.body.by) }));
      return reply.code(202).send({ ...s, at: iso(s.at)!, desired: desiredBody(s.desired, nameOf) });
    });

    app.get('/api/v1/regions/:regionId/mode', {
      schema: {
        operationId: 'getRegionMode', tags: ['modes'],
        summary: 'The region\'s desired mode and which hubs acknowledged it',
        description: 'Per hub: `acknowledged` (applied the current version), `pending`, `timed_out` (pending longer than MODE_ACK_TIMEOUT_S), '
          + '`diverged` (the hub reports a local switch to another mode; the desired state stays authoritative until a coordinator switches), '
          + '`conflict` (a local switch made while the hub was cut off disagrees with a coordinator\'s switch it had not seen: the later one in '
          + 'wall-clock time wins, `conflict` shows both sides and the winner until a coordinator switches that hub or the region).',
        params: Params,
        response: {
          200: z.object({
            region: z.string(),
            desired: Desired,
            hubs: z.array(z.object({
              hub: z.string(), desired: Mode, acknowledged: Acknowledged, status: z.enum(ACK_STATUSES), conflict: ConflictBody.nullable(),
              switched: SwitchedBody,
            })),
            counts: z.object({
              total: z.number().int(), acknowledged: z.number().int(), pending: z.number().int(), timedOut: z.number().int(), diverged: z.number().int(),
              conflict: z.number().int(),
            }),
            allAcknowledged: z.boolean(),
            lastAcknowledgedAt: z.string().nullable().describe('ISO 8601; when the most recent hub that confirmed the current version confirmed it'),
            ackTimeoutS: z.number(),
          }),
          ...errorResponses('region_not_found'),
        },
      },
    }, async (req) => {
      const v = await api(() => modes.view(req.params.regionId));
      const switches = await modes.hubSwitches(req.params.regionId);
      // Staff see their own hubs only (and counts over those).
      const scope = hubScope(req);
      const hubs = scope === null ? v.hubs : v.hubs.filter((h) => scope.has(h.hub));
      const counts = scope === null ? v.counts : {
        total: hubs.length, acknowledged: hubs.filter((h) => h.status === 'acknowledged').length, pending: hubs.filter((h) => h.status === 'pending').length,
        timedOut: hubs.filter((h) => h.status === 'timed_out').length, diverged: hubs.filter((h) => h.status === 'diverged').length,
        conflict: hubs.filter((h) => h.status === 'conflict').length,
      };
      // ... and of the region's desired state only what concerns those hubs: their overrides, and who
      // switched and why only when the newest switch was (also) theirs; what other hubs were switched to
      // and why is not theirs to read (found in review).
      let desired = desiredBody(v.desired, nameOf);
      let allAcknowledged = v.allAcknowledged;
      let lastAcknowledgedAt = v.lastAcknowledgedAt;
      if (scope !== null) {
        const overrides = Object.fromEntries(Object.entries(desired.hubs).filter(([hub]) => scope.has(hub)));
        const newestIsTheirs = hubs.some((h) => switches.get(h.hub)?.version === v.desired.version);
        desired = newestIsTheirs ? { ...desired, hubs: overrides } : { ...desired, hubs: overrides, reason: '', by: null, byName: null, at: null };
        allAcknowledged = hubs.every((h) => h.status === 'acknowledged');
        const acked = hubs.flatMap((h) => (h.acknowledged ? [h.acknowledged.receivedAt] : []));
        lastAcknowledgedAt = acked.length > 0 ? Math.max(...acked) : null;
      }
      return {
        region: req.params.regionId, desired,
        hubs: hubs.map((h) => ({
          hub: h.hub, desired: h.desired, acknowledged: ackBody(h.acknowledged), status: h.status, conflict: conflictBody(h.conflict),
          switched: switchedBody(switches.get(h.hub), nameOf),
        })),
        counts, allAcknowledged, lastAcknowledgedAt: iso(lastAcknowledgedAt), ackTimeoutS: modes.ackTimeoutMs / 1000,
      };
    });

    app.get('/api/v1/regions/:regionId/mode/history', {
      schema: {
        operationId: 'listRegionModeHistory', tags: ['modes'],
        summary: 'Audit log of the region\'s mode: coordinators\' switches and hubs\' local switches, newest first',
        params: Params,
        querystring: z.object({
          before: z.coerce.number().int().positive().optional().describe('Only entries with an id below this (paging)'),
          limit: z.coerce.number().int().min(1).max(500).default(100),
        }),
        response: { 200: z.object({ region: z.string(), entries: z.array(AuditBody) }), ...errorResponses('region_not_found') },
      },
    }, async (req) => ({
      region: req.params.regionId,
      entries: (await api(() => modes.history(req.params.regionId, req.query))).map(auditBody),
    }));
  };
}
