import { z } from 'zod';
import { CompartmentId, DeviceId, HubId, MessageId, RegionId } from './ids.ts';

/**
 * The message contract, version 1. Every payload is JSON (UTF-8) with:
 *   v     — contract major version (always 1 here)
 *   type  — a literal naming the message
 *   id    — message id, unique per device of a hub (dedupe key together with the hub and device)
 *   ts    — device timestamp, Unix epoch milliseconds (UTC); the cloud refuses one more than
 *           INGEST_MAX_FUTURE_SKEW_S ahead of its own clock (`future_timestamp`)
 * Units are part of the field names (`_m`, `Mps`, `Pct`, `C`, …) and of each field's description.
 */
export const CONTRACT_VERSION = 1 as const;

const Version = z.literal(CONTRACT_VERSION).describe('Contract major version');
const Timestamp = z
  .number()
  .int()
  .min(1_577_836_800_000) // 2020-01-01: anything older is a device clock that was never set
  .max(4_102_444_800_000) // 2100-01-01
  .describe('Device timestamp, Unix epoch milliseconds (UTC)');
const Historical = z
  .boolean()
  .optional()
  .describe('true when the message is re-sent from a store-and-forward backlog: stored in history, never overwrites live state');
const Latitude = z.number().min(-90).max(90).describe('WGS84 latitude, degrees');
const Longitude = z.number().min(-180).max(180).describe('WGS84 longitude, degrees');
const Percent = z.number().min(0).max(100);
/**
 * Free text from a device or a person (details, reasons, ids a hub echoes): at most `max` characters
 * and no C0 control characters other than tab, line feed and carriage return. U+0000 in particular:
 * PostgreSQL refuses it in TEXT, so a message carrying one could be taken by the schema and then never
 * stored (issue 14); it is refused here, as a `schema` dead letter, on every database alike.
 */
export const FreeText = (max: number) =>
  z.string().max(max).regex(/^[^\u0000-\u0008\u000B\u000C\u000E-\u001F]*$/, 'control characters (U+0000–U+001F other than tab and line breaks) are not allowed');
const Severity = z.enum(['info', 'warning', 'critical']).describe('info: for the record; warning: someone should look; critical: act now');

function envelope<T extends string>(type: T) {
  return {
    v: Version,
    type: z.literal(type),
    id: MessageId,
    ts: Timestamp,
    hub: HubId.describe('Hub that publishes the message; must equal the <hub> topic level'),
    device: DeviceId.describe('Device the message is about; must equal the <device> topic level'),
    historical: Historical,
  };
}

// ---------------------------------------------------------------- drones

export const FlightState = z
  .enum(['idle', 'charging', 'armed', 'takeoff', 'mission', 'hover', 'rtl', 'landing', 'landed', 'fault'])
  .describe('Arming/navigation state (PX4 nav states mapped: mission, return-to-launch = rtl, land = landing)');

export const GeofenceResult = z
  .enum(['ok', 'warn', 'loiter', 'rtl', 'land'])
  .describe('Geofence check result and the action the autopilot took');

export const DroneTelemetry = z
  .object({
    ...envelope('drone.telemetry'),
    lat: Latitude,
    lon: Longitude,
    altM: z.number().min(-500).max(5000).describe('Altitude above take-off point, metres'),
    groundSpeedMps: z.number().min(0).max(100).describe('Ground speed, metres per second'),
    headingDeg: z.number().min(0).max(360).describe('Heading, degrees clockwise from true north'),
    batteryPct: Percent.describe('Battery remaining, percent'),
    batteryTimeRemainingS: z.number().int().min(0).max(86_400).describe('Estimated flight time remaining, seconds'),
    batteryVoltageV: z.number().min(0).max(100).optional().describe('Battery pack voltage, volts'),
    batteryTempC: z.number().min(-40).max(120).optional().describe('Battery temperature, °C'),
    flightState: FlightState,
    payloadKg: z.number().min(0).max(50).describe('Payload currently carried, kilograms'),
    remoteIdActive: z.boolean().describe('Remote ID broadcasting (mandatory for drones ≥ 100 g in Japan)'),
    geofence: GeofenceResult.optional(),
    failsafe: z.array(FreeText(32)).max(8).optional().describe('Active failsafe flags, e.g. ["battery_low"]'),
    missionId: FreeText(64).nullable().optional().describe('Mission the drone is flying, if any'),
  })
  .strict()
  .describe('Drone telemetry: position (≈1–5 Hz), system status and battery');

export const DroneEventName = z.enum([
  'armed',
  'takeoff',
  'landed',
  'mission_started',
  'mission_complete',
  'rtl',
  'battery_low',
  'geofence_breach',
  'failsafe',
  'fault',
]);

export const DroneEvent = z
  .object({
    ...envelope('drone.event'),
    event: DroneEventName,
    severity: Severity,
    missionId: FreeText(64).nullable().optional(),
    detail: FreeText(500).optional().describe('Free text from the device, shown to people as text'),
  })
  .strict()
  .describe('Something that happened to a drone');

