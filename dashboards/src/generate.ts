import fs from 'node:fs';
import path from 'node:path';
import { generatedFiles } from './all-dashboards.ts';

/** `npm run dashboards:generate`: writes dashboards/generated/<uid>.json and removes stale ones. */
const dir = path.resolve(import.meta.dirname, '../generated');
fs.mkdirSync(dir, { recursive: true });
const files = generatedFiles();
for (const name of fs.readdirSync(dir)) if (name.endsWith('.json') && !files.has(name)) fs.rmSync(path.join(dir, name));
for (const [name, content] of files) fs.writeFileSync(path.join(dir, name), content);
console.log(`wrote ${files.size} dashboards to ${path.relative(process.cwd(), dir)}`);
