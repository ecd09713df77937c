import type { Logger } from '../shared/logger.ts';

/**
 * Health of the agent's disk storage (outbox and state databases) [issue 12]. A full disk makes
 * SQLite throw; every event boundary (timers, MQTT and socket handlers, HTTP) reports the error here
 * instead of letting it escape — an uncaught error would crash the agent, and a restart would meet
 * the same full disk (a crash loop). It is counted (`edge_storage_errors_total{where}`) and shown in
 * `GET /status` as `storage: { ok, errors, lastError, lastErrorAt }`; the next successful write marks
 * the storage ok again.
 */
export interface StorageStatus {
  ok: boolean;
  errors: number;
  lastError: string | null;
  lastErrorAt: number | null;
}

export class StorageHealth {
  private readonly s: StorageStatus = { ok: true, errors: 0, lastError: null, lastErrorAt: null };

  constructor(
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly count: (where: string) => void,
  ) {}

  get ok(): boolean {
    return this.s.ok;
  }

  /** A write at `where` failed. */
  failed(where: string, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    const code = (err as { code?: unknown })?.code;
    this.s.errors++;
    this.s.lastError = `${where}: ${typeof code === 'string' ? `${code} ` : ''}${message}`.slice(0, 500);
    this.s.lastErrorAt = this.now();
    if (this.s.ok) this.log.error({ err, where }, 'storage error: the agent keeps serving what it can; device messages are not acknowledged until it can write again');
    else this.log.debug({ err: message, where }, 'storage error');
    this.s.ok = false;
    this.count(where);
  }

  /** A write succeeded: the storage works (again). */
  succeeded(): void {
    if (!this.s.ok) this.log.warn({ errors: this.s.errors }, 'storage writable again');
    this.s.ok = true;
  }

  /** Runs `fn` at an event boundary: an error is reported, not thrown. */
  guard<T>(where: string, fn: () => T): T | undefined {
    try {
      return fn();
    } catch (err) {
      this.failed(where, err);
      return undefined;
    }
  }

  status(): StorageStatus {
    return { ...this.s };
  }
}
