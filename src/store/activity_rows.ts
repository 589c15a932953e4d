import type { ActivitySample, SecurityEventFields, SecurityEventRecord, SubjectListing } from '../domain/store.js';
import { subjectFromRow } from './rows.js';

/** Row ↔ record mapping of the listings, security events and activity samples, shared by the SQL stores. */
type Row = Record<string, unknown>;

const jsonObject = (v: unknown): Record<string, unknown> => {
  const parsed = typeof v === 'string' ? JSON.parse(v) : v;
  return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
};

export const subjectListingFromRow = (r: Row): SubjectListing => ({ subject: subjectFromRow(r), liveSessions: Number(r.live_sessions ?? 0) });

export const eventFromRow = (r: Row): SecurityEventRecord => ({
  id: Number(r.id),
  at: Number(r.at),
  event: String(r.event),
  appId: r.app_id === null || r.app_id === undefined ? null : String(r.app_id),
  fields: jsonObject(r.fields) as SecurityEventFields,
});

export const activityFromRow = (r: Row): ActivitySample => ({ instance: String(r.instance), at: Number(r.at), data: jsonObject(r.data) });

/** Page sizes the stores accept (the admin API clamps before). */
export const clampLimit = (limit: number, max = 1000): number => Math.max(1, Math.min(max, Math.floor(limit)));
