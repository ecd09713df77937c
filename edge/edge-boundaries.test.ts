import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/** The edge agent and the cloud meet only through contract/ and MQTT; shared plumbing lives in shared/ (issue 12). */
describe('edge/ boundaries', () => {
  it('imports nothing from cloud/', () => {
    const dir = import.meta.dirname;
    const files = fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    const offenders = files.filter((f) => /from\s+['"](\.\.\/)+cloud\//.test(fs.readFileSync(path.join(dir, f), 'utf8')));
    expect(offenders).toEqual([]);
    expect(files.length).toBeGreaterThan(10);
  });
});
