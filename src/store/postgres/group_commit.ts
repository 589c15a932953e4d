import { StoreUnavailableError } from '../../domain/errors.js';
import type { DpopProofInput, FoundSession, RotateInput, RotateSessionResult } from '../../domain/store.js';
import { TurnBatcher } from '../turn_batcher.js';
import { noop, type PostgresConnection, type Row } from './connection.js';
import { OutcomeUnknownError } from './errors.js';
import { newRotationId, settle, settledRotation, timelyAfter, type UnconfirmedRotations } from './outcome.js';
import { FIND_SESSION_SQL, ROTATE_SET, rotateOne, rotateValues } from './sessions.js';

/** SQLSTATEs of a lock not obtained: deadlock_detected, lock_not_available. */
const LOCK_FAILURES = new Set(['40P01', '55P03']);

/**
 * Group commit (see TurnBatcher) of the two hot calls: the rotations of one event-loop turn go to the
 * server as one statement, `rotateMany`, so they share one round trip and one commit (one WAL flush),
 * DPoP replay marks included; the session lookups of one turn go as one statement too. A rotation's
 * answer lost with its connection is settled from the row (outcome.ts).
 */
export class PostgresGroupCommit {
  private rotationCount = 0;
  private nextAnalyzeAt = 1000;

  private readonly rotations: TurnBatcher<RotateInput, RotateSessionResult>;
  private readonly sessionLookups: TurnBatcher<string, Row | undefined>;

  constructor(private readonly c: PostgresConnection, private readonly unconfirmed: UnconfirmedRotations) {
    this.rotations = new TurnBatcher<RotateInput, RotateSessionResult>(
      (inputs) => rotateMany(c, unconfirmed, inputs),
      (input) => rotatedAlone(c, unconfirmed, input),
      // A lock that could not be had (deadlock, lock_timeout) concerns some inputs only: retried one by one.
      (err) => err instanceof StoreUnavailableError && !LOCK_FAILURES.has(String((err.cause as { code?: unknown } | undefined)?.code)),
    );
    this.sessionLookups = new TurnBatcher<string, Row | undefined>(
      async (ids) => {
        const rows = await c.one(`${FIND_SESSION_SQL} WHERE s.id = ANY ($1::text[])`, [ids], 'rotor_find_sessions');
        const found = new Map(rows.map((row) => [String(row.id), row]));
        return ids.map((id) => found.get(id));
      },
      async (id) => (await c.one(`${FIND_SESSION_SQL} WHERE s.id = $1`, [id], 'rotor_find_session'))[0],
      (err) => err instanceof StoreUnavailableError,
    );
  }

  rotateSession(input: RotateInput): Promise<RotateSessionResult> {
    this.countRotation();
    return this.rotations.submit(input);
  }

  async findSession(id: string): Promise<FoundSession | null> {
    return this.unconfirmed.found(await this.sessionLookups.submit(id));
  }

  /** Answers (or fails) every call already accepted. */
  async drain(): Promise<void> {
    await Promise.all([this.rotations.drain(), this.sessionLookups.drain()]);
  }

  /**
   * Cached generic plans are built from the statistics of the moment: on a new database, with a few
   * hundred rows, they scan `sessions` sequentially and keep doing so as the table
   * grow (measured: 2,800 -> 5,300 refresh/s after one ANALYZE at 10,000 tokens). Autovacuum would
   * ANALYZE eventually, if it is on; Rotor does not wait for it: after 1,000, 10,000, 100,000, ...
   * rotations in this process it analyses its hot table, which also invalidates the cached plans.
   */
  private countRotation(): void {
    this.rotationCount += 1;
    if (this.rotationCount < this.nextAnalyzeAt) return;
    this.nextAnalyzeAt *= 10;
    this.c.one('ANALYZE sessions').catch(noop);
  }
}

/** A rotation on its own: with a DPoP replay mark, the mark and the rotation in one statement (one commit). */
const rotatedAlone = (c: PostgresConnection, unconfirmed: UnconfirmedRotations, input: RotateInput): Promise<RotateSessionResult> =>
  input.dpopProof ? rotateOneWithMark(c, unconfirmed, input, input.dpopProof) : rotateOne(c, unconfirmed, input);

