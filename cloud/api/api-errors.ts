import { z } from 'zod';

/**
 * Every error code the HTTP API returns, with its HTTP status. Responses look like
 * `{ "error": { "code": "hub_not_found", "message": "…" } }`. Codes are stable; messages are for people.
 */
export const API_ERRORS = {
  unauthenticated: { status: 401, description: 'No session: sign in (POST /api/v1/auth/login) or send Authorization: Bearer <token>; or the session expired' },
  invalid_credentials: { status: 401, description: 'Wrong username or password' },
  forbidden: { status: 403, description: 'The account\'s role may not do this, or the hub is not one of its hubs' },
  cross_site_request: { status: 403, description: 'A state-changing request from a page of another origin (Origin not this cloud\'s host nor in ALLOWED_ORIGINS, or Sec-Fetch-Site cross-site/same-site), or a read of a closed route by another site\'s page' },
  unsupported_media_type: { status: 415, description: 'A state-changing request\'s body must be application/json' },
  too_many_sign_ins: { status: 429, description: 'Too many sign-in attempts for this username or from this address; wait the Retry-After seconds' },
  region_not_allowed: { status: 403, description: 'The region (or the hub\'s region) is not one of the account\'s regions: a coordinator is scoped to the regions an admin gave it' },
  account_not_found: { status: 404, description: 'No account with that username' },
  account_exists: { status: 409, description: 'An account with that username was created at the same moment by another request; send the change again to update it' },
  validation: { status: 400, description: 'A path, query or body parameter is invalid; the message says which' },
  unknown_field: { status: 400, description: 'The history field is not a numeric field of that device kind' },
  hub_not_found: { status: 404, description: 'No hub with that id' },
  device_not_found: { status: 404, description: 'The hub has no device with that id' },
  command_not_found: { status: 404, description: 'No command with that id' },
  wrong_device_kind: { status: 400, description: 'The command is for another kind of device (locker.* → locker, drone.* → drone)' },
  region_not_found: { status: 404, description: 'No region with that id' },
  geography_not_found: { status: 404, description: 'The region has no base map (no <region>.geography.json next to its region file); the consoles draw the map without one' },
  hub_not_in_region: { status: 400, description: 'A listed hub is not a hub of that region' },
  mode_version_conflict: { status: 409, description: 'Someone else switched the region\'s mode at the same moment (another cloud process on the same database); nothing was changed: read the mode again and switch again if still needed' },
  alarm_not_found: { status: 404, description: 'No alarm with that id' },
  alarm_cleared: { status: 409, description: 'The alarm was already cleared' },
  order_not_found: { status: 404, description: 'No order with that id' },
  unknown_destination: { status: 400, description: 'The origin hub, destination hub or landing site is not registered in the region' },
  not_cancellable: { status: 409, description: 'The order is in the air or finished and can no longer be cancelled' },
  pickup_code_unavailable: { status: 409, description: 'The pickup code was already shown once, or the parcel is not in a locker yet' },
  compartment_not_locked: { status: 409, description: 'The order\'s compartment is not locked (or the parcel is not in a locker), so there is nothing to unlock' },
  round_step_refused: { status: 409, description: 'The order is not on a ground round, or that round step does not follow from its state (e.g. delivered before loaded, or already final)' },
  not_found: { status: 404, description: 'No such route' },
  too_many_streams: { status: 429, description: 'This session (EVENTS_MAX_STREAMS_PER_SESSION) or the cloud (EVENTS_MAX_STREAMS) already has as many live-feed streams open as allowed; close one or try later' },
  store_unavailable: { status: 503, description: 'The telemetry store did not answer; try again' },
  internal: { status: 500, description: 'Unexpected server error (logged with a request id)' },
} as const;

export type ApiErrorCode = keyof typeof API_ERRORS;

/**
 * The one shape of every error answer, as the OpenAPI document names it (`#/components/schemas/ApiError`).
 * Routes list the codes they answer with `errorResponses(…)` (api-docs.ts), which describes each status by its codes.
 */
export const ApiErrorBody = z
  .object({
    error: z.object({
      code: z.enum(Object.keys(API_ERRORS) as [ApiErrorCode, ...ApiErrorCode[]]).describe('Stable; see the list in the API description'),
      message: z.string().describe('For people; may change'),
    }),
  })
  .meta({ id: 'ApiError', description: 'An error answer: a stable code and a message for people' });

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly code: ApiErrorCode,
    message: string,
  ) {
    super(message);
  }
  get status(): number {
    return API_ERRORS[this.code].status;
  }
}
