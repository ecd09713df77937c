import { Session } from 'node:inspector/promises';
import net from 'node:net';
import { Aedes } from 'aedes';
import { serveWorker } from '../lib/procs.ts';

/**
 * A bare aedes 1.x broker (defaults, in-memory persistence, plain TCP) in its own process — the
 * reference for what an aedes connection costs before the cloud adds anything. `memory` runs a full
 * collection first (through an inspector session to itself, as the benchmark does for the cloud).
 */
export type BareAedesRequest = { op: 'start' } | { op: 'memory'; gc: boolean };

let server: net.Server | null = null;
let session: Session | null = null;

serveWorker<BareAedesRequest, unknown>(async (req) => {
  switch (req.op) {
    case 'start': {
      const aedes = await Aedes.createBroker();
      server = net.createServer((socket) => aedes.handle(socket));
      await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', () => resolve()));
      return { port: (server.address() as net.AddressInfo).port };
    }
    case 'memory': {
      // The same full collection the benchmark asks of the cloud through its inspector.
      if (req.gc) {
        session ??= new Session();
        session.connect();
        await session.post('HeapProfiler.collectGarbage');
        session.disconnect();
      }
      return process.memoryUsage();
    }
  }
});
