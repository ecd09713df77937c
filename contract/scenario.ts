import { z } from 'zod';

/**
 * Scenario files (issue 16): a region, a duration and a timeline of what happens to it — weather,
 * an earthquake bulletin, cut links, power loss, isolated settlements, demand, a coordinator's actions
 * and fleet changes. The same file drives planning mode (`npm run scenario`, a virtual clock over the
 * production decision code) and drill mode (`npm run drill`, the real system in real or scaled time).
 *
 * Times in a scenario are offsets from its start: "90m", "1h30m", "36h", "45s" or plain seconds.
 * Hub, site and drone ids must exist in the region file (checked once the region is loaded:
 * `checkScenarioAgainstRegion` in planning/scenario-file.ts names every bad reference).
 */

/** An offset from the scenario's start: "36h", "1h30m", "90m", "45s", or a number of seconds. */
export const Offset = z
  .union([
    z.number().int().min(0).max(30 * 86_400),
    // The lookahead refuses "" in the generated JSON Schema too (a refine would not be carried there).
    z.string().regex(/^(?=\d)(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?$/, 'an offset such as "36h", "1h30m", "90m" or "45s"'),
  ])
  .describe('Offset from the scenario start: "36h", "1h30m", "90m", "45s", or seconds');

/** Seconds of an offset (validated by `Offset`). */
export function offsetS(o: z.infer<typeof Offset>): number {
  if (typeof o === 'number') return o;
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(o)!;
  return Number(m[1] ?? 0) * 86_400 + Number(m[2] ?? 0) * 3_600 + Number(m[3] ?? 0) * 60 + Number(m[4] ?? 0);
}

const Id = z.string().regex(/^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$/, 'a lower-case id (a–z, 0–9, -)');
const DroneId = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'a device id');
/** Hubs an event applies to: a list of hub ids, or "all". */
const Hubs = z.union([z.literal('all'), z.array(Id).min(1)]).describe('Hub ids, or "all"');

/** One point of a weather profile; values between points are interpolated linearly. */
const WeatherPoint = z
  .object({
    at: Offset,
    windMps: z.number().min(0).max(80).describe('10-minute mean wind, m/s'),
    gustMps: z.number().min(0).max(100).optional().describe('Gust, m/s (default 1.4 × wind)'),
    rainMmPerH: z.number().min(0).max(300).default(0),
  })
  .strict();

export const ScenarioEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('weather'), hubs: Hubs, profile: z.array(WeatherPoint).min(1) }).strict().describe('Wind and rain at hubs over time (a typhoon)'),
  z
    .object({
      type: z.literal('earthquake'),
      at: Offset,
      bulletin: z.string().min(1).describe('A JMA seismology bulletin (XML) relative to the scenario file, mapped to a proposal the way the Node-RED flow maps it'),
      areaCodes: z.array(z.string().regex(/^\d{2,4}$/)).min(1).describe('The region\'s JMA area codes (the flow\'s HAZARD_AREA_CODES)'),
      minIntensity: z.enum(['1', '2', '3', '4', '5-', '5+', '6-', '6+', '7']).default('5-').describe('The flow\'s HAZARD_MIN_INTENSITY'),
    })
    .strict(),
  z.object({ type: z.literal('link'), at: Offset, hubs: Hubs, state: z.enum(['cut', 'restored']) }).strict().describe('The hub\'s link to the cloud'),
  z
    .object({
      type: z.literal('power'),
      at: Offset,
      hubs: Hubs,
      state: z.enum(['lost', 'restored']),
      backupDrainPctPerH: z.number().min(0).max(100).default(8).describe('Backup battery drain while the grid is down; at 0 % the hub goes dark'),
    })
    .strict(),
  z.object({ type: z.literal('isolation'), at: Offset, sites: z.array(Id).min(1), state: z.enum(['isolated', 'reachable']) }).strict().describe('Settlements cut off by road, and reachable again'),
  z
    .object({
      type: z.literal('demand'),
      from: Offset,
      until: Offset,
      kind: z.enum(['normal', 'relief', 'medical']),
      /** Normal orders: origin hubs; relief/medical: the sites (shelters, settlements) asking. */
      hubs: Hubs.optional(),
      sites: z.array(Id).min(1).optional(),
      destinations: z
        .array(Id)
        .min(1)
        .optional()
        .describe('Normal orders: the hubs whose lockers they go to, drawn uniformly (default: every other hub with lockers) — a depot serves the halls it can reach'),
      perHour: z.number().min(0).max(1000).describe('Mean requests per hour per hub (normal) or per site (relief, medical); arrivals are Poisson'),
      weightKg: z.tuple([z.number().positive().max(50), z.number().positive().max(50)]).default([0.5, 3]).describe('Uniform weight range'),
      tempClass: z.enum(['ambient', 'chilled', 'frozen']).default('ambient'),
      deadlineMin: z.number().int().positive().max(7 * 24 * 60).optional().describe('On time if delivered within this many minutes of the request'),
    })
    .strict()
    // Each problem on the key that is wrong, so the message names it (`events[3].hubs`).
    .superRefine((d, ctx) => {
      if (d.kind === 'normal') {
        if (d.sites !== undefined) ctx.addIssue({ code: 'custom', path: ['sites'], message: 'normal demand starts at hubs: name them in "hubs" (or "all"), not "sites"' });
        return;
      }
      if (d.destinations !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['destinations'], message: `${d.kind} demand goes to the asking sites: "destinations" is for normal orders only` });
      }
      if (d.hubs !== undefined) ctx.addIssue({ code: 'custom', path: ['hubs'], message: `${d.kind} demand comes from shelters and settlements: name their landing sites in "sites", not hubs` });
      if (d.sites === undefined) ctx.addIssue({ code: 'custom', path: ['sites'], message: `${d.kind} demand needs "sites": the landing sites (shelters, settlements) asking` });
    }),
  z.object({ type: z.literal('coordinator'), at: Offset, action: z.enum(['emergency', 'normal']), hubs: Hubs.default('all'), reason: z.string().min(1).max(200).default('scenario') }).strict().describe('A coordinator switches mode'),
  z
    .object({
      type: z.literal('fleet'),
      at: Offset,
      hub: Id,
      drones: z.array(DroneId).min(1).optional().describe('Default: every drone of the hub'),
      state: z.enum(['out_of_service', 'in_service']),
    })
    .strict()
    .describe('Drones taken out of service, and back'),
]);

