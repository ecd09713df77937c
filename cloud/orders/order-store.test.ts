import { afterEach, describe, expect, it } from 'vitest';
import { openTestDatabase, SQL_DATABASES, type TestDatabase } from '../../test/support/test-database.ts';
import { IllegalTransition, type OrderState } from './order-lifecycle.ts';
import { openOrderStore, ORDER_MIGRATIONS, OrderNotFound, ResourceTaken, type NewOrderRecord, type Order, type OrderStore } from './order-store.ts';

/**
 * The order store's contract (issue 14): one suite, every adapter — SQLite and PostgreSQL. What the
 * order service relies on: an order's state change and its audit entry together, the lifecycle
 * checked on the row as locked, a compartment or drone held by one order at a time, a pickup code
 * shown once, wrong codes counted in place.
 */
const T = Date.UTC(2026, 5, 1, 1);
const REGION = 'ishikawa-nomi';

const record = (id: string, over: Partial<NewOrderRecord> = {}): NewOrderRecord => ({
  id, region: REGION, originHub: 'rs-komatsu-kibagata', destination: { type: 'locker', hub: 'nomi-kokufu' }, weightKg: 1.5,
  tempClass: 'ambient', priority: 'normal', deadline: null, reference: null, flightPlanRef: null, createdAt: T, createdBy: 'tester', ...over,
});

/** What an assignment to a drone and compartment writes. */
const droneFields = (compartment: string, drone = 'drone-1', mission = `m-${compartment}-${drone}`): Partial<Order> => ({
  carrier: 'drone', droneHub: 'rs-komatsu-kibagata', droneId: drone, lockerId: 'locker-a', compartmentId: compartment, missionId: mission,
});

