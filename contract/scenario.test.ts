import fs from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import ajvFormats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { SCENARIO_SCHEMA_FILE, scenarioJsonSchemaText } from '../planning/scenario-file.ts';
import { Offset, offsetS, ScenarioEvent, ScenarioFile } from './scenario.ts';

const SCENARIOS = path.resolve(import.meta.dirname, '../scenarios');
const SHIPPED = fs.readdirSync(SCENARIOS).filter((f) => f.endsWith('.json') && !f.endsWith('.schema.json')).sort();

describe('offsets', () => {
  it.each([
    ['36h', 129_600], ['1h30m', 5_400], ['90m', 5_400], ['45s', 45], ['2d', 172_800], ['1d2h3m4s', 93_784], ['0h', 0], [600, 600],
  ] as const)('%s is %i s', (o, s) => {
    expect(Offset.parse(o)).toBe(o);
    expect(offsetS(o)).toBe(s);
  });

  it.each(['', '3x', '1h30', 'h', '-1h', '1.5h', '30m1h', ' 1h'])('"%s" is refused with what an offset looks like', (o) => {
    const r = Offset.safeParse(o);
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => i.message).join()).toContain('an offset such as "36h", "1h30m", "90m" or "45s"');
  });

  it('refuses negative, fractional and beyond-30-day seconds', () => {
    for (const o of [-1, 1.5, 30 * 86_400 + 1]) expect(Offset.safeParse(o).success).toBe(false);
  });
});

describe('events', () => {
  it('demand: normal names hubs; relief and medical name sites — the problem is on the key that is wrong', () => {
    const base = { type: 'demand', from: '0h', until: '1h', perHour: 1 };
    expect(ScenarioEvent.safeParse({ ...base, kind: 'normal', hubs: 'all' }).success).toBe(true);
    expect(ScenarioEvent.safeParse({ ...base, kind: 'medical', sites: ['osugi-settlement'] }).success).toBe(true);
    const paths = (e: object) => ScenarioEvent.safeParse(e).error?.issues.map((i) => i.path.join('.'));
    expect(paths({ ...base, kind: 'normal', sites: ['osugi-settlement'] })).toEqual(['sites']);
    expect(paths({ ...base, kind: 'relief', hubs: ['rs-shirayamasan'] })).toEqual(['hubs', 'sites']);
    expect(paths({ ...base, kind: 'relief' })).toEqual(['sites']);
  });

  it('defaults: earthquake threshold 5-, power drain 8 %/h, coordinator on every hub', () => {
    expect(ScenarioEvent.parse({ type: 'earthquake', at: '1h', bulletin: 'b.xml', areaCodes: ['390'] })).toMatchObject({ minIntensity: '5-' });
    expect(ScenarioEvent.parse({ type: 'power', at: '1h', hubs: 'all', state: 'lost' })).toMatchObject({ backupDrainPctPerH: 8 });
    expect(ScenarioEvent.parse({ type: 'coordinator', at: '1h', action: 'emergency' })).toMatchObject({ hubs: 'all', reason: 'scenario' });
  });
});

describe('scenarios/scenario.schema.json', () => {
  it('is current: regenerated from contract/scenario.ts it reads the same (else: npx tsx planning/scenario-file.ts --write-schema)', () => {
    expect(fs.readFileSync(SCENARIO_SCHEMA_FILE, 'utf8')).toBe(scenarioJsonSchemaText());
  });

  const ajv = new Ajv({ allErrors: true, strict: false });
  ajvFormats.default(ajv);
  const validate = ajv.compile(JSON.parse(fs.readFileSync(SCENARIO_SCHEMA_FILE, 'utf8')) as object);

  it('ships the three scenarios of issue 16', () => {
    expect(SHIPPED).toEqual(expect.arrayContaining(['normal-day.json', 'typhoon-day.json', 'noto-earthquake.json']));
  });

  it.each(SHIPPED)('%s validates against it and the zod schema, and its $schema points to it', (name) => {
    const json = JSON.parse(fs.readFileSync(path.join(SCENARIOS, name), 'utf8')) as { $schema?: string };
    expect(path.resolve(SCENARIOS, json.$schema ?? '')).toBe(SCENARIO_SCHEMA_FILE);
    expect(validate(json), JSON.stringify(validate.errors)).toBe(true);
    expect(ScenarioFile.safeParse(json).success).toBe(true);
  });

  it('refuses what the zod schema refuses: a bad offset, an unknown event type, an unknown key', () => {
    const json = JSON.parse(fs.readFileSync(path.join(SCENARIOS, 'normal-day.json'), 'utf8')) as Record<string, unknown>;
    for (const bad of [{ ...json, duration: '' }, { ...json, duration: '3x' }, { ...json, events: [{ type: 'tsunami', at: '1h' }] }, { ...json, colour: 'red' }]) {
      expect(validate(bad)).toBe(false);
      expect(ScenarioFile.safeParse(bad).success).toBe(false);
    }
  });
});