/**
 * The same compare-and-set as `rotateOne` for many inputs in one statement, which never waits: a session
 * another transaction holds (a rotation elsewhere, a revocation) is left out (SKIP LOCKED) and its input
 * goes on its own after the batch. So a batch cannot join a lock cycle, and one busy session cannot hold
 * up the unrelated rotations beside it. Two inputs naming one session join the same row: PostgreSQL
 * updates it once, with one of them, and RETURNING names that one, the winner; the other gets
 * `rotated: false`, as its own statement would have after waiting.
 *
 * DPoP replay marks commit with their rotations. Of the inputs whose session the batch holds, the first
 * to carry a mark claims it if no row holds that key yet (not even an expired one the pruner may be
 * deleting) and no other transaction is writing it (its advisory lock, which every writer of a mark takes
 * first, is free): so the insert cannot wait either. A claimed mark is recorded whether or not its
 * rotation wins, as a proof checked on its own would be. Every other input with a mark, or whose session
 * was busy, goes on its own: mark and rotation in one statement (a seen mark makes it `proofReplayed`;
 * a timeout there burns no proof).
 *
 * An answer lost with the connection is settled (outcome.ts): the inputs whose row shows their rotation
 * rotated; the batch is over by then, so every other input is decided on its own, as a busy session's is.
 */
async function rotateMany(
  c: PostgresConnection, unconfirmed: UnconfirmedRotations, inputs: RotateInput[],
): Promise<(RotateSessionResult | Promise<RotateSessionResult>)[]> {
  const deadline = c.rotationDeadline();
  const sent = inputs.map((input) => ({ input, rotationId: newRotationId(), deadline }));
  let rows: Row[];
  try {
    rows = await rotateManyStatement(c, sent.map((s) => s.input), sent.map((s) => s.rotationId), deadline);
  } catch (err) {
    if (!(err instanceof OutcomeUnknownError)) throw err;
    const settled = await settle(c, unconfirmed, sent, err);
    return inputs.map((input, i) => {
      if (settled[i] === 'rotated') return { rotated: true };
      // It may yet commit (remembered, see outcome.ts): 503, as for a lone rotation.
      if (settled[i] === 'pending') return Promise.reject(new StoreUnavailableError(err.cause));
      return rotatedAlone(c, unconfirmed, input);
    });
  }
  const outcomes = new Map(rows.map((row) => [Number(row.n), row]));
  return inputs.map((input, i) => {
    const row = outcomes.get(i + 1);
    // Late: nothing of it was written, its DPoP mark included (a proof is not spent on a 503).
    if (row?.locked === true && row.timely !== true) return Promise.reject(c.lateRotation());
    // Its session (or its mark) was busy, or it is unknown: decided on its own, and its failure is its
    // own (the batch has committed; see TurnBatcher).
    if (row?.locked !== true || (input.dpopProof && row.claimed !== true)) return rotatedAlone(c, unconfirmed, input);
    if (input.dpopProof && row.proven !== true) return { rotated: false, proofReplayed: true }; // a claimed mark another input of the batch recorded
    return { rotated: row.rotated === true };
  });
}

