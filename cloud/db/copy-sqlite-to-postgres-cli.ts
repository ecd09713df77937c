import { parseArgs } from 'node:util';
import { DatabaseUnreachableError, isPostgresUrl, SchemaTooNewError } from './database.ts';
import { copySqliteToPostgres, CopyRefusedError } from './copy-sqlite-to-postgres.ts';

const USAGE = 'usage: npm run db:copy -- --from <DATA_DIR or cloud.db> --to postgres://user@host:5432/db [--force]\n' +
  '  The target is migrated first and must be empty (--force replaces what it holds). Stop the cloud before copying.\n' +
  '  A password may come from PGPASSWORD instead of the URL (the command line is visible to other users).\n';

/** `npm run db:copy`: an embedded installation's operational state (SQLite) into PostgreSQL (see copy-sqlite-to-postgres.ts). */
async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { from: { type: 'string' }, to: { type: 'string' }, force: { type: 'boolean', default: false }, help: { type: 'boolean' } } }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (!values.from || !values.to || !isPostgresUrl(values.to)) {
    process.stderr.write(USAGE);
    return 2;
  }
  await copySqliteToPostgres({ from: values.from, to: values.to, force: values.force, log: (line) => process.stdout.write(`${line}\n`) });
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    const known = err instanceof CopyRefusedError || err instanceof DatabaseUnreachableError || err instanceof SchemaTooNewError;
    process.stderr.write(`db:copy: ${known ? (err as Error).message : (err as Error).stack}\nnothing was copied\n`);
    process.exitCode = 1;
  },
);
