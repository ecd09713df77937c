import { checkHubClientId, filterWithin, parseTopic, ROUTE_DIRECTION, topics } from '../../contract/index.ts';
import type { HubIdentity } from '../hubs/hub-credentials.ts';

/**
 * Who may publish and subscribe where. Pure functions of the authenticated hub and the topic.
 *
 * Publish: a hub publishes only under its own `v1/<region>/<hub>/` prefix, and never on the
 * down-link topics under it (commands and cloud acks are the cloud's to send). A topic under the
 * prefix that the contract does not know is let through to ingest, which dead-letters it as
 * `unknown_topic` so the vendor can see what they sent.
 * Subscribe: only the hub's own commands and acks, and its region's mode topic.
 * Region (issue 14, item 3): the region is the one the hub's credentials name, never one taken from
 * the topic, so a hub cannot reach another region's topics; a credential whose region the cloud does
 * not serve (`served`: a region file removed, or a typo when the credential was made) may publish and
 * subscribe nowhere; nor may a credential whose region is not the one the region files place its hub
 * in (`region_mismatch`: a credential made before the hub's region file was added, naming another
 * region) — it would publish into one region's topics data stored under another region's hub, and
 * follow the wrong region's mode. The fix is a new credential (`npm run hub-credentials -- set <hub>`).
 * A hub in no region file keeps its credential's region.
 */
export const MAX_TOPIC_LENGTH = 256;
export const MAX_TOPIC_LEVELS = 8;

export type PublishDecision =
  | { ok: true; retainAllowed: boolean }
  | { ok: false; reason: 'foreign_prefix' | 'downlink_topic' | 'topic_limits' | 'reserved' | 'unknown_region' | 'region_mismatch' };

/** The regions the cloud serves, and where their files place hubs (`Regions` has both). */
export interface ServedRegions {
  has(region: string): boolean;
  regionOfHub?(hub: string): { id: string } | undefined;
}

/** Why a credential's region may not be used at all (null: it may), whatever the topic. */
export function regionRefusal(hub: HubIdentity, served?: ServedRegions): 'unknown_region' | 'region_mismatch' | null {
  if (!served) return null;
  if (!served.has(hub.region)) return 'unknown_region';
  const filed = served.regionOfHub?.(hub.hubId)?.id;
  return filed !== undefined && filed !== hub.region ? 'region_mismatch' : null;
}

export function decidePublish(hub: HubIdentity, topic: string, served?: ServedRegions): PublishDecision {
  const refusal = regionRefusal(hub, served);
  if (refusal) return { ok: false, reason: refusal };
  if (topic.length > MAX_TOPIC_LENGTH || topic.split('/').length > MAX_TOPIC_LEVELS) return { ok: false, reason: 'topic_limits' };
  if (topic.startsWith('$')) return { ok: false, reason: 'reserved' }; // $SYS and friends [MQTT-4.7.2-1]
  if (!topic.startsWith(topics.hubPrefix(hub.region, hub.hubId))) return { ok: false, reason: 'foreign_prefix' };
  const parsed = parseTopic(topic);
  if (parsed && ROUTE_DIRECTION[parsed.route] === 'down') return { ok: false, reason: 'downlink_topic' };
  // Only the hub status is retained (its last will "offline" must replace the birth "online").
  return { ok: true, retainAllowed: parsed?.route === 'status' };
}

/**
 * A CONNECT last will (MQTT-3.1.2-8: the broker stores it and publishes it when the link dies, long
 * after the login, possibly on another node of a cluster): checked at login against the identity of
 * the credential, like a publish by that hub, and allowed only on the hub's own status topic (the
 * contract's will: `hub.status` "offline"). A will that fails is refused with the connection
 * (CONNACK 5, not authorized): MQTT 3.1.1 has no way to accept a connection without its will, and
 * a will silently dropped would leave the vendor believing the broker announces a dead link.
 */
export type WillDecision = { ok: true } | { ok: false; reason: Exclude<PublishDecision, { ok: true }>['reason'] | 'not_status' };

export function decideWill(hub: HubIdentity, topic: string, served?: ServedRegions): WillDecision {
  const decision = decidePublish(hub, topic, served);
  if (!decision.ok) return decision;
  return parseTopic(topic)?.route === 'status' ? { ok: true } : { ok: false, reason: 'not_status' };
}

/**
 * A stored will about to be published without its connection (its node died, or this node's previous
 * run left it): the identity is then only what the will itself carries. Null when it may be
 * published for the hub its topic names: a status will whose client id belongs to that hub (client
 * ids are tied to the credential's hub at login, contract/client-id.ts). Wills are checked at login
 * (decideWill); this is the second line, for wills stored by an older version or written into Redis.
 */
export function storedWillRefusal(will: { topic: string; clientId?: unknown }): 'not_status' | 'foreign_client_id' | null {
  const t = parseTopic(will.topic);
  if (t?.route !== 'status') return 'not_status';
  if (typeof will.clientId !== 'string' || checkHubClientId(t.hub, will.clientId) !== null) return 'foreign_client_id';
  return null;
}

export function decideSubscribe(hub: HubIdentity, filter: string, served?: ServedRegions): boolean {
  if (regionRefusal(hub, served)) return false;
  if (filter.length > MAX_TOPIC_LENGTH || filter.split('/').length > MAX_TOPIC_LEVELS) return false;
  return topics.hubSubscriptions(hub.region, hub.hubId).some((allowed) => filterWithin(filter, allowed));
}

/**
 * Whether a (granted) subscription filter receives commands for the hub, i.e. lies within its
 * `cmd/#` — the first of the hub's allowed filters. The cloud re-delivers pending commands then.
 */
export function coversCommands(hub: HubIdentity, filter: string): boolean {
  const [commands] = topics.hubSubscriptions(hub.region, hub.hubId);
  return commands !== undefined && filterWithin(filter, commands);
}
