import path from 'node:path';
import type { EventsReply, PublisherRequest, RunPlan, RunReply } from '../load/publisher.ts';
import { startWorker, type Worker } from './procs.ts';

const PUBLISHER = path.join(import.meta.dirname, '..', 'load', 'publisher.ts');

/** A publisher load generator (bench/load/publisher.ts) in its own process, with typed calls. */
export interface Publisher {
  pid: number;
  connect(o: { port: number; region: string; hubs: { id: string; username?: string; password?: string }[]; window?: number; clientPrefix: string }): Promise<void>;
  /**
   * Runs `seconds` of devices at `rate` messages/s in total; `onPlan` gets the schedule as the run
   * starts (to watch the store meanwhile). Resolves when everything is acknowledged or `drainSeconds`
   * after the end.
   */
  run(o: { rate: number; seconds: number; runId: string; drainSeconds?: number }, onPlan?: (plan: RunPlan) => void): Promise<RunReply>;
  flood(o: { seconds: number; runId: string }): Promise<RunReply>;
  events(o: { count: number; intervalMs: number; runId: string; hubIndex?: number }): Promise<EventsReply>;
  stop(): Promise<void>;
}

export function startPublisher(): Publisher {
  const w: Worker<PublisherRequest, unknown> = startWorker(PUBLISHER);
  let planListener: ((p: RunPlan) => void) | null = null;
  w.onMessage((m) => {
    const e = (m as { event?: { type: string; plan: RunPlan } }).event;
    if (e?.type === 'plan') planListener?.(e.plan);
  });
  return {
    pid: w.pid,
    async connect(o) {
      await w.call({ cmd: 'connect', host: '127.0.0.1', port: o.port, region: o.region, hubs: o.hubs, window: o.window ?? 500, clientPrefix: o.clientPrefix }, 120_000);
    },
    async run(o, onPlan) {
      planListener = onPlan ?? null;
      try {
        return (await w.call({ cmd: 'run', ...o }, (o.seconds + (o.drainSeconds ?? 10) + 30) * 1000)) as RunReply;
      } finally {
        planListener = null;
      }
    },
    async flood(o) {
      return (await w.call({ cmd: 'flood', ...o }, (o.seconds + 40) * 1000)) as RunReply;
    },
    async events(o) {
      return (await w.call({ cmd: 'events', ...o }, o.count * o.intervalMs + 30_000)) as EventsReply;
    },
    async stop() {
      await w.call({ cmd: 'close' }, 5_000).catch(() => undefined);
      await w.stop();
    },
  };
}
