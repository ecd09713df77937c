import type { z } from 'zod';
import type { CommandAck, DeviceMessage, HubStatus, ModeAck } from './messages.ts';
import { compiledCheck } from './compiled-check.ts';
import { parseTopic, ROUTE_DIRECTION, schemaForTopic, type ParsedTopic } from './topics.ts';

/**
 * Decides whether an inbound hub-to-cloud publish is a valid contract message. Pure: no I/O, no clock.
 * The edge agent runs it on what devices send, the cloud on what hubs send — the same rules at both.
 */
export const MESSAGE_REJECTIONS = ['too_large', 'unknown_topic', 'malformed_json', 'schema', 'topic_mismatch'] as const;
export type MessageRejection = (typeof MESSAGE_REJECTIONS)[number];

type Of<R extends ParsedTopic['route']> = Extract<ParsedTopic, { route: R }>;

export type ValidMessage =
  | { ok: true; route: 'device'; topic: Of<'device'>; message: DeviceMessage }
  | { ok: true; route: 'status'; topic: Of<'status'>; message: HubStatus }
  | { ok: true; route: 'cmd-ack'; topic: Of<'cmd-ack'>; message: CommandAck }
  | { ok: true; route: 'mode-ack'; topic: Of<'mode-ack'>; message: ModeAck };

export interface InvalidMessage {
  ok: false;
  reason: MessageRejection;
  detail: string;
  topic: ParsedTopic | null;
}

// The detail may quote what the publisher sent (a JSON parser's message quotes the input, a schema
// issue names an unknown key): never as raw bytes — it is stored as text, and PostgreSQL refuses U+0000.
const reject = (reason: MessageRejection, detail: string, topic: ParsedTopic | null = null): InvalidMessage => ({ ok: false, reason, detail: printable(detail), topic });

export function validateUplinkMessage(topicName: string, payload: Buffer, maxPayloadBytes: number): ValidMessage | InvalidMessage {
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
    return reject('malformed_json', `not JSON: ${truncate((err as Error).message, 300)}`, topic);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return reject('malformed_json', 'the payload must be a JSON object', topic);
  }
  // The compiled check first (compiled-check.ts); zod for what it refuses, to explain the refusal.
  const schema = schemaForTopic(topic);
  let data: unknown = json;
  if (!compiledCheck(schema)?.(json)) {
    const parsed = schema.safeParse(json);
    if (!parsed.success) return reject('schema', describeIssues(parsed.error), topic);
    data = parsed.data;
  }
  const msg = data as { hub: string; device?: string };
  if (msg.hub !== topic.hub) {
    return reject('topic_mismatch', `payload hub "${truncate(msg.hub, 60)}" differs from topic hub "${topic.hub}"`, topic);
  }
  if (topic.route === 'device' && msg.device !== topic.device) {
    return reject('topic_mismatch', `payload device "${truncate(String(msg.device), 60)}" differs from topic device "${topic.device}"`, topic);
  }
  return { ok: true, route: topic.route, topic, message: data } as ValidMessage;
}

function describeIssues(error: z.ZodError): string {
  const parts = error.issues.slice(0, 5).map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
  if (error.issues.length > 5) parts.push(`… and ${error.issues.length - 5} more`);
  return parts.join('; ');
}

function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

/**
 * Text for people and for a TEXT column: C0 control characters (U+0000 included, which PostgreSQL
 * refuses in TEXT) and DEL written as `\u00XX` escapes; tab, line feed and carriage return as `\t`,
 * `\n`, `\r`, so a detail stays on one line.
 */
export function printable(s: string): string {
  return s.replace(/[\u0000-\u001F\u007F]/g, (c) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
const ESCAPES: Record<string, string> = { '\t': '\\t', '\n': '\\n', '\r': '\\r' };
