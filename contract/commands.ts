import { z } from 'zod';
import { CompartmentId, HubId } from './ids.ts';
import type { CommandAck, CommandName } from './messages.ts';

type CommandNameValue = z.infer<typeof CommandName>;
import type { DeviceKind } from './topics.ts';

/**
 * What each `hub.command` asks of a device: its `args` and what its `hub.command-ack` means. The
 * `hub.command` schema types `args` only as a record of scalars (the hub relays commands it does not
 * interpret); a device checks the arguments of the commands it takes against these schemas and
 * answers `rejected` when they do not fit. The vendors' guide and the AsyncAPI document are generated
 * from here (scripts/generate-contract-docs.ts); the reference devices (simulators/devices) use them.
 */

const OrderId = z.string().min(1).max(64).describe('The cloud\'s order id');

export const LockerUnlockArgs = z
  .object({ compartment: CompartmentId.describe('The compartment whose door to open') })
  .describe('Arguments of `locker.unlock`');

export const LockerReserveArgs = z
  .object({
    compartment: CompartmentId.describe('The compartment to keep free for the order'),
    orderId: OrderId.describe('The order it is kept for; report it in the compartment\'s `orderId` (telemetry) and in its events'),
  })
  .describe('Arguments of `locker.reserve`');

export const LockerReleaseArgs = z
  .object({ compartment: CompartmentId.describe('The compartment whose reservation ends') })
  .describe('Arguments of `locker.release`');

/** JSON Schema: these properties are present (named in `properties` too, which strict validators such as Ajv's want). */
const present = (...names: string[]) => ({ required: names, properties: Object.fromEntries(names.map((n) => [n, {}])) });

export const DroneMissionArgs = z
  .object({
    to: HubId.optional().describe('Destination hub (its pad); give either `to`, or `site` with `siteLat` and `siteLon`'),
    site: z.string().min(1).max(40).optional().describe('Or a registered landing site (shelter, isolated settlement) by id'),
    siteLat: z.number().min(-90).max(90).optional().describe('Latitude of `site`, WGS 84 degrees'),
    siteLon: z.number().min(-180).max(180).optional().describe('Longitude of `site`, WGS 84 degrees'),
    payloadKg: z.number().min(0).default(0).describe('Mass of the parcel on board, kilograms; default 0'),
    missionId: z.string().min(1).max(64).optional().describe('The cloud\'s mission id: report it in `missionId` of drone telemetry while flying it, so the flight can be tracked to its order'),
  })
  .refine((a) => a.to !== undefined || (a.site !== undefined && a.siteLat !== undefined && a.siteLon !== undefined), {
    message: 'either `to` (a hub) or `site` with `siteLat` and `siteLon`',
  })
  // The refine, as JSON Schema for the published documents (commands.test.ts checks that both agree).
  .meta({
    description: 'Arguments of `drone.mission`: either `to`, or `site` with `siteLat` and `siteLon`',
    anyOf: [present('to'), present('site', 'siteLat', 'siteLon')],
  });

export const DroneAbortArgs = z
  .object({ reason: z.string().max(200).optional().describe('Why, for people (e.g. the order was cancelled); the drone need not act on it') })
  .describe('Arguments of `drone.abort`');

export const DroneRtlArgs = z.object({}).describe('`drone.rtl` takes no arguments');

export interface CommandSpec {
  /** The kind of device that takes it (`locker.*` → locker, `drone.*` → drone). */
  kind: DeviceKind;
  /** What the device does. */
  does: string;
  /** Who sends it and when. */
  sentWhen: string;
  args: z.ZodType;
  /** What `done` means for this command. */
  done: string;
  /** When the device answers `rejected` (and `failed`, where it can). */
  refused: string;
  /** Device events that follow, if any. */
  events: string;
}

