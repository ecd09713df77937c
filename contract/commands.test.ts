import fs from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CommandName, COMMANDS } from './index.ts';

/**
 * Every command's arguments and acknowledgement reach the device vendors (issue 13, item 7): the
 * guide and the AsyncAPI document (generated from contract/commands.ts; contract.test.ts keeps them
 * current) describe each command, and the published JSON Schema of its arguments accepts and rejects
 * what the zod schema the reference devices check with does.
 */
const ROOT = path.resolve(import.meta.dirname, '..');
const README = fs.readFileSync(path.join(ROOT, 'docs/contract/README.md'), 'utf8');
const ASYNCAPI = JSON.parse(fs.readFileSync(path.join(ROOT, 'docs/contract/asyncapi.json'), 'utf8')) as {
  components: { messages: Record<string, { description?: string; payload: { oneOf?: { title: string; properties: { command: { const: string }; args: object } }[] } }> };
};
const NAMES = CommandName.options;
const argNames = (name: (typeof NAMES)[number]) => Object.keys((z.toJSONSchema(COMMANDS[name].args, { io: 'input' }).properties ?? {}) as object);

describe('commands in the published contract', () => {
  it.each(NAMES)('the vendors\' guide has a section on %s with each of its arguments and its acknowledgement', (name) => {
    const section = README.split(`### \`${name}\``)[1]?.split('\n### ')[0];
    expect(section, `no section on ${name}`).toBeDefined();
    for (const arg of argNames(name)) expect(section).toContain(`| \`${arg}\` |`);
    expect(section).toContain('**Acknowledgement:**');
    expect(section).toContain(`"command":"${name}"`);
  });

  it('the AsyncAPI hub.command ties every command to the schema of its arguments; hub.command-ack says what each answer means', () => {
    const branches = ASYNCAPI.components.messages['hub.command']!.payload.oneOf ?? [];
    expect(branches.map((b) => b.properties.command.const)).toEqual(NAMES);
    const ack = ASYNCAPI.components.messages['hub.command-ack']!.description ?? '';
    for (const name of NAMES) expect(ack).toContain(`\`${name}\``);
    for (const result of ['done', 'rejected', 'expired', 'failed', 'duplicate']) expect(ack).toContain(`\`${result}\``);
  });

  const CASES: [name: (typeof NAMES)[number], args: Record<string, unknown>, valid: boolean][] = [
    ['locker.unlock', { compartment: 'A02' }, true],
    ['locker.unlock', {}, false],
    ['locker.unlock', { compartment: 'a02' }, false],
    ['locker.reserve', { compartment: 'A03', orderId: 'ord-1' }, true],
    ['locker.reserve', { compartment: 'A03' }, false],
    ['locker.reserve', { compartment: 'A03', orderId: '' }, false],
    ['locker.release', { compartment: 'A03' }, true],
    ['locker.release', { orderId: 'ord-1' }, false],
    ['drone.mission', { to: 'nomi-terai' }, true],
    ['drone.mission', { to: 'nomi-terai', payloadKg: 1.5, missionId: 'msn-1' }, true],
    ['drone.mission', { site: 'osugi-settlement', siteLat: 36.2, siteLon: 136.6, payloadKg: 3 }, true],
    ['drone.mission', { site: 'osugi-settlement' }, false],
    ['drone.mission', { siteLat: 36.2, siteLon: 136.6 }, false],
    ['drone.mission', {}, false],
    ['drone.mission', { to: 'nomi-terai', payloadKg: -1 }, false],
    ['drone.mission', { to: 'Nomi Terai' }, false],
    ['drone.abort', {}, true],
    ['drone.abort', { reason: 'order cancelled' }, true],
    ['drone.abort', { reason: 'x'.repeat(201) }, false],
    ['drone.rtl', {}, true],
  ];
  const published = new Map(
    (ASYNCAPI.components.messages['hub.command']!.payload.oneOf ?? []).map((b) => [b.properties.command.const, new Ajv({ allErrors: true }).compile(b.properties.args)]),
  );
  it.each(CASES)('%s with %j: valid = %s for the devices\' zod schema and for the published JSON Schema', (name, args, valid) => {
    expect(COMMANDS[name].args.safeParse(args).success).toBe(valid);
    expect(published.get(name)!(args)).toBe(valid);
  });
});
