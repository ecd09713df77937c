import type { z } from 'zod';
import type { CommandAck } from '../../contract/index.ts';

/**
 * What a device model did with a command (contract `hub.command`). Pure data: the hub turns it
 * into a `hub.command-ack` and publishes the events before the acknowledgement.
 */
export interface CommandOutcome<E> {
  /** 'expired' and 'duplicate' are decided before a model sees the command (hub-devices.ts, edge agent). */
  result: Extract<CommandAck['result'], 'done' | 'rejected' | 'failed'>;
  /** Shown to people as text: why it was rejected, or what happened. */
  detail?: string;
  /** Events the command caused, in order. */
  events: E[];
  /** The device's reported state changed (a locker bank then reports at once). */
  changed: boolean;
}

export function done<E>(detail: string, events: E[] = [], changed = events.length > 0): CommandOutcome<E> {
  return { result: 'done', detail, events, changed };
}

export function rejected<E>(detail: string): CommandOutcome<E> {
  return { result: 'rejected', detail, events: [], changed: false };
}

export function failed<E>(detail: string): CommandOutcome<E> {
  return { result: 'failed', detail, events: [], changed: false };
}

/**
 * Checks a command's `args` against the schema of its command. The `hub.command` schema types `args`
 * only as a record of scalars; each command's arguments are published in contract/commands.ts and
 * checked by the device that takes it, here.
 */
export function parseArgs<T>(schema: z.ZodType<T>, args: unknown): { ok: true; args: T } | { ok: false; detail: string } {
  const result = schema.safeParse(args);
  if (result.success) return { ok: true, args: result.data };
  const problems = result.error.issues.slice(0, 3).map((i) => `args.${i.path.join('.') || '(root)'}: ${i.message}`);
  return { ok: false, detail: `invalid arguments: ${problems.join('; ')}` };
}
