import { Ajv2020 } from 'ajv/dist/2020.js';
import { z } from 'zod';
import { LOCKER_BANK_REFINEMENT, LockerTelemetry, lockerBankIssues } from './messages.ts';

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
 *    compiled only when its refinements are exactly the check objects registered in `WITH_REFINEMENT`
 *    (identity, not a count), beside the function those refinements only forward to (for locker
 *    telemetry, `lockerBankIssues`); any other refinement anywhere in a schema leaves it to zod alone;
 *  - only what JSON Schema states exactly is compiled: strict objects (zod strips unknown keys of a
 *    plain object, JSON Schema would pass them through), plain strings with length bounds and flagless
 *    patterns, numbers with bounds and the safe-integer format, arrays with length bounds, booleans,
 *    null, literals, enums, unions, records. A transform or overwrite (`.trim()`), a string format
 *    (`z.url()`, which Ajv here would not check), a pattern with flags: zod alone;
 *  - string lengths count code points, as zod (4.6) and JSON Schema both do, and patterns run without
 *    the `u` flag, as zod's regular expressions do (`unicodeRegExp: false`).
 */

type Check = (value: unknown) => boolean;

const ajv = new Ajv2020({ strict: false, allErrors: false, unicodeRegExp: false, validateFormats: false, logger: false });

/** Schemas compiled with their refinements' own check beside them: the refinement check objects, and the function they forward to. */
const WITH_REFINEMENT = new Map<z.ZodType, { refinements: readonly unknown[]; accepts: (value: never) => boolean }>([
  [LockerTelemetry, { refinements: [LOCKER_BANK_REFINEMENT], accepts: (m: { compartments: { id: string }[] }) => lockerBankIssues(m).length === 0 }],
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
  const expected = extra?.refinements ?? [];
  if (shape.refinements.length !== expected.length || !shape.refinements.every((r, i) => r === expected[i])) return null;
  let validate: Check;
  try {
    const { $schema: _, ...json } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'throw' }) as Record<string, unknown>;
    validate = ajv.compile(json) as Check;
  } catch {
    return null;
  }
  if (!extra) return validate;
  const accepts = extra.accepts as (value: unknown) => boolean;
  return (value) => validate(value) && accepts(value);
}

type Def = Record<string, unknown> & { type: string; checks?: { _zod: { def: Record<string, unknown> & { check: string } } }[] };

/** Checks JSON Schema states exactly (the rest — overwrite, string formats, custom — is not compiled or is a refinement). */
function representable(check: Record<string, unknown> & { check: string }): boolean {
  switch (check.check) {
    case 'less_than':
    case 'greater_than':
    case 'max_length':
    case 'min_length':
    case 'length_equals':
      return true;
    case 'number_format':
      return check.format === 'safeint';
    case 'string_format':
      return check.format === 'regex' && check.pattern instanceof RegExp && check.pattern.flags === '';
    default:
      return false;
  }
}

/** Walks a zod schema: the refinement checks anywhere in it (top level first), and whether all else is stated exactly by JSON Schema. */
function inspect(schema: z.ZodType): { compilable: boolean; refinements: unknown[] } {
  const refinements: unknown[] = [];
  let compilable = true;
  const visit = (s: unknown, top: boolean): void => {
    const def = (s as { _zod?: { def?: Def } })._zod?.def;
    if (!def) {
      compilable = false;
      return;
    }
    for (const c of def.checks ?? []) {
      if (c._zod.def.check === 'custom') {
        // A refinement counts only on the schema itself: one inside a field cannot be a registered one.
        if (top) refinements.push(c);
        else compilable = false;
      } else if (!representable(c._zod.def)) {
        compilable = false;
      }
    }
    switch (def.type) {
      case 'object': {
        const catchall = (def.catchall as { _zod?: { def?: Def } } | undefined)?._zod?.def;
        if (catchall?.type !== 'never') compilable = false; // not strict: zod strips unknown keys
        for (const v of Object.values(def.shape as Record<string, unknown>)) visit(v, false);
        return;
      }
      case 'array':
        return visit(def.element, false);
      case 'optional':
      case 'nullable':
        return visit(def.innerType, false);
      case 'union':
        for (const o of def.options as unknown[]) visit(o, false);
        return;
      case 'record':
        visit(def.keyType, false);
        return visit(def.valueType, false);
      case 'string':
        if (def.format !== undefined) compilable = false; // z.url(), z.email(), …
        return;
      case 'number':
        if (def.format !== undefined && def.format !== 'safeint') compilable = false;
        return;
      case 'boolean':
      case 'null':
      case 'literal':
      case 'enum':
        return;
      default:
        // pipe, transform, default, catch, lazy, custom, readonly, …: not compiled.
        compilable = false;
    }
  };
  visit(schema, true);
  return { compilable, refinements };
}
