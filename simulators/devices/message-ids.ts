import { MessageId } from '../../contract/index.ts';

/**
 * Message ids, unique per hub across restarts (the cloud deduplicates by (hub, id)):
 *   `<device>-<boot>-<seq>`
 * where <boot> is the start time in base 36 plus random characters (a restart gets a new boot id,
 * even within the same millisecond) and <seq> counts every message of the hub. The counter is per
 * hub, so ids stay unique even when a long device id has to be shortened to fit the 64-character
 * limit of the MessageId schema.
 */
export function createBootId(startMs: number, random: () => number): string {
  let suffix = '';
  for (let i = 0; i < 4; i++) suffix += Math.floor(random() * 36).toString(36);
  return `${Math.floor(startMs).toString(36)}${suffix}`;
}

export class MessageIds {
  private seq = 0;

  constructor(readonly bootId: string) {
    if (!/^[a-z0-9]{1,20}$/.test(bootId)) throw new Error(`boot id must be 1–20 lower-case letters or digits, got "${bootId}"`);
  }

  next(device: string): string {
    this.seq += 1;
    const tail = `-${this.bootId}-${this.seq}`;
    return `${device.slice(0, MAX_ID_LENGTH - tail.length)}${tail}`;
  }

  /** Messages numbered so far (for tests and stats). */
  get count(): number {
    return this.seq;
  }
}

const MAX_ID_LENGTH = MessageId.maxLength ?? 64;
