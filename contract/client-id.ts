/**
 * MQTT client ids of hubs (issue 11). A connection that logs in as hub H must use the client id `H`
 * or `H.<suffix>` — e.g. `nomi-terai`, `nomi-terai.edge`, `nomi-terai.sim` — with a suffix of 1–64
 * letters, digits, `_` or `-`. Hub ids are slugs (lower-case letters, digits and `-`), so `-` could not
 * separate a suffix unambiguously (hub `nomi` + suffix `terai` would be hub `nomi-terai`); `.` never
 * occurs in a hub id. The broker keeps one session per client id and drops the older connection on a
 * duplicate [MQTT-3.1.4-2], so an id that belonged to no particular hub would let one hub's login
 * knock another hub offline or resume its persistent session. An empty client id is refused too:
 * hubs need persistent sessions to get commands queued while they are away [MQTT-3.1.3-7], and an
 * anonymous id would hide which connection of the hub is which.
 */
export const CLIENT_ID_SUFFIX = /^[A-Za-z0-9_-]{1,64}$/;

/** The rule as told to vendors (vendors' guide, AsyncAPI document). */
export const CLIENT_ID_RULE =
  'A connection that logs in with hub H\'s credentials must use the MQTT client id "H" or "H.<suffix>" ' +
  '(suffix: 1–64 of A–Z a–z 0–9 _ -; e.g. "nomi-terai.edge"). Any other client id, and an empty one, is refused with ' +
  'CONNACK return code 2 (identifier rejected). Connections of one hub that use the same client id replace each other.';

export type ClientIdRefusal = 'client_id_empty' | 'client_id_foreign' | 'client_id_suffix';

/** The client id a hub's connection uses: `hub` or `hub.<suffix>`. Throws on a suffix the rule refuses. */
export function hubClientId(hubId: string, suffix?: string): string {
  if (suffix === undefined) return hubId;
  if (!CLIENT_ID_SUFFIX.test(suffix)) throw new Error(`client id suffix ${JSON.stringify(suffix)} must match ${CLIENT_ID_SUFFIX}`);
  return `${hubId}.${suffix}`;
}

/** Null when `clientId` may be used by a connection authenticated as `hubId`, else why not. */
export function checkHubClientId(hubId: string, clientId: string): ClientIdRefusal | null {
  if (clientId === '') return 'client_id_empty';
  if (clientId === hubId) return null;
  if (!clientId.startsWith(`${hubId}.`)) return 'client_id_foreign';
  return CLIENT_ID_SUFFIX.test(clientId.slice(hubId.length + 1)) ? null : 'client_id_suffix';
}
