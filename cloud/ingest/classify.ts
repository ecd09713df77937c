import { MESSAGE_REJECTIONS, validateUplinkMessage, type InvalidMessage, type ValidMessage } from '../../contract/index.ts';

/**
 * Decides what an inbound publish is: a valid contract message, or a rejection with a reason.
 * The contract's own checks (`validateUplinkMessage`, shared with the edge agent) plus the reasons
 * only the cloud can have. The reasons are a stable, documented list; metrics and the dead-letter
 * store are keyed by them.
 */
export const REJECTION_REASONS = [
  ...MESSAGE_REJECTIONS,
  'too_many_devices',
  'store_rejected',
  // Values checked against what the cloud knows (issue 11):
  /** The device timestamp is more than INGEST_MAX_FUTURE_SKEW_S ahead of the cloud's clock. */
  'future_timestamp',
  /** A `hub.mode-ack` for a mode version the cloud never issued for the region. */
  'unknown_mode_version',
  /** A locker message about a compartment the region file does not give that locker bank. */
  'unknown_compartment',
] as const;
export type RejectionReason = (typeof REJECTION_REASONS)[number];

export type Accepted = ValidMessage;
export type Rejected = InvalidMessage;
export type Classified = Accepted | Rejected;

export function classifyPublish(topicName: string, payload: Buffer, maxPayloadBytes: number): Classified {
  return validateUplinkMessage(topicName, payload, maxPayloadBytes);
}
