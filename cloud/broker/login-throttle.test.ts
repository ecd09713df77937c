import { describe, expect, it } from 'vitest';
import { LoginThrottle } from './login-throttle.ts';

const limits = { maxActive: 1, maxQueuedPerAddress: 3, maxFailuresPerAddress: 2, failureWindowMs: 1_000 };

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('LoginThrottle', () => {
  it('serves addresses in turn: a login from a quiet address waits for one check, not for the flood', async () => {
    const th = new LoginThrottle(limits, () => 0);
    const order: string[] = [];
    const gates: ReturnType<typeof deferred<boolean>>[] = [];
    const run = (addr: string, tag: string) =>
      th.schedule(addr, () => {
        order.push(tag);
        const d = deferred<boolean>();
        gates.push(d);
        return d.promise;
      }, () => false);
    const flood = [run('a', 'a1'), run('a', 'a2'), run('a', 'a3'), run('a', 'a4')];
    const quiet = run('b', 'b1');
    expect(await run('a', 'a5')).toEqual({ ran: false, reason: 'address_busy' }); // one running, three waiting
    for (let i = 0; i < 5; i++) {
      await expect.poll(() => gates.length).toBe(i + 1);
      gates[i]!.resolve(true);
    }
    await Promise.all([...flood, quiet]);
    expect(order).toEqual(['a1', 'a2', 'b1', 'a3', 'a4']); // b waits for one round (a's next check), not for a's whole queue
    expect(th.running).toBe(0);
    expect(th.waiting).toBe(0);
  });

  it('refuses an address after its failures until they leave the window, including checks already queued', async () => {
    let now = 0;
    const th = new LoginThrottle(limits, () => now);
    const fail = () => Promise.resolve(null);
    const results = await Promise.all([1, 2, 3].map(() => th.schedule('a', fail, (r) => r === null)));
    expect(results.map((r) => (r.ran ? 'ran' : r.reason))).toEqual(['ran', 'ran', 'address_failures']);
    expect(await th.schedule('a', fail, () => true)).toEqual({ ran: false, reason: 'address_failures' });
    expect((await th.schedule('b', () => Promise.resolve(1), () => false)).ran).toBe(true);
    now = 1_000;
    expect((await th.schedule('a', () => Promise.resolve(1), () => false)).ran).toBe(true);
  });

  it('skips a queued check whose connection has gone', async () => {
    const th = new LoginThrottle(limits, () => 0);
    const d = deferred<number>();
    let ran = 0;
    const first = th.schedule('a', () => d.promise, () => false);
    const second = th.schedule('b', async () => ++ran, () => false, () => false);
    d.resolve(1);
    expect(await first).toEqual({ ran: true, value: 1 });
    expect(await second).toEqual({ ran: false, reason: 'gone' });
    expect(ran).toBe(0);
  });
});
