import { createMemoryTelemetryStore } from '../../cloud/telemetry/memory-telemetry-store.ts';
import { TelemetryStoreError, type TelemetryPoint, type TelemetryStore } from '../../cloud/telemetry/telemetry-store.ts';

/**
 * The telemetry store of ingest tests: the in-memory store (which passes the telemetry contract, and
 * so does this fake with no fault switched on — cloud/telemetry/memory-telemetry-store.test.ts) with
 * faults a test can switch on: unreachable (`setDown`), a write held until released
 * (`holdNextWrite`, `holdWritesOf`), points marked `poison` refused for good. `written` logs every
 * point every successful write was given, re-writes included.
 */
export function fakeTelemetryStore() {
  const inner = createMemoryTelemetryStore('fake');
  const written: TelemetryPoint[] = [];
  const held: (() => void)[] = [];
  let holdNext = false;
  let holdMeasurement: string | null = null;
  let down = false;
  let writes = 0;
  const store: TelemetryStore = {
    kind: 'fake',
    write: async (points) => {
      writes++;
      if (down) throw new Error('store unreachable');
      if (points.some((p) => JSON.stringify(p).includes('poison'))) throw new TelemetryStoreError('field type conflict', 'rejected');
      if (holdNext || (holdMeasurement !== null && points.some((p) => p.measurement === holdMeasurement))) {
        holdNext = false;
        await new Promise<void>((r) => held.push(r));
      }
      await inner.write(points);
      written.push(...points);
    },
    history: (q) => inner.history(q),
    messageIds: (hub, from, to) => inner.messageIds(hub, from, to),
    countPoints: (m, hub, from, to) => inner.countPoints(m, hub, from, to),
    close: () => inner.close(),
  };
  return {
    store, written, readStrings: inner.readStrings,
    writes: () => writes,
    setDown: (v: boolean) => (down = v),
    /** Holds the next write until `releaseHeld`. */
    holdNextWrite: () => (holdNext = true),
    /** Holds every write with points of the measurement until `releaseHeld` (and stops holding). */
    holdWritesOf: (measurement: string | null) => (holdMeasurement = measurement),
    releaseHeld: () => {
      holdMeasurement = null;
      held.splice(0).forEach((r) => r());
    },
  };
}
