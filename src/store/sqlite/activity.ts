import type { Millis, Session } from '../../domain/types.js';
import type {
  ActivitySample, AppSessionPage, EventQuery, NewSecurityEventRecord, PruneActivityInput, PruneActivityResult, SecurityEventRecord,
  SubjectListing, SubjectPage,
} from '../../domain/store.js';
import { activityFromRow, clampLimit, eventFromRow, subjectListingFromRow } from '../activity_rows.js';
import { sessionFromRow } from '../rows.js';
import type { Row, SqliteConnection } from './connection.js';

/** Listings, security events and activity samples (admin API §4.3, the console). */

/** Above every session id (ULIDs are digits and upper-case letters): `listAppSessions` from the newest. */
const NEWEST = '~';

export function listSubjects(c: SqliteConnection, appId: string, page: SubjectPage): Promise<SubjectListing[]> {
  return c.run(() =>
    (c.sql(
      `SELECT subj.*, (SELECT count(*) FROM sessions s WHERE s.app_id = subj.app_id AND s.subject = subj.subject
          AND s.revoked_at IS NULL AND s.horizon_at > ?) AS live_sessions
       FROM subjects subj WHERE subj.app_id = ? AND subj.subject > ? ORDER BY subj.subject LIMIT ?`,
    ).all(page.now, appId, page.after ?? '', clampLimit(page.limit)) as Row[]).map(subjectListingFromRow),
  );
}

export function listAppSessions(c: SqliteConnection, appId: string, page: AppSessionPage): Promise<Session[]> {
  const before = page.before ?? NEWEST;
  return c.run(() => {
    const rows = page.subject === null
      ? c.sql('SELECT * FROM sessions WHERE app_id = ? AND id < ? ORDER BY id DESC LIMIT ?').all(appId, before, clampLimit(page.limit))
      : c.sql('SELECT * FROM sessions WHERE app_id = ? AND subject = ? AND id < ? ORDER BY id DESC LIMIT ?')
        .all(appId, page.subject, before, clampLimit(page.limit));
    return (rows as Row[]).map((row) => sessionFromRow(row));
  });
}

export function appendEvent(c: SqliteConnection, event: NewSecurityEventRecord): Promise<void> {
  return c.run(() => {
    c.sql('INSERT INTO security_events (at, event, app_id, fields) VALUES (?, ?, ?, ?)')
      .run(event.at, event.event, event.appId, JSON.stringify(event.fields));
  });
}

export function listEvents(c: SqliteConnection, query: EventQuery): Promise<SecurityEventRecord[]> {
  const limit = clampLimit(query.limit);
  return c.run(() => {
    if (query.afterId === null && query.sinceAt === null) {
      const newest = c.sql('SELECT * FROM security_events ORDER BY id DESC LIMIT ?').all(limit) as Row[];
      return newest.reverse().map(eventFromRow);
    }
    return (c.sql('SELECT * FROM security_events WHERE id > ? AND at >= ? ORDER BY id LIMIT ?')
      .all(query.afterId ?? 0, query.sinceAt ?? 0, limit) as Row[]).map(eventFromRow);
  });
}

export function recordActivity(c: SqliteConnection, sample: ActivitySample): Promise<void> {
  return c.run(() => {
    c.sql('INSERT INTO activity_samples (at, instance, data) VALUES (?, ?, ?) ON CONFLICT (at, instance) DO UPDATE SET data = excluded.data')
      .run(sample.at, sample.instance, JSON.stringify(sample.data));
  });
}

export function listActivity(c: SqliteConnection, since: Millis): Promise<ActivitySample[]> {
  return c.run(() => (c.sql('SELECT * FROM activity_samples WHERE at >= ? ORDER BY at, instance').all(since) as Row[]).map(activityFromRow));
}

export function pruneActivity(c: SqliteConnection, input: PruneActivityInput): Promise<PruneActivityResult> {
  return c.run(() => ({
    events: c.sql('DELETE FROM security_events WHERE at < ?').run(input.eventsBefore).changes,
    samples: c.sql('DELETE FROM activity_samples WHERE at < ?').run(input.samplesBefore).changes,
  }));
}
