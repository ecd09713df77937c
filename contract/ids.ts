import { z } from 'zod';

/**
 * Identifiers that appear as MQTT topic levels. They must never contain the MQTT
 * wildcard or separator characters (`+`, `#`, `/`) [MQTT-4.7.1-1..3], and they are
 * used as InfluxDB tag values, so they are short, lower-case ASCII slugs.
 */
const SLUG = /^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$/;

export const RegionId = z
  .string()
  .regex(SLUG, 'lower-case letters, digits and "-", 1–40 characters')
  .describe('Region (地域生活圏) identifier, e.g. "ishikawa-nomi"');

export const HubId = z
  .string()
  .regex(SLUG, 'lower-case letters, digits and "-", 1–40 characters')
  .describe('Hub identifier, unique in the whole deployment, e.g. "nomi-terai"');

export const DeviceId = z
  .string()
  .regex(SLUG, 'lower-case letters, digits and "-", 1–40 characters')
  .describe('Device identifier, unique within its hub, e.g. "drone-1"');

export const CompartmentId = z
  .string()
  .regex(/^[A-Z0-9][A-Z0-9-]{0,7}$/, 'upper-case letters, digits and "-", 1–8 characters')
  .describe('Compartment label as printed on the locker door, e.g. "A03"');

/**
 * Message id: unique per device of a hub; the cloud deduplicates by (hub, device, id), so one
 * device cannot use up another's ids (issue 11). Hub-level messages (status, mode acknowledgements)
 * share one device part of their own.
 */
export const MessageId = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9._:-]+$/, 'letters, digits and ". _ : -" only')
  .describe('Message id, unique per device of a hub (e.g. "<device>-<boot>-<seq>" or a UUID). Re-sent messages keep their id.');

export function isSlug(value: string): boolean {
  return SLUG.test(value);
}
