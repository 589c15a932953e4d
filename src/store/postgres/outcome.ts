import { randomBytes } from 'node:crypto';
import { StoreUnavailableError } from '../../domain/errors.js';
import type { FoundSession, RotateInput, RotateResult } from '../../domain/store.js';
import { foundSessionFromRow } from '../rows.js';
import type { PostgresConnection, Row } from './connection.js';
import { OutcomeUnknownError } from './errors.js';

/**
 * Rotations whose answer was lost with their connection (SECURITY-CASES F-02). The statement was sent and
 * the connection broke before its result was read: it may have committed. Answering 503 then is not
 * enough, for the client's retry with the same parent would be reuse wherever there is no grace window,
 * and the user logged out by a database fault. So the outcome is settled first, on another connection.
 *
 * Every rotation carries a deadline on the database's clock (`PostgresConnection.rotationDeadline`): it
 * locks its row, then reads clock_timestamp(), and rotates nothing once the deadline has passed. So a
 * statement still on its way (in a socket buffer, behind a stalled network) when its client gave up
 * cannot commit after the settling read below has judged it: that read locks the rows first and reads
 * the clock after, and a rotation locking the row later reads a later clock.
 *
 * - The row shows this very rotation (its generation and its `rotation_id`, which no racing rotation of
 *   the same generation writes): it committed; its caller is answered with its successor.
 * - It does not, and the deadline has passed: the statement rotated nothing there, and now never will,
 *   so 503 is the truth (a batch's inputs are then decided on their own).
 * - It does not yet, or the row cannot be read: 503, and the rotation is remembered here. Once the
 *   database answers again, its row is marked (`unconfirmed_generation`), only if it shows this
 *   rotation; it is forgotten once marked, or once the deadline has passed without it. A marked row is
 *   reported `unconfirmed` (FoundSession.rotation), so its parent redeems for this same successor,
 *   whatever the grace window, until the successor itself is presented (the next rotation moves the
 *   generation past the mark). A lookup in this process marks such a row before it answers.
 *
 * A normal rotation costs no round trip more: the id and the deadline ride in the same statement, and
 * nothing is read back. What it does cost: a clock read, and on a rotation alone (not batched) a row
 * lock before the update, one WAL record more (measured: 3 → 4 records, 184 → 240 bytes a rotation).
 */

/** A rotation as sent: its input, the id it writes on the row, and its deadline (database ms). */
export interface SentRotation {
  input: RotateInput;
  rotationId: string;
  deadline: number;
}

/** Random bytes for rotation ids, drawn 4 KiB at a time (one draw per id cost 2.5 µs of a 250 µs refresh). */
let idBytes = Buffer.alloc(0);
let idAt = 0;

/** A BIGINT no other rotation writes (64 random bits). */
export function newRotationId(): string {
  if (idAt === idBytes.length) {
    idBytes = randomBytes(4096);
    idAt = 0;
  }
  const id = idBytes.readBigInt64BE(idAt);
  idAt += 8;
  return id.toString();
}

/**
 * A rotation statement's guard, after its `locked` CTE took the row locks: whether the deadline (`param`,
 * database ms) is still ahead. Reading the clock after the locks (the count depends on them) is what
 * makes it safe: see above.
 */
export const timelyAfter = (locked: string, param: string): string => clockAfter(locked, `clock_timestamp() < to_timestamp(${param}::bigint / 1000.0) AS ok`);

/** `clock`, an expression of clock_timestamp(), evaluated once every row of `locked` is locked (the count is used, not only drained). */
const clockAfter = (locked: string, clock: string): string =>
  `SELECT ${clock} FROM (SELECT count(*) AS n FROM ${locked}) AS after_lock WHERE after_lock.n >= 0`;

/**
 * Each session's row, once the statements holding it are over (FOR SHARE waits for a rotation's row
 * lock, held until its commit; the advisory locks of DPoP marks are taken first, since a rotation with a
 * mark may still be waiting for its mark's lock, before the row), and then whether the deadline has
 * passed. Rows are locked in id order, as a subject-wide revocation locks them, so the two cannot
 * deadlock. One row at least: `final` comes with a null id when no session row is left.
 */
const SETTLE_SQL = `WITH held AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($2::text[]) AS k ORDER BY k
  ), found AS MATERIALIZED (
    SELECT id, generation, rotation_id, revoked_at IS NOT NULL AS revoked FROM sessions
    WHERE (SELECT count(*) FROM held) >= 0 AND id = ANY ($1::text[]) ORDER BY id FOR SHARE
  ), settled AS MATERIALIZED (${clockAfter('found', 'clock_timestamp() >= to_timestamp($3::bigint / 1000.0) AS final')}
  )
  SELECT f.id, f.generation, f.rotation_id, f.revoked, s.final FROM settled s LEFT JOIN found f ON true`;

