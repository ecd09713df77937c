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
 */
export function limitMqttFrames(
  stream: Duplex,
  maxBytes: number,
  onViolation: (reason: FrameViolation, announced: number) => void,
  packetTimeoutMs?: number,
): void {
  const s = new FrameScanner(maxBytes);
  const push = stream.push;
  let timer: NodeJS.Timeout | null = null;
  let timedPacket = -1;
  const stopTimer = () => {
    if (timer) clearTimeout(timer);
    timer = null;
  };
  const refuse = (violation: FrameViolation) => {
    stopTimer();
    onViolation(violation, s.announced);
    stream.push = push;
    stream.destroy();
  };
  if (packetTimeoutMs !== undefined) stream.once('close', stopTimer);
  stream.push = function limitedPush(this: Duplex, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk !== null && chunk !== undefined && Buffer.isBuffer(chunk)) {
      const violation = s.scan(chunk);
      if (violation) {
        refuse(violation);
        return false;
      }
      if (packetTimeoutMs !== undefined) {
        if (!s.midPacket) {
          stopTimer();
        } else if (timedPacket !== s.packetsStarted) {
          // A new packet began in this chunk: its clock starts now.
          stopTimer();
          timedPacket = s.packetsStarted;
          timer = setTimeout(() => refuse('stalled'), packetTimeoutMs);
          timer.unref();
        }
      }
    }
    return push.call(this, chunk, encoding);
  };
}

/** Follows packet boundaries across chunks, reading only fixed headers. */
export class FrameScanner {
  private state: 'type' | 'length' = 'type';
  private lengthMultiplier = 1;
  private lengthBytes = 0;
  private remaining = 0;
  /** The remaining length of the packet whose header is being read (or was refused). */
  announced = 0;
  /** Packets whose first byte has been seen. */
  packetsStarted = 0;

  constructor(private readonly maxBytes: number) {}

  /** Whether the last chunk ended inside a packet (its header or its body). */
  get midPacket(): boolean {
    return this.remaining > 0 || this.state === 'length';
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
      if (this.state === 'type') {
        i++;
        this.packetsStarted++;
        this.state = 'length';
        this.announced = 0;
        this.lengthMultiplier = 1;
        this.lengthBytes = 0;
        continue;
      }
      const byte = chunk[i++]!;
      this.announced += (byte & 0x7f) * this.lengthMultiplier;
      this.lengthMultiplier *= 128;
      this.lengthBytes++;
      if ((byte & 0x80) === 0) {
        if (this.announced > this.maxBytes) return 'oversized';
        this.remaining = this.announced;
        this.state = 'type';
      } else if (this.lengthBytes >= 4) {
        return 'malformed'; // [MQTT-2.2.3] at most four length bytes
      }
    }
    return null;
  }
}
