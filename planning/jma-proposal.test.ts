import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { proposalFromBulletin } from './jma-proposal.ts';

// The fixtures and expectations of test/node-red-flows.test.ts, where the same flow runs in Node-RED.
const FIXTURES = path.resolve(import.meta.dirname, '../test/fixtures/jma');
const ABOVE = fs.readFileSync(path.join(FIXTURES, '20240116184225_02245216_VXSE43.xml'), 'utf8'); // EEW: 能登 390 forecast 震度4–5弱
const BELOW = fs.readFileSync(path.join(FIXTURES, '32-39_11_05_120615_VXSE53.xml'), 'utf8'); // 2011: 能登/加賀 observed 震度3
const NOMI = { areaCodes: ['390', '391'], minIntensity: '5-', regionId: 'ishikawa-nomi' };

describe('proposalFromBulletin: the Node-RED flow\'s own mapping', () => {
  it('proposes emergency for the 2024 EEW (能登 390, forecast 震度5弱) with a 5- threshold — the evidence the real flow posts', () => {
    const p = proposalFromBulletin(ABOVE, NOMI);
    expect(p).toMatchObject({ source: 'jma', mode: 'emergency' });
    expect(p!.evidence).toMatchObject({
      eventId: '20240116184216', intensity: '5-', forecast: true, area: { code: '390', name: '石川県能登' }, reportTime: '2024-01-16T18:42:25+09:00', threshold: '5-',
    });
    expect(p!.reason).toContain('震度5弱（予想）');
    expect(p!.reason).toContain('(390)');
    expect(p!.reason).toContain('出典：気象庁防災情報XML');
  });

  it('proposes nothing below the threshold: the 2011 bulletin (震度3 in 390/391), and the EEW against 6-', () => {
    expect(proposalFromBulletin(BELOW, NOMI)).toBeNull();
    expect(proposalFromBulletin(ABOVE, { ...NOMI, minIntensity: '6-' })).toBeNull();
  });

  it('proposes nothing for areas the bulletin does not reach at that intensity (加賀 391 alone: forecast 4)', () => {
    expect(proposalFromBulletin(ABOVE, { ...NOMI, areaCodes: ['391'] })).toBeNull();
    expect(proposalFromBulletin(ABOVE, { ...NOMI, areaCodes: ['391'], minIntensity: '4' })!.evidence).toMatchObject({ intensity: '4', area: { code: '391' } });
  });

  it('ignores a drill (訓練) as the flow does', () => {
    const drill = ABOVE.replace('<Status>通常</Status>', '<Status>訓練</Status>');
    expect(drill).not.toBe(ABOVE);
    expect(proposalFromBulletin(drill, NOMI)).toBeNull();
  });

  it('refuses an intensity outside the JMA scale with the flow settings\' own message, and XML that is not well-formed', () => {
    expect(() => proposalFromBulletin(ABOVE, { ...NOMI, minIntensity: '5' })).toThrow(/HAZARD_MIN_INTENSITY must be one of 1 2 3 4 5- 5\+ 6- 6\+ 7/);
    expect(() => proposalFromBulletin('<Report><Head>', NOMI)).toThrow(/not well-formed XML/);
  });
});