describe.each(SQL_DATABASES)('OrderStore (%s)', (kind) => {
  let t: TestDatabase;
  let store: OrderStore;
  afterEach(async () => t?.cleanup());
  const open = async () => {
    t = await openTestDatabase(kind);
    store = await openOrderStore(t.db);
  };

  it('creates an order with its first audit entry, and gives it back field for field', async () => {
    await open();
    const created = await store.create(record('o1', { destination: { type: 'site', siteId: 'site-x' }, deadline: T + 3_600_000, reference: 'RX-1', flightPlanRef: 'FP-1', priority: 'medical', tempClass: 'chilled' }));
    expect(created).toEqual({
      id: 'o1', region: REGION, originHub: 'rs-komatsu-kibagata', destination: { type: 'site', siteId: 'site-x' }, weightKg: 1.5, tempClass: 'chilled', priority: 'medical',
      deadline: T + 3_600_000, reference: 'RX-1', flightPlanRef: 'FP-1', state: 'pending', reason: null, waitReasons: null, createdAt: T, createdBy: 'tester', updatedAt: T,
      carrier: null, droneHub: null, droneId: null, roundId: null, roundDepartsAt: null, lockerId: null, compartmentId: null, missionId: null, missionCommandId: null,
      attempts: 0, pickupHash: null, pickupReveal: null, wrongCodes: 0, locked: false,
    });
    expect(await store.get('o1')).toEqual(created);
    expect(await store.get('nope')).toBeUndefined();
    expect(await store.auditOf('o1')).toEqual([{ id: expect.any(Number), orderId: 'o1', at: T, actor: 'tester', from: null, to: 'pending', reason: 'created' }]);
    await expect(store.create(record('o1'))).rejects.toThrow();
    expect(await store.auditOf('o1')).toHaveLength(1); // the refused insert left no audit entry
  });

  it('a transition checks the lifecycle on the stored state and writes the change and its audit entry together', async () => {
    await open();
    await store.create(record('o1'));
    const reasons = [{ code: 'no_drone_in_range' }] as unknown as Order['waitReasons'];
    const assigned = await store.transition('o1', 'assigned', T + 1, 'system', 'drone-1', { ...droneFields('A01'), waitReasons: reasons, roundDepartsAt: null });
    expect(assigned).toMatchObject({ state: 'assigned', reason: 'drone-1', updatedAt: T + 1, compartmentId: 'A01', droneId: 'drone-1', waitReasons: reasons });
    await expect(store.transition('o1', 'picked_up', T + 2, 'x', 'skip')).rejects.toThrow(IllegalTransition);
    await expect(store.transition('o1', 'in_flight', T + 2, 'x', 'stale', {}, { from: ['pending'] })).rejects.toThrow(IllegalTransition);
    await expect(store.transition('o1', 'in_flight', T + 2, 'x', 'other mission', {}, { missionId: 'm-other' })).rejects.toThrow(IllegalTransition);
    await expect(store.transition('nope', 'assigned', T + 2, 'x', 'y')).rejects.toThrow(OrderNotFound);
    // A refusal inside the transaction (onLocked) leaves nothing behind.
    await expect(store.transition('o1', 'in_flight', T + 2, 'x', 'y', {}, { onLocked: () => { throw new Error('refused'); } })).rejects.toThrow('refused');
    expect((await store.get('o1'))!.state).toBe('assigned');
    await store.transition('o1', 'in_flight', T + 3, 'system', 'took off', {}, { from: ['assigned'], missionId: 'm-A01-drone-1' });
    expect((await store.auditOf('o1')).map((a) => [a.from, a.to, a.reason])).toEqual([[null, 'pending', 'created'], ['pending', 'assigned', 'drone-1'], ['assigned', 'in_flight', 'took off']]);
  });

  it('a note changes fields and records why without a change of state; update changes fields only while the state is one given', async () => {
    await open();
    await store.create(record('o1'));
    await store.note('o1', T + 1, 'staff', 'checked', { wrongCodes: 0, locked: true });
    expect(await store.get('o1')).toMatchObject({ state: 'pending', locked: true, updatedAt: T + 1 });
    expect((await store.auditOf('o1')).at(-1)).toMatchObject({ from: 'pending', to: 'pending', actor: 'staff', reason: 'checked' });
    expect(await store.update('o1', T + 2, { attempts: 2, missionCommandId: 'cmd-1' }, ['held'])).toBe(false);
    expect(await store.update('o1', T + 2, { attempts: 2, missionCommandId: 'cmd-1' }, ['pending'])).toBe(true);
    expect(await store.update('o1', T + 3, { waitReasons: null, locked: false })).toBe(true);
    expect(await store.get('o1')).toMatchObject({ attempts: 2, missionCommandId: 'cmd-1', locked: false, waitReasons: null, updatedAt: T + 3 });
    expect(await store.auditOf('o1')).toHaveLength(2);
  });

  it('lists newest first by hub, state and region, and gives orders in states oldest first', async () => {
    await open();
    await store.create(record('a', { createdAt: T }));
    await store.create(record('b', { createdAt: T + 1, originHub: 'nomi-terai', destination: { type: 'locker', hub: 'nomi-wake' } }));
    await store.create(record('c', { createdAt: T + 2, region: 'kaga', originHub: 'kaga-1', destination: { type: 'locker', hub: 'kaga-2' } }));
    await store.transition('a', 'cancelled', T + 5, 'x', 'y');
    const ids = (os: Order[]) => os.map((o) => o.id);
    expect(ids(await store.list({ limit: 10 }))).toEqual(['c', 'b', 'a']);
    expect(ids(await store.list({ limit: 2 }))).toEqual(['c', 'b']);
    expect(ids(await store.list({ hub: 'nomi-kokufu', limit: 10 }))).toEqual(['a']);
    expect(ids(await store.list({ hub: 'nomi-wake', limit: 10 }))).toEqual(['b']);
    expect(ids(await store.list({ state: 'pending', limit: 10 }))).toEqual(['c', 'b']);
    expect(ids(await store.list({ regions: [REGION], limit: 10 }))).toEqual(['b', 'a']);
    expect(ids(await store.list({ regions: ['kaga'], state: 'pending', limit: 10 }))).toEqual(['c']);
    expect(ids(await store.list({ regions: [], limit: 10 }))).toEqual([]);
    expect(ids(await store.list({ regions: null, limit: 10 }))).toEqual(['c', 'b', 'a']);
    expect(ids(await store.inStates(['pending', 'cancelled']))).toEqual(['a', 'b', 'c']);
    expect(ids(await store.inStates(['pending'], { regions: ['kaga'] }))).toEqual(['c']);
    expect(ids(await store.inStates([]))).toEqual([]);
  });

  it('counts orders by state and priority, and arrivals by priority with those on time', async () => {
    await open();
    const arrive = async (id: string, at: number, deadline: number | null, site = false) => {
      await store.create(record(id, { priority: 'medical', deadline, destination: site ? { type: 'site', siteId: 's' } : { type: 'locker', hub: 'nomi-kokufu' } }));
      await store.transition(id, 'assigned', at - 2, 's', 'r', { carrier: 'drone', droneHub: 'h', droneId: id, missionId: `m-${id}` });
      await store.transition(id, 'in_flight', at - 1, 's', 'r');
      await store.transition(id, site ? 'delivered' : 'in_locker', at, 's', 'r');
    };
    await arrive('late', T + 100, T + 50);
    await arrive('ontime', T + 100, T + 200, true);
    await arrive('nodeadline', T + 100, null);
    await store.note('nodeadline', T + 101, 'staff', 'unlocked'); // an in_locker → in_locker note is not a second arrival
    await store.create(record('waiting'));
    expect(await store.countsByStateAndPriority()).toEqual(expect.arrayContaining([
      { state: 'in_locker', priority: 'medical', count: 2 }, { state: 'delivered', priority: 'medical', count: 1 }, { state: 'pending', priority: 'normal', count: 1 },
    ]));
    expect(await store.countsByStateAndPriority()).toHaveLength(3);
    expect(await store.arrivalsByPriority()).toEqual([{ priority: 'medical', delivered: 3, onTime: 2 }]);
    // Per region, for each region's dashboard.
    await store.create(record('elsewhere', { region: 'kaga', originHub: 'kaga-1' }));
    expect(await store.countsByStateAndPriority('kaga')).toEqual([{ state: 'pending', priority: 'normal', count: 1 }]);
    expect(await store.countsByStateAndPriority(REGION)).toHaveLength(3);
    expect(await store.arrivalsByPriority(REGION)).toEqual([{ priority: 'medical', delivered: 3, onTime: 2 }]);
    expect(await store.arrivalsByPriority('kaga')).toEqual([]);
  });

  it('keeps the flight log: written with the assignment or alone, take-off and arrival kept at their first report', async () => {
    await open();
    await store.create(record('o1'));
    const flight = { missionId: 'm-1', orderId: 'o1', aircraftHub: 'rs-komatsu-kibagata', aircraft: 'drone-1', origin: 'rs-komatsu-kibagata', destination: 'nomi-kokufu/locker-a/A01', route: [{ from: { lat: 36.3, lon: 136.4 }, to: { lat: 36.4, lon: 136.5 } }], distanceM: 4500.5, payloadKg: 1.5, flightPlanRef: 'FP-m-1', plannedAt: T };
    await store.transition('o1', 'assigned', T, 'system', 'r', droneFields('A01', 'drone-1', 'm-1'), { flight });
    await store.updateFlight('m-1', { takeoffAt: T + 10 });
    await store.updateFlight('m-1', { takeoffAt: T + 20, arrivedAt: T + 30, result: 'delivered' });
    await store.updateFlight('m-1', { arrivedAt: T + 40 });
    await store.addFlight({ ...flight, missionId: 'm-2', plannedAt: T + 100 });
    const expected = { ...flight, takeoffAt: T + 10, arrivedAt: T + 30, result: 'delivered' };
    expect(await store.flights({ orderId: 'o1', limit: 10 })).toEqual([{ ...flight, missionId: 'm-2', plannedAt: T + 100, takeoffAt: null, arrivedAt: null, result: null }, expected]);
    expect(await store.flights({ limit: 1 })).toHaveLength(1);
    expect(await store.flights({ orderId: 'other', limit: 10 })).toEqual([]);
    expect(await store.flights({ regions: [REGION], limit: 10 })).toHaveLength(2);
    expect(await store.flights({ regions: ['kaga'], limit: 10 })).toEqual([]);
    expect(await store.flights({ regions: [], limit: 10 })).toEqual([]);
  });

  it('refuses a compartment or a drone another order holds (ResourceTaken), with nothing of the refused assignment written; both free again once it ends', async () => {
    await open();
    for (const id of ['a', 'b', 'c']) await store.create(record(id));
    await store.transition('a', 'assigned', T, 'system', 'r', droneFields('A01', 'drone-1'));
    const flight = { missionId: 'm-b', orderId: 'b', aircraftHub: 'h', aircraft: 'drone-2', origin: 'h', destination: 'd', route: [], distanceM: 1, payloadKg: 1, flightPlanRef: 'f', plannedAt: T };
    await expect(store.transition('b', 'assigned', T, 'system', 'r', droneFields('A01', 'drone-2', 'm-b'), { flight })).rejects.toThrow(ResourceTaken);
    await expect(store.transition('c', 'assigned', T, 'system', 'r', droneFields('A02', 'drone-1', 'm-c'))).rejects.toThrow(ResourceTaken);
    expect((await store.get('b'))!.state).toBe('pending');
    expect(await store.auditOf('b')).toHaveLength(1);
    expect(await store.flights({ orderId: 'b', limit: 10 })).toEqual([]);
    // The same compartment in another hub's locker is another compartment.
    await store.create(record('d', { destination: { type: 'locker', hub: 'nomi-wake' } }));
    await store.transition('d', 'assigned', T, 'system', 'r', droneFields('A01', 'drone-3', 'm-d'));
    // Once `a` is in the locker its drone is free; once picked up its compartment is.
    await store.transition('a', 'in_flight', T + 1, 's', 'r');
    await store.transition('a', 'in_locker', T + 2, 's', 'r');
    await store.transition('c', 'assigned', T + 3, 'system', 'r', droneFields('A02', 'drone-1', 'm-c'));
    await expect(store.transition('b', 'assigned', T + 3, 'system', 'r', droneFields('A01', 'drone-2', 'm-b'))).rejects.toThrow(ResourceTaken);
    await store.transition('a', 'picked_up', T + 4, 'locker', 'r');
    await store.transition('b', 'assigned', T + 5, 'system', 'r', droneFields('A01', 'drone-2', 'm-b'), { flight });
    expect(await store.flights({ orderId: 'b', limit: 10 })).toHaveLength(1);
  });

  it('shows the pickup code once, counts wrong codes in place and locks at the limit', async () => {
    await open();
    await store.create(record('o1'));
    await store.transition('o1', 'assigned', T, 's', 'r', droneFields('A01'));
    expect(await store.takePickupReveal('o1', T)).toBeNull(); // not in a locker yet
    expect(await store.countWrongCode('o1', T, 3)).toBeNull();
    await store.transition('o1', 'in_flight', T, 's', 'r');
    await store.transition('o1', 'in_locker', T, 's', 'r', { pickupHash: 'hash', pickupReveal: '123456' });
    expect(await store.takePickupReveal('o1', T + 1)).toMatchObject({ code: '123456', order: { id: 'o1', pickupReveal: null } });
    expect(await store.takePickupReveal('o1', T + 2)).toBeNull();
    expect((await store.get('o1'))!.pickupReveal).toBeNull();
    expect(await store.countWrongCode('o1', T + 3, 3)).toEqual({ wrongCodes: 1, locked: false });
    expect(await store.countWrongCode('o1', T + 4, 3)).toEqual({ wrongCodes: 2, locked: false });
    expect(await store.countWrongCode('o1', T + 5, 3)).toEqual({ wrongCodes: 3, locked: true });
    expect(await store.get('o1')).toMatchObject({ wrongCodes: 3, locked: true, updatedAt: T + 5 });
  });

  it('answers whether a hub has a drone on an assigned mission', async () => {
    await open();
    await store.create(record('o1'));
    expect(await store.hasAssignedMissionAt('rs-komatsu-kibagata')).toBe(false);
    await store.transition('o1', 'assigned', T, 's', 'r', droneFields('A01'));
    expect(await store.hasAssignedMissionAt('rs-komatsu-kibagata')).toBe(true);
    expect(await store.hasAssignedMissionAt('nomi-terai')).toBe(false);
    await store.transition('o1', 'in_flight', T, 's', 'r');
    expect(await store.hasAssignedMissionAt('rs-komatsu-kibagata')).toBe(false);
  });

  it('keeps the audit log append-only', async () => {
    await open();
    await store.create(record('o1'));
    await expect(t.db.sql.run("UPDATE order_audit SET reason = 'rewritten'")).rejects.toThrow(/append-only/);
    await expect(t.db.sql.run('DELETE FROM order_audit')).rejects.toThrow(/append-only/);
    expect((await store.auditOf('o1'))[0]!.reason).toBe('created');
  });

  it('survives a reopen (a restart) with its orders', async () => {
    await open();
    await store.create(record('o1'));
    const again = await openOrderStore(await t.reopen());
    expect((await again.get('o1'))!.state).toBe('pending');
  });
});