/** What the coordinator does when the scenario does not say (planning mode; drill mode leaves it to people). */
export const CoordinatorPolicy = z
  .object({
    acceptProposalsAfterMin: z.number().min(0).max(24 * 60).nullable().default(10).describe('Switch to emergency this long after a proposal (null: never)'),
    normalWhenClearAfterMin: z.number().min(0).max(7 * 24 * 60).nullable().default(null).describe('Back to normal once no link is cut, no settlement isolated and no hub without power for this long (null: never)'),
  })
  .strict();

export const ScenarioFile = z
  .object({
    $schema: z.string().optional(),
    id: Id.describe('Scenario id, e.g. "typhoon-day" (lower-case letters, digits, -)'),
    name: z.object({ ja: z.string().min(1).max(100), en: z.string().min(1).max(100) }).strict().describe('Name in Japanese and English, shown in the report'),
    description: z.object({ ja: z.string().max(2000), en: z.string().max(2000) }).strict().optional().describe('What happens, in Japanese and English'),
    region: z.string().min(1).describe('Region file, relative to the scenario file'),
    start: z.iso.datetime({ offset: true }).describe('Scenario start (wall time, with offset, e.g. 2026-09-01T06:00:00+09:00)'),
    duration: Offset,
    seed: z.number().int().min(0).max(2 ** 31 - 1).default(1).describe('Random seed of demand arrivals and weights (--seed wins): same seed, same run'),
    fleet: z
      .object({
        dronesPerHub: z.number().int().min(0).max(20).optional().describe('Override: this many drones at each drone hub (--drones-per-hub wins)'),
        droneHubs: z.array(Id).min(1).optional().describe('Hubs that station drones (default: those with drones in the region file)'),
      })
      .strict()
      .default({}),
    coordinator: CoordinatorPolicy.default({ acceptProposalsAfterMin: 10, normalWhenClearAfterMin: null }),
    events: z.array(ScenarioEvent).max(10_000).describe('The timeline, in any order: weather, earthquake, link, power, isolation, demand, coordinator and fleet events'),
  })
  .strict();

/**
 * The JSON Schema of a scenario file (draft-07, input side: defaults optional), for editors: shipped as
 * scenarios/scenario.schema.json (`$schema` in each scenario points to it) and kept current by a test.
 */
export function scenarioJsonSchema(): Record<string, unknown> {
  const { $schema, ...rest } = z.toJSONSchema(ScenarioFile, { target: 'draft-07', io: 'input' }) as Record<string, unknown>;
  return {
    $schema,
    title: 'Scenario file (issue 16)',
    description: 'A region, a duration and a timeline of events for planning mode (npm run scenario) and drill mode (npm run drill). Generated from contract/scenario.ts; do not edit.',
    ...rest,
  };
}

export type ScenarioFile = z.infer<typeof ScenarioFile>;
export type ScenarioEvent = z.infer<typeof ScenarioEvent>;
export type CoordinatorPolicy = z.infer<typeof CoordinatorPolicy>;
