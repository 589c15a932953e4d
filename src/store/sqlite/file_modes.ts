import { statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/**
 * File modes of the SQLite store (S2-07). The database holds e-mails, claims, IP addresses and
 * password hashes: what Rotor creates only its owner may read, whatever the umask (0700 for the data
 * directory, 0600 for the database; SQLite gives the -wal and -shm files the database file's mode).
 * What exists already is left as it is (an operator may have chosen group access on purpose) and
 * reported by `wideModes`, which the server logs at start.
 */
export { createPrivateFile, makePrivateDir, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../../crypto/private_files.js';

export interface WideMode {
  path: string;
  /** Permission bits, e.g. 0o644. */
  mode: number;
  /** The command that makes it private. */
  fix: string;
  /** One line for the log, naming the path and the fix. */
  message: string;
}

/** The data directory, database, -wal and -shm files of `path` that group or others may access. */
export function wideModes(path: string): WideMode[] {
  const found: WideMode[] = [];
  const check = (p: string, kind: 'directory' | 'file') => {
    let bits: number;
    try {
      bits = statSync(p).mode;
    } catch {
      return; // absent (no -wal yet, say)
    }
    const mode = bits & 0o777;
    if ((mode & 0o077) === 0) return;
    // A shared directory such as /tmp (sticky bit) must stay open to others: move the database instead.
    const fix = kind === 'directory' && (bits & 0o1000) !== 0
      ? `keep the database in a directory of its own (mkdir -m 700 ${shellQuote(join(p, 'rotor'))}, and move it there)`
      : `chmod ${kind === 'directory' ? '700' : '600'} ${shellQuote(p)}`;
    found.push({
      path: p, mode, fix,
      message: `the database ${kind} ${p} is accessible to group or others (mode ${mode.toString(8).padStart(4, '0')}); it holds e-mails, claims, IP addresses and password hashes: ${fix}`,
    });
  };
  const file = resolve(path);
  check(dirname(file), 'directory');
  for (const p of [file, `${file}-wal`, `${file}-shm`]) check(p, 'file');
  return found;
}

function shellQuote(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}
