import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openOperationalDb, type OperationalDb } from '../db/operational-db.ts';
import { AccountStore, SESSION_TTL_MS } from './account-store.ts';

let db: OperationalDb | null = null;
let dir = '';
function open(now: () => number) {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chiiki-accounts-'));
  db = openOperationalDb(dir, 'normal');
  return new AccountStore(db, now);
}
afterEach(() => {
  db?.close();
  db = null;
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('AccountStore', () => {
  it('keeps passwords as scrypt hashes and checks them', async () => {
    const store = open(Date.now);
    await store.create({ username: 'hanako', role: 'staff', hubs: ['nomi-terai'], password: 'correct horse battery' });
    const row = db!.prepare('SELECT secret FROM accounts WHERE username = ?').get('hanako') as { secret: string };
    expect(row.secret).toMatch(/^scrypt\$/);
    expect(row.secret).not.toContain('correct');
    expect(await store.verifyPassword('hanako', 'correct horse battery')).toMatchObject({ username: 'hanako', role: 'staff', hubs: ['nomi-terai'] });
    expect(await store.verifyPassword('hanako', 'wrong')).toBeNull();
    expect(await store.verifyPassword('nobody', 'correct horse battery')).toBeNull();
  });

  it('ends a session after 12 hours (clock injected), stores only its hash, and ends sessions on a password change', async () => {
    let now = Date.parse('2026-11-22T09:00:00+09:00');
    const store = open(() => now);
    await store.create({ username: 'bousai', role: 'coordinator', password: 'x'.repeat(12) });
    const s = store.createSession('bousai');
    expect(s.expiresAt - now).toBe(SESSION_TTL_MS);
    const stored = db!.prepare('SELECT token_hash FROM account_tokens').all() as { token_hash: string }[];
    expect(stored.map((r) => r.token_hash)).not.toContain(s.token);
    expect(store.resolveToken(s.token)?.account.username).toBe('bousai');
    now += SESSION_TTL_MS - 1;
    expect(store.resolveToken(s.token)).not.toBeNull();
    now += 1;
    expect(store.resolveToken(s.token)).toBeNull();

    const again = store.createSession('bousai');
    const api = store.createApiToken('bousai', 'node-red');
    await store.setPassword('bousai', 'y'.repeat(12));
    expect(store.resolveToken(again.token)).toBeNull();
    now += 365 * 86_400_000;
    expect(store.resolveToken(api.token)).toMatchObject({ kind: 'api', expiresAt: null }); // API tokens do not expire unless asked
    store.revokeToken(api.token);
    expect(store.resolveToken(api.token)).toBeNull();
    expect(store.resolveToken('made-up')).toBeNull();
  });

  it('takes a new role or hubs at once for existing sessions', async () => {
    const store = open(Date.now);
    await store.create({ username: 'k', role: 'staff', hubs: ['a1'], password: 'p'.repeat(12) });
    const s = store.createSession('k');
    store.update('k', { role: 'operator' });
    expect(store.resolveToken(s.token)?.account.role).toBe('operator');
  });

  it('keeps the audit log append-only', () => {
    const store = open(() => 1_000);
    store.recordAudit({ account: 'k', role: 'staff', method: 'POST', route: '/api/v1/orders', path: '/api/v1/orders', status: 201 });
    expect(store.audit(10)).toEqual([{ id: 1, at: 1_000, account: 'k', role: 'staff', method: 'POST', route: '/api/v1/orders', path: '/api/v1/orders', status: 201 }]);
    expect(() => db!.prepare('DELETE FROM api_audit').run()).toThrow(/append-only/);
    expect(() => db!.prepare("UPDATE api_audit SET account = 'someone-else'").run()).toThrow(/append-only/);
  });
});
