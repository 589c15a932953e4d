import { chmodSync, closeSync, fchmodSync, fstatSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/**
 * Files that hold secrets or personal data (the master key, the SQLite database): created so that only
 * their owner may read them, whatever the umask (S2-07), and trusted only when this process's user or
 * root owns them (S5-06).
 */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** Creates `dir` and its missing parents, each exactly 0700 (mkdir masks the mode); an existing directory is left alone. */
export function makePrivateDir(dir: string): void {
  const target = resolve(dir);
  const first = mkdirSync(target, { recursive: true, mode: PRIVATE_DIR_MODE });
  if (first === undefined) return;
  const top = resolve(first);
  for (let d = target; ; d = dirname(d)) {
    chmodSync(d, PRIVATE_DIR_MODE);
    if (d === top || dirname(d) === d) break;
  }
}

/** Creates `path` empty and exactly 0600; an existing file is left alone. */
export function createPrivateFile(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'wx', PRIVATE_FILE_MODE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw err;
  }
  try {
    fchmodSync(fd, PRIVATE_FILE_MODE);
  } finally {
    closeSync(fd);
  }
}

/**
 * Refuses `path` (and the directory holding it) when another user owns it: a data directory planted by
 * another local user, in a shared directory such as /tmp or a world-writable working directory, would
 * otherwise hand Rotor a master key that user knows, or a database that user can read and write (every
 * session's refresh tokens could be minted from the two). Root's files are trusted: root can replace
 * anything anyway. Absent paths pass (they are about to be created, by this user). No check where the
 * platform has no user ids.
 */
export function refuseForeignOwner(path: string, what: string): void {
  const uid = process.getuid?.();
  if (uid === undefined) return;
  for (const [p, kind] of [[dirname(resolve(path)), `the directory of ${what}`], [path, what]] as const) {
    let owner: number;
    try {
      owner = statSync(p).uid;
    } catch {
      continue;
    }
    if (owner !== uid && owner !== 0) {
      throw new Error(`${kind} ${p} belongs to another user (uid ${owner}), not to this process's (uid ${uid}) or root: another local user may have planted it. Check it, then chown it to uid ${uid}, or point Rotor at a directory of its own.`);
    }
  }
}

/** Opens `path` for reading after refusing a foreign owner, and makes it 0600 through the descriptor when it is this user's and wider. */
export function openPrivateForReading(path: string, what: string): number {
  refuseForeignOwner(path, what);
  const fd = openSync(path, 'r');
  try {
    const stat = fstatSync(fd);
    // Judged again on what was opened: the path could have been swapped between the check and the open.
    const uid = process.getuid?.();
    if (uid !== undefined && stat.uid !== uid && stat.uid !== 0) throw new Error(`${what} ${path} belongs to another user (uid ${stat.uid}): another local user may have planted it`);
    if (stat.uid === uid && (stat.mode & 0o077) !== 0) fchmodSync(fd, PRIVATE_FILE_MODE);
    return fd;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}