/**
 * Marks a rotation `unconfirmed` if its row shows it, after the statements holding the row (its lock is
 * taken first, then the clock read, as in SETTLE_SQL); `final`: the deadline has passed. Whether the row
 * shows it is judged on the row as locked (the newest version), not on the UPDATE's own scan: that reads
 * the statement's snapshot, taken before a wait for a late rotation's commit, and would miss it.
 */
const MARK_SQL = `WITH held AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($4::text[]) AS k ORDER BY k
  ), locked AS MATERIALIZED (
    SELECT id, generation, rotation_id FROM sessions WHERE (SELECT count(*) FROM held) >= 0 AND id = $1 FOR NO KEY UPDATE
  ), settled AS MATERIALIZED (${clockAfter('locked', 'clock_timestamp() >= to_timestamp($5::bigint / 1000.0) AS final')}
  ), marked AS (
    UPDATE sessions SET unconfirmed_generation = $2::bigint
    WHERE (SELECT final FROM settled) IS NOT NULL AND id = $1
      AND EXISTS (SELECT 1 FROM locked WHERE generation = $2::bigint AND rotation_id = $3::bigint) RETURNING id
  )
  SELECT EXISTS (SELECT 1 FROM marked) AS marked, (SELECT final FROM settled) AS final`;

/** What a settling read found of one rotation. */
export type Settled = 'rotated' | 'not_rotated' | 'pending';

/**
 * Settles rotations whose statement failed with `unknown`: `rotated` if the row shows it, `not_rotated`
 * once it cannot any more. `pending` ones (the deadline still ahead) are remembered, and so is every one
 * when the rows cannot be read (then the caller gets StoreUnavailableError).
 */
export async function settle(
  c: PostgresConnection, unconfirmed: UnconfirmedRotations, sent: SentRotation[], unknown: OutcomeUnknownError, markKeys: string[] = [],
): Promise<Settled[]> {
  let rows: Row[];
  const deadline = Math.max(...sent.map((s) => s.deadline));
  try {
    rows = await c.one(SETTLE_SQL, [sent.map((s) => s.input.sessionId), markKeys, deadline], 'rotor_settle_rotations');
  } catch (err) {
    if (!(err instanceof StoreUnavailableError)) throw err;
    unconfirmed.remember(sent, markKeys);
    throw new StoreUnavailableError(unknown.cause);
  }
  const final = rows[0]?.final === true;
  const byId = new Map(rows.filter((row) => row.id !== null).map((row) => [String(row.id), row]));
  const settled = sent.map(({ input, rotationId }): Settled => {
    const row = byId.get(input.sessionId);
    if (row !== undefined && Number(row.generation) === input.next.generation && String(row.rotation_id) === rotationId) return 'rotated';
    // Gone, revoked, or moved on by another rotation: this one's condition can never hold again.
    if (final || row === undefined || row.revoked === true || Number(row.generation) !== input.expectGeneration) return 'not_rotated';
    return 'pending';
  });
  unconfirmed.remember(sent.filter((_, i) => settled[i] === 'pending'), markKeys);
  return settled;
}

/**
 * One rotation's statement (`write`, given this rotation's id and deadline), its lost answer settled:
 * rotated if the row shows it, StoreUnavailableError if not. `markKey`: its DPoP mark, whose lock the
 * statement takes first.
 */
export async function settledRotation<T extends RotateResult>(
  c: PostgresConnection, unconfirmed: UnconfirmedRotations, input: RotateInput, markKey: string | null,
  write: (rotationId: string, deadline: number) => Promise<T>,
): Promise<T | RotateResult> {
  const rotationId = newRotationId();
  const deadline = c.rotationDeadline();
  try {
    return await write(rotationId, deadline);
  } catch (err) {
    if (!(err instanceof OutcomeUnknownError)) throw err;
    const [settled] = await settle(c, unconfirmed, [{ input, rotationId, deadline }], err, markKey === null ? [] : [markKey]);
    // Its DPoP mark, if any, committed with it.
    if (settled === 'rotated') return { rotated: true };
    throw new StoreUnavailableError(err.cause);
  }
}

/** How many unsettled rotations a process remembers (each is one request's, answered 503). */
const MAX_REMEMBERED = 10_000;
const FIRST_RETRY_MS = 100;
const LAST_RETRY_MS = 2000;
const PENDING_RETRY_MS = 500;

