/**
 * Markdown for the vendors' guide (docs/contract/README.md) from draft-07 JSON Schemas: field tables
 * with types and constraints, and the small text helpers the guide's sections share.
 */

export type JsonSchema = { [key: string]: unknown };

export function fieldTable(schema: JsonSchema): string {
  const rows: string[][] = [];
  const walk = (s: JsonSchema, prefix: string) => {
    const required = requiredOf(s);
    for (const [name, prop] of Object.entries(propertiesOf(s))) {
      rows.push([`\`${prefix}${name}\``, typeOf(prop), required.includes(name) ? 'yes' : 'no', constraintsOf(prop), typeof prop.description === 'string' ? prop.description : '']);
      const items = prop.items as JsonSchema | undefined;
      if (items && typeof items === 'object' && items.properties) walk(items, `${prefix}${name}[].`);
    }
  };
  walk(schema, '');
  return table(['Field', 'Type', 'Required', 'Constraints', 'Description'], rows);
}

export function typeOf(prop: JsonSchema): string {
  if (prop.const !== undefined) return `\`${JSON.stringify(prop.const)}\``;
  if (Array.isArray(prop.enum)) return prop.enum.map((v) => `\`${JSON.stringify(v)}\``).join(' \\| ');
  if (Array.isArray(prop.anyOf)) return (prop.anyOf as JsonSchema[]).map(typeOf).join(' or ');
  if (prop.type === 'array') return `array of ${typeOf((prop.items ?? {}) as JsonSchema)}`;
  if (prop.type === 'object' && prop.additionalProperties && typeof prop.additionalProperties === 'object') {
    return `object: ${typeOf((prop.propertyNames ?? { type: 'string' }) as JsonSchema)} → ${typeOf(prop.additionalProperties as JsonSchema)}`;
  }
  return typeof prop.type === 'string' ? prop.type : 'any';
}

const SAFE_INTEGER = Number.MAX_SAFE_INTEGER;

export function constraintsOf(prop: JsonSchema): string {
  const parts: string[] = [];
  const num = (k: string, label: string) => {
    const v = prop[k];
    if (typeof v === 'number' && Math.abs(v) !== SAFE_INTEGER) parts.push(`${label} ${v}`);
  };
  num('minimum', '≥');
  num('exclusiveMinimum', '>');
  num('maximum', '≤');
  num('exclusiveMaximum', '<');
  num('minLength', 'length ≥');
  num('maxLength', 'length ≤');
  num('minItems', 'items ≥');
  num('maxItems', 'items ≤');
  if (typeof prop.pattern === 'string') parts.push(`pattern \`${prop.pattern}\``);
  const items = prop.items as JsonSchema | undefined;
  if (items && typeof items === 'object' && !items.properties) {
    const inner = constraintsOf(items);
    if (inner) parts.push(`each: ${inner}`);
  }
  if (Array.isArray(prop.anyOf)) {
    const inner = (prop.anyOf as JsonSchema[]).map(constraintsOf).filter(Boolean);
    if (inner.length) parts.push(inner.join('; '));
  }
  return parts.join(', ');
}

export function propertiesOf(schema: JsonSchema): Record<string, JsonSchema> {
  return (schema.properties ?? {}) as Record<string, JsonSchema>;
}
export function requiredOf(schema: JsonSchema): string[] {
  return (schema.required ?? []) as string[];
}
export function primitiveTypes(prop: JsonSchema): string[] {
  if (typeof prop.type === 'string') return [prop.type];
  if (Array.isArray(prop.anyOf)) return (prop.anyOf as JsonSchema[]).flatMap(primitiveTypes);
  return [];
}

export function table(header: string[], rows: string[][]): string {
  const cell = (s: string) => markdownText(s.replaceAll('\n', ' ')).replace(/(?<!\\)\|/g, '\\|');
  return [header, header.map(() => '---'), ...rows].map((r) => `| ${r.map(cell).join(' | ')} |`).join('\n');
}

/** `v1/{region}/{hub}/status` → `v1/<region>/<hub>/status`: AsyncAPI needs braces, prose reads better with angles. */
export function angled(address: string): string {
  return address.replace(/\{(\w+)\}/g, '<$1>');
}

/** Escapes `<` and `>` outside code spans, so "<hub>" in a description is not taken for HTML. */
export function markdownText(s: string): string {
  return s
    .split('`')
    .map((part, i) => (i % 2 === 0 ? part.replaceAll('<', '&lt;').replaceAll('>', '&gt;') : part))
    .join('`');
}

export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}
