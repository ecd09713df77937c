import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Command, CommandAck, CommandName, type DeviceKind } from '../../contract/index.ts';
import { commandKind, CommandService, nextCommandState, type CommandBus } from './command-service.ts';
import { openTestDatabase, type TestDatabase } from '../../test/support/test-database.ts';
import { COMMAND_STATES, createMemoryCommandStore, openCommandStore, type CommandStore } from './command-store.ts';

const T = 1_764_000_000_000;
const HUB = 'nomi-terai';

function setup() {
  let now = T;
  let seq = 0;
  let failSends = false;
  const sent: { command: Command; to: { region: string; kind: DeviceKind } }[] = [];
  const bus: CommandBus = {
    send: async (command, to) => {
      if (failSends) throw new Error('broker down');
      sent.push({ command, to });
    },
  };
  const devices = new Map<string, { kind: DeviceKind }>([['locker-a', { kind: 'locker' }], ['drone-1', { kind: 'drone' }], ['wx', { kind: 'sensor' }]]);
  const store: CommandStore = createMemoryCommandStore();
  const service = new CommandService({
    store, bus, hubs: new Map([[HUB, { region: 'ishikawa-nomi', devices }]]), now: () => now, newId: () => `cmd-${++seq}`,
    logger: pino({ level: 'silent' }),
  });
  return {
    service, store, sent,
    advance: (ms: number) => (now += ms),
    failSends: (v: boolean) => (failSends = v),
  };
}

const ack = (commandId: string, result: CommandAck['result'], over: Partial<CommandAck> = {}): CommandAck =>
  CommandAck.parse({ v: 1, type: 'hub.command-ack', id: `ack-${commandId}-${result}`, ts: T + 1000, hub: HUB, device: 'locker-a', commandId, result, ...over });

describe('commandKind', () => {
  it('maps every command of the contract to the device kind it is for', () => {
    for (const c of CommandName.options) expect(commandKind(c)).toBe(c.split('.')[0]);
  });
});

describe('nextCommandState', () => {
  const results = CommandAck.shape.result.options;
  it('lets the first real result win and never lets `duplicate` overwrite one', () => {
    for (const current of COMMAND_STATES) {
      for (const result of results) {
        const next = nextCommandState(current, result);
        if (current === 'pending') expect(next).toBe(result);
        else if (current === 'duplicate') expect(next).toBe(result === 'duplicate' ? 'duplicate' : result);
        else expect(next, `${current} + ${result}`).toBe(current);
      }
    }
  });

  it('lets what the device did supersede a provisional failure (the agent timed out), but nothing else', () => {
    const timeout = 'the device did not answer within 10 s';
    for (const result of results) {
      expect(nextCommandState('failed', result, timeout), result).toBe(result === 'done' || result === 'rejected' ? result : 'failed');
      expect(nextCommandState('failed', result, 'the hub agent restarted before the device answered'), result).toBe(result === 'done' || result === 'rejected' ? result : 'failed');
      expect(nextCommandState('failed', result, 'motor fault'), result).toBe('failed');
    }
  });
});

