import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { compiledCheck } from './compiled-check.ts';
import { LockerTelemetry } from './messages.ts';
import { EXAMPLES } from './examples.ts';
import { schemaForTopic, type ParsedTopic } from './topics.ts';
import { validateUplinkMessage } from './validate-message.ts';

// Every hub-to-cloud schema, with its contract example as the starting point for mutations.
const UPLINK = EXAMPLES.filter((e) => ['device', 'status', 'cmd-ack', 'mode-ack'].includes(e.topic.route));
const schemaOf = (t: ParsedTopic) => schemaForTopic(t) as z.ZodType;

// Values that sit on or just past the schemas' edges: lengths in UTF-16 units and code points, control
// characters, lone surrogates, slugs, timestamps and integers around their bounds, wrong types.
const EDGE_STRINGS = [
  '', 'a', 'A03', 'drone-1', 'nomi-terai', '-a', 'a-', 'x'.repeat(40), 'x'.repeat(41), 'x'.repeat(64), 'x'.repeat(65),
  'ok\u0000', 'tab\there', 'line\nbreak', 'bell\u0007', '\u001F', 'del\u007F', '\uD83D', '\uDE00x', '😀'.repeat(250), '😀'.repeat(251),
  'é'.repeat(500), 'é'.repeat(501), '1234', '123', '123456789', 'normal', 'emergency', 'online', 'idle', 'S', 'ambient', 'none', 'closed',
  'info', 'critical', 'done', 'cloud', 'local', 'drone.telemetry', 'hub.status', '__proto__', 'constructor', 'a.b:c_d-e',
];
const EDGE_NUMBERS = [
  0, -0, 1, -1, 0.5, 1.5, 100, 100.0001, -90, 90, 90.0001, -180.5, 360, 361, 5000, -500, -501, 86_400, 86_401, 1e9, 1e9 + 1,
  1_577_836_800_000, 1_577_836_799_999, 4_102_444_800_000, 4_102_444_800_001, 1_700_000_000_000.5, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, 1e300, -1e300, 5e-324,
];
const leaf = fc.oneof(
  fc.constantFrom(...EDGE_STRINGS), fc.constantFrom(...EDGE_NUMBERS), fc.boolean(), fc.constant(null),
  fc.string({ unit: 'binary', maxLength: 80 }), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer(),
);
const jsonValue = fc.oneof({ depthSize: 'small', maxDepth: 2 }, leaf, fc.array(leaf, { maxLength: 4 }), fc.dictionary(fc.constantFrom('id', 'x', 'size', 'door'), leaf, { maxKeys: 3 }));

type Json = Record<string, unknown>;
const clone = (v: Json): Json => JSON.parse(JSON.stringify(v)) as Json;

