import { createHash } from 'node:crypto';
import type { Policy, Profile, Algorithm } from '../domain/policy.js';
import type {
  App, AppKeyRecord, Millis, RefreshChain, RefreshRecord, Session, SigningKeyRecord, SigningKeyState, Subject, SubjectStatus,
} from '../domain/types.js';
import type { FoundSession, SubjectColumns } from '../domain/store.js';

/** Row ↔ record mapping shared by every SQL store (same column names everywhere). */
type Row = Record<string, unknown>;

const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));
const buf = (v: unknown): Buffer => (Buffer.isBuffer(v) ? v : Buffer.from(v as Uint8Array));
const bufOrNull = (v: unknown): Buffer | null => (v === null || v === undefined ? null : buf(v));
const json = <T>(v: unknown): T => (typeof v === 'string' ? JSON.parse(v) : v) as T;

export const appFromRow = (r: Row): App => ({
  id: String(r.id),
  name: String(r.name),
  profile: r.profile as Profile,
  public: r.public === true || r.public === 1,
  // As written; the domain (Apps) fills in fields a later release added, from the profile's defaults.
  policy: json<Policy>(r.policy),
  description: String(r.description ?? ''),
  createdAt: num(r.created_at),
  updatedAt: num(r.updated_at),
});

export const appKeyFromRow = (r: Row): AppKeyRecord => ({
  id: String(r.id),
  appId: String(r.app_id),
  secretHash: buf(r.secret_hash),
  createdAt: num(r.created_at),
  revokedAt: numOrNull(r.revoked_at),
});

export const signingKeyFromRow = (r: Row): SigningKeyRecord => ({
  kid: String(r.kid),
  appId: String(r.app_id),
  alg: r.alg as Algorithm,
  state: r.state as SigningKeyState,
  publicJwk: r.public_jwk === null || r.public_jwk === undefined ? null : json(r.public_jwk),
  privateSealed: buf(r.private_sealed),
  createdAt: num(r.created_at),
  retiredAt: numOrNull(r.retired_at),
  publishUntil: numOrNull(r.publish_until),
  revokedAt: numOrNull(r.revoked_at),
});

export const subjectFromRow = (r: Row): Subject => ({
  appId: String(r.app_id),
  subject: String(r.subject),
  claims: json(r.claims),
  status: r.status as SubjectStatus,
  passwordHash: strOrNull(r.password_hash),
  ed25519PublicKey: strOrNull(r.ed25519_public_key),
  createdAt: num(r.created_at),
  updatedAt: num(r.updated_at),
});

/**
 * A subject patch as SQL: the columns it names (fixed names, in a fixed order) with their stored
 * values, for an UPDATE that touches those columns only; and the whole row of a new subject (defaults
 * for whatever the patch leaves out).
 */
export function subjectPatchSql(appId: string, subject: string, set: SubjectColumns, now: Millis): {
  assignments: { column: string; value: unknown }[];
  insert: unknown[];
} {
  const assignments: { column: string; value: unknown }[] = [];
  if (set.claims !== undefined) assignments.push({ column: 'claims', value: JSON.stringify(set.claims) });
  if (set.status !== undefined) assignments.push({ column: 'status', value: set.status });
  if (set.passwordHash !== undefined) assignments.push({ column: 'password_hash', value: set.passwordHash });
  if (set.ed25519PublicKey !== undefined) assignments.push({ column: 'ed25519_public_key', value: set.ed25519PublicKey });
  return {
    assignments,
    insert: [
      appId, subject, JSON.stringify(set.claims ?? {}), set.status ?? 'active', set.passwordHash ?? null,
      set.ed25519PublicKey ?? null, now, now,
    ],
  };
}

/** Column list and order of `subjectPatchSql(...).insert`. */
export const SUBJECT_INSERT_COLUMNS = 'app_id, subject, claims, status, password_hash, ed25519_public_key, created_at, updated_at';

/** Session columns may come prefixed (`s_…`) when joined with other tables. */
export const sessionFromRow = (r: Row, p = ''): Session => ({
  id: String(r[`${p}id`]),
  appId: String(r[`${p}app_id`]),
  subject: String(r[`${p}subject`]),
  claims: json(r[`${p}claims`]),
  audience: strOrNull(r[`${p}audience`]),
  createdAt: num(r[`${p}created_at`]),
  lastRenewedAt: num(r[`${p}last_renewed_at`]),
  expiresAt: numOrNull(r[`${p}expires_at`]),
  ip: strOrNull(r[`${p}ip`]),
  userAgent: strOrNull(r[`${p}user_agent`]),
  lastIp: strOrNull(r[`${p}last_ip`]),
  lastUserAgent: strOrNull(r[`${p}last_user_agent`]),
  revokedAt: numOrNull(r[`${p}revoked_at`]),
  revokeReason: strOrNull(r[`${p}revoke_reason`]),
  horizonAt: num(r[`${p}horizon_at`]),
  refresh: chainFromRow(r, p),
  locator: strOrNull(r[`${p}locator`]),
  dpopJkt: strOrNull(r[`${p}dpop_jkt`]),
});

