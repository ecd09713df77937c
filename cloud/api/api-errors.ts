/**
 * Every error code the HTTP API returns, with its HTTP status. Responses look like
 * `{ "error": { "code": "hub_not_found", "message": "…" } }`. Codes are stable; messages are for people.
 */
export const API_ERRORS = {
  validation: { status: 400, description: 'A path, query or body parameter is invalid; the message says which' },
  unknown_field: { status: 400, description: 'The history field is not a numeric field of that device kind' },
  hub_not_found: { status: 404, description: 'No hub with that id' },
  device_not_found: { status: 404, description: 'The hub has no device with that id' },
  command_not_found: { status: 404, description: 'No command with that id' },
  wrong_device_kind: { status: 400, description: 'The command is for another kind of device (locker.* → locker, drone.* → drone)' },
  not_found: { status: 404, description: 'No such route' },
  store_unavailable: { status: 503, description: 'The telemetry store did not answer; try again' },
  internal: { status: 500, description: 'Unexpected server error (logged with a request id)' },
} as const;

export type ApiErrorCode = keyof typeof API_ERRORS;

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
