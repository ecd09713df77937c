import { MESSAGE_REJECTIONS, validateUplinkMessage, type InvalidMessage, type ValidMessage } from '../../contract/index.ts';

/**
 * Decides what an inbound publish is: a valid contract message, or a rejection with a reason.
 * The contract's own checks (`validateUplinkMessage`, shared with the edge agent) plus the reasons
 * only the cloud can have. The reasons are a stable, documented list; metrics and the dead-letter
 * store are keyed by them.
 */
export const REJECTION_REASONS = [...MESSAGE_REJECTIONS, 'too_many_devices', 'store_rejected'] as const;
export type RejectionReason = (typeof REJECTION_REASONS)[number];

export type Accepted = ValidMessage;
export type Rejected = InvalidMessage;
export type Classified = Accepted | Rejected;

export function classifyPublish(topicName: string, payload: Buffer, maxPayloadBytes: number): Classified {
  return validateUplinkMessage(topicName, payload, maxPayloadBytes);
}