/** A found session (see Store.findSession) from its joined row; columns may be prefixed. */
export function foundSessionFromRow(row: Row | undefined, p = ''): FoundSession | null {
  if (!row) return null;
  return { session: sessionFromRow(row, p), subjectStatus: (row.subject_status ?? null) as SubjectStatus | null, keysVersion: Number(row.keys_version ?? 0) };
}

/** Generation 0: no chain (no refresh tokens, or a pre-upgrade record is still the live token). */
function chainFromRow(r: Row, p: string): RefreshChain | null {
  const generation = num(r[`${p}generation`] ?? 0);
  if (generation === 0) return null;
  return {
    generation,
    issuedAt: num(r[`${p}refresh_issued_at`]),
    notBefore: num(r[`${p}refresh_not_before`]),
    expiresAt: num(r[`${p}refresh_expires_at`]),
    successorSealed: bufOrNull(r[`${p}successor_sealed`]),
  };
}

/** The chain columns of a session, in `SESSION_CHAIN_COLUMNS` order (all null/0 without a chain). */
export function chainValues(chain: RefreshChain | null): [number, Millis | null, Millis | null, Millis | null, Buffer | null] {
  return chain === null
    ? [0, null, null, null, null]
    : [chain.generation, chain.issuedAt, chain.notBefore, chain.expiresAt, chain.successorSealed];
}

export const SESSION_CHAIN_COLUMNS = 'generation, refresh_issued_at, refresh_not_before, refresh_expires_at, successor_sealed';

export const refreshFromRow = (r: Row): RefreshRecord => ({
  id: String(r.id),
  sessionId: String(r.session_id),
  appId: String(r.app_id),
  parentId: strOrNull(r.parent_id),
  issuedAt: num(r.issued_at),
  notBefore: num(r.not_before),
  expiresAt: num(r.expires_at),
  consumedAt: numOrNull(r.consumed_at),
  successorId: strOrNull(r.successor_id),
  successorSealed: bufOrNull(r.successor_sealed),
});

/** The joined SELECT list that returns a session with `s_` prefixes. */
export const SESSION_COLUMNS_PREFIXED = [
  'id', 'app_id', 'subject', 'claims', 'audience', 'created_at', 'last_renewed_at', 'expires_at', 'ip',
  'user_agent', 'last_ip', 'last_user_agent', 'revoked_at', 'revoke_reason', 'horizon_at', 'locator', 'generation',
  'refresh_issued_at', 'refresh_not_before', 'refresh_expires_at', 'successor_sealed', 'dpop_jkt',
].map((c) => `s.${c} AS s_${c}`).join(', ');

/** The largest grace window any policy may set. */
export const MAX_GRACE_MS = 300_000;

/**
 * How long after its expiry, by the pruning instance's clock, a row is deleted: an instance whose clock
 * runs ahead (SECURITY-CASES F-11: ±30 s) must not take a DPoP replay mark or a pre-upgrade record that
 * the others still judge live.
 */
export const PRUNE_SKEW_MS = 60_000;

/**
 * How long a sealed successor is kept: the largest grace window, plus an hour for an instance whose
 * clock runs ahead, whose prune would otherwise take a seal another instance's grace retry still needs.
 * There is at most one seal per session, so keeping it longer costs no growth.
 */
export const SEAL_KEPT_MS = MAX_GRACE_MS + 3_600_000;

/** Rate-limit windows are one minute; the two before the current one are kept. */
export const RATE_WINDOWS_KEPT_MS = 3 * 60_000;

/** How a rate-limit key is stored: JSON text (no NUL, no lone surrogate), hashed beyond 200 characters. */
export function storedRateKey(key: string): string {
  const text = JSON.stringify(key);
  return text.length <= 200 ? text : `#${createHash('sha256').update(text).digest('base64url')}`;
}

/** The caller's keys back from stored ones: its own by lookup, other instances' by decoding (hashed ones are skipped). */
export function rateTotals(rows: Record<string, unknown>[], original: Map<string, string>): Map<string, number> {
  const totals = new Map<string, number>();
  for (const row of rows) {
    const key = String(row.key);
    const known = original.get(key) ?? (key.startsWith('"') ? (JSON.parse(key) as string) : null);
    if (known !== null) totals.set(known, Number(row.count));
  }
  return totals;
}
