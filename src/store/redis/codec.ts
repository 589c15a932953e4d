import type { App, AppKeyRecord, Session, SigningKeyRecord } from '../../domain/types.js';
import { appFromRow } from '../rows.js';

export type Row = Record<string, unknown>;

/** Fields stored base64 (binary in the records). */
const BINARY_FIELDS = new Set(['secret_hash', 'private_sealed', 'successor_sealed']);

/** An optional script argument: '' for null, '=' and the value otherwise. */
export const opt = (v: string | null | undefined): string => (v === null || v === undefined ? '' : `=${v}`);
export const str = (v: unknown): string => String(v);

/** A flat HGETALL reply as a row; binary fields decoded. */
export function rowOf(flat: unknown): Row | null {
  if (!Array.isArray(flat) || flat.length === 0) return null;
  const row: Row = {};
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const field = String(flat[i]);
    const value = flat[i + 1];
    row[field] = BINARY_FIELDS.has(field) ? Buffer.from(String(value), 'base64') : value;
  }
  return row;
}

/** A record's fields as the JSON object the scripts write (strings only; nulls left out). */
export function fields(values: Record<string, unknown>): string {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) {
    if (v === null || v === undefined) continue;
    if (Buffer.isBuffer(v)) out[k] = v.toString('base64');
    else if (typeof v === 'boolean') out[k] = v ? '1' : '0';
    else if (typeof v === 'object') out[k] = JSON.stringify(v);
    else out[k] = String(v);
  }
  return JSON.stringify(out);
}

export function flatOf(reply: unknown): unknown[] {
  return Array.isArray(reply) ? reply : [];
}

/** An HMGET of the app's id and key version: null id, the app is gone. */
export function appExists(reply: unknown): boolean {
  return Array.isArray(reply) && reply[0] !== null && reply[0] !== undefined;
}

/** `P:{P:n}:tag:s:id` → its subject's base `P:{P:n}:tag:` and the session id. */
export function splitKey(key: string, marker: string): { base: string; id: string } {
  const at = key.indexOf(marker, key.indexOf('}'));
  return { base: key.slice(0, at + 1), id: key.slice(at + marker.length) };
}

export const appRow = (row: Row): App => appFromRow({ ...row, public: row.public === '1' });

export function appColumns(app: App): Record<string, unknown> {
  return {
    id: app.id, name: app.name, profile: app.profile, public: app.public, policy: JSON.stringify(app.policy), description: app.description,
    created_at: app.createdAt, updated_at: app.updatedAt,
  };
}

export function appKeyColumns(k: AppKeyRecord): Record<string, unknown> {
  return { id: k.id, app_id: k.appId, secret_hash: k.secretHash, created_at: k.createdAt, revoked_at: k.revokedAt };
}

export function signingKeyColumns(k: SigningKeyRecord): Record<string, unknown> {
  return {
    kid: k.kid, app_id: k.appId, alg: k.alg, state: k.state, public_jwk: k.publicJwk ? JSON.stringify(k.publicJwk) : null,
    private_sealed: k.privateSealed, created_at: k.createdAt, retired_at: k.retiredAt, publish_until: k.publishUntil, revoked_at: k.revokedAt,
  };
}

export function sessionColumns(s: Session): Record<string, unknown> {
  const chain = s.refresh;
  return {
    id: s.id, app_id: s.appId, subject: s.subject, claims: JSON.stringify(s.claims), audience: s.audience, created_at: s.createdAt,
    last_renewed_at: s.lastRenewedAt, expires_at: s.expiresAt, ip: s.ip, user_agent: s.userAgent, last_ip: s.lastIp,
    last_user_agent: s.lastUserAgent, revoked_at: s.revokedAt, revoke_reason: s.revokeReason, horizon_at: s.horizonAt, locator: s.locator,
    dpop_jkt: s.dpopJkt ?? null,
    generation: chain?.generation ?? 0, refresh_issued_at: chain?.issuedAt, refresh_not_before: chain?.notBefore,
    refresh_expires_at: chain?.expiresAt, successor_sealed: chain?.successorSealed,
  };
}
