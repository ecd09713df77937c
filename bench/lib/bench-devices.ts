import { EXAMPLES } from '../../contract/index.ts';

/**
 * The devices the benchmark publisher plays at each hub of the synthetic bench region, shared by
 * the publisher (bench/load/publisher.ts) and the region file it publishes for
 * (bench/lib/bench-region.ts): the cloud refuses locker messages about banks or compartments the
 * region file does not declare (`unknown_compartment`, issue 11), so every bank and compartment the
 * publisher uses is declared there.
 */

/** Device kinds in order, repeated: d = drone, s = weather/power sensor set, l = locker bank (10 %). */
export const DEVICE_PATTERN = 'dsdsdsdsdlsdsdsdsdsl';
/** Devices per hub the region declares locker banks for (the ingest benchmark stays well below). */
export const MAX_BENCH_DEVICES_PER_HUB = 600;
/** Compartments of every telemetry locker bank. */
export const BANK_COMPARTMENTS = Array.from({ length: 16 }, (_, i) => `A${String(i + 1).padStart(2, '0')}`);

/** Locker bank state the publisher reports for each of BANK_COMPARTMENTS. */
const BANK_COMPARTMENT_STATES = BANK_COMPARTMENTS.map((id, i) => ({
  id, size: (['S', 'M', 'L'] as const)[i % 3], tempClass: (['ambient', 'chilled', 'frozen'] as const)[i % 3],
  door: 'closed', occupied: i % 2 === 0, reservedFor: null, tempC: [18, 5, -18][i % 3], fault: 'none',
}));

/** The contract's example payload of `name`. */
export const examplePayload = (name: string) => EXAMPLES.find((e) => e.name === name)!.payload as Record<string, unknown>;

/**
 * The telemetry message a bench device of kind `k` (DEVICE_PATTERN's letter) at `hub` sends, without
 * its id, device and ts: the publisher fills those per message, and so does the store-ceiling writer.
 */
export function benchTelemetry(k: 'd' | 's' | 'l', hub: string): Record<string, unknown> {
  if (k === 'd') return { ...examplePayload('drone.telemetry'), hub };
  if (k === 's') return { ...examplePayload('sensor.telemetry'), hub };
  return { ...examplePayload('locker.telemetry'), hub, compartments: BANK_COMPARTMENT_STATES };
}

/** The device id of slot `j` at a hub. */
export function benchDeviceId(j: number): string {
  const k = DEVICE_PATTERN[j % DEVICE_PATTERN.length];
  return `${k === 'd' ? 'drone' : k === 's' ? 'wx' : 'locker'}-${j}`;
}

/** Every locker bank the publisher may report for, per hub. */
export function benchLockerBanks(): string[] {
  const ids: string[] = [];
  for (let j = 0; j < MAX_BENCH_DEVICES_PER_HUB; j++) if (DEVICE_PATTERN[j % DEVICE_PATTERN.length] === 'l') ids.push(benchDeviceId(j));
  return ids;
}

/**
 * Alarm benchmark: the n-th alarm-raising event of a publisher process goes to its own (bank,
 * compartment), so each raises a new alarm — 20 banks of 64 compartments on the first hub.
 */
export const EVENT_BANKS = 20;
export const EVENT_COMPARTMENTS = 64;
export function eventTarget(n: number): { device: string; compartment: string } {
  if (n >= EVENT_BANKS * EVENT_COMPARTMENTS) throw new Error(`only ${EVENT_BANKS * EVENT_COMPARTMENTS} distinct event targets are declared`);
  return { device: `ev-${n % EVENT_BANKS}`, compartment: eventCompartment(Math.floor(n / EVENT_BANKS)) };
}
export const eventCompartment = (i: number) => `E${String(i + 1).padStart(2, '0')}`;