describe('CommandService', () => {
  let t: ReturnType<typeof setup>;
  beforeEach(() => {
    t = setup();
  });

  it('stores a command and publishes it as a contract Command with its expiry', async () => {
    const c = await t.service.issue({ hub: HUB, device: 'locker-a', command: 'locker.unlock', args: { compartment: 'A02' }, ttlS: 60 });
    expect(c).toMatchObject({ id: 'cmd-1', hub: HUB, region: 'ishikawa-nomi', kind: 'locker', state: 'pending', issuedAt: T, expiresAt: T + 60_000 });
    expect(t.sent).toHaveLength(1);
    expect(Command.parse(t.sent[0]!.command)).toEqual({
      v: 1, type: 'hub.command', id: 'cmd-1', ts: T, hub: HUB, device: 'locker-a', command: 'locker.unlock', expiresAt: T + 60_000, args: { compartment: 'A02' },
    });
    expect(t.sent[0]!.to).toEqual({ region: 'ishikawa-nomi', kind: 'locker' });
    expect(await t.service.get('cmd-1')).toEqual(c);
  });

  it('issued again under the id it was given, answers the stored command: nothing stored or sent twice', async () => {
    const req = { hub: HUB, device: 'drone-1', command: 'drone.mission' as const, args: { to: 'nomi-kokufu', payloadKg: 1, missionId: 'm-1-1' }, ttlS: 120, id: 'cmd-m-1-1' };
    const first = await t.service.issue(req);
    expect(first).toMatchObject({ id: 'cmd-m-1-1', state: 'pending', issuedAt: T });
    t.advance(30_000);
    expect(await t.service.issue({ ...req, args: { ...req.args, payloadKg: 2 } })).toEqual(first);
    expect(t.sent.map((s) => s.command.id)).toEqual(['cmd-m-1-1']);
    expect(await t.service.list(HUB, { limit: 10 })).toHaveLength(1);
    // Without an id, each issue is a new command.
    await t.service.issue({ ...req, id: undefined });
    expect(t.sent.map((s) => s.command.id)).toEqual(['cmd-m-1-1', 'cmd-1']);
  });

  it('issued under one id by two processes at once (a shared database): both get the one command stored, published once', async () => {
    const db = await openTestDatabase('sqlite');
    try {
      const store = await openCommandStore(db.db);
      const sent: string[] = [];
      const devices = new Map<string, { kind: DeviceKind }>([['drone-1', { kind: 'drone' }]]);
      const processes = [0, 1].map(() => new CommandService({
        store, bus: { send: async (c) => void sent.push(c.id) }, hubs: new Map([[HUB, { region: 'ishikawa-nomi', devices }]]), now: () => T, newId: () => 'unused', logger: pino({ level: 'silent' }),
      }));
      const req = { hub: HUB, device: 'drone-1', command: 'drone.mission' as const, args: { to: 'nomi-kokufu', payloadKg: 1, missionId: 'm-x-1' }, ttlS: 120, id: 'cmd-m-x-1' };
      const [a, b] = await Promise.all(processes.map((p) => p.issue(req)));
      expect(a).toEqual(b);
      expect(sent).toEqual(['cmd-m-x-1']);
    } finally {
      await db.cleanup();
    }
  });

  it('refuses an unknown hub or device and a command for another kind of device, storing nothing', async () => {
    const issue = (hub: string, device: string, command: (typeof CommandName.options)[number]) => t.service.issue({ hub, device, command, args: {}, ttlS: 60 });
    await expect(issue('nowhere', 'locker-a', 'locker.unlock')).rejects.toMatchObject({ code: 'hub_not_found' });
    await expect(issue(HUB, 'locker-z', 'locker.unlock')).rejects.toMatchObject({ code: 'device_not_found' });
    await expect(issue(HUB, 'drone-1', 'locker.unlock')).rejects.toMatchObject({ code: 'wrong_device_kind' });
    await expect(issue(HUB, 'wx', 'drone.rtl')).rejects.toMatchObject({ code: 'wrong_device_kind' });
    expect(t.sent).toEqual([]);
    expect(await t.service.list(HUB, { limit: 10 })).toEqual([]);
    await expect(t.service.get('cmd-1')).rejects.toMatchObject({ code: 'command_not_found' });
  });

  it('keeps a command pending when publishing fails, and sends it when the hub subscribes again', async () => {
    t.failSends(true);
    await t.service.issue({ hub: HUB, device: 'drone-1', command: 'drone.rtl', args: {}, ttlS: 60 });
    expect((await t.service.get('cmd-1')).state).toBe('pending');
    t.failSends(false);
    expect(await t.service.redeliver(HUB)).toBe(1);
    expect(t.sent.map((s) => s.command.id)).toEqual(['cmd-1']);
  });

  it('re-delivers to 1,200 hubs subscribing at once (a reconnect storm, in store queries of 500 hubs): each gets its own pending commands, once', async () => {
    const store = createMemoryCommandStore();
    const queries: number[] = [];
    const counting: CommandStore = { ...store, pendingFor: (hubs, now, limit) => (queries.push(hubs.length), store.pendingFor(hubs, now, limit)) };
    const sent: Command[] = [];
    const hubs = Array.from({ length: 1_200 }, (_, i) => `hub-${i}`);
    const devices = new Map([['locker-a', { kind: 'locker' as const }]]);
    const service = new CommandService({
      store: counting, bus: { send: async (c) => void sent.push(c) }, hubs: new Map(hubs.map((h) => [h, { region: 'r', devices }])),
      now: () => T, newId: () => 'unused', logger: pino({ level: 'silent' }),
    });
    // Every third hub has one pending command, hub-0 two.
    for (const [i, hub] of hubs.entries()) {
      if (i % 3 !== 0) continue;
      await store.insert({ id: `c-${hub}`, hub, region: 'r', device: 'locker-a', kind: 'locker', command: 'locker.unlock', args: {}, issuedAt: T - 10, expiresAt: T + 60_000, state: 'pending', detail: null, ackedAt: null });
    }
    await store.insert({ id: 'c-hub-0-b', hub: 'hub-0', region: 'r', device: 'locker-a', kind: 'locker', command: 'locker.reserve', args: {}, issuedAt: T - 5, expiresAt: T + 60_000, state: 'pending', detail: null, ackedAt: null });
    // hub-3 subscribes twice in the same turn (two connections): both calls answered, its command sent once.
    const counts = await Promise.all([...hubs.map((h) => service.redeliver(h)), service.redeliver('hub-3')]);
    expect(queries).toEqual([500, 500, 200]);
    expect(counts.slice(0, 4)).toEqual([2, 0, 0, 1]);
    expect(counts.at(-1)).toBe(1);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(400 + 1 + 1);
    expect(sent.map((c) => c.id).sort()).toEqual([...hubs.filter((_, i) => i % 3 === 0).map((h) => `c-${h}`), 'c-hub-0-b'].sort());
    expect(sent.every((c) => c.id.startsWith(`c-${c.hub}`))).toBe(true);
    // A failing store query fails only the hubs of that query; the next turn asks again.
    let fail = true;
    const flaky: CommandStore = { ...store, pendingFor: (h, n, l) => (fail ? Promise.reject(new Error('database gone')) : store.pendingFor(h, n, l)) };
    const again = new CommandService({ store: flaky, bus: { send: async () => undefined }, hubs: new Map(), now: () => T, newId: () => 'x', logger: pino({ level: 'silent' }) });
    await expect(again.redeliver('hub-0')).rejects.toThrow('database gone');
    fail = false;
    expect(await again.redeliver('hub-0')).toBe(2);
  });

  it('asks the store again, 1 s, 2 s, 4 s later, when the re-delivery query failed (the database restarting): the command goes out once it answers', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const store = createMemoryCommandStore();
      let failures = 3;
      const asked: number[] = [];
      const flaky: CommandStore = { ...store, pendingFor: (h, n, l) => (asked.push(Date.now()), failures-- > 0 ? Promise.reject(new Error('database restarting')) : store.pendingFor(h, n, l)) };
      const sent: string[] = [];
      const service = new CommandService({
        store: flaky, bus: { send: async (c) => void sent.push(c.id) }, hubs: new Map(), now: () => T, newId: () => 'x', logger: pino({ level: 'silent' }),
      });
      await store.insert({ id: 'c-1', hub: HUB, region: 'r', device: 'locker-a', kind: 'locker', command: 'locker.unlock', args: {}, issuedAt: T - 10, expiresAt: T + 600_000, state: 'pending', detail: null, ackedAt: null });
      const start = Date.now();
      await expect(service.redeliver(HUB)).rejects.toThrow('database restarting');
      await vi.advanceTimersByTimeAsync(10_000);
      expect(asked.map((t) => t - start)).toEqual([0, 1_000, 3_000, 7_000]);
      expect(sent).toEqual(['c-1']);
      // Answered: no more tries.
      await vi.advanceTimersByTimeAsync(60_000);
      expect(asked).toHaveLength(4);

      // Closed (the cloud shutting down): a failed query is not asked again.
      failures = 1;
      await expect(service.redeliver(HUB)).rejects.toThrow();
      service.close();
      await vi.advanceTimersByTimeAsync(60_000);
      expect(asked).toHaveLength(5);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a database down for 10 minutes while 2,000 hubs reconnect: one retry round for all of them at a time, a warning a round, every hub served once it is back', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const store = createMemoryCommandStore();
      let down = true;
      let queries = 0;
      const flaky: CommandStore = { ...store, pendingFor: (h, n, l) => (queries++, down ? Promise.reject(new Error('database down')) : store.pendingFor(h, n, l)) };
      const sent: string[] = [];
      let warnings = 0;
      const logger = pino({ level: 'warn' }, { write: () => void warnings++ });
      const service = new CommandService({ store: flaky, bus: { send: async (c) => void sent.push(c.id) }, hubs: new Map(), now: () => T, newId: () => 'x', logger, redeliveryWindowMs: 10 });
      const hubs = Array.from({ length: 2_000 }, (_, i) => `hub-${i}`);
      for (const hub of hubs) await store.insert({ id: `c-${hub}`, hub, region: 'r', device: 'locker-a', kind: 'locker', command: 'locker.unlock', args: {}, issuedAt: T - 10, expiresAt: T + 3_600_000, state: 'pending', detail: null, ackedAt: null });
      // The reconnect storm: 100 hubs every second for 20 s, while the database is down.
      for (let s = 0; s < 20; s++) {
        for (const hub of hubs.slice(s * 100, s * 100 + 100)) service.redeliver(hub).catch(() => undefined);
        await vi.advanceTimersByTimeAsync(1_000);
      }
      const inStorm = queries;
      await vi.advanceTimersByTimeAsync(580_000);
      const rounds = queries - inStorm;
      // Backoff 1, 2, 4, 8, 16, then every 30 s: ~24 rounds in 10 min, each 4 queries of 500 hubs.
      expect(rounds).toBeLessThanOrEqual(30 * 4);
      expect(warnings).toBeLessThanOrEqual(30);
      down = false;
      await vi.advanceTimersByTimeAsync(31_000);
      expect(new Set(sent).size).toBe(2_000);
      console.info(`[retry storm] ${inStorm} queries during the 20-s storm, ${rounds} in the next 9 min 40 s of outage, ${warnings} warnings; all ${new Set(sent).size} commands out within 31 s of the database's return`);
      service.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('publishes a command again, 1 s, 2 s… later, when its publish failed (this node cut from the broker bus), until it goes out or is no longer pending', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      let now = T;
      let down = true;
      const tries: { id: string; at: number }[] = [];
      const sent: string[] = [];
      const devices = new Map([['locker-a', { kind: 'locker' as const }]]);
      const service = new CommandService({
        store: createMemoryCommandStore(),
        bus: { send: async (c) => { tries.push({ id: c.id, at: Date.now() - T }); if (down) throw new Error('Redis link cut'); sent.push(c.id); } },
        hubs: new Map([[HUB, { region: 'r', devices }]]), now: () => now, newId: ((n) => () => `c-${++n}`)(0), logger: pino({ level: 'silent' }),
      });
      vi.setSystemTime(T);
      const first = await service.issue({ hub: HUB, device: 'locker-a', command: 'locker.unlock', args: {}, ttlS: 600 });
      const second = await service.issue({ hub: HUB, device: 'locker-a', command: 'locker.unlock', args: {}, ttlS: 600 });
      expect(first.state).toBe('pending');
      // The second is answered meanwhile (the hub got it by a re-delivery on its node): not published again.
      await service.applyAck(CommandAck.parse({ v: 1, type: 'hub.command-ack', id: 'a-2', ts: T + 500, hub: HUB, device: 'locker-a', commandId: second.id, result: 'done' }));
      await vi.advanceTimersByTimeAsync(1_000);
      down = false;
      await vi.advanceTimersByTimeAsync(2_000);
      now = T + 3_000;
      expect(tries.filter((t) => t.id === first.id).map((t) => t.at)).toEqual([0, 1_000, 3_000]);
      expect(tries.filter((t) => t.id === second.id).map((t) => t.at)).toEqual([0]);
      expect(sent).toEqual([first.id]);
      await vi.advanceTimersByTimeAsync(120_000);
      expect(tries).toHaveLength(4);

      // Expired before the bus is back: given up. Closed: nothing is tried again.
      down = true;
      const third = await service.issue({ hub: HUB, device: 'locker-a', command: 'locker.unlock', args: {}, ttlS: 1 });
      now += 2_000;
      await vi.advanceTimersByTimeAsync(60_000);
      expect(tries.filter((t) => t.id === third.id)).toHaveLength(1);
      const fourth = await service.issue({ hub: HUB, device: 'locker-a', command: 'locker.unlock', args: {}, ttlS: 600 });
      service.close();
      await vi.advanceTimersByTimeAsync(60_000);
      expect(tries.filter((t) => t.id === fourth.id)).toHaveLength(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('ends a stored command the contract no longer accepts as failed, with the reason, and still re-delivers the others', async () => {
    const store = createMemoryCommandStore();
    const sent: string[] = [];
    const service = new CommandService({ store, bus: { send: async (c) => void sent.push(c.id) }, hubs: new Map(), now: () => T, newId: () => 'x', logger: pino({ level: 'silent' }) });
    const row = { hub: HUB, region: 'r', device: 'locker-a', kind: 'locker' as const, args: {}, issuedAt: T - 10, expiresAt: T + 60_000, state: 'pending' as const, detail: null, ackedAt: null };
    await store.insert({ ...row, id: 'c-bad', command: 'locker.explode' as never });
    await store.insert({ ...row, id: 'c-good', command: 'locker.unlock', issuedAt: T - 5 });
    expect(await service.redeliver(HUB)).toBe(2);
    expect(sent).toEqual(['c-good']);
    const bad = await service.get('c-bad');
    expect(bad).toMatchObject({ state: 'failed', ackedAt: T });
    expect(bad.detail).toMatch(/^not sent: the stored command is not a valid message under the current contract \(command: /);
    expect((await service.history('c-bad')).map((h) => [h.from, h.state])).toEqual([['pending', 'failed']]);
    // Not tried again at the hub's next subscribe: only the good one is still pending.
    sent.length = 0;
    expect(await service.redeliver(HUB)).toBe(1);
    expect(sent).toEqual(['c-good']);
  });

  it('shows a pending command as expired after its expiry, and re-delivers only unexpired ones', async () => {
    await t.service.issue({ hub: HUB, device: 'locker-a', command: 'locker.unlock', args: {}, ttlS: 5 });
    await t.service.issue({ hub: HUB, device: 'locker-a', command: 'locker.reserve', args: {}, ttlS: 60 });
    t.advance(5_000);
    expect((await t.service.get('cmd-1')).state).toBe('expired');
    expect((await t.service.list(HUB, { state: 'expired', limit: 10 })).map((c) => c.id)).toEqual(['cmd-1']);
    expect((await t.service.list(HUB, { state: 'pending', limit: 10 })).map((c) => c.id)).toEqual(['cmd-2']);
    t.sent.length = 0;
    expect(await t.service.redeliver(HUB)).toBe(1);
    expect(t.sent.map((s) => s.command.id)).toEqual(['cmd-2']);
  });

  it("ignores an answer from another device of the hub naming the command (its id can be predicted)", async () => {
    await t.service.issue({ hub: HUB, device: 'locker-a', command: 'locker.unlock', args: {}, ttlS: 60 });
    expect(await t.service.applyAck(ack('cmd-1', 'rejected', { device: 'drone-1', detail: 'forged by drone-1' }))).toBe('unknown');
    expect(await t.service.get('cmd-1')).toMatchObject({ state: 'pending', detail: null });
    expect(await t.service.applyAck(ack('cmd-1', 'done'))).toBe('applied');
  });

  it('records the first result; a later duplicate does not overwrite it, a real result replaces a duplicate', async () => {
    await t.service.issue({ hub: HUB, device: 'locker-a', command: 'locker.unlock', args: {}, ttlS: 60 });
    expect(await t.service.applyAck(ack('cmd-1', 'done', { detail: 'opened' }))).toBe('applied');
    expect(await t.service.applyAck(ack('cmd-1', 'duplicate'))).toBe('ignored');
    expect(await t.service.applyAck(ack('cmd-1', 'failed'))).toBe('ignored');
    expect(await t.service.get('cmd-1')).toMatchObject({ state: 'done', detail: 'opened', ackedAt: T + 1000 });

    await t.service.issue({ hub: HUB, device: 'locker-a', command: 'locker.unlock', args: {}, ttlS: 60 });
    await t.service.applyAck(ack('cmd-2', 'duplicate'));
    expect((await t.service.get('cmd-2')).state).toBe('duplicate');
    await t.service.applyAck(ack('cmd-2', 'rejected', { detail: 'compartment empty' }));
    expect(await t.service.get('cmd-2')).toMatchObject({ state: 'rejected', detail: 'compartment empty' });
  });

  it('takes a late acknowledgement of a command the hub executed before it expired', async () => {
    await t.service.issue({ hub: HUB, device: 'locker-a', command: 'locker.unlock', args: {}, ttlS: 5 });
    t.advance(60_000);
    expect((await t.service.get('cmd-1')).state).toBe('expired');
    await t.service.applyAck(ack('cmd-1', 'done'));
    expect((await t.service.get('cmd-1')).state).toBe('done');
  });

  it('ignores an acknowledgement of an unknown command or from another hub', async () => {
    await t.service.issue({ hub: HUB, device: 'locker-a', command: 'locker.unlock', args: {}, ttlS: 60 });
    expect(await t.service.applyAck(ack('cmd-9', 'done'))).toBe('unknown');
    expect(await t.service.applyAck(ack('cmd-1', 'done', { hub: 'nomi-neagari' }))).toBe('unknown');
    expect((await t.service.get('cmd-1')).state).toBe('pending');
  });
});

/**
 * Issue 14: two cloud processes on one PostgreSQL apply answers to the same commands at once — the
 * device's late `done`, the agent's provisional failure, a re-sent copy's `duplicate`. Every order
 * must end in the same final state, with one history entry per state change.
 */
describe('CommandService with two cloud processes on PostgreSQL', () => {
  let db: TestDatabase | null = null;
  afterEach(async () => {
    await db?.cleanup();
    db = null;
  });

  it('ends every command in one final state, whichever answer lands first', async () => {
    db = await openTestDatabase('postgres');
    const devices = new Map<string, { kind: DeviceKind }>([['locker-a', { kind: 'locker' }]]);
    let seq = 0;
    const service = async (store: CommandStore) => new CommandService({
      store, bus: { send: async () => {} }, hubs: new Map([[HUB, { region: 'ishikawa-nomi', devices }]]), now: () => T, newId: () => `cmd-${++seq}`,
      logger: pino({ level: 'silent' }),
    });
    const a = await service(await openCommandStore(db.db));
    const b = await service(await openCommandStore(await db.reopen()));
    const ids: string[] = [];
    for (let i = 0; i < 15; i++) ids.push((await a.issue({ hub: HUB, device: 'locker-a', command: 'locker.unlock', args: {}, ttlS: 60 })).id);
    const timeout = 'the device did not answer within 10 s';
    await Promise.all(ids.flatMap((id, i) => [
      (i % 2 ? a : b).applyAck(ack(id, 'failed', { detail: timeout })),
      (i % 2 ? b : a).applyAck(ack(id, 'done', { detail: 'opened' })),
      (i % 3 ? a : b).applyAck(ack(id, 'duplicate')),
    ]));
    for (const id of ids) {
      expect(await a.get(id), id).toMatchObject({ state: 'done', detail: 'opened' });
      const history = await b.history(id);
      expect(history.at(-1)!.state).toBe('done');
      // Each entry starts from the state the one before it set: no result was set from a stale state.
      history.forEach((h, i) => expect(h.from).toBe(i === 0 ? 'pending' : history[i - 1]!.state));
    }
  });
});
