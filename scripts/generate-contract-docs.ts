/**
 * Generates the published message contract for device vendors under docs/contract/ from the zod
 * schemas, topics and examples in contract/*.ts, and from the cloud's limits and rejection reasons:
 *
 *   docs/contract/asyncapi.json                      AsyncAPI 3.0.0, from the hub's point of view
 *   docs/contract/schemas/<type>.schema.json         JSON Schema (draft-07) per message type
 *   docs/contract/schemas/region-file.schema.json    JSON Schema of config/regions/*.json
 *   docs/contract/README.md                          the vendor guide
 *
 * Nothing in docs/contract is written by hand: `npm run docs:generate` rewrites it, and
 * contract/contract.test.ts fails when the committed files differ from `renderContractDocs()`.
 * Output is deterministic (key order follows the schemas' source order, 2-space JSON, final newline).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderAsyncApi } from './contract-docs/asyncapi.ts';
import { topicDocs, messageDocs } from './contract-docs/contract-model.ts';
import { renderReadme } from './contract-docs/readme.ts';
import { messageSchemaFile, regionFileSchema } from './contract-docs/schema-files.ts';

export const CONTRACT_DOCS_DIR = 'docs/contract';

/** Every generated file, keyed by its path relative to the repository root. Pure: no I/O. */
export function renderContractDocs(): Record<string, string> {
  const channels = topicDocs();
  const messages = messageDocs();
  const files: Record<string, string> = {};
  const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
  files[`${CONTRACT_DOCS_DIR}/README.md`] = renderReadme(messages, channels);
  files[`${CONTRACT_DOCS_DIR}/asyncapi.json`] = json(renderAsyncApi(messages, channels));
  for (const m of messages) files[`${CONTRACT_DOCS_DIR}/${m.schemaFile}`] = json(messageSchemaFile(m));
  files[`${CONTRACT_DOCS_DIR}/schemas/region-file.schema.json`] = json(regionFileSchema());
  return files;
}

/** Writes the files and removes files in docs/contract that are no longer generated. */
export function writeContractDocs(repoRoot: string): { written: string[]; removed: string[] } {
  const files = renderContractDocs();
  const written: string[] = [];
  for (const [rel, content] of Object.entries(files)) {
    const abs = path.join(repoRoot, rel);
    if (fs.existsSync(abs) && fs.readFileSync(abs, 'utf8') === content) continue;
    fs.mkdirSync(path.dirname(abs), { recursive: true });
    fs.writeFileSync(abs, content);
    written.push(rel);
  }
  const removed = listFiles(repoRoot, CONTRACT_DOCS_DIR).filter((rel) => !(rel in files));
  for (const rel of removed) fs.rmSync(path.join(repoRoot, rel));
  return { written, removed };
}

/** Files under `dir` (relative to `root`), as root-relative paths with "/" separators. */
export function listFiles(root: string, dir: string): string[] {
  const abs = path.join(root, dir);
  if (!fs.existsSync(abs)) return [];
  return fs
    .readdirSync(abs, { recursive: true, encoding: 'utf8' })
    .filter((rel) => fs.statSync(path.join(abs, rel)).isFile())
    .map((rel) => path.join(dir, rel).split(path.sep).join('/'))
    .sort();
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const { written, removed } = writeContractDocs(root);
  const total = Object.keys(renderContractDocs()).length;
  console.log(`${CONTRACT_DOCS_DIR}: ${total} files, ${written.length} written, ${removed.length} removed`);
  for (const f of written) console.log(`  wrote   ${f}`);
  for (const f of removed) console.log(`  removed ${f}`);
}
