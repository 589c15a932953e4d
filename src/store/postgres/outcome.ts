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
 * and the user logged out by a database fault. So the outcome is settled first, on another connection:
 *
 * - The row shows this very rotation (its generation and its `rotation_id`, which no racing rotation of
 *   the same generation writes): it committed; its caller is answered with its successor.
 * - It does not: the statement rotated nothing there, and now never will (the read below waits for the
 *   locks that statement took), so 503 is the truth (a batch's inputs are then decided on their own).
 * - The row cannot be read either: 503, and the rotation is remembered here. Once the database answers
 *   again, its row is marked (`unconfirmed_generation`), only if it shows this rotation: the store then
 *   reports it `unconfirmed` (FoundSession.rotation), so its parent redeems for this same successor,
 *   whatever the grace window, until the successor itself is presented (the next rotation moves the
 *   generation past the mark). A lookup in this process marks such a row before it answers.
 *
 * A normal rotation costs nothing more: the id rides in the same statement, and nothing is read back.
 */

/** A rotation as sent: its input, and the id it writes on the row. */
export interface SentRotation {
  input: RotateInput;
  rotationId: string;
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
 * Each session's row, once the statements holding it are over: FOR SHARE waits for a rotation's row lock
 * (held until its commit), and the advisory locks of DPoP marks are taken first, since a rotation with a
 * mark may still be waiting for its mark's lock, before the row. Rows are locked in id order, as a
 * subject-wide revocation locks them, so the two cannot deadlock.
 */
const SETTLE_SQL = `WITH held AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($2::text[]) AS k ORDER BY k
  )
  SELECT id, generation, rotation_id FROM sessions
  WHERE (SELECT count(*) FROM held) >= 0 AND id = ANY ($1::text[]) ORDER BY id FOR SHARE`;

/** Marks a rotation `unconfirmed` if its row shows it, after the statements holding the row (see SETTLE_SQL). */
const MARK_SQL = `WITH held AS MATERIALIZED (
    SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($4::text[]) AS k ORDER BY k
  )
  UPDATE sessions SET unconfirmed_generation = generation
  WHERE (SELECT count(*) FROM held) >= 0 AND id = $1 AND generation = $2::bigint AND rotation_id = $3::bigint RETURNING id`;

/**
 * Settles rotations whose statement failed with `unknown`: for each, true if its row shows it. The
 * statement is over by then. Unreadable: each is remembered (see UnconfirmedRotations) and the caller
 * gets StoreUnavailableError.
 */
export async function settle(
  c: PostgresConnection, unconfirmed: UnconfirmedRotations, sent: SentRotation[], unknown: OutcomeUnknownError, markKeys: string[] = [],
): Promise<boolean[]> {
  let rows: Row[];
  try {
    rows = await c.one(SETTLE_SQL, [sent.map((s) => s.input.sessionId), markKeys], 'rotor_settle_rotations');
  } catch (err) {
    if (!(err instanceof StoreUnavailableError)) throw err;
    unconfirmed.remember(sent, markKeys);
    throw new StoreUnavailableError(unknown.cause);
  }
  const byId = new Map(rows.map((row) => [String(row.id), row]));
  return sent.map(({ input, rotationId }) => {
    const row = byId.get(input.sessionId);
    return row !== undefined && Number(row.generation) === input.next.generation && String(row.rotation_id) === rotationId;
  });
}

/**
 * One rotation's statement (`write`, given this rotation's id), its lost answer settled: rotated if the
 * row shows it, StoreUnavailableError if not. `markKey`: its DPoP mark, whose lock the statement takes first.
 */
export async function settledRotation<T extends RotateResult>(
  c: PostgresConnection, unconfirmed: UnconfirmedRotations, input: RotateInput, markKey: string | null, write: (rotationId: string) => Promise<T>,
): Promise<T | RotateResult> {
  const rotationId = newRotationId();
  try {
    return await write(rotationId);
  } catch (err) {
    if (!(err instanceof OutcomeUnknownError)) throw err;
    const [rotated] = await settle(c, unconfirmed, [{ input, rotationId }], err, markKey === null ? [] : [markKey]);
    // Its DPoP mark, if any, committed with it.
    if (rotated) return { rotated: true };
    throw new StoreUnavailableError(err.cause);
  }
}

/** How many unsettled rotations a process remembers (each is one request's, answered 503). */
const MAX_REMEMBERED = 10_000;
const FIRST_RETRY_MS = 100;
const LAST_RETRY_MS = 2000;

interface Remembered {
  sessionId: string;
  generation: number;
  rotationId: string;
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
    for (const { input, rotationId } of sent) {
      if (this.count >= MAX_REMEMBERED) break;
      const forSession = this.remembered.get(input.sessionId) ?? [];
      forSession.push({ sessionId: input.sessionId, generation: input.next.generation, rotationId, markKeys });
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
    await this.markAll();
  }

  /** True if the row now carries the mark; either way the rotation is settled and forgotten. */
  private async mark(r: Remembered): Promise<boolean> {
    const rows = await this.c.one(MARK_SQL, [r.sessionId, r.generation, r.rotationId, r.markKeys], 'rotor_mark_unconfirmed');
    this.forget(r);
    return rows.length === 1;
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
        this.delayMs = done ? FIRST_RETRY_MS : Math.min(this.delayMs * 2, LAST_RETRY_MS);
        this.schedule();
      });
    }, this.delayMs);
    this.timer.unref();
  }
}
