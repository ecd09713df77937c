import { z } from 'zod';
import { Command, COMMAND_RESULTS, CommandAck, CommandName, COMMANDS, EXAMPLES, topics, type CommandSpec, type DeviceKind } from '../../contract/index.ts';
import { fieldTable, markdownText, propertiesOf, requiredOf, table, type JsonSchema } from './markdown.ts';

/**
 * The commands a hub relays to its devices, documented for vendors from contract/commands.ts: each
 * command's arguments (the zod schemas the reference devices check with) and what its
 * acknowledgement means — as the "Commands" section of the guide and in the AsyncAPI document.
 */

type Name = z.infer<typeof CommandName>;

export interface CommandDoc {
  name: Name;
  spec: CommandSpec;
  /** draft-07 JSON Schema of `args` as the cloud sends them (zod "input" view), without `$schema`. */
  argsSchema: JsonSchema;
  /** A whole `hub.command` with this command, valid against the contract. */
  example: { topic: string; payload: Command };
}

/** Example arguments; checked against each command's schema when the docs are generated. */
const EXAMPLE_ARGS: Record<Name, Record<string, string | number>> = {
  'locker.unlock': { compartment: 'A02' },
  'locker.reserve': { compartment: 'A03', orderId: 'ord-20251124-0042' },
  'locker.release': { compartment: 'A03' },
  'drone.mission': { to: 'rs-komatsu-kibagata', payloadKg: 1.2, missionId: 'msn-20251124-0042' },
  'drone.abort': { reason: 'order ord-20251124-0042 cancelled' },
  'drone.rtl': {},
};

const EXAMPLE_DEVICE: Record<CommandSpec['kind'], string> = { drone: 'drone-1', locker: 'locker-a', sensor: 'wx' };

export function commandDocs(): CommandDoc[] {
  const base = EXAMPLES.find((e) => e.payload.type === 'hub.command');
  if (!base || base.topic.route !== 'command') throw new Error('contract/examples.ts has no hub.command example');
  const { region, hub } = base.topic;
  return CommandName.options.map((name) => {
    const spec = COMMANDS[name];
    const args = EXAMPLE_ARGS[name];
    const checked = spec.args.safeParse(args);
    if (!checked.success) throw new Error(`the example arguments of ${name} are invalid: ${checked.error.message}`);
    const device = EXAMPLE_DEVICE[spec.kind];
    const payload = Command.parse({ ...base.payload, device, command: name, args });
    const { $schema: _ignored, ...argsSchema } = z.toJSONSchema(spec.args, { target: 'draft-07', io: 'input' }) as JsonSchema;
    const topic = topics.command(region, hub, spec.kind, device);
    return { name, spec, argsSchema, example: { topic, payload } };
  });
}

/** "`compartment`, `orderId`" — required ones plain, optional ones in brackets. */
function argumentList(schema: JsonSchema): string {
  const required = requiredOf(schema);
  const names = Object.keys(propertiesOf(schema)).map((n) => (required.includes(n) ? `\`${n}\`` : `[\`${n}\`]`));
  return names.length ? names.join(', ') : 'none';
}

const RESULTS = CommandAck.shape.result.options;

/** The guide's "Commands" section. */
export function commandsSection(): string[] {
  const docs = commandDocs();
  const lines = [
    '## Commands',
    '',
    `A \`hub.command\` names its command in \`command\` and carries the command's arguments in \`args\`, a JSON object. The hub relays it to the device on \`${topics.command('<region>', '<hub>', '<kind>' as DeviceKind, '<device>')}\`; the device checks the arguments and acts, and the hub answers every command exactly once with a \`hub.command-ack\` on \`${topics.commandAck('<region>', '<hub>')}\` carrying the command's \`id\` as \`commandId\`. An argument not listed is ignored; one that is missing or out of range makes the device answer \`rejected\`.`,
    '',
    table(['Command', 'Device', 'Arguments ([optional])', 'What it does'], docs.map((d) => [`[\`${d.name}\`](#${anchorOf(d.name)})`, d.spec.kind, argumentList(d.argsSchema), d.spec.does])),
    '',
    '### Acknowledgement results',
    '',
    'Whatever the command, `result` in the `hub.command-ack` means:',
    '',
    table(['`result`', 'Meaning'], RESULTS.map((r) => [`\`${r}\``, COMMAND_RESULTS[r]])),
    '',
  ];
  for (const d of docs) {
    const rule = typeof d.argsSchema.description === 'string' ? d.argsSchema.description : '';
    lines.push(
      `### \`${d.name}\``,
      '',
      `${markdownText(d.spec.does)} Device kind: \`${d.spec.kind}\`.`,
      '',
      `**Sent when:** ${markdownText(d.spec.sentWhen)}`,
      '',
      `**Arguments** (\`args\`)${rule.includes(':') ? ` — ${markdownText(rule.slice(rule.indexOf(':') + 1).trim())}` : ''}:`,
      '',
      Object.keys(propertiesOf(d.argsSchema)).length ? fieldTable(d.argsSchema) : 'None: send `"args": {}`.',
      '',
      '**Acknowledgement:**',
      '',
      `- \`done\`: ${markdownText(d.spec.done)}`,
      `- ${markdownText(d.spec.refused)}`,
      `- Events that follow: ${markdownText(d.spec.events)}`,
      '',
      `Example, on \`${d.example.topic}\`:`,
      '',
      '```json',
      JSON.stringify(d.example.payload),
      '```',
      '',
    );
  }
  return lines;
}

/** GitHub's heading anchor for "### `drone.mission`". */
function anchorOf(name: string): string {
  return name.replace(/[^a-z0-9 -]/g, '');
}

/**
 * The `hub.command` payload for the AsyncAPI document: the message schema, plus one `oneOf` branch per
 * command tying `command` to the schema of its `args`, so a vendor's validator checks the arguments too.
 */
export function commandPayload(messageSchema: JsonSchema): JsonSchema {
  return {
    ...messageSchema,
    oneOf: commandDocs().map((d) => ({
      title: d.name,
      description: `${d.spec.does} Acknowledged \`done\` when: ${d.spec.done}`,
      type: 'object',
      properties: { command: { const: d.name }, args: d.argsSchema },
      required: ['command', 'args'],
    })),
  };
}

/** The `hub.command-ack` message's description in the AsyncAPI document: what each result means. */
export function commandAckDescription(): string {
  return [
    'Whatever the command, `result` means:',
    '',
    ...RESULTS.map((r) => `- \`${r}\`: ${COMMAND_RESULTS[r]}`),
    '',
    'Per command (see the `oneOf` of `hub.command`):',
    '',
    ...commandDocs().map((d) => `- \`${d.name}\`: \`done\` — ${d.spec.done} ${d.spec.refused}`),
  ].join('\n');
}