// ---------------------------------------------------------------- lockers

export const CompartmentSize = z.enum(['S', 'M', 'L']).describe('Compartment size class');
export const TemperatureClass = z
  .enum(['ambient', 'chilled', 'frozen'])
  .describe('ambient; chilled ≤ 10 °C; frozen ≤ −15 °C');
export const CompartmentFault = z.enum(['none', 'jammed', 'sensor', 'tamper', 'power']);

export const Compartment = z
  .object({
    id: CompartmentId,
    size: CompartmentSize,
    tempClass: TemperatureClass,
    door: z.enum(['open', 'closed']),
    occupied: z.boolean().describe('A parcel is inside'),
    reservedFor: FreeText(64).nullable().describe('Order id the compartment is reserved for, or null'),
    tempC: z.number().min(-50).max(80).nullable().describe('Compartment temperature, °C (null when it has no sensor)'),
    fault: CompartmentFault,
  })
  .strict();

/**
 * Everything locker telemetry refuses beyond its shape: a bank names each compartment once. The zod
 * refinement below only forwards these issues, and the compiled check (compiled-check.ts) calls this
 * same function, so a rule added here holds on both; add rules here, not in the refinement.
 */
export function lockerBankIssues(msg: { compartments: readonly { id: string }[] }): { path: (string | number)[]; message: string }[] {
  return repeatedCompartments(msg.compartments).map((i) => ({ path: ['compartments', i, 'id'], message: `duplicate compartment id ${msg.compartments[i]!.id}` }));
}
export const LOCKER_BANK_REFINEMENT = z.superRefine((msg: { compartments: readonly { id: string }[] }, ctx) => {
  for (const issue of lockerBankIssues(msg)) ctx.addIssue({ code: 'custom', ...issue });
});

export const LockerTelemetry = z
  .object({
    ...envelope('locker.telemetry'),
    compartments: z.array(Compartment).min(1).max(64).describe('Every compartment of the locker bank'),
  })
  .strict()
  .check(LOCKER_BANK_REFINEMENT)
  .describe('Locker bank state: every compartment (typically every 10 s and on change)');

/** Positions of compartments whose id an earlier one of the list already has (a locker bank names each once). */
function repeatedCompartments(compartments: readonly { id: string }[]): number[] {
  const seen = new Set<string>();
  const repeated: number[] = [];
  for (let i = 0; i < compartments.length; i++) {
    const id = compartments[i]!.id;
    if (seen.has(id)) repeated.push(i);
    seen.add(id);
  }
  return repeated;
}

export const LockerEventName = z.enum([
  'door_opened',
  'door_closed',
  'door_open_too_long',
  'temperature_out_of_range',
  'parcel_loaded',
  'pickup',
  'pickup_code_rejected',
  'tamper',
  'fault',
]);

export const LockerEvent = z
  .object({
    ...envelope('locker.event'),
    event: LockerEventName,
    severity: Severity,
    compartment: CompartmentId,
    orderId: FreeText(64).nullable().optional(),
    /** Pickup code typed by the resident, for `pickup` events; the cloud checks it against the stored hash. */
    pickupCode: z.string().regex(/^[0-9]{4,8}$/).optional().describe('Code typed at the locker (pickup events)'),
    tempC: z.number().min(-50).max(80).optional(),
    detail: FreeText(500).optional(),
  })
  .strict()
  .describe('Something that happened at a locker compartment');

// ---------------------------------------------------------------- hub sensors

export const SensorTelemetry = z
  .object({
    ...envelope('sensor.telemetry'),
    windSpeedMps: z.number().min(0).max(100).describe('Mean wind speed, metres per second'),
    windGustMps: z.number().min(0).max(150).describe('Gust (max 3 s wind), metres per second'),
    windDirDeg: z.number().min(0).max(360).describe('Direction the wind blows FROM, degrees clockwise from true north'),
    rainMmPerH: z.number().min(0).max(500).describe('Rain rate, millimetres per hour'),
    airTempC: z.number().min(-50).max(60).describe('Air temperature, °C'),
    gridPowerUp: z.boolean().describe('Mains (grid) power present'),
    backupBatteryPct: Percent.describe('Hub backup battery, percent'),
    linkQualityPct: Percent.describe('Uplink quality (4G/LTE signal), percent'),
  })
  .strict()
  .describe('Hub weather, power and link sensors');

export const SensorEventName = z.enum(['wind_over_limit', 'wind_normal', 'grid_down', 'grid_restored', 'backup_low', 'link_degraded']);

export const SensorEvent = z
  .object({
    ...envelope('sensor.event'),
    event: SensorEventName,
    severity: Severity,
    value: z.number().min(-1_000_000).max(1_000_000).optional().describe('The reading that caused the event, in the unit of the related telemetry field'),
    detail: FreeText(500).optional(),
  })
  .strict()
  .describe('A threshold crossing at a hub sensor');

// ---------------------------------------------------------------- hub-level messages

