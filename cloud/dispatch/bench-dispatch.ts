import os from 'node:os';
import { planDispatch, type DispatchInput } from './dispatch-engine.ts';
import { syntheticDispatch } from './synthetic-dispatch.ts';

/**
 * `npx tsx cloud/dispatch/bench-dispatch.ts`: time of one `planDispatch` call for 1,000 pending
 * orders × 200 drones × 50 hubs (median of 5 runs after three warm-ups), in normal and emergency mode,
 * plus a worst case where every drone and every order is at one hub. Options (env): BENCH_RUNS (5),
 * BENCH_ORDERS (1000), BENCH_DRONES (200), BENCH_HUBS (50).
 */
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const ORDERS = Number(process.env.BENCH_ORDERS ?? 1000);
const DRONES = Number(process.env.BENCH_DRONES ?? 200);
const HUBS = Number(process.env.BENCH_HUBS ?? 50);
const NOW = Date.UTC(2025, 0, 15, 3, 0, 0);

function bench(name: string, input: DispatchInput): void {
  for (let i = 0; i < 3; i++) planDispatch(input, NOW); // warm-up (JIT)
  const times: number[] = [];
  let stats = { drone: 0, ground: 0, wait: 0 };
  for (let i = 0; i < RUNS; i++) {
    const t0 = process.hrtime.bigint();
    stats = planDispatch(input, NOW).stats;
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)]!;
  console.log(
    `${name.padEnd(44)} median ${median.toFixed(1).padStart(7)} ms  (min ${times[0]!.toFixed(1)}, max ${times.at(-1)!.toFixed(1)})  ` +
      `→ ${stats.drone} drone, ${stats.ground} ground, ${stats.wait} wait`,
  );
}

console.log(`planDispatch on ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, median of ${RUNS} runs`);
const size = { hubs: HUBS, drones: DRONES, orders: ORDERS };
bench(`${ORDERS} orders × ${DRONES} drones × ${HUBS} hubs, normal`, syntheticDispatch(size, NOW));
bench(`${ORDERS} orders × ${DRONES} drones × ${HUBS} hubs, emergency`, syntheticDispatch({ ...size, mode: 'emergency' }, NOW));
bench(`${ORDERS} orders × ${DRONES} drones, all at one hub`, syntheticDispatch({ ...size, oneHub: true }, NOW));
bench(`${ORDERS * 10} orders × ${DRONES * 5} drones × ${HUBS * 4} hubs`, syntheticDispatch({ hubs: HUBS * 4, drones: DRONES * 5, orders: ORDERS * 10, sideM: 24_000 }, NOW));
