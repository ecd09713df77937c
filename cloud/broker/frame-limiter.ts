import { Duplex } from 'node:stream';

/**
 * Sits between a transport stream and the MQTT parser and closes the connection as soon as a packet
 * header announces more than `maxBytes` of remaining length, before the body is buffered. (aedes
 * itself has no byte limit per packet; its docs recommend a transport-level frame limit.)
 * The MQTT fixed header is 1 type byte and a 1–4 byte variable-length "remaining length" [MQTT-2.2.3].
 */
export class MqttFrameLimiter extends Duplex {
  private state: 'type' | 'length' = 'type';
  private lengthValue = 0;
  private lengthMultiplier = 1;
  private lengthBytes = 0;
  private remaining = 0;

  constructor(
    private readonly inner: Duplex,
    private readonly maxBytes: number,
    private readonly onViolation: (reason: 'oversized' | 'malformed', announced: number) => void,
  ) {
    super({ allowHalfOpen: false });
    inner.on('data', (chunk: Buffer) => {
      if (!this.inspect(chunk)) return;
      if (!this.push(chunk)) inner.pause();
    });
    inner.on('end', () => this.push(null));
    inner.on('error', (err) => this.destroy(err));
    inner.on('close', () => this.destroy());
  }

  /** Exposes the socket's address to whoever logs it. */
  get remoteAddress(): string | undefined {
    return (this.inner as { remoteAddress?: string }).remoteAddress;
  }

  private inspect(chunk: Buffer): boolean {
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
        this.state = 'length';
        this.lengthValue = 0;
        this.lengthMultiplier = 1;
        this.lengthBytes = 0;
        continue;
      }
      const byte = chunk[i++]!;
      this.lengthValue += (byte & 0x7f) * this.lengthMultiplier;
      this.lengthMultiplier *= 128;
      this.lengthBytes++;
      if ((byte & 0x80) === 0) {
        if (this.lengthValue > this.maxBytes) return this.violate('oversized', this.lengthValue);
        this.remaining = this.lengthValue;
        this.state = 'type';
      } else if (this.lengthBytes >= 4) {
        return this.violate('malformed', this.lengthValue); // [MQTT-2.2.3] at most four length bytes
      }
    }
    return true;
  }

  private violate(reason: 'oversized' | 'malformed', announced: number): false {
    this.onViolation(reason, announced);
    this.inner.destroy();
    this.destroy();
    return false;
  }

  override _read(): void {
    this.inner.resume();
  }

  /**
   * Coalesces everything written in one tick into one socket write: a group commit resolves hundreds
   * of publishes at once, and writing each 4-byte PUBACK separately costs a syscall apiece.
   */
  override _write(chunk: Buffer, encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (!this.corked) {
      this.corked = true;
      this.inner.cork();
      process.nextTick(() => {
        this.corked = false;
        this.inner.uncork();
      });
    }
    if (this.inner.write(chunk, encoding)) cb();
    else this.inner.once('drain', () => cb());
  }
  private corked = false;

  override _final(cb: (err?: Error | null) => void): void {
    this.inner.end(cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.inner.destroy(err ?? undefined);
    cb(err);
  }
}
