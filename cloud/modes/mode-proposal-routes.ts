import { z } from 'zod';
import { FreeText, HubId } from '../../contract/index.ts';
import { actorOf } from '../accounts/access-hooks.ts';
import { errorResponses } from '../api/api-docs.ts';
import { ApiError } from '../api/api-errors.ts';
import type { ZodApp } from '../api/app.ts';
import { ModeError } from './mode-service.ts';
import { PROPOSAL_STATES, type ModeProposal, type ModeProposals } from './mode-proposals.ts';

/**
 * HTTP routes of mode proposals, a feature of the cloud API (`AppDeps.features`):
 *
 *   POST /api/v1/regions/:regionId/mode-proposals   an integration proposes emergency mode (201; 200 when already proposed)
 *   GET  /api/v1/regions/:regionId/mode-proposals   proposals, newest first
 *
 * A proposal never switches the mode: coordinators decide (POST /api/v1/regions/:regionId/mode).
 */
const Params = z.object({ regionId: z.string().max(64) });

const ProposalBody = z.object({
  id: z.string(),
  region: z.string(),
  source: z.string().describe('Who proposes, e.g. `jma` (the Node-RED hazard feed), as the sender names it'),
  by: z.string().nullable().describe('The account that sent it (null: stored before this was recorded)'),
  mode: z.literal('emergency'),
  reason: z.string(),
  hubs: z.array(z.string()).nullable().describe('null = the whole region'),
  evidence: z.record(z.string(), z.unknown()).describe('What the source saw, as it sent it (e.g. intensity, area, reportTime, eventId)'),
  eventId: z.string().nullable().describe('`evidence.eventId`; a second proposal from the same account with the same source and eventId returns the first'),
  state: z.enum(PROPOSAL_STATES),
  createdAt: z.string().describe('ISO 8601 (cloud clock)'),
});

/** Nesting of a proposal's evidence: a JMA bulletin's is 3–4 levels; 200,000 levels made the size check's JSON.stringify overflow the stack (a 500, found in review). */
const MAX_EVIDENCE_DEPTH = 16;

/** Whether `value` nests objects and arrays at most `max` levels deep (iteratively: no recursion to overflow). */
function nestedWithin(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth >= max) return false;
    for (const child of Object.values(v)) stack.push([child, depth + 1]);
  }
  return true;
}

const proposalBody = (p: ModeProposal): z.infer<typeof ProposalBody> => ({ ...p, createdAt: new Date(p.createdAt).toISOString() });

async function api<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    throw err instanceof ModeError ? new ApiError(err.code, err.message) : err;
  }
}

export function modeProposalRoutes(proposals: ModeProposals): (app: ZodApp) => void {
  return (app) => {
    app.post('/api/v1/regions/:regionId/mode-proposals', {
      schema: {
        operationId: 'proposeRegionMode', tags: ['modes'],
        summary: 'Propose emergency mode to the coordinators (never switches by itself)',
        description: 'Stores the proposal for coordinators to see. It does not change the desired mode: a coordinator decides and switches '
          + 'with POST /api/v1/regions/:regionId/mode. With `evidence.eventId`, a proposal is stored once per (sending account, source, eventId): a '
          + 'repeat answers 200 with the stored proposal. The sending account is recorded from the credential.',
        params: Params,
        body: z.object({
          source: z.string().trim().min(1).max(100),
          mode: z.literal('emergency'),
          reason: FreeText(500).trim().min(1).describe('Why; a coordinator may switch with it as the reason, so the same rule as a switch\'s reason'),
          hubs: z.array(HubId).min(1).max(1000).optional().describe('Hubs proposed; omit for the whole region'),
          evidence: z.record(z.string(), z.unknown()).optional()
            .refine((e) => e === undefined || nestedWithin(e, MAX_EVIDENCE_DEPTH), `evidence is nested more than ${MAX_EVIDENCE_DEPTH} levels deep`)
            .refine((e) => e === undefined || !nestedWithin(e, MAX_EVIDENCE_DEPTH) || JSON.stringify(e).length <= 8192, 'evidence is larger than 8 KiB'),
        }).strict(),
        response: {
          200: ProposalBody.describe('Already proposed by this account (same source and evidence.eventId): the stored proposal'),
          201: ProposalBody.describe('Stored'),
          ...errorResponses('hub_not_in_region', 'region_not_found'),
        },
      },
    }, async (req, reply) => {
      const { proposal, created } = await api(() => proposals.propose(req.params.regionId, { ...req.body, by: actorOf(req, undefined) }));
      return reply.code(created ? 201 : 200).send(proposalBody(proposal));
    });

    app.get('/api/v1/regions/:regionId/mode-proposals', {
      schema: {
        operationId: 'listRegionModeProposals', tags: ['modes'],
        summary: 'Mode proposals of the region, newest first',
        params: Params,
        querystring: z.object({
          state: z.enum(PROPOSAL_STATES).optional(),
          limit: z.coerce.number().int().min(1).max(500).default(100),
        }),
        response: { 200: z.object({ region: z.string(), proposals: z.array(ProposalBody) }), ...errorResponses('region_not_found') },
      },
    }, async (req) => ({
      region: req.params.regionId,
      proposals: (await api(() => proposals.list(req.params.regionId, req.query))).map(proposalBody),
    }));
  };
}