export const COMMANDS: Readonly<Record<CommandNameValue, CommandSpec>> = {
  'locker.unlock': {
    kind: 'locker', args: LockerUnlockArgs,
    does: 'Opens the door of one compartment. Nothing about its contents changes: the door closes again as any door does.',
    sentWhen: 'Staff or a coordinator unlock a compartment that wrong pickup codes locked (the order keeps a new pickup code), or an operator sends it.',
    done: 'The door opened, or was already open.',
    refused: '`rejected`: the locker has no such compartment, or the arguments do not fit. `failed`: the compartment is faulted and the door did not open.',
    events: '`door_opened` for the compartment (then `door_closed` when it shuts).',
  },
  'locker.reserve': {
    kind: 'locker', args: LockerReserveArgs,
    does: 'Keeps an empty compartment free for an order until the parcel is loaded or the reservation is released.',
    sentWhen: 'The cloud assigns an order to this locker (dispatch), before the drone or ground round leaves.',
    done: 'The compartment is reserved for the order (also when it already was, for this same order).',
    refused: '`rejected`: no such compartment, it is faulted, reserved for another order, or holds a parcel; or the arguments do not fit. The cloud then plans the order again.',
    events: 'None; the next `locker.telemetry` shows the compartment reserved.',
  },
  'locker.release': {
    kind: 'locker', args: LockerReleaseArgs,
    does: 'Ends a compartment\'s reservation.',
    sentWhen: 'An order is cancelled, fails, or is planned again elsewhere, or its parcel was picked up.',
    done: 'The compartment is not reserved any more (also when it was not reserved).',
    refused: '`rejected`: no such compartment, or the arguments do not fit.',
    events: 'None; the next `locker.telemetry` shows the compartment free.',
  },
  'drone.mission': {
    kind: 'drone', args: DroneMissionArgs,
    does: 'Flies the parcel on board from the drone\'s home hub to another hub or a registered landing site, and back home.',
    sentWhen: 'The cloud assigns an order to this drone (dispatch).',
    done: 'The mission started: the drone is arming. The flight itself is followed in telemetry (`missionId`, `flightState`) and events.',
    refused: '`rejected`: busy with another mission, not on its home pad, unknown destination, payload over the maximum, out of range or battery too low for the leg with its reserve, or the arguments do not fit. The cloud then plans the order again.',
    events: '`armed`, `takeoff`, `landed`, `mission_started`, `mission_complete` as the flight goes.',
  },
  'drone.abort': {
    kind: 'drone', args: DroneAbortArgs,
    does: 'Ends the mission as soon as possible: not yet airborne, it disarms and unloads; in the air, it lands at the nearest hub (then flies home when charged).',
    sentWhen: 'An order assigned to the drone is cancelled, planned again or given up before the drone is seen flying it.',
    done: 'The drone is ending the mission (or had none to end; `detail` says which).',
    refused: 'Never refused by a drone that is flying or on the ground (`rejected` when sent to another kind of device).',
    events: '`rtl` when a mission is called off before take-off; `landed` where it lands.',
  },
  'drone.rtl': {
    kind: 'drone', args: DroneRtlArgs,
    does: 'Returns to the home hub now; on the ground elsewhere, as soon as the battery covers the way home. The mission is cancelled, not completed.',
    sentWhen: 'An operator or coordinator calls the drone home (POST /api/v1/hubs/{hubId}/commands).',
    done: 'The drone is returning (or had no mission; `detail` says which).',
    refused: 'Never refused by a drone that is flying or on the ground (`rejected` when sent to another kind of device).',
    events: '`rtl`, then `landed` at home.',
  },
};

/** What each `result` of a `hub.command-ack` means, whichever the command. */
export const COMMAND_RESULTS: Readonly<Record<CommandAck['result'], string>> = {
  done: 'The device did what the command asks (see each command).',
  rejected: 'The device would not do it: its arguments do not fit, or its state does not allow it. `detail` says why. The device did nothing.',
  expired: 'It reached the hub or the device after `expiresAt`; nothing was done.',
  failed: 'The device tried and could not, or did not answer in time (the hub answers for it); `detail` says which. A late answer from the device (`done`/`rejected`) then replaces a hub\'s no-answer `failed`.',
  duplicate: 'The hub had already received this command `id`; it was not executed again. `detail` gives the first outcome.',
};