export const HubStatus = z
  .object({
    v: Version,
    type: z.literal('hub.status'),
    hub: HubId,
    state: z.enum(['online', 'offline']).describe('"offline" is the MQTT last will, published by the broker when the link dies'),
    ts: Timestamp.describe('When the status was produced (for the last will: when it was registered at connect)'),
    agent: FreeText(64).optional().describe('Software and version of the hub gateway'),
    // Bounds far beyond any real hub (an outbox holds at most OUTBOX_MAX_MESSAGES, a few hundred
    // thousand; a backlog older than ten years is a clock error), so a status cannot put absurd
    // figures on the dashboards and gauges (issue 11).
    outboxDepth: z.number().int().min(0).max(1_000_000_000).optional().describe('Messages waiting at the hub to be sent'),
    oldestUnsentAgeS: z.number().min(0).max(315_576_000).optional().describe('Age of the oldest unsent message, seconds (at most ten years)'),
  })
  .strict()
  .describe('Hub link status (retained): birth "online" on connect, last will "offline"');

export const CommandName = z.enum(['locker.unlock', 'locker.reserve', 'locker.release', 'drone.mission', 'drone.abort', 'drone.rtl']);

export const Command = z
  .object({
    v: Version,
    type: z.literal('hub.command'),
    id: MessageId.describe('Command id; a hub executes a given id at most once'),
    ts: Timestamp.describe('When the cloud issued the command'),
    hub: HubId,
    device: DeviceId,
    command: CommandName,
    expiresAt: Timestamp.describe('The hub must not execute the command after this time (epoch ms)'),
    args: z.record(z.string(), z.union([FreeText(200), z.number(), z.boolean(), z.null()])).describe('Command arguments'),
  })
  .strict()
  .describe('A command from the cloud to one device at a hub');

export const CommandAck = z
  .object({
    v: Version,
    type: z.literal('hub.command-ack'),
    id: MessageId.describe('Message id of this acknowledgement'),
    ts: Timestamp,
    hub: HubId,
    device: DeviceId,
    commandId: MessageId.describe('Id of the command being acknowledged'),
    result: z.enum(['done', 'rejected', 'expired', 'failed', 'duplicate']),
    detail: FreeText(500).optional(),
    historical: Historical,
  })
  .strict()
  .describe('Result of a command, from the hub');

export const Mode = z.enum(['normal', 'emergency']).describe('normal, or emergency (災害モード)');

export const RegionMode = z
  .object({
    v: Version,
    type: z.literal('region.mode'),
    region: RegionId,
    version: z.number().int().min(1).describe('Monotonic version of the desired mode state'),
    ts: Timestamp,
    mode: Mode.describe('Mode for every hub of the region that is not listed in `hubs`'),
    hubs: z.record(HubId, Mode).describe('Per-hub overrides'),
    reason: FreeText(500).describe('Why (shown to hub staff as text)'),
  })
  .strict()
  .describe('Desired operating mode of a region (retained), published by the cloud');

export const ModeAck = z
  .object({
    v: Version,
    type: z.literal('hub.mode-ack'),
    id: MessageId,
    ts: Timestamp,
    hub: HubId,
    version: z.number().int().min(0).describe('Version of the region mode the hub applied'),
    mode: Mode.describe('Mode the hub is in now'),
    source: z.enum(['cloud', 'local']).describe('"local" when hub staff switched it while cut off'),
    reason: FreeText(500).optional(),
    historical: Historical,
  })
  .strict()
  .describe('The hub reports which mode it applied');

export const CloudAck = z
  .object({
    v: Version,
    type: z.literal('cloud.ack'),
    ts: Timestamp,
    hub: HubId,
    ackOf: MessageId.describe('Id of the hub message being acknowledged'),
    detail: FreeText(500).optional(),
  })
  .strict()
  .describe('An acknowledgement from the cloud to a hub (e.g. a reconciled local mode switch)');

export type DroneTelemetry = z.infer<typeof DroneTelemetry>;
export type DroneEvent = z.infer<typeof DroneEvent>;
export type LockerTelemetry = z.infer<typeof LockerTelemetry>;
export type LockerEvent = z.infer<typeof LockerEvent>;
export type Compartment = z.infer<typeof Compartment>;
export type SensorTelemetry = z.infer<typeof SensorTelemetry>;
export type SensorEvent = z.infer<typeof SensorEvent>;
export type HubStatus = z.infer<typeof HubStatus>;
export type Command = z.infer<typeof Command>;
export type CommandAck = z.infer<typeof CommandAck>;
export type RegionMode = z.infer<typeof RegionMode>;
export type ModeAck = z.infer<typeof ModeAck>;
export type CloudAck = z.infer<typeof CloudAck>;
export type FlightState = z.infer<typeof FlightState>;
export type Severity = z.infer<typeof Severity>;
export type Mode = z.infer<typeof Mode>;

/** Messages that hubs publish about a device. */
export type DeviceMessage = DroneTelemetry | DroneEvent | LockerTelemetry | LockerEvent | SensorTelemetry | SensorEvent;