function rotateManyStatement(c: PostgresConnection, inputs: RotateInput[], rotationIds: string[], deadline: number): Promise<Row[]> {
  const column = <T>(pick: (input: RotateInput) => T): T[] => inputs.map(pick);
  return c.write(
    `WITH input AS (
       SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bytea[],
         $8::bigint[], $9::text[], $10::text[], $11::bigint[], $12::text[], $13::text[], $14::bigint[], $15::bigint[]) WITH ORDINALITY
         AS i(session_id, expect, generation, issued_at, not_before, expires_at, sealed, now, last_ip, last_user_agent, horizon, bind_jkt,
           mark_key, mark_expires, rotation_id, n)
     ), locked AS MATERIALIZED (
       SELECT s.id FROM sessions s WHERE s.id = ANY ($1::text[]) FOR NO KEY UPDATE SKIP LOCKED
     ), timely AS MATERIALIZED (${timelyAfter('locked', '$16')}
     ), claims AS MATERIALIZED (
       SELECT DISTINCT ON (mark_key) mark_key, mark_expires, n FROM input
       WHERE mark_key IS NOT NULL AND session_id IN (SELECT id FROM locked) AND (SELECT ok FROM timely) ORDER BY mark_key, n
     ), free AS MATERIALIZED (
       SELECT mark_key, mark_expires, n FROM claims
       WHERE NOT EXISTS (SELECT 1 FROM dpop_proofs d WHERE d.key = mark_key) AND pg_try_advisory_xact_lock(hashtextextended(mark_key, 0))
     ), marked AS (
       INSERT INTO dpop_proofs (key, expires_at) SELECT mark_key, mark_expires FROM free ORDER BY mark_key
       ON CONFLICT (key) DO NOTHING RETURNING key
     ), proven AS MATERIALIZED (
       SELECT n FROM free WHERE mark_key IN (SELECT key FROM marked)
     ), rotated AS (
       UPDATE sessions s SET generation = i.generation, refresh_issued_at = i.issued_at, refresh_not_before = i.not_before,
         refresh_expires_at = i.expires_at, successor_sealed = i.sealed, last_renewed_at = i.now,
         last_ip = COALESCE(i.last_ip, s.last_ip), last_user_agent = COALESCE(i.last_user_agent, s.last_user_agent),
         horizon_at = GREATEST(s.horizon_at, i.horizon), dpop_jkt = COALESCE(s.dpop_jkt, i.bind_jkt), rotation_id = i.rotation_id
       FROM input i
       WHERE s.id = i.session_id AND s.id IN (SELECT id FROM locked) AND s.generation = i.expect AND s.revoked_at IS NULL
         AND (i.mark_key IS NULL OR i.n IN (SELECT n FROM proven)) AND (SELECT ok FROM timely)
       RETURNING i.n
     )
     SELECT i.n::int AS n, i.n IN (SELECT n FROM rotated) AS rotated, i.session_id IN (SELECT id FROM locked) AS locked,
       i.mark_key IN (SELECT mark_key FROM free) AS claimed, i.n IN (SELECT n FROM proven) AS proven, (SELECT ok FROM timely) AS timely
     FROM input i`,
    [
      column((x) => x.sessionId), column((x) => x.expectGeneration), column((x) => x.next.generation), column((x) => x.next.issuedAt),
      column((x) => x.next.notBefore), column((x) => x.next.expiresAt), column((x) => x.next.successorSealed), column((x) => x.now),
      column((x) => x.lastIp), column((x) => x.lastUserAgent), column((x) => x.horizonAt), column((x) => x.bindJkt ?? null),
      column((x) => x.dpopProof?.key ?? null), column((x) => x.dpopProof?.expiresAt ?? null), rotationIds, deadline,
    ],
    'rotor_rotate_sessions',
  );
}

/**
 * A rotation and its DPoP replay mark in one statement: the mark's advisory lock (so no other writer of
 * it is between insert and commit), the mark, then the rotation if the mark is new. It may wait, for the
 * mark's lock or the session's row; it holds no session while it waits for the mark. The row is locked
 * (after the mark, and only if the mark is new: a replayed proof waits for no session) before the
 * deadline is read (outcome.ts).
 */
function rotateOneWithMark(c: PostgresConnection, unconfirmed: UnconfirmedRotations, input: RotateInput, mark: DpopProofInput): Promise<RotateSessionResult> {
  return settledRotation(c, unconfirmed, input, mark.key, async (rotationId, deadline) => {
    const rows = await c.write(
      `WITH held AS MATERIALIZED (
         SELECT pg_advisory_xact_lock(hashtextextended($14::text, 0))
       ), marked AS (
         INSERT INTO dpop_proofs (key, expires_at) SELECT $14::text, $15::bigint FROM held
         WHERE clock_timestamp() < to_timestamp($16::bigint / 1000.0) ON CONFLICT (key) DO NOTHING RETURNING key
       ), locked AS MATERIALIZED (
         SELECT id FROM sessions WHERE EXISTS (SELECT 1 FROM marked) AND id = $10 FOR NO KEY UPDATE
       ), timely AS MATERIALIZED (${timelyAfter('locked', '$16')}
       ), rotated AS (
         UPDATE sessions SET ${ROTATE_SET}
         WHERE id = $10 AND generation = $11::bigint AND revoked_at IS NULL AND EXISTS (SELECT 1 FROM marked) AND (SELECT ok FROM timely)
         RETURNING id
       )
       SELECT EXISTS (SELECT 1 FROM marked) AS marked, EXISTS (SELECT 1 FROM rotated) AS rotated, (SELECT ok FROM timely) AS timely`,
      [...rotateValues(input, rotationId), mark.key, mark.expiresAt, deadline], 'rotor_rotate_session_marked',
    );
    const row = rows[0];
    if (row?.timely !== true) throw c.lateRotation(); // its mark was not written either (a proof is not spent on a 503)
    if (row.marked !== true) return { rotated: false, proofReplayed: true };
    return { rotated: row.rotated === true };
  });
}
