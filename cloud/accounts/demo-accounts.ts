import type { Logger } from '../logger.ts';
import { AccountExistsError, type AccountStore } from './account-store.ts';
import type { Role } from './authorize.ts';

/**
 * The demo's accounts (DEMO_CREDENTIALS=true), listed in the README. Their passwords are public:
 * never enable demo credentials on a cloud reachable from outside.
 */
export const DEMO_ACCOUNTS: readonly { username: string; password: string; role: Role; displayName: string; hubs: string[]; regions?: string[] }[] = [
  { username: 'admin', password: 'demo-admin-pass', role: 'admin', displayName: '管理者 (demo)', hubs: [] },
  { username: 'coordinator', password: 'demo-coordinator-pass', role: 'coordinator', displayName: '能美市 防災担当', hubs: [] },
  { username: 'operator', password: 'demo-operator-pass', role: 'operator', displayName: '運用監視 (demo)', hubs: [] },
  { username: 'staff-terai', password: 'demo-staff-pass', role: 'staff', displayName: '寺井地区公民館 スタッフ', hubs: ['nomi-terai', 'nomi-kokufu'] },
  { username: 'staff-kibagata', password: 'demo-staff-pass', role: 'staff', displayName: '道の駅こまつ木場潟 スタッフ', hubs: ['rs-komatsu-kibagata'] },
];

/**
 * Creates the demo accounts that do not exist yet (an existing one keeps its password and role). Two
 * cloud processes starting together on one database may both try: the second is told the account
 * exists, and leaves it.
 */
export async function provisionDemoAccounts(accounts: AccountStore, logger: Logger): Promise<void> {
  let created = 0;
  for (const a of DEMO_ACCOUNTS) {
    if (await accounts.get(a.username)) continue;
    try {
      await accounts.create(a);
      created++;
    } catch (err) {
      if (!(err instanceof AccountExistsError)) throw err;
    }
  }
  logger.info({ created, accounts: DEMO_ACCOUNTS.map((a) => a.username) }, 'demo accounts ready');
}
