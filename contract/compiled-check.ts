import { Ajv2020 } from 'ajv/dist/2020.js';
import { z } from 'zod';
import { LockerTelemetry, repeatedCompartments } from './messages.ts';

/**
 * Compiled checks of the message schemas for the hot path (issue 17): each zod schema is turned into
 * JSON Schema by zod itself (`z.toJSONSchema`) and compiled by Ajv into one function of plain
 * comparisons, instead of zod walking its schema objects for every message (validating benchmark 1's
 * mix, JSON.parse included: 4.45 → 2.8 µs a message in a loop). zod stays the one definition, and the one that explains a refusal: a
 * message the compiled check refuses is parsed by zod again (refusals are rare), so dead letters keep
 * zod's wording. `contract/compiled-check.test.ts` shows, by property tests, that the compiled check
 * and zod accept and refuse exactly the same messages.
 *
 * What JSON Schema cannot say is checked here or not compiled at all:
 *  - a refinement (`superRefine`, `refine`) is not in the JSON Schema zod writes. A schema with one is
 *    compiled only with its own check beside it (`WITH_REFINEMENT`, the same function the refinement
 *    calls), and only while it has exactly the refinements counted there; any other schema with one,
 *    or with a transform, is not compiled (zod alone, as before);
 *  - string lengths count code points, as zod (4.6) and JSON Schema both do, and patterns run without
 *    the `u` flag, as zod's regular expressions do (`unicodeRegExp: false`).
 */

type Check = (value: unknown) => boolean;

const ajv = new Ajv2020({ strict: false, allErrors: false, unicodeRegExp: false, validateFormats: false, logger: false });

/** Schemas compiled with a refinement beside them: how many refinements they have, and the check that stands for them. */
const WITH_REFINEMENT = new Map<z.ZodType, { refinements: number; check: (value: never) => boolean }>([
  [LockerTelemetry, { refinements: 1, check: (m: { compartments: { id: string }[] }) => repeatedCompartments(m.compartments).length === 0 }],
]);

const compiled = new WeakMap<z.ZodType, Check | null>();

/** The compiled check of `schema`, or null when it cannot be compiled faithfully (then use zod). */
export function compiledCheck(schema: z.ZodType): Check | null {
  let check = compiled.get(schema);
  if (check === undefined) {
    check = compile(schema);
    compiled.set(schema, check);
  }
  return check;
}

function compile(schema: z.ZodType): Check | null {
  const shape = inspect(schema);
  if (!shape.compilable) return null;
  const extra = WITH_REFINEMENT.get(schema);
  if (shape.refinements !== (extra?.refinements ?? 0)) return null;
  let validate: Check;
  try {
    const { $schema: _, ...json } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'throw' }) as Record<string, unknown>;
    validate = ajv.compile(json) as Check;
  } catch {
    return null;
  }
  if (!extra) return validate;
  const refined = extra.check as (value: unknown) => boolean;
  return (value) => validate(value) && refined(value);
}

/** Walks a zod schema: refinements anywhere in it, and whether it holds anything JSON Schema cannot state. */
function inspect(schema: z.ZodType): { compilable: boolean; refinements: number } {
  let refinements = 0;
  let compilable = true;
  const visit = (s: unknown): void => {
    const def = (s as { _zod?: { def?: Record<string, unknown> } })._zod?.def;
    if (!def) {
      compilable = false;
      return;
    }
    for (const c of (def.checks as { _zod: { def: { check: string } } }[] | undefined) ?? []) if (c._zod.def.check === 'custom') refinements++;
    switch (def.type) {
      case 'object':
        for (const v of Object.values(def.shape as Record<string, unknown>)) visit(v);
        if (def.catchall) visit(def.catchall);
        return;
      case 'array':
        return visit(def.element);
      case 'optional':
      case 'nullable':
      case 'readonly':
        return visit(def.innerType);
      case 'union':
        for (const o of def.options as unknown[]) visit(o);
        return;
      case 'record':
        visit(def.keyType);
        return visit(def.valueType);
      case 'string':
      case 'number':
      case 'boolean':
      case 'null':
      case 'literal':
      case 'enum':
      case 'never':
        return;
      default:
        // pipe, transform, default, catch, lazy, custom, …: not compiled.
        compilable = false;
    }
  };
  visit(schema);
  return { compilable, refinements };
}