describe('an existing SQLite cloud.db', () => {
  let t: TestDatabase;
  afterEach(async () => t?.cleanup());

  it('at the orders schema before issue 14 keeps its orders through the new step', async () => {
    t = await openTestDatabase('sqlite');
    await t.db.migrate('orders', { sqlite: ORDER_MIGRATIONS.sqlite.slice(0, 2), postgres: [] });
    await t.db.sql.run(
      `INSERT INTO orders (id, region, origin_hub, dest_type, dest_hub, weight_kg, temp_class, priority, state, created_at, created_by, updated_at, round_departs_at)
       VALUES ('old', 'ishikawa-nomi', 'rs-komatsu-kibagata', 'locker', 'nomi-kokufu', 1, 'ambient', 'normal', 'pending', ?, 'someone', ?, NULL)`,
      [T, T],
    );
    const store = await openOrderStore(t.db);
    expect(await store.get('old')).toMatchObject({ id: 'old', region: 'ishikawa-nomi', state: 'pending' });
    expect((await store.list({ regions: ['ishikawa-nomi'], limit: 5 })).map((o) => o.id)).toEqual(['old']);
  });
});

/**
 * Issue 14, item 2: several cloud processes on one PostgreSQL. Each race runs two store instances on
 * two `Database`s (two connection pools, as two processes have), with both writers past their read
 * before either writes: `onLocked` holds each at the point a read-then-write decides, until the other
 * gets there too (or 300 ms pass — a writer that waits for a row lock never gets there). Each race is
 * also run through a naive read-then-write on the same database as a control: it must let both through,
 * so the race the test sets up is real.
 */
