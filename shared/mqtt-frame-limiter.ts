import type { Duplex } from 'node:stream';

// Shared by the cloud broker and the edge agent's local broker (edge must not import from cloud/).

export type FrameViolation = 'oversized' | 'malformed' | 'stalled';

/**
 * Closes an MQTT connection as soon as a packet header announces more than `maxBytes` of remaining
 * length, before the body is buffered. (aedes itself has no byte limit per packet; its docs recommend
 * a transport-level frame limit.) The MQTT fixed header is 1 type byte and a 1–4 byte variable-length
 * "remaining length" [MQTT-2.2.3].
 *
 * It looks at every chunk the transport pushes into the stream's read buffer (`push`, which net,
 * tls and ws' stream call with each chunk they read), so aedes reads the stream itself: no second
 * stream per connection. (A wrapping Duplex cost about 1 KB of heap per connection — 13 MB for a
 * national fleet — and a second buffer hop on every packet in and out; writes need nothing here, as
 * mqtt-packet corks the stream for the tick of every packet it writes.)
 *
 * `packetTimeoutMs`: a packet must arrive whole within this time of its first byte, else the
 * connection is closed ('stalled'). Without it a client could send the first bytes of a packet and
 * hold the connection (and aedes' parser state) open until keep-alive gave up — 1.5 × up to 1200 s
 * [MQTT-3.1.2-24] — since a partial packet resets nothing (issue 11). Time between packets is not
 * limited here; keep-alive covers idleness.
 *
 * What an idle connection keeps is one `FrameLimit` (its scanner state) on the stream, and the
 * stream's `push` replaced by one function shared by all: no closures or listeners per connection
 * (issue 17: each closure the TypeScript loader names cost ~330 bytes, a `once` listener ~150 — with
 * the listener arrays they grew, the limiter had cost ~1.1 KB per connected hub). A packet timer
 * exists only while a packet is incomplete; one still pending when its connection closes finds the
 * stream destroyed and does nothing.
 */
export function limitMqttFrames(
  stream: Duplex,
  maxBytes: number,
  onViolation: (reason: FrameViolation, announced: number) => void,
  packetTimeoutMs?: number,
): void {
  if (stream.push === limitedPush) throw new Error('limitMqttFrames: the stream is limited already');
  (stream as Limited)[limitOf] = new FrameLimit(stream.push, maxBytes, onViolation, packetTimeoutMs);
  stream.push = limitedPush;
}

const limitOf = Symbol('mqttFrameLimit');
type Limited = Duplex & { [limitOf]: FrameLimit };

/** The `push` of every limited stream: scans the chunk, then hands it to the stream's own `push`. */
function limitedPush(this: Limited, chunk: unknown, encoding?: BufferEncoding): boolean {
  const limit = this[limitOf];
  if (chunk !== null && chunk !== undefined && Buffer.isBuffer(chunk)) {
    const violation = limit.scan(chunk);
    if (violation) {
      refuse(this, violation);
      return false;
    }
    if (limit.packetTimeoutMs !== undefined) {
      if (!limit.midPacket) {
        stopTimer(limit);
      } else if (limit.timedPacket !== limit.packetsStarted) {
        // A new packet began in this chunk: its clock starts now.
        stopTimer(limit);
        limit.timedPacket = limit.packetsStarted;
        limit.timer = setTimeout(stalled, limit.packetTimeoutMs, this);
        limit.timer.unref();
      }
    }
  }
  return limit.push.call(this, chunk, encoding);
}

function stopTimer(limit: FrameLimit): void {
  if (limit.timer) clearTimeout(limit.timer);
  limit.timer = null;
}

function stalled(stream: Limited): void {
  stream[limitOf].timer = null;
  if (!stream.destroyed) refuse(stream, 'stalled');
}

function refuse(stream: Limited, violation: FrameViolation): void {
  const limit = stream[limitOf];
  stopTimer(limit);
  limit.onViolation(violation, limit.announced);
  stream.push = limit.push;
  stream.destroy();
}

/** Follows packet boundaries across chunks, reading only fixed headers. */
export class FrameScanner {
  /** Length bytes read of the header under way; -1 while the next byte starts a packet (its type byte). */
  private lengthBytes = -1;
  private remaining = 0;
  /** The remaining length of the packet whose header is being read (or was refused). */
  announced = 0;
  /** Packets whose first byte has been seen. */
  packetsStarted = 0;

  constructor(private readonly maxBytes: number) {}

  /** Whether the last chunk ended inside a packet (its header or its body). */
  get midPacket(): boolean {
    return this.remaining > 0 || this.lengthBytes >= 0;
  }

  /** Null while every header is within the limit. */
  scan(chunk: Buffer): 'oversized' | 'malformed' | null {
    let i = 0;
    while (i < chunk.length) {
      if (this.remaining > 0) {
        const skip = Math.min(this.remaining, chunk.length - i);
        i += skip;
        this.remaining -= skip;
        continue;
      }
      if (this.lengthBytes < 0) {
        i++;
        this.packetsStarted++;
        this.lengthBytes = 0;
        this.announced = 0;
        continue;
      }
      const byte = chunk[i++]!;
      this.announced += (byte & 0x7f) * LENGTH_MULTIPLIERS[this.lengthBytes]!;
      this.lengthBytes++;
      if ((byte & 0x80) === 0) {
        if (this.announced > this.maxBytes) return 'oversized';
        this.remaining = this.announced;
        this.lengthBytes = -1;
      } else if (this.lengthBytes >= 4) {
        return 'malformed'; // [MQTT-2.2.3] at most four length bytes
      }
    }
    return null;
  }
}

/** The weight of each remaining-length byte: 7 bits each, least significant first [MQTT-2.2.3]. */
const LENGTH_MULTIPLIERS = [1, 128, 128 ** 2, 128 ** 3] as const;

/** One limited connection: its scanner state, and what the shared `limitedPush` needs to act on it. */
class FrameLimit extends FrameScanner {
  timer: NodeJS.Timeout | null = null;
  /** The packet (count of packets started) whose clock `timer` runs for. */
  timedPacket = -1;

  constructor(
    /** The stream's own `push` (the transport's chunks go on to it). */
    readonly push: Duplex['push'],
    maxBytes: number,
    readonly onViolation: (reason: FrameViolation, announced: number) => void,
    readonly packetTimeoutMs: number | undefined,
  ) {
    super(maxBytes);
  }
}
