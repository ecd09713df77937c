import type { Logger } from '../logger.ts';
import type { AccountStore } from './account-store.ts';

/**
 * Accounts' display names for answers that name people (who acknowledged an alarm, who switched a
 * mode; issue 13, item 5), looked up synchronously while an answer is built: a list of 500 alarms must
 * not cost a query per row. Read in full at start, updated at once when this process creates or
 * renames an account, and read again every `refreshMs` (default 10 s) for renames made by another
 * cloud process sharing the database (issue 14) — a display name is for people to read, so a rename
 * elsewhere showing up to 10 s late is acceptable; access decisions never use this (they read the
 * account with the session on every request).
 */
export interface DisplayNames {
  /** The display name, or null for an unknown username. */
  of(username: string): string | null;
  close(): void;
}

export async function startDisplayNames(accounts: AccountStore, o: { logger: Logger; refreshMs?: number }): Promise<DisplayNames> {
  let names = await accounts.displayNames();
  // Changes made here while a read is under way are laid over its result (it may predate them).
  const meanwhile = new Map<string, string>();
  const unsubscribe = accounts.onChange((a) => {
    names.set(a.username, a.displayName);
    meanwhile.set(a.username, a.displayName);
  });
  let reading = false;
  const timer = setInterval(() => {
    if (reading) return;
    reading = true;
    meanwhile.clear();
    accounts.displayNames().then(
      (fresh) => {
        for (const [u, n] of meanwhile) fresh.set(u, n);
        names = fresh;
      },
      (err: unknown) => o.logger.warn({ err }, 'reading display names failed; the last ones are kept'),
    ).finally(() => (reading = false));
  }, o.refreshMs ?? 10_000);
  timer.unref();
  return {
    of: (username) => names.get(username) ?? null,
    close: () => {
      clearInterval(timer);
      unsubscribe();
    },
  };
}