describe('OrderStore under concurrent writers (postgres)', () => {
  let t: TestDatabase;
  afterEach(async () => t?.cleanup());

  /** Two store instances on two pools of one database. */
  async function twoProcesses(): Promise<[OrderStore, OrderStore]> {
    t = await openTestDatabase('postgres');
    return [await openOrderStore(t.db), await openOrderStore(await t.reopen())];
  }

  /** A meeting point for two writers; gives up waiting after 300 ms. */
  function meeting(): () => Promise<void> {
    let arrived = 0;
    let open!: () => void;
    const all = new Promise<void>((r) => (open = r));
    return async () => {
      if (++arrived === 2) open();
      await Promise.race([all, new Promise((r) => setTimeout(r, 300))]);
    };
  }

  /** What a store without row locks and constraints would do: read, decide, write. */
  async function naiveTransition(id: string, to: OrderState, meet: () => Promise<void>, fields: Partial<Order> = {}): Promise<void> {
    const sql = t.db.sql;
    const row = await sql.one<{ state: OrderState; compartment_id: string | null }>('SELECT state FROM orders WHERE id = ?', [id]);
    const held = fields.compartmentId
      ? await sql.one("SELECT 1 AS one FROM orders WHERE compartment_id = ? AND state IN ('assigned', 'in_flight', 'in_locker')", [fields.compartmentId])
      : undefined;
    await meet();
    if (held) throw new Error('compartment held');
    if (!row) throw new Error('gone');
    const { assertTransition } = await import('./order-lifecycle.ts');
    assertTransition(row.state, to);
    await sql.run('UPDATE orders SET state = ?, compartment_id = coalesce(?, compartment_id) WHERE id = ?', [to, fields.compartmentId ?? null, id]);
    await sql.run("INSERT INTO order_audit (order_id, at, actor, from_state, to_state, reason) VALUES (?, ?, 'naive', ?, ?, 'naive')", [id, T, row.state, to]);
  }

  const outcomes = (rs: PromiseSettledResult<unknown>[]) => rs.map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as Error).name));

  it('two assignments of one compartment: exactly one wins, the other is refused and writes nothing', async () => {
    const [p1, p2] = await twoProcesses();
    for (const id of ['a', 'b', 'na', 'nb']) await p1.create(record(id));
    const meet = meeting();
    const flight = (o: string) => ({ missionId: `m-${o}`, orderId: o, aircraftHub: 'h', aircraft: `drone-${o}`, origin: 'h', destination: 'd', route: [], distanceM: 1, payloadKg: 1, flightPlanRef: 'f', plannedAt: T });
    const results = await Promise.allSettled([
      p1.transition('a', 'assigned', T, 'process-1', 'r', droneFields('A01', 'drone-1', 'm-a'), { from: ['pending'], onLocked: meet, flight: flight('a') }),
      p2.transition('b', 'assigned', T, 'process-2', 'r', droneFields('A01', 'drone-2', 'm-b'), { from: ['pending'], onLocked: meet, flight: flight('b') }),
    ]);
    expect(outcomes(results).sort()).toEqual(['ResourceTaken', 'ok']);
    const holders = (await p1.inStates(['assigned'])).filter((o) => o.compartmentId === 'A01');
    expect(holders).toHaveLength(1);
    const loser = holders[0]!.id === 'a' ? 'b' : 'a';
    expect(await p1.get(loser)).toMatchObject({ state: 'pending', compartmentId: null });
    expect(await p1.auditOf(loser)).toHaveLength(1);
    expect(await p1.flights({ orderId: loser, limit: 5 })).toEqual([]);

    // Control: read-then-write lets both take A02.
    const naive = meeting();
    await Promise.allSettled([naiveTransition('na', 'assigned', naive, { compartmentId: 'A02' }), naiveTransition('nb', 'assigned', naive, { compartmentId: 'A02' })]);
    expect((await p1.inStates(['assigned'])).filter((o) => o.compartmentId === 'A02')).toHaveLength(2);
  });

  it('cancel against take-off of one order: one final state, one audit trail', async () => {
    const [p1, p2] = await twoProcesses();
    for (const id of ['o', 'n']) {
      await p1.create(record(id));
      await p1.transition(id, 'assigned', T, 'system', 'r', droneFields(`C-${id}`, `drone-${id}`, `m-${id}`));
    }
    const meet = meeting();
    const results = await Promise.allSettled([
      p1.transition('o', 'cancelled', T + 1, 'coordinator', 'not needed', {}, { onLocked: meet }),
      p2.transition('o', 'in_flight', T + 1, 'system', 'took off', {}, { from: ['assigned'], missionId: 'm-o', onLocked: meet }),
    ]);
    expect(outcomes(results).sort()).toEqual(['IllegalTransition', 'ok']);
    const final = (await p1.get('o'))!.state;
    expect(['cancelled', 'in_flight']).toContain(final);
    expect((await p1.auditOf('o')).map((a) => `${a.from}→${a.to}`)).toEqual(['null→pending', 'pending→assigned', `assigned→${final}`]);

    // Control: read-then-write records both, from the same state.
    const naive = meeting();
    await Promise.allSettled([naiveTransition('n', 'cancelled', naive), naiveTransition('n', 'in_flight', naive)]);
    expect((await p1.auditOf('n')).filter((a) => a.from === 'assigned')).toHaveLength(2);
  });

  it('pickup against a failure of one order in a locker: one final state, one audit trail', async () => {
    const [p1, p2] = await twoProcesses();
    await p1.create(record('o'));
    await p1.transition('o', 'assigned', T, 'system', 'r', droneFields('A01'));
    await p1.transition('o', 'in_flight', T, 'system', 'r');
    await p1.transition('o', 'in_locker', T, 'system', 'r', { pickupHash: 'h', pickupReveal: '123456' });
    const meet = meeting();
    const results = await Promise.allSettled([
      p1.transition('o', 'picked_up', T + 1, 'locker:nomi-kokufu/locker-a', 'picked up', {}, { from: ['in_locker'], onLocked: meet }),
      p2.transition('o', 'failed', T + 1, 'staff', 'parcel damaged', {}, { from: ['in_locker'], onLocked: meet }),
    ]);
    expect(outcomes(results).sort()).toEqual(['IllegalTransition', 'ok']);
    expect((await p1.auditOf('o')).filter((a) => a.from === 'in_locker')).toHaveLength(1);
  });

  it('the pickup code is shown once and wrong codes all count, with both processes at it', async () => {
    const [p1, p2] = await twoProcesses();
    await p1.create(record('o'));
    await p1.transition('o', 'assigned', T, 'system', 'r', droneFields('A01'));
    await p1.transition('o', 'in_flight', T, 'system', 'r');
    await p1.transition('o', 'in_locker', T, 'system', 'r', { pickupHash: 'h', pickupReveal: '123456' });
    const shown = await Promise.all([p1.takePickupReveal('o', T + 1), p2.takePickupReveal('o', T + 1)]);
    expect(shown.filter((s) => s !== null).map((s) => s!.code)).toEqual(['123456']);
    const counted = await Promise.all([1, 2, 3, 4].map((i) => (i % 2 ? p1 : p2).countWrongCode('o', T + 2, 3)));
    expect(counted.map((c) => c!.wrongCodes).sort()).toEqual([1, 2, 3, 4]);
    expect(await p1.get('o')).toMatchObject({ wrongCodes: 4, locked: true });
  });
});
