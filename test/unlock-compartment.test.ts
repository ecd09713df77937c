import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestCloud, type TestCloud } from './support/cloud-harness.ts';

/**
 * Issue 12 (3): POST /api/v1/orders/:orderId/unlock-compartment — who may open a locked compartment.
 * The whole story (three wrong codes → locked → unlock → the new code works) runs in orders.test.ts.
 */
const ORIGIN = 'rs-komatsu-kibagata';
const DEST = 'nomi-kokufu';
let t: TestCloud;
let orderId: string;

const unlock = (token: string | null, init: { contentType?: string; body?: string } = {}) =>
  fetch(`${t.cloud.urls.http}/api/v1/orders/${orderId}/unlock-compartment`, {
    method: 'POST',
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), 'content-type': init.contentType ?? 'application/json' },
    body: init.body ?? '{}',
  });
const codeOf = async (res: Response) => ({ status: res.status, code: ((await res.json()) as { error?: { code: string } }).error?.code });

beforeAll(async () => {
  t = await startTestCloud();
  const res = await t.api('/api/v1/orders', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ originHub: ORIGIN, destination: { type: 'locker', hub: DEST }, weightKg: 1, priority: 'normal' }),
  });
  expect(res.status).toBe(201);
  orderId = ((await res.json()) as { id: string }).id;
}, 60_000);
afterAll(async () => t?.stop());

describe('unlocking a locked compartment: refusals', () => {
  it('401 without a session', async () => {
    expect(await codeOf(await unlock(null))).toEqual({ status: 401, code: 'unauthenticated' });
  });

  it('403 for the operator role and for staff of another hub (even the order\'s origin depot)', async () => {
    expect(await codeOf(await unlock(await t.tokenFor('unlock-operator', 'operator')))).toEqual({ status: 403, code: 'forbidden' });
    expect(await codeOf(await unlock(await t.tokenFor('unlock-staff-other', 'staff', ['nomi-terai'])))).toEqual({ status: 403, code: 'forbidden' });
    expect(await codeOf(await unlock(await t.tokenFor('unlock-staff-origin', 'staff', [ORIGIN])))).toEqual({ status: 403, code: 'forbidden' });
  });

  it('415 for a body that is not JSON', async () => {
    const res = await unlock(await t.tokenFor('unlock-coordinator', 'coordinator'), { contentType: 'text/plain', body: 'open it' });
    expect(await codeOf(res)).toEqual({ status: 415, code: 'unsupported_media_type' });
  });

  it('staff of the locker\'s hub and coordinators get through; a compartment that is not locked answers 409 and nothing is sent', async () => {
    const before = (await t.cloud.commands.list(DEST, { limit: 100 })).length;
    expect(await codeOf(await unlock(await t.tokenFor('unlock-staff-dest', 'staff', [DEST])))).toEqual({ status: 409, code: 'compartment_not_locked' });
    expect(await codeOf(await unlock(await t.tokenFor('unlock-coordinator', 'coordinator')))).toEqual({ status: 409, code: 'compartment_not_locked' });
    expect(await t.cloud.commands.list(DEST, { limit: 100 })).toHaveLength(before);
  });

  it('every call is in the API audit log, refusals included', async () => {
    const res = await t.api('/api/v1/audit?limit=200');
    const body = (await res.json()) as { entries: { path: string; status: number }[] };
    const ours = body.entries.filter((e) => e.path.includes('/unlock-compartment'));
    expect(ours.map((e) => e.status).sort()).toEqual(expect.arrayContaining([401, 403, 409, 415]));
  });
});
