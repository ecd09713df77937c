import type { z } from 'zod';
import {
  parseTopic,
  ROUTE_DIRECTION,
  schemaForTopic,
  type CommandAck,
  type DeviceMessage,
  type HubStatus,
  type ModeAck,
  type ParsedTopic,
} from '../../contract/index.ts';

/**
 * Decides what an inbound publish is: a valid contract message, or a rejection with a reason.
 * Pure: no I/O, no clock. The reasons are a stable, documented list (see docs/contract/README.md);
 * metrics and the dead-letter store are keyed by them.
 */
export const REJECTION_REASONS = [
  'too_large',
  'unknown_topic',
  'malformed_json',
  'schema',
  'topic_mismatch',
  'too_many_devices',
  'store_rejected',
] as const;
export type RejectionReason = (typeof REJECTION_REASONS)[number];

type Of<R extends ParsedTopic['route']> = Extract<ParsedTopic, { route: R }>;

export type Accepted =
  | { ok: true; route: 'device'; topic: Of<'device'>; message: DeviceMessage }
  | { ok: true; route: 'status'; topic: Of<'status'>; message: HubStatus }
  | { ok: true; route: 'cmd-ack'; topic: Of<'cmd-ack'>; message: CommandAck }
  | { ok: true; route: 'mode-ack'; topic: Of<'mode-ack'>; message: ModeAck };

export interface Rejected {
  ok: false;
  reason: RejectionReason;
  detail: string;
  topic: ParsedTopic | null;
}

export type Classified = Accepted | Rejected;

const reject = (reason: RejectionReason, detail: string, topic: ParsedTopic | null = null): Rejected => ({ ok: false, reason, detail, topic });

export function classifyPublish(topicName: string, payload: Buffer, maxPayloadBytes: number): Classified {
  const topic = parseTopic(topicName);
  if (payload.length > maxPayloadBytes) {
    return reject('too_large', `payload is ${payload.length} bytes; the limit is ${maxPayloadBytes}`, topic);
  }
  if (!topic || ROUTE_DIRECTION[topic.route] !== 'up' || !('hub' in topic)) {
    return reject('unknown_topic', `"${truncate(topicName, 200)}" is not a hub-to-cloud topic of contract v1`, topic);
  }
  let json: unknown;
  try {
    json = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    return reject('malformed_json', `not JSON: ${(err as Error).message}`, topic);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return reject('malformed_json', 'the payload must be a JSON object', topic);
  }
  const parsed = schemaForTopic(topic).safeParse(json);
  if (!parsed.success) return reject('schema', describeIssues(parsed.error), topic);
  const msg = parsed.data as { hub: string; device?: string };
  if (msg.hub !== topic.hub) {
    return reject('topic_mismatch', `payload hub "${truncate(msg.hub, 60)}" differs from topic hub "${topic.hub}"`, topic);
  }
  if (topic.route === 'device' && msg.device !== topic.device) {
    return reject('topic_mismatch', `payload device "${truncate(String(msg.device), 60)}" differs from topic device "${topic.device}"`, topic);
  }
  if (topic.route === 'device') {
    const expectedType = `${topic.kind}.${topic.channel}`;
    const type = (parsed.data as { type: string }).type;
    if (type !== expectedType) return reject('topic_mismatch', `payload type "${type}" does not belong on a ${expectedType} topic`, topic);
  }
  return { ok: true, route: topic.route, topic, message: parsed.data } as Accepted;
}

function describeIssues(error: z.ZodError): string {
  const parts = error.issues.slice(0, 5).map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
  if (error.issues.length > 5) parts.push(`… and ${error.issues.length - 5} more`);
  return parts.join('; ');
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}