interface Remembered {
  sessionId: string;
  generation: number;
  rotationId: string;
  deadline: number;
  markKeys: string[];
}

/**
 * The rotations this process answered 503 without knowing whether they committed, until each row is
 * marked `unconfirmed` (if it shows the rotation) or found not to show it. Retried with a growing
 * delay (0.1 s to 2 s) while the database is out. Lost if the process ends first: then a retry of the
 * parent after the grace window is reuse, as before this existed. Kept by session and rotation: two
 * racing rotations of one session (two tabs in one batch) are both unsettled, and whichever the row
 * shows is the one to mark.
 */
export class UnconfirmedRotations {
  private readonly remembered = new Map<string, Remembered[]>();
  private count = 0;
  private timer: NodeJS.Timeout | null = null;
  private delayMs = FIRST_RETRY_MS;
  private closed = false;

  constructor(private readonly c: PostgresConnection) {}

  remember(sent: SentRotation[], markKeys: string[]): void {
    for (const { input, rotationId, deadline } of sent) {
      if (this.count >= MAX_REMEMBERED) break;
      const forSession = this.remembered.get(input.sessionId) ?? [];
      forSession.push({ sessionId: input.sessionId, generation: input.next.generation, rotationId, deadline, markKeys });
      this.remembered.set(input.sessionId, forSession);
      this.count++;
    }
    this.schedule();
  }

  /**
   * A found session (Store.findSession) from its row: `unconfirmed` when marked so for its live
   * generation. A row showing a rotation this process remembers is marked first (StoreUnavailableError
   * if that fails: answering without the mark could judge the client's retry reuse).
   */
  async found(row: Row | undefined): Promise<FoundSession | null> {
    const found = foundSessionFromRow(row);
    if (found === null || row === undefined) return found;
    const generation = Number(row.generation);
    if (row.unconfirmed_generation !== null && row.unconfirmed_generation !== undefined && Number(row.unconfirmed_generation) === generation) {
      return { ...found, rotation: 'unconfirmed' };
    }
    if (this.count === 0) return found;
    const mine = this.remembered.get(found.session.id)?.find((r) => r.generation === generation && String(row.rotation_id) === r.rotationId);
    if (mine === undefined) return found;
    return (await this.mark(mine)) ? { ...found, rotation: 'unconfirmed' } : found;
  }

  /** Tries the remembered rotations once more (on close, before the pool ends). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    // A pending rotation could still commit: marked if it does, until its deadline (at most the rotation
    // budget, ~11 s by default; only after a lost answer), unless the database is out.
    const until = Math.max(0, ...[...this.remembered.values()].flat().map((r) => r.deadline)) + 1000;
    while (await this.markAll()) {
      if (this.count === 0 || this.c.databaseNow() > until) return;
      await new Promise((resolve) => setTimeout(resolve, PENDING_RETRY_MS));
    }
  }

  /**
   * True if the row now carries the mark. The rotation is forgotten once marked, or once its deadline
   * has passed without it (it can commit no more).
   */
  private async mark(r: Remembered): Promise<boolean> {
    const [row] = await this.c.one(MARK_SQL, [r.sessionId, r.generation, r.rotationId, r.markKeys, r.deadline], 'rotor_mark_unconfirmed');
    const marked = row?.marked === true;
    if (marked || row?.final !== false) this.forget(r);
    return marked;
  }

  private forget(r: Remembered): void {
    const forSession = this.remembered.get(r.sessionId);
    const at = forSession?.indexOf(r) ?? -1;
    if (forSession === undefined || at < 0) return;
    forSession.splice(at, 1);
    this.count--;
    if (forSession.length === 0) this.remembered.delete(r.sessionId);
  }

  /** One round over what is remembered; stops at the first failure (the database is still out). */
  private async markAll(): Promise<boolean> {
    for (const r of [...this.remembered.values()].flat()) {
      try {
        await this.mark(r);
      } catch {
        return false;
      }
    }
    return true;
  }

  private schedule(): void {
    if (this.timer !== null || this.closed || this.count === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.markAll().then((done) => {
        // Done, with rotations left: their deadlines are still ahead (each could yet commit), checked again soon.
        this.delayMs = done ? (this.count > 0 ? PENDING_RETRY_MS : FIRST_RETRY_MS) : Math.min(this.delayMs * 2, LAST_RETRY_MS);
        this.schedule();
      });
    }, this.delayMs);
    this.timer.unref();
  }
}
