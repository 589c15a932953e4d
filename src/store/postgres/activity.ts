import type { Millis, Session } from '../../domain/types.js';
import type {
  ActivitySample, AppSessionPage, EventQuery, NewSecurityEventRecord, PruneActivityInput, PruneActivityResult, SecurityEventRecord,
  SubjectListing, SubjectPage,
} from '../../domain/store.js';
import { activityFromRow, clampLimit, eventFromRow, subjectListingFromRow } from '../activity_rows.js';
import { sessionFromRow } from '../rows.js';
import type { PostgresConnection } from './connection.js';

/** Listings, security events and activity samples (admin API §4.3, the console). */

export async function listSubjects(c: PostgresConnection, appId: string, page: SubjectPage): Promise<SubjectListing[]> {
  const rows = await c.one(
    `SELECT subj.*, (SELECT count(*)::int FROM sessions s WHERE s.app_id = subj.app_id AND s.subject = subj.subject
        AND s.revoked_at IS NULL AND s.horizon_at > $1) AS live_sessions
     FROM subjects subj WHERE subj.app_id = $2 AND subj.subject > $3 ORDER BY subj.subject LIMIT $4`,
    [page.now, appId, page.after ?? '', clampLimit(page.limit)],
  );
  return rows.map(subjectListingFromRow);
}

export async function listAppSessions(c: PostgresConnection, appId: string, page: AppSessionPage): Promise<Session[]> {
  const rows = await c.one(
    `SELECT * FROM sessions WHERE app_id = $1 AND ($2::text IS NULL OR subject = $2) AND ($3::text IS NULL OR id < $3)
     ORDER BY id DESC LIMIT $4`,
    [appId, page.subject, page.before, clampLimit(page.limit)],
  );
  return rows.map((row) => sessionFromRow(row));
}

export async function appendEvent(c: PostgresConnection, event: NewSecurityEventRecord): Promise<void> {
  await c.one('INSERT INTO security_events (at, event, app_id, fields) VALUES ($1, $2, $3, $4)',
    [event.at, event.event, event.appId, JSON.stringify(event.fields)], 'rotor_append_event');
}

export async function listEvents(c: PostgresConnection, query: EventQuery): Promise<SecurityEventRecord[]> {
  const limit = clampLimit(query.limit);
  if (query.afterId === null && query.sinceAt === null) {
    const newest = await c.one('SELECT * FROM security_events ORDER BY id DESC LIMIT $1', [limit]);
    return newest.reverse().map(eventFromRow);
  }
  return (await c.one('SELECT * FROM security_events WHERE id > $1 AND at >= $2 ORDER BY id LIMIT $3',
    [query.afterId ?? 0, query.sinceAt ?? 0, limit])).map(eventFromRow);
}

export async function recordActivity(c: PostgresConnection, sample: ActivitySample): Promise<void> {
  await c.one(
    'INSERT INTO activity_samples (at, instance, data) VALUES ($1, $2, $3) ON CONFLICT (at, instance) DO UPDATE SET data = excluded.data',
    [sample.at, sample.instance, JSON.stringify(sample.data)],
  );
}

export async function listActivity(c: PostgresConnection, since: Millis): Promise<ActivitySample[]> {
  return (await c.one('SELECT * FROM activity_samples WHERE at >= $1 ORDER BY at, instance', [since])).map(activityFromRow);
}

export async function pruneActivity(c: PostgresConnection, input: PruneActivityInput): Promise<PruneActivityResult> {
  const [row] = await c.one(
    `WITH e AS (DELETE FROM security_events WHERE at < $1 RETURNING 1), a AS (DELETE FROM activity_samples WHERE at < $2 RETURNING 1)
     SELECT (SELECT count(*)::int FROM e) AS events, (SELECT count(*)::int FROM a) AS samples`,
    [input.eventsBefore, input.samplesBefore],
  );
  return { events: Number(row?.events ?? 0), samples: Number(row?.samples ?? 0) };
}