/** One change to a message: a field set, removed or added, or (lockers) a compartment changed, repeated or dropped. */
const mutation = fc.oneof(
  fc.record({ op: fc.constant('set' as const), key: fc.nat(), value: jsonValue }),
  fc.record({ op: fc.constant('delete' as const), key: fc.nat() }),
  fc.record({ op: fc.constant('add' as const), name: fc.nat(), value: jsonValue }),
  fc.record({ op: fc.constant('compartment' as const), index: fc.nat(), key: fc.nat(), value: jsonValue }),
  fc.record({ op: fc.constant('repeat' as const), index: fc.nat() }),
  fc.record({ op: fc.constant('compartments' as const), count: fc.constantFrom(0, 1, 2, 64, 65) }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

// Names a mutation may add: the schema's own fields (optional ones included) and some it does not have.
const names = new Map<z.ZodType, string[]>();
const namesOf = (schema: z.ZodType) => {
  let n = names.get(schema);
  if (!n) names.set(schema, (n = [...Object.keys((z.toJSONSchema(schema, { io: 'input' }).properties ?? {}) as object), 'extra', '__proto__', 'Hub']));
  return n;
};

function apply(base: Json, muts: Mutation[], names: readonly string[]): Json {
  const m = clone(base);
  for (const mu of muts) {
    const keys = Object.keys(m);
    const comps = Array.isArray(m.compartments) ? (m.compartments as Json[]) : null;
    switch (mu.op) {
      case 'set': m[keys[mu.key % keys.length]!] = mu.value; break;
      case 'delete': delete m[keys[mu.key % keys.length]!]; break;
      case 'add': Object.defineProperty(m, names[mu.name % names.length]!, { value: mu.value, enumerable: true, writable: true, configurable: true }); break;
      case 'compartment':
        if (comps?.length && typeof comps[mu.index % comps.length] === 'object' && comps[mu.index % comps.length] !== null) {
          const c = comps[mu.index % comps.length]!;
          const ck = Object.keys(c);
          c[ck[mu.key % ck.length] ?? 'id'] = mu.value;
        }
        break;
      case 'repeat': if (comps?.length) comps.push(clone(comps[mu.index % comps.length]!)); break;
      case 'compartments':
        if (comps?.length) m.compartments = Array.from({ length: mu.count }, (_, i) => ({ ...comps[0], id: `B${i}` }));
        break;
    }
  }
  // Through JSON, as a payload arrives (an own "__proto__" key stays a key).
  return JSON.parse(JSON.stringify(m)) as Json;
}

describe('compiled checks of the message schemas (issue 17)', () => {
  it('compiles every hub-to-cloud schema (none falls back to zod alone)', () => {
    expect(UPLINK.length).toBeGreaterThanOrEqual(9);
    for (const e of UPLINK) expect(compiledCheck(schemaOf(e.topic)), e.name).not.toBeNull();
  });

  it('accepts and refuses exactly the messages zod accepts and refuses (mutated contract examples)', () => {
    let accepted = 0;
    let refused = 0;
    fc.assert(
      fc.property(fc.constantFrom(...UPLINK), fc.array(mutation, { minLength: 0, maxLength: 4 }), (example, muts) => {
        const schema = schemaOf(example.topic);
        const message = apply(example.payload, muts, namesOf(schema));
        const zodSays = schema.safeParse(message).success;
        expect(compiledCheck(schema)!(message)).toBe(zodSays);
        if (zodSays) accepted++;
        else refused++;
      }),
      { numRuns: 20_000, seed: 17 },
    );
    // Both sides of the boundary were exercised, not just refusals.
    expect(accepted).toBeGreaterThan(2_000);
    expect(refused).toBeGreaterThan(2_000);
  });

  it('agrees with zod on strings at the length and character bounds of every field', () => {
    // A unit (one or two UTF-16 units, a control character, a lone surrogate) repeated to just under, at
    // and just over the bounds the schemas use, with an optional different first character.
    const units = fc.constantFrom('x', 'A', '1', '-', 'é', '😀', '\u0000', '\u0007', '\t', '\uD83D', '\u007F');
    const counts = fc.constantFrom(0, 1, 2, 3, 4, 7, 8, 9, 19, 20, 31, 32, 33, 38, 39, 40, 41, 63, 64, 65, 99, 100, 101, 199, 200, 201, 249, 250, 251, 499, 500, 501);
    const text = fc.tuple(fc.option(units, { nil: '' }), units, counts, fc.option(units, { nil: '' })).map(([first, unit, n, last]) => first + unit.repeat(n) + last);
    fc.assert(
      fc.property(fc.constantFrom(...UPLINK), fc.nat(), text, fc.nat(), (example, field, value, where) => {
        const schema = schemaOf(example.topic);
        const message = clone(example.payload);
        const comps = message.compartments as Json[] | undefined;
        if (comps && where % 3 === 0) {
          // Inside a compartment of a locker bank.
          const c = comps[where % comps.length]!;
          const ck = Object.keys(c);
          c[ck[field % ck.length]!] = value;
        } else {
          const n = namesOf(schema);
          message[n[field % n.length]!] = value;
        }
        expect(compiledCheck(schema)!(message)).toBe(schema.safeParse(message).success);
      }),
      { numRuns: 20_000, seed: 19 },
    );
  });

  it('agrees with zod on arbitrary JSON too', () => {
    fc.assert(
      fc.property(fc.constantFrom(...UPLINK), fc.jsonValue(), (example, value) => {
        const schema = schemaOf(example.topic);
        expect(compiledCheck(schema)!(value)).toBe(schema.safeParse(value).success);
      }),
      { numRuns: 3_000, seed: 18 },
    );
  });

  it('counts string lengths in code points and refuses control characters, as zod does', () => {
    const drone = UPLINK.find((e) => e.payload.type === 'drone.event')!;
    const schema = schemaOf(drone.topic);
    const check = compiledCheck(schema)!;
    const cases = [['😀'.repeat(500), true], ['😀'.repeat(501), false], ['é'.repeat(501), false], ['a\u0000b', false], ['a\tb', true]] as const;
    for (const [detail, ok] of cases) {
      expect(schema.safeParse({ ...drone.payload, detail }).success).toBe(ok);
      expect(check({ ...drone.payload, detail })).toBe(ok);
    }
    expect(check({ ...drone.payload, ts: 2 ** 53 + 2 })).toBe(false);
  });

  it('leaves to zod alone what JSON Schema cannot state exactly', () => {
    const unfaithful: [string, z.ZodType][] = [
      ['a transform of a string (.trim)', z.object({ a: z.string().trim() }).strict()],
      ['an object that strips unknown keys (not strict)', z.object({ a: z.string() })],
      ['a strict object inside a plain one', z.object({ a: z.object({ b: z.string() }).strict() })],
      ['a string format Ajv would not check (z.url)', z.object({ a: z.url() }).strict()],
      ['a pattern with a flag', z.object({ a: z.string().regex(/^x$/i) }).strict()],
      ['a refinement inside a field', z.object({ a: z.string().refine((v) => v !== 'x') }).strict()],
      ['an unregistered refinement', z.object({ a: z.number() }).strict().refine((v) => v.a > 0)],
      ['a registered schema with one more refinement', LockerTelemetry.superRefine(() => undefined)],
      ['a default', z.object({ a: z.number().default(1) }).strict()],
    ];
    for (const [what, schema] of unfaithful) expect(compiledCheck(schema), what).toBeNull();
    expect(compiledCheck(z.object({ a: z.string().max(3).regex(/^x+$/), b: z.number().int().min(0).nullable().optional() }).strict())).not.toBeNull();
  });

  it('refuses a locker bank that names a compartment twice (the refinement JSON Schema cannot state)', () => {
    const locker = UPLINK.find((e) => e.payload.type === 'locker.telemetry')!;
    const comps = locker.payload.compartments as Json[];
    const twice = { ...locker.payload, compartments: [...comps, { ...comps[0] }] };
    expect(compiledCheck(schemaOf(locker.topic))!(twice)).toBe(false);
    // validateUplinkMessage then explains it in zod's words, as before.
    const r = validateUplinkMessage(`v1/${locker.topic.region}/${(locker.topic as { hub: string }).hub}/locker/${locker.payload.device}/telemetry`, Buffer.from(JSON.stringify(twice)), 65_536);
    expect(r).toMatchObject({ ok: false, reason: 'schema' });
    expect(!r.ok && r.detail).toMatch(/duplicate compartment id/);
  });
});
