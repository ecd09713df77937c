import fs from 'node:fs';

/** The password in `file` (its first line), with a warning when others may read the file. */
export function readPasswordFile(file: string): { password: string; warning: string | null } | { error: string } {
  let text: string;
  let mode: number;
  try {
    // Non-blocking: a FIFO named here must not hang the drill.
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) return { error: `--password-file ${file}: not a regular file` };
      if (st.size > 4096) return { error: `--password-file ${file}: larger than 4 KiB, not a password file` };
      mode = st.mode;
      text = fs.readFileSync(fd, 'utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    return { error: `--password-file ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
  }
  const password = text.split(/\r?\n/)[0]!;
  if (password === '') return { error: `--password-file ${file}: the first line is empty` };
  const warning = (mode & 0o077) !== 0
    ? `warning: --password-file ${file} may be read or changed by ${(mode & 0o007) !== 0 ? 'every user' : 'its group'} (mode ${(mode & 0o777).toString(8)}): chmod 600 ${file}`
    : null;
  return { password, warning };
}
