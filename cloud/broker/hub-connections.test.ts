import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HubConnections } from './hub-connections.ts';

/**
 * The ledger must not leak under any order of the broker's events. aedes may report a connection's
 * end twice (clientDisconnect and the transport's close), never (clientDisconnect is skipped when the
 * client lost its id-table entry), before `clientReady`, or after it; `clientReady` may even come for a
 * client whose end was already seen.
 */
type Event = { kind: 'admit' | 'ready' | 'end'; conn: number };

function record() {
  const log: string[] = [];
  const ledger = new HubConnections<{ n: number }>({
    onOpen: (c, hub) => log.push(`open ${c.n} ${hub}`),
    onClose: (c, hub) => log.push(`close ${c.n} ${hub}`),
  });
  return { log, ledger };
}

describe('HubConnections', () => {
  it('opens at ready, closes once at the first end, and gives the slot back', () => {
    const { log, ledger } = record();
    const a = { n: 1 };
    expect(ledger.admit(a, 'h')).toBe(true);
    expect(ledger.count('h')).toBe(1);
    expect(ledger.ready(a)).toBe(true);
    expect(ledger.isOpen(a)).toBe(true);
    expect(ledger.end(a)).toBe(true);
    expect(ledger.end(a)).toBe(false); // the transport's close after clientDisconnect
    expect(ledger.ready(a)).toBe(false); // a late clientReady
    expect(ledger.admit(a, 'h')).toBe(false);
    expect(log).toEqual(['open 1 h', 'close 1 h']);
    expect([ledger.count('h'), ledger.total]).toEqual([0, 0]);
  });

  it('never opens a connection that ended while connecting', () => {
    const { log, ledger } = record();
    const a = { n: 1 };
    ledger.admit(a, 'h');
    ledger.end(a);
    expect(ledger.ready(a)).toBe(false);
    expect(log).toEqual([]);
    expect(ledger.total).toBe(0);
  });

  it('does not count the connection a same-id reconnect replaces', () => {
    const { ledger } = record();
    const a = { n: 1 };
    const b = { n: 2 };
    ledger.admit(a, 'h');
    ledger.admit(b, 'h');
    expect(ledger.count('h', a)).toBe(1);
    expect(ledger.count('h', { n: 3 })).toBe(2);
  });

  it('stays balanced under any interleaving of admit / ready / end events', () => {
    const event = fc.record({ kind: fc.constantFrom<Event['kind']>('admit', 'ready', 'end'), conn: fc.nat(7) });
    fc.assert(
      fc.property(fc.array(event, { maxLength: 80 }), fc.array(fc.constantFrom('a', 'b'), { minLength: 8, maxLength: 8 }), (events, hubOf) => {
        const { log, ledger } = record();
        const conns = Array.from({ length: 8 }, (_, n) => ({ n }));
        // The slots as a plain model: a connection holds one from its first admit until its end.
        const seen = new Set<number>();
        const holding = new Set<number>();
        for (const e of events) {
          const c = conns[e.conn]!;
          if (e.kind === 'admit') {
            ledger.admit(c, hubOf[e.conn]!);
            if (!seen.has(c.n)) holding.add(c.n);
            seen.add(c.n);
          } else if (e.kind === 'ready') ledger.ready(c);
          else {
            ledger.end(c);
            holding.delete(c.n);
          }
          for (const other of conns) {
            const hub = hubOf[other.n]!;
            const ofHub = [...holding].filter((n) => hubOf[n] === hub).length;
            expect(ledger.holds(other, hub)).toBe(holding.has(other.n));
            expect(ledger.count(hub, other)).toBe(ofHub - (holding.has(other.n) ? 1 : 0));
          }
          expect(ledger.total).toBe(holding.size);
          // Live per hub = opened and not closed, never negative; slots cover the live ones.
          for (const hub of ['a', 'b']) {
            const opens = log.filter((l) => l.startsWith('open') && l.endsWith(` ${hub}`)).length;
            const closes = log.filter((l) => l.startsWith('close') && l.endsWith(` ${hub}`)).length;
            expect(opens - closes).toBeGreaterThanOrEqual(0);
            expect(opens - closes).toBeLessThanOrEqual(ledger.count(hub));
          }
        }
        // Every connection ends eventually (the transport's close always comes).
        for (const c of conns) ledger.end(c);
        expect(ledger.total).toBe(0);
        expect([ledger.count('a'), ledger.count('b')]).toEqual([0, 0]);
        for (const c of conns) {
          const mine = log.filter((l) => l.split(' ')[1] === String(c.n));
          expect(mine.length === 0 || (mine.length === 2 && mine[0]!.startsWith('open') && mine[1]!.startsWith('close'))).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });
});
