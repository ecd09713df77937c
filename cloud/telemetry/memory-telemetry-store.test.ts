import { fakeTelemetryStore } from '../../test/support/fake-telemetry-store.ts';
import { createMemoryTelemetryStore } from './memory-telemetry-store.ts';
import { describeTelemetryStoreContract } from './telemetry-store.contract.ts';

/** The fakes tests write telemetry to pass the same contract as the real stores (issue 14). */
describeTelemetryStoreContract('memory', async () => {
  const store = createMemoryTelemetryStore();
  return { store, readStrings: store.readStrings, cleanup: () => store.close() };
});

describeTelemetryStoreContract('the ingest tests\' fake, no fault switched on', async () => {
  const fake = fakeTelemetryStore();
  return { store: fake.store, readStrings: fake.readStrings, cleanup: () => fake.store.close() };
});
